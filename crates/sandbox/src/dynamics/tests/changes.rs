//! What an incremental read relies on, over real HTTP: every write moves `modifiedon` by the
//! environment's clock, which `Date` tells; `$filter` compares `modifiedon` with a date-time;
//! `$orderby=modifiedon asc,<id> asc` pages through ties with the paging cookie.

use super::*;

/// The `modifiedon` of `rest` (one record), in epoch milliseconds.
async fn modified(env: &Env, rest: &str) -> i64 {
    let (status, _, body) = env.get(&format!("{rest}?$select=modifiedon"), &[]).await;
    assert_eq!(status, 200, "{rest}: {body}");
    records::parse_datetime(body["modifiedon"].as_str().expect("modifiedon")).expect("a date-time")
}

/// The ids of the first `n` rows of entity set `set` in key order.
async fn ids(env: &Env, set: &str, id: &str, n: usize) -> Vec<String> {
    let (status, _, page) = env.get(&format!("{set}?$select={id}&$top={n}"), &[]).await;
    assert_eq!(status, 200, "{page}");
    page["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|r| r[id].as_str().expect("id").to_owned())
        .collect()
}

/// Every row a query returns, following next links with `odata.maxpagesize=page_size`; and
/// the number of pages.
async fn all_pages(env: &Env, first: &str, page_size: usize) -> (Vec<Json>, usize) {
    let prefer = format!("odata.maxpagesize={page_size}");
    let prefer = [("Prefer", prefer.as_str())];
    let mut rows = Vec::new();
    let mut url = env.url(first);
    let mut pages = 0;
    loop {
        let (status, _, page) = env.send(reqwest::Method::GET, &url, &prefer, None).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        rows.extend(page["value"].as_array().expect("value").iter().cloned());
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => return (rows, pages),
        }
    }
}

#[tokio::test]
async fn writes_move_modifiedon_by_the_clock_that_date_tells() {
    let env = env(Options::default()).await;
    env.emulator.seed(&generate(12, 3, &Mess::none()));
    let account = ids(&env, "accounts", "accountid", 2).await;
    let contact = ids(&env, "contacts", "contactid", 1).await.remove(0);
    let deal = ids(&env, "opportunities", "opportunityid", 1)
        .await
        .remove(0);
    let note = ids(&env, "annotations", "annotationid", 1).await.remove(0);
    let before = [
        modified(&env, &format!("accounts({})", account[0])).await,
        modified(&env, &format!("contacts({contact})")).await,
        modified(&env, &format!("opportunities({deal})")).await,
        modified(&env, &format!("annotations({note})")).await,
    ];

    // A day on: `Date` says so.
    env.emulator.advance_clock(Duration::from_secs(86_400));
    let (_, headers, _) = env.get("WhoAmI", &[]).await;
    let date = headers[header::DATE].to_str().expect("a Date header");
    let machine = crate::clock::system_ms();
    let day_on = crate::timestamp::http_date(machine + 86_400_000);
    assert_eq!(&date[..22], &day_on[..22], "{date} vs {day_on}");

    // A column edit, a lookup set (a contact's account, a deal's contact) and a note's edit
    // each move their own row's modifiedon to the environment's clock; nothing else moves.
    let writes = [
        (
            format!("accounts({})", account[0]),
            json!({"telephone1": "+1 555 0100"}),
        ),
        (
            format!("contacts({contact})"),
            json!({"parentcustomerid_account@odata.bind": format!("/accounts({})", account[1])}),
        ),
        (
            format!("opportunities({deal})"),
            json!({"parentcontactid@odata.bind": format!("/contacts({contact})")}),
        ),
        (
            format!("annotations({note})"),
            json!({"notetext": "Edited"}),
        ),
    ];
    for ((rest, body), was) in writes.iter().zip(before) {
        let (status, _, answer) = env.patch(rest, &[], body.clone()).await;
        assert_eq!(status, 204, "{rest}: {answer}");
        let now = modified(&env, rest).await;
        assert!(now > was, "{rest}: modifiedon moved");
        assert!(
            (now - (machine + 86_400_000)).abs() < 60_000,
            "{rest}: stamped by the environment's clock"
        );
    }
    let untouched = modified(&env, &format!("accounts({})", account[1])).await;
    assert!(untouched < machine, "a lookup's target is not modified");
}

#[tokio::test]
async fn modifiedon_filters_and_orders_ties_by_key_across_pages() {
    let env = env(Options::default()).await;
    env.emulator.seed(&generate(40, 5, &Mess::none()));
    let contacts = ids(&env, "contacts", "contactid", 40).await;
    env.emulator.advance_clock(Duration::from_secs(3_600));
    let since = env.emulator.shared.clock.now_ms() / 1000 * 1000;
    let since_text = odata::iso(since);
    // Five contacts changed in one `$batch` share one modifiedon (ties); then two alone.
    let tied: Vec<(&str, String, Option<Json>)> = contacts[10..15]
        .iter()
        .map(|id| {
            (
                "PATCH",
                format!("contacts({id})"),
                Some(json!({"jobtitle": "Tied"})),
            )
        })
        .collect();
    let parts: Vec<(&str, &str, Option<Json>)> = tied
        .iter()
        .map(|(m, u, b)| (*m, u.as_str(), b.clone()))
        .collect();
    let (status, text) = post_batch(&env, batch_body("batch_t1", &parts), false).await;
    assert_eq!(status, 200, "{text}");
    for id in [&contacts[3], &contacts[30]] {
        env.emulator.advance_clock(Duration::from_millis(1_500));
        let (status, _, body) = env
            .patch(
                &format!("contacts({id})"),
                &[],
                json!({"jobtitle": "Alone"}),
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }

    let query = format!(
        "contacts?$select=jobtitle,modifiedon&$filter=modifiedon ge {since_text}&$orderby=modifiedon asc,contactid asc"
    );
    let (rows, pages) = all_pages(&env, &query, 2).await;
    assert_eq!(pages, 4, "seven changes, two a page");
    let got: Vec<&str> = rows
        .iter()
        .map(|r| r["contactid"].as_str().expect("id"))
        .collect();
    let mut tied_ids: Vec<&str> = contacts[10..15].iter().map(String::as_str).collect();
    tied_ids.sort_by_key(|id| store::parse_guid(id));
    let mut want = tied_ids.clone();
    want.extend([contacts[3].as_str(), contacts[30].as_str()]);
    assert_eq!(
        got, want,
        "exactly the changes, by modifiedon then key, each once"
    );
    let stamps: Vec<&str> = rows
        .iter()
        .map(|r| r["modifiedon"].as_str().expect("t"))
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");

    // gt and lt bound the window as SQL does (the stored instant has milliseconds, the rendered
    // one whole seconds); an `and` of them is a window.
    let last = records::parse_datetime(stamps[6]).expect("t");
    let count = |filter: String| {
        let env = &env;
        async move {
            let (rows, _) = all_pages(
                env,
                &format!("contacts?$select=contactid&$filter={filter}"),
                5_000,
            )
            .await;
            rows.len()
        }
    };
    assert_eq!(
        count(format!("modifiedon gt {}", odata::iso(last + 1_000))).await,
        0
    );
    assert_eq!(count(format!("modifiedon lt {since_text}")).await, 33);
    assert_eq!(
        count(format!(
            "modifiedon ge {since_text} and modifiedon lt {}",
            odata::iso(last + 1_000)
        ))
        .await,
        7
    );
    // Fractions of a second and offsets are read too.
    assert_eq!(
        count(format!(
            "modifiedon ge {}",
            odata::iso(since).replace('Z', ".000%2B00:00")
        ))
        .await,
        7
    );
}

#[tokio::test]
async fn malformed_date_filters_and_orders_are_refused_as_dataverse_does() {
    let env = env(Options::default()).await;
    env.emulator.seed(&generate(3, 1, &Mess::none()));
    for (query, message) in [
        (
            "contacts?$filter=modifiedon ge 'yesterday'",
            "A binary operator with incompatible types was detected. Found operand types 'Edm.DateTimeOffset' and \
             'Edm.String' for operator kind 'GreaterThanOrEqual'.",
        ),
        (
            "opportunities?$filter=modifiedon lt 5",
            "A binary operator with incompatible types was detected. Found operand types 'Edm.DateTimeOffset' and \
             'Edm.Int32' for operator kind 'LessThan'.",
        ),
        (
            "accounts?$filter=modifiedon gt 2026-13-45T00:00:00Z",
            "Unrecognized 'Edm.DateTimeOffset' literal '2026-13-45T00:00:00Z' at '14' in 'modifiedon gt \
             2026-13-45T00:00:00Z'.",
        ),
        (
            "annotations?$filter=modifiedon gt 2026-01-01T00:00:00",
            "Unrecognized 'Edm.DateTimeOffset' literal '2026-01-01T00:00:00' at '14' in 'modifiedon gt \
             2026-01-01T00:00:00'.",
        ),
    ] {
        let (status, _, body) = env.get(query, &[]).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "0x80060888", "{query}");
        assert_eq!(body["error"]["message"], message, "{query}");
    }
    for query in [
        "contacts?$orderby=modifiedon desc",
        "contacts?$orderby=contactid asc,modifiedon asc",
        "opportunities?$orderby=modifiedon asc,name asc",
    ] {
        let (status, _, body) = env.get(query, &[]).await;
        assert_eq!(status, 400, "{query}: {body}");
    }
    // A key-ordered cookie does not resume a modifiedon-ordered read.
    let (_, _, page) = env
        .get(
            "contacts?$select=contactid",
            &[("Prefer", "odata.maxpagesize=1")],
        )
        .await;
    let link = page["@odata.nextLink"].as_str().expect("a next link");
    let swapped = link.replace(
        "$select=contactid",
        "$select=contactid&$orderby=modifiedon%20asc",
    );
    let (status, _, body) = env.send(reqwest::Method::GET, &swapped, &[], None).await;
    assert_eq!(status, 400, "{body}");
}

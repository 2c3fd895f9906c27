//! End-to-end: what `ferry sync`'s JSON report adds to a migration's, through the real binary
//! from a HubSpot emulator into a Salesforce emulator. Records a sync reads again unchanged
//! (through the overlap with the last sync, or re-stamped by the vendor with no change) are
//! counted `unchanged_skipped` and never sent to the sink, while a record changed inside the
//! overlap is written; and the time each vendor's limits made ferry wait (`paced_ms` on ferry's
//! own pacer, `throttled_wait_ms` on 429 with `Retry-After`) is reported per side and object.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{SyncPair, all_credentials, count as n, object, run_config};
use ferry_sandbox::VendorEmulator;
use ferry_sandbox::faults::Faults;
use ferry_sandbox::hubspot;
use ferry_sandbox::seed::{Mess, generate};

const OBJECTS: [&str; 3] = ["companies", "contacts", "deals"];

/// A seeded HubSpot account as the source, an empty Salesforce org as the sink.
type Pair = SyncPair<hubspot::Emulator>;

async fn pair(contacts: usize, sink_faults: Faults) -> Pair {
    let portal = hubspot::Emulator::new(hubspot::Options::default());
    portal.seed(&generate(contacts, 23, &Mess::none()));
    SyncPair::start_with("hubspot", portal, "salesforce", sink_faults).await
}

/// Runs `ferry sync --config <config> --report json -q`, which must exit 0.
async fn sync(config: &str) -> serde_json::Value {
    let (code, report, stderr) = run_config("sync", config, &all_credentials()).await;
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["outcome"], "verified", "{report:#}");
    report
}

/// The sink requests that write: any method but GET, the token request aside.
fn writes(requests: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    requests
        .iter()
        .filter(|(e, _)| !e.starts_with("GET ") && !e.ends_with("/oauth2/token"))
        .map(|(e, n)| (e.clone(), *n))
        .collect()
}

/// The ids of the first 100 live records of `object` in the HubSpot emulator, in id order.
async fn ids(pair: &Pair, object: &str) -> Vec<String> {
    let list: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/crm/v3/objects/{object}?limit=100",
            pair.source.base_url
        ))
        .bearer_auth(ferry_sandbox::HUBSPOT_TOKEN)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("list JSON");
    list["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Sets `property` of HubSpot record `id` of `object`, as a user's edit would.
async fn edit(pair: &Pair, object: &str, id: &str, property: &str, value: &str) {
    let answer = reqwest::Client::new()
        .patch(format!(
            "{}/crm/v3/objects/{object}/{id}",
            pair.source.base_url
        ))
        .bearer_auth(ferry_sandbox::HUBSPOT_TOKEN)
        .json(&serde_json::json!({"properties": {property: value}}))
        .send()
        .await
        .expect("edit");
    assert!(answer.status().is_success(), "{}", answer.status());
}

/// The number of record digests the state file keeps for `object`.
fn digests(pair: &Pair, object: &str) -> usize {
    let text = std::fs::read_to_string(pair.state()).expect("state");
    let state: serde_json::Value = serde_json::from_str(&text).expect("state JSON");
    state["objects"][object]["digests"]
        .as_object()
        .unwrap_or_else(|| panic!("no digests for {object}: {text}"))
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn records_read_again_unchanged_are_skipped_and_a_change_in_the_overlap_is_written() {
    let pair = pair(40, Faults::default()).await;
    let config = pair.config(&OBJECTS);

    // First sync: everything created. The seed's records were last modified long before the
    // sync point, so the next sync does not read them again: no digest is kept.
    let first = sync(&config).await;
    for name in OBJECTS {
        let o = object(&first, name);
        assert_eq!(
            n(o, "created"),
            pair.account.count(name).expect("count") as u64
        );
        assert_eq!(n(o, "unchanged_skipped"), 0, "{o:#}");
        assert_eq!(digests(&pair, name), 0);
    }
    pair.take_sink_requests();

    // Every 5th record is stamped as modified with nothing changed (another user saving it, a
    // workflow touching a field ferry does not carry). The next sync reads them and, with no
    // digest of them yet, writes them; it keeps their digests, since they were modified inside
    // the overlap its successor reads again.
    let touched: Vec<u64> = OBJECTS
        .iter()
        .map(|o| pair.account.touch(o, 5) as u64)
        .collect();
    assert!(touched.iter().all(|t| *t > 1), "{touched:?}");
    // Two seconds on: a read ends at the vendor's clock in whole seconds, and leaves a change
    // in the second it starts to the sync after.
    pair.account.advance_clock(Duration::from_secs(2));
    let second = sync(&config).await;
    for (name, touched) in OBJECTS.iter().zip(&touched) {
        let o = object(&second, name);
        assert_eq!(
            (n(o, "read"), n(o, "updated"), n(o, "unchanged_skipped")),
            (*touched, *touched, 0),
            "{o:#}"
        );
        assert_eq!(digests(&pair, name) as u64, *touched);
    }
    assert!(!writes(&pair.take_sink_requests()).is_empty());
    let state = std::fs::read_to_string(pair.state()).expect("state");
    assert!(
        !state.contains('@') && !state.contains("example"),
        "{state}"
    );

    // A sync right after it reads the same records again through the overlap: every one is as
    // the last sync wrote it, so none is written, and the sink sees no write at all.
    let third = sync(&config).await;
    for (name, touched) in OBJECTS.iter().zip(&touched) {
        let o = object(&third, name);
        assert_eq!(
            (
                n(o, "read"),
                n(o, "unchanged_skipped"),
                n(o, "written"),
                n(o, "failed")
            ),
            (*touched, *touched, 0, 0),
            "{o:#}"
        );
        assert_eq!(o["sync"]["settled"], true, "{o:#}");
        assert_eq!(digests(&pair, name) as u64, *touched, "still kept");
    }
    let sink_writes = writes(&pair.take_sink_requests());
    assert!(sink_writes.is_empty(), "{sink_writes:?}");
    // The human summary says so.
    let out = common::ferry(&["sync", "--config", &config, "-q"], &all_credentials()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{} records ({} unchanged as the last sync wrote them, not written again)",
            touched[1], touched[1]
        )) && stdout.contains(&format!(
            "nothing changed since the last sync: {} records read again, as the last sync wrote \
             them; nothing written",
            touched.iter().sum::<u64>()
        )),
        "{stdout}"
    );
    pair.take_sink_requests();

    // A touched contact really changes inside the overlap: its digest differs, so it alone
    // is written; the others are still skipped.
    let contacts = ids(&pair, "contacts").await;
    edit(&pair, "contacts", &contacts[0], "jobtitle", "Head of Sync").await;
    pair.account.advance_clock(Duration::from_secs(2));
    let fourth = sync(&config).await;
    let o = object(&fourth, "contacts");
    assert_eq!(
        (
            n(o, "read"),
            n(o, "updated"),
            n(o, "verified"),
            n(o, "unchanged_skipped")
        ),
        (touched[1], 1, 1, touched[1] - 1),
        "{o:#}"
    );
    assert_eq!(n(object(&fourth, "companies"), "written"), 0);
    assert!(!writes(&pair.take_sink_requests()).is_empty());

    let (code, verified, stderr) = run_config("verify", &config, &all_credentials()).await;
    assert_eq!(code, 0, "{verified:#}\n{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_counts_the_time_each_vendors_limits_made_ferry_wait() {
    // The sink answers 2 of every 6 requests 429 with `Retry-After: 1`; the source's client is
    // paced to 20 requests per 10 s.
    let faults = Faults::parse("storm:2/6,retry-after:1").expect("fault profile");
    let pair = pair(20, faults).await;
    let config = pair.config(&OBJECTS);
    let text = std::fs::read_to_string(&config).expect("config");
    let paced = text.replacen(
        "[source]\nconnector = \"hubspot\"\n",
        "[source]\nconnector = \"hubspot\"\nrate_limit_per_10s = 20\n",
        1,
    );
    assert_ne!(paced, text);
    std::fs::write(&config, paced).expect("write config");

    let report = sync(&config).await;
    let (source, sink) = (&report["source_http"], &report["sink_http"]);
    eprintln!("source {source}\nsink {sink}");
    // Every 429 was retried after at least the second it asked for.
    assert!(n(sink, "throttled") > 0, "{sink}");
    assert!(
        n(sink, "throttled_wait_ms") >= 1000 * n(sink, "throttled"),
        "{sink}"
    );
    // Salesforce's client has no rate limit configured: nothing paced it.
    assert_eq!(n(sink, "paced_ms"), 0, "{sink}");
    // The source's requests queued for their turn at 2 per second, and it never saw a 429.
    assert!(
        n(source, "paced_ms") >= 500,
        "one 0.5 s turn at least: {source}"
    );
    assert_eq!(
        (n(source, "throttled"), n(source, "throttled_wait_ms")),
        (0, 0),
        "{source}"
    );
    // Per object too: what an object's writes waited is in its own report.
    let per_object: u64 = OBJECTS
        .iter()
        .map(|o| n(&object(&report, o)["sink_http"], "throttled_wait_ms"))
        .sum();
    assert!(per_object > 0, "{report:#}");
    for name in OBJECTS {
        let http = &object(&report, name)["sink_http"];
        assert!(
            n(http, "throttled_wait_ms") >= 1000 * n(http, "throttled"),
            "{name}: {http}"
        );
    }
    // The human summary says how long.
    let out = common::ferry(&["sync", "--config", &config, "-q"], &all_credentials()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("on 429 and Retry-After"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_limits_and_no_faults_nothing_waits() {
    // Salesforce as the source, with no rate limit configured, into an unlimited HubSpot.
    let org =
        ferry_sandbox::salesforce::Emulator::new(ferry_sandbox::salesforce::Options::default());
    org.seed(&generate(10, 29, &Mess::none()));
    let pair = SyncPair::start("salesforce", org, "hubspot").await;
    let config = pair.config(&OBJECTS);
    let report = sync(&config).await;
    let source = &report["source_http"];
    assert!(n(source, "requests") > 0, "{source}");
    assert_eq!(
        (n(source, "paced_ms"), n(source, "throttled_wait_ms")),
        (0, 0),
        "{source}"
    );
    assert_eq!(n(&report["sink_http"], "throttled_wait_ms"), 0);
}

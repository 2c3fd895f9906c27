//! The Zoho source's incremental reads (`ferry sync`) against the sandbox's Zoho emulator,
//! over real HTTP on loopback: COQL on `Modified_Time` in id order for Accounts, Contacts and
//! Deals; the list with `If-Modified-Since` for Notes, moving its time window on when a page
//! token runs out.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{config, read_all, start};
use ferry_core::{ObjectType, Record, Source, Watermark};
use ferry_sandbox::seed::{Mess, generate};
use ferry_sandbox::zoho::{Emulator, Options};
use ferry_zoho::ZohoSource;
use serde_json::{Value as Json, json};

const OBJECTS: [(ObjectType, &str); 4] = [
    (ObjectType::COMPANIES, "Accounts"),
    (ObjectType::CONTACTS, "Contacts"),
    (ObjectType::DEALS, "Deals"),
    (ObjectType::NOTES, "Notes"),
];

/// Zoho's API as an app calls it, with an access token of its own.
struct Api {
    base_url: String,
    http: reqwest::Client,
    token: String,
}

impl Api {
    async fn new(base_url: &str) -> Api {
        Api {
            base_url: base_url.to_owned(),
            http: reqwest::Client::new(),
            token: common::token(base_url).await,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Json>) -> Json {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header("Authorization", format!("Zoho-oauthtoken {}", self.token));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("request");
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answer.json().await.unwrap_or(Json::Null)
    }

    /// Record `id` of `module` with `fields`.
    async fn get(&self, module: &str, id: &str, fields: &str) -> Json {
        let body = self
            .call(
                reqwest::Method::GET,
                &format!("/crm/v8/{module}/{id}?fields={fields}"),
                None,
            )
            .await;
        body["data"][0].clone()
    }

    /// Edits record `id` of `module` as a user would: Accounts and Contacts through upsert
    /// (on their duplicate-check field, what this emulator writes them by), Deals and Notes
    /// by id.
    async fn edit(&self, module: &str, id: &str, n: usize) {
        let (path, record) = match module {
            "Accounts" => {
                let name = self.get(module, id, "Account_Name").await["Account_Name"].clone();
                (
                    "/crm/v8/Accounts/upsert".to_owned(),
                    json!({"Account_Name": name, "Phone": format!("+1 555 01{n:02}")}),
                )
            }
            "Contacts" => {
                let email = self.get(module, id, "Email").await["Email"].clone();
                (
                    "/crm/v8/Contacts/upsert".to_owned(),
                    json!({"Email": email, "Title": format!("Edited {n}")}),
                )
            }
            "Deals" => (format!("/crm/v8/Deals/{id}"), json!({"Amount": 1000 + n})),
            _ => (
                format!("/crm/v8/Notes/{id}"),
                json!({"Note_Content": format!("Edited since {n}")}),
            ),
        };
        let method = if path.ends_with("upsert") {
            reqwest::Method::POST
        } else {
            reqwest::Method::PUT
        };
        let answer = self
            .call(method, &path, Some(json!({"data": [record]})))
            .await;
        assert_eq!(answer["data"][0]["status"], "success", "{answer}");
    }
}

/// Every record `source` reads of `object` changed since `since`, from `cursor` on (at most
/// `max_pages` pages), the pages read, and the cursor it stopped at.
async fn read_changes(
    source: &ZohoSource,
    object: ObjectType,
    since: &Watermark,
    mut cursor: Option<String>,
    max_pages: usize,
) -> (Vec<Record>, usize, Option<String>) {
    let mut records = Vec::new();
    for pages in 1..=max_pages {
        let fetched = source
            .fetch_changed_page(object, since, cursor.as_deref())
            .await
            .expect("changes");
        let page = (fetched.records)().expect("records");
        assert!(page.unreadable.is_empty(), "{:?}", page.unreadable);
        records.extend(page.records);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (records, pages, None),
        }
    }
    (records, max_pages, cursor)
}

fn ids(records: &[Record]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| r.source_id.clone()).collect();
    ids.sort_unstable();
    ids
}

/// A seeded org, a source reading it (`page_size` records a page), and the API.
async fn seeded(
    options: Options,
    contacts: usize,
    page_size: usize,
) -> (Emulator, ferry_sandbox::Running, ZohoSource, Api) {
    let (emulator, running) = start(options).await;
    emulator.seed(&generate(contacts, 17, &Mess::none()));
    let source = ZohoSource::new(
        config(&running.base_url, json!({"page_size": page_size})),
        "source",
    )
    .expect("source");
    let api = Api::new(&running.base_url).await;
    (emulator, running, source, api)
}

#[tokio::test]
async fn only_changed_records_of_every_object_are_read_as_a_full_read_builds_them() {
    let (emulator, _running, source, api) = seeded(Options::default(), 60, 200).await;
    let mut before: HashMap<ObjectType, Vec<Record>> = HashMap::new();
    for (object, _) in OBJECTS {
        before.insert(object, read_all(&source, object).await.0);
    }
    emulator.advance_clock(Duration::from_secs(3600));
    let point = source
        .sync_point(ObjectType::COMPANIES)
        .await
        .expect("sync point");
    let clock = emulator.now_ms();
    assert!(
        (clock - 300_000 - 2000..=clock - 300_000).contains(&point.at_ms),
        "Zoho's clock less five minutes, whole seconds: {point:?} vs {clock}"
    );
    assert_eq!(point.at_ms % 1000, 0);
    // Nothing changed since: nothing read, one request per object.
    let since = Watermark::at(clock);
    for (object, _) in OBJECTS {
        let (records, pages, _) = read_changes(&source, object, &since, None, 5).await;
        assert_eq!((records.len(), pages), (0, 1), "{object}");
    }

    emulator.advance_clock(Duration::from_secs(600));
    let mut edited: HashMap<ObjectType, Vec<String>> = HashMap::new();
    for (object, module) in OBJECTS {
        let all = &before[&object];
        let picked: Vec<String> = [1, 4, 7]
            .iter()
            .map(|&i| all[i].source_id.clone())
            .collect();
        for (n, id) in picked.iter().enumerate() {
            api.edit(module, id, n).await;
        }
        edited.insert(object, picked);
    }
    for (object, _) in OBJECTS {
        let (changed, _, _) = read_changes(&source, object, &point, None, 5).await;
        let mut want = edited[&object].clone();
        want.sort_unstable();
        assert_eq!(ids(&changed), want, "{object}: exactly the edited records");
        // Each as a full read now builds it: fields, links, owners, roles, currency.
        let full = read_all(&source, object).await.0;
        for record in &changed {
            let same = full
                .iter()
                .find(|r| r.source_id == record.source_id)
                .expect("in the full read");
            assert_eq!(record, same, "{object} {}", record.source_id);
            let old = before[&object]
                .iter()
                .find(|r| r.source_id == record.source_id)
                .expect("read before");
            assert_ne!(record, old, "{object}: the edit is read");
        }
    }
}

#[tokio::test]
async fn a_record_stamped_at_the_watermark_second_is_read_and_one_a_second_before_is_not() {
    let (emulator, _running, source, api) = seeded(Options::default(), 20, 200).await;
    emulator.advance_clock(Duration::from_secs(3600));
    for (object, module) in OBJECTS {
        let (all, _) = read_all(&source, object).await;
        let id = all[2].source_id.clone();
        api.edit(module, &id, 0).await;
        let stamped = api.get(module, &id, "Modified_Time").await["Modified_Time"]
            .as_str()
            .and_then(ferry_core::model::parse_timestamp)
            .expect("Modified_Time");
        let at = Watermark::at(stamped);
        let (read, _, _) = read_changes(&source, object, &at, None, 5).await;
        assert_eq!(
            ids(&read),
            vec![id.clone()],
            "{object}: at the watermark's second"
        );
        let after = Watermark::at(stamped + 1000);
        let (read, _, _) = read_changes(&source, object, &after, None, 5).await;
        assert!(read.is_empty(), "{object}: stamped before the watermark");
        emulator.advance_clock(Duration::from_secs(10));
    }
}

#[tokio::test]
async fn many_changes_page_and_a_read_resumes_from_its_cursor_in_a_new_process() {
    let (emulator, running, source, api) = seeded(Options::default(), 150, 5).await;
    emulator.advance_clock(Duration::from_secs(3600));
    let since = Watermark::at(emulator.now_ms() - 1000);
    for (object, module) in OBJECTS {
        let (all, _) = read_all(&source, object).await;
        let picked: Vec<String> = all.iter().take(12).map(|r| r.source_id.clone()).collect();
        assert_eq!(picked.len(), 12, "{object}");
        for (n, id) in picked.iter().enumerate() {
            api.edit(module, id, n).await;
        }
        // Two pages, then a new source (a resumed run) goes on from the cursor.
        let (first, pages, cursor) = read_changes(&source, object, &since, None, 2).await;
        assert_eq!((first.len(), pages), (10, 2), "{object}");
        let cursor = cursor.expect("more pages");
        let resumed = ZohoSource::new(config(&running.base_url, json!({"page_size": 5})), "source")
            .expect("source");
        let (rest, pages, end) = read_changes(&resumed, object, &since, Some(cursor), 10).await;
        assert_eq!((rest.len(), pages, end), (2, 1, None), "{object}");
        let all_read: Vec<Record> = first.into_iter().chain(rest).collect();
        let unique: HashSet<&str> = all_read.iter().map(|r| r.source_id.as_str()).collect();
        assert_eq!(unique.len(), all_read.len(), "{object}: each record once");
        let mut want = picked.clone();
        want.sort_unstable();
        assert_eq!(ids(&all_read), want, "{object}");
    }
}

#[tokio::test]
async fn notes_past_a_page_tokens_reach_go_on_in_a_new_time_window() {
    // Page tokens reach 6 records here (100,000 at Zoho).
    let options = Options {
        page_token_reach: 6,
        ..Options::default()
    };
    let (emulator, running, source, api) = seeded(options, 40, 200).await;
    emulator.advance_clock(Duration::from_secs(3600));
    let since = Watermark::at(emulator.now_ms() - 1000);
    let (notes, _) = read_all(&source, ObjectType::NOTES).await;
    let source = ZohoSource::new(config(&running.base_url, json!({"page_size": 2})), "source")
        .expect("source");
    let picked: Vec<String> = notes.iter().take(15).map(|r| r.source_id.clone()).collect();
    for (n, id) in picked.iter().enumerate() {
        api.edit("Notes", id, n).await;
        // Two notes a second: a window restarts a second before its last note.
        if n % 2 == 1 {
            emulator.advance_clock(Duration::from_secs(1));
        }
    }
    let (read, pages, end) = read_changes(&source, ObjectType::NOTES, &since, None, 30).await;
    assert_eq!(end, None);
    let unique: HashSet<&str> = read.iter().map(|r| r.source_id.as_str()).collect();
    let want: HashSet<&str> = picked.iter().map(String::as_str).collect();
    assert_eq!(
        unique, want,
        "every changed note, none lost at a window's edge"
    );
    assert!(
        read.len() > picked.len() && pages > picked.len() / 2,
        "windows overlap by their last second: {} records in {pages} pages",
        read.len()
    );
}

#[tokio::test]
async fn a_mass_update_on_one_second_is_read_through_each_record_once() {
    let (emulator, running, source, _api) = seeded(Options::default(), 150, 200).await;
    emulator.advance_clock(Duration::from_secs(3600));
    let since = Watermark::at(emulator.now_ms() - 1000);
    let paged = ZohoSource::new(config(&running.base_url, json!({"page_size": 7})), "source")
        .expect("source");
    for (object, module) in OBJECTS {
        // Every record on one Modified_Time second, several pages of them.
        let stamped = emulator.mass_update(module);
        let (all, _) = read_all(&source, object).await;
        assert_eq!(all.len(), stamped, "{object}");
        assert!(stamped > 14, "{object}: {stamped}");
        let (read, pages, end) = read_changes(&paged, object, &since, None, 100).await;
        assert_eq!(end, None);
        assert_eq!(pages, stamped.div_ceil(7), "{object}");
        let unique: HashSet<&str> = read.iter().map(|r| r.source_id.as_str()).collect();
        assert_eq!(
            (unique.len(), read.len()),
            (stamped, stamped),
            "{object}: each once"
        );
        assert_eq!(
            read, all,
            "{object}: as the full read builds them, in id order"
        );
    }
}

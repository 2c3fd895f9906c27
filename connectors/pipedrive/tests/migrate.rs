//! A whole migration through `ferry_core::run` between two Pipedrive emulators (two companies):
//! companies, contacts, deals and notes with their owners (matched by email), stages (mapped by
//! label), won and lost statuses and links, verified; a rerun creates nothing; notes, which
//! carry no source id, are found again by their parent and original time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use ferry_core::directory::DirectoryRules;
use ferry_core::report::Progress;
use ferry_core::stages::StageRules;
use ferry_core::{Mode, ObjectType, Outcome, RunOptions, SecretRef, Sink, Source, run};
use ferry_pipedrive::{PipedriveConfig, PipedriveSink, PipedriveSource};
use ferry_sandbox::accounts::{self, Outcome as SeedOutcome};
use ferry_sandbox::pipedrive::{Emulator, Options, SPEC, TOKEN};
use ferry_sandbox::seed::{Mess, generate};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

/// The objects this connector moves, in write order.
const OBJECTS: [ObjectType; 4] = ObjectType::ALL;

async fn start() -> (Emulator, ferry_sandbox::Running) {
    let emulator = Emulator::new(Options {
        burst_limit: None,
        search_limit: None,
        daily_token_budget: None,
        ..Options::default()
    });
    let running = ferry_sandbox::serve(
        "pipedrive",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    (emulator, running)
}

fn config(base_url: &str) -> PipedriveConfig {
    PipedriveConfig {
        base_url: Some(base_url.to_owned()),
        rate_limit_per_2s: Some(20_000),
        search_rate_limit_per_2s: Some(20_000),
        concurrency: Some(8),
        ..PipedriveConfig::new(SecretRef::in_memory(SecretString::from(TOKEN)))
    }
}

async fn migrate(source: Arc<dyn Source>, sink: Arc<dyn Sink>) -> ferry_core::Report {
    let options = RunOptions {
        objects: OBJECTS.to_vec(),
        directory: DirectoryRules {
            deal_stages: StageRules {
                pairs: accounts::stage_crosswalk(SPEC.deal_stages, SPEC.deal_stages),
            },
            ..DirectoryRules::default()
        },
        ..RunOptions::default()
    };
    let progress = Arc::new(Progress::new(&options.objects));
    run(Mode::Migrate, source, sink, &options, progress).await
}

fn assert_verified(report: &ferry_core::Report, counts: [usize; 4]) {
    assert_eq!(
        report.outcome,
        Outcome::Verified,
        "error {:?}, failures {:?}",
        report.error,
        report.failures.iter().take(5).collect::<Vec<_>>()
    );
    let got: Vec<(Option<ObjectType>, u64, u64)> = report
        .objects
        .iter()
        .map(|o| (o.object, o.read, o.verified))
        .collect();
    let want: Vec<(Option<ObjectType>, u64, u64)> = OBJECTS
        .iter()
        .zip(counts)
        .map(|(o, n)| (Some(*o), n as u64, n as u64))
        .collect();
    assert_eq!(got, want);
    assert!(report.objects.iter().all(|o| o.digests_match));
}

/// Each user's email by id, as `GET /v1/users` lists them.
async fn emails(side: &dyn Source) -> HashMap<String, String> {
    side.users()
        .await
        .expect("users")
        .into_iter()
        .map(|u| (u.id, u.email.to_lowercase()))
        .collect()
}

/// The sink's deals by source id (the source's deal id), with every custom field.
fn sink_deals(sink: &Emulator) -> HashMap<String, Value> {
    let key = sink
        .custom_field_key("deals", "Ferry source id")
        .expect("the sink made its source-id field on deals");
    sink.source_ids("deals")
        .into_iter()
        .filter_map(|id| sink.record("deals", id.parse().ok()?))
        .map(|deal| {
            (
                deal["custom_fields"][&key]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                deal,
            )
        })
        .collect()
}

/// The sink's source id of the person with sink id `id`.
fn person_source_id(sink: &Emulator, id: u64) -> String {
    let key = sink
        .custom_field_key("persons", "Ferry source id")
        .expect("source-id field on persons");
    let person = sink.record("persons", id).expect("person");
    person["custom_fields"][&key]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn pipedrive_to_pipedrive_moves_deals_with_owners_stages_statuses_and_links() {
    let data = generate(40, 14, &Mess::none());
    let (source_emulator, source_running) = start().await;
    source_emulator.seed(&data);
    let (sink_emulator, sink_running) = start().await;
    let source =
        Arc::new(PipedriveSource::new(config(&source_running.base_url), "source").unwrap());
    let sink = Arc::new(PipedriveSink::new(config(&sink_running.base_url), "sink").unwrap());
    // Two notes of one deal in the same second, told apart by their text.
    let same_second = "2023-05-06 07:08:09";
    for body in ["<p>First call</p>", "<p>Second call</p>"] {
        let note = json!({"content": body, "deal_id": 1, "add_time": same_second});
        write_note(&source_running.base_url, Method::POST, "/v1/notes", &note).await;
    }
    let source_notes = source_emulator.count("notes").expect("notes");
    let counts = [
        data.companies.len(),
        data.contacts.len(),
        data.deals.len(),
        source_notes,
    ];

    let report = migrate(source.clone(), sink.clone()).await;
    assert_verified(&report, counts);
    assert_eq!(sink_emulator.count("deals"), Some(data.deals.len()));
    assert_eq!(sink_emulator.count("notes"), Some(source_notes));
    assert!(
        report.objects[3].links_not_carried.is_empty(),
        "{:?}",
        report.objects[3].links_not_carried
    );

    // Deals by seed order: source deal `k + 1` is seed deal `k`.
    let deals = sink_deals(&sink_emulator);
    assert_eq!(deals.len(), data.deals.len());
    let (source_emails, sink_emails) = (
        emails(&*source).await,
        emails(&*sink_source(&sink_running)).await,
    );
    let mut closed = (0, 0);
    let mut owned = 0;
    for (k, seed) in data.deals.iter().enumerate() {
        let source_deal = source_emulator
            .record("deals", k as u64 + 1)
            .expect("source deal");
        let deal = &deals[&(k + 1).to_string()];
        // Won and lost arrive won and lost.
        let (_, stage) = seed.seed_stage();
        let status = deal["status"].as_str().unwrap_or("");
        match stage.outcome {
            SeedOutcome::Won => {
                assert_eq!(status, "won", "deal {k}");
                closed.0 += 1;
            }
            SeedOutcome::Lost => {
                assert_eq!(status, "lost", "deal {k}");
                closed.1 += 1;
            }
            SeedOutcome::Open => assert_eq!(status, "open", "deal {k}"),
        }
        assert_eq!(deal["title"], source_deal["title"]);
        assert_eq!(
            deal["expected_close_date"],
            source_deal["expected_close_date"]
        );
        // Owners: the sink user with the source owner's email.
        let owner = |d: &Value, emails: &HashMap<String, String>| {
            emails.get(&d["owner_id"].to_string()).cloned()
        };
        let source_owner = owner(&source_deal, &source_emails).expect("source owner listed");
        assert_eq!(owner(deal, &sink_emails), Some(source_owner), "deal {k}");
        owned += usize::from(seed.owner.is_some());
        // The contact: the source's `person_id`, as the sink's person of that source id.
        match source_deal["person_id"].as_u64() {
            Some(person) => {
                let sink_person = deal["person_id"].as_u64().expect("a person");
                assert_eq!(
                    person_source_id(&sink_emulator, sink_person),
                    person.to_string()
                );
            }
            None => assert_eq!(deal["person_id"], Value::Null),
        }
    }
    assert!(
        closed.0 > 0 && closed.1 > 0,
        "won and lost deals seeded: {closed:?}"
    );
    // Every contact of a deal arrives: its person in `person_id`, all of them as participants.
    let five = data
        .deals
        .iter()
        .find(|d| d.contacts.len() == 5)
        .expect("a deal with five contacts seeded");
    let five_id = (five.key + 1).to_string();
    let source_five =
        participant_source_ids(&source_running.base_url, five.key as u64 + 1, None).await;
    assert_eq!(source_five.len(), 5);
    let sink_five = deals[&five_id]["id"].as_u64().expect("id");
    let key = sink_emulator
        .custom_field_key("persons", "Ferry source id")
        .expect("field");
    let arrived = participant_source_ids(
        &sink_running.base_url,
        sink_five,
        Some((&sink_emulator, &key)),
    )
    .await;
    assert_eq!(arrived, source_five);
    assert!(
        report.objects[2].links_not_carried.is_empty(),
        "{:?}",
        report.objects[2].links_not_carried
    );
    let multi = data.deals.iter().filter(|d| d.contacts.len() > 1).count();
    assert!(multi > 1, "deals with several contacts seeded");
    assert!(owned > 0);

    // Every note arrives once, with its text, time and all of its parents (the seed's first
    // note has a deal, a person and an organization).
    let sink_deal_1 = deals["1"]["id"].as_u64().expect("id");
    let by_key = |notes: &[Value]| {
        let mut keys: Vec<(String, String)> = notes
            .iter()
            .map(|n| (n["add_time"].to_string(), n["content"].to_string()))
            .collect();
        keys.sort();
        keys
    };
    let (from, to) = (
        all_notes(&source_running.base_url).await,
        all_notes(&sink_running.base_url).await,
    );
    assert_eq!(by_key(&from), by_key(&to));
    let three = from
        .iter()
        .find(|n| {
            ["deal_id", "person_id", "org_id"]
                .iter()
                .all(|f| n[f].is_u64())
        })
        .expect("a note with three parents seeded");
    let arrived = to
        .iter()
        .find(|n| n["add_time"] == three["add_time"] && n["content"] == three["content"])
        .expect("the note with three parents arrived");
    let deal_sid = |id: u64| {
        deals
            .iter()
            .find(|(_, d)| d["id"].as_u64() == Some(id))
            .map(|(sid, _)| sid.clone())
    };
    let sink_sid = |kind: &str, id: &Value| {
        let key = sink_emulator
            .custom_field_key(kind, "Ferry source id")
            .expect("field");
        let raw = sink_emulator
            .record(kind, id.as_u64().expect("a parent"))
            .expect("parent");
        raw["custom_fields"][&key].as_str().unwrap_or("").to_owned()
    };
    assert_eq!(
        deal_sid(arrived["deal_id"].as_u64().expect("a deal")),
        Some(three["deal_id"].to_string())
    );
    assert_eq!(
        sink_sid("persons", &arrived["person_id"]),
        three["person_id"].to_string()
    );
    assert_eq!(
        sink_sid("organizations", &arrived["org_id"]),
        three["org_id"].to_string()
    );
    assert_eq!(same_second_notes(&to, sink_deal_1, same_second).len(), 2);

    // A rerun (a new process: nothing cached) updates every record and creates none.
    let sink = Arc::new(PipedriveSink::new(config(&sink_running.base_url), "sink").unwrap());
    let again = migrate(source.clone(), sink).await;
    assert_verified(&again, counts);
    assert!(
        again.objects.iter().all(|o| o.created == 0),
        "{:?}",
        again.objects
    );
    assert_eq!(sink_emulator.count("deals"), Some(data.deals.len()));
    assert_eq!(sink_emulator.count("notes"), Some(source_notes));

    // A note edited in the source (same parent and time, another body) is updated in place.
    let second = same_second_notes(&from, 1, same_second)
        .into_iter()
        .find(|(_, body)| body == "<p>Second call</p>")
        .expect("the second note")
        .0;
    let edit = json!({"content": "<p>Second call, edited</p>"});
    write_note(
        &source_running.base_url,
        Method::PUT,
        &format!("/v1/notes/{second}"),
        &edit,
    )
    .await;
    let sink = Arc::new(PipedriveSink::new(config(&sink_running.base_url), "sink").unwrap());
    let edited = migrate(source, sink).await;
    assert_verified(&edited, counts);
    assert!(
        edited.objects.iter().all(|o| o.created == 0),
        "{:?}",
        edited.objects
    );
    assert_eq!(sink_emulator.count("notes"), Some(source_notes));
    let now = all_notes(&sink_running.base_url).await;
    let mut bodies: Vec<String> = same_second_notes(&now, sink_deal_1, same_second)
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["<p>First call</p>", "<p>Second call, edited</p>"]);
}

/// Sends a note write (`POST /v1/notes`, `PUT /v1/notes/{id}`) to the emulator at `base_url`.
async fn write_note(base_url: &str, method: Method, path: &str, body: &Value) {
    let response = reqwest::Client::new()
        .request(method, format!("{base_url}{path}"))
        .header("x-api-token", TOKEN)
        .json(body)
        .send()
        .await
        .expect("note write");
    assert!(response.status().is_success(), "{}", response.status());
}

/// Every note at `base_url` (`GET /v1/notes`, all pages).
async fn all_notes(base_url: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let body: Value = reqwest::Client::new()
            .get(format!("{base_url}/v1/notes?start={start}&limit=500"))
            .header("x-api-token", TOKEN)
            .send()
            .await
            .expect("notes")
            .json()
            .await
            .expect("JSON");
        out.extend(body["data"].as_array().expect("a list").iter().cloned());
        match body["additional_data"]["pagination"]["next_start"].as_u64() {
            Some(next) => start = next,
            None => return out,
        }
    }
}

/// The notes of deal `deal` at time `add_time` among `notes`: id and content.
fn same_second_notes(notes: &[Value], deal: u64, add_time: &str) -> Vec<(u64, String)> {
    notes
        .iter()
        .filter(|n| n["deal_id"].as_u64() == Some(deal) && n["add_time"] == add_time)
        .map(|n| {
            (
                n["id"].as_u64().expect("id"),
                n["content"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// The participants of deal `id` at `base_url`, sorted, as source ids: the person ids
/// themselves, or (with the sink emulator and its persons' source-id key) the source ids the
/// sink's persons carry.
async fn participant_source_ids(
    base_url: &str,
    id: u64,
    sink: Option<(&Emulator, &str)>,
) -> Vec<String> {
    let body: Value = reqwest::Client::new()
        .get(format!("{base_url}/v1/deals/{id}/participants?limit=500"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .expect("participants")
        .json()
        .await
        .expect("JSON");
    let mut out: Vec<String> = body["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| {
            let person = p["person"]["id"].as_u64().expect("person id");
            match sink {
                None => person.to_string(),
                Some((emulator, key)) => {
                    emulator.record("persons", person).expect("person")["custom_fields"][key]
                        .as_str()
                        .unwrap_or("")
                        .to_owned()
                }
            }
        })
        .collect();
    out.sort();
    out
}

/// A source reading the sink emulator (for its users).
fn sink_source(running: &ferry_sandbox::Running) -> Arc<PipedriveSource> {
    Arc::new(PipedriveSource::new(config(&running.base_url), "sink").unwrap())
}

/// An owner or a stage the sink's account does not have is refused per deal, naming the
/// field, never the value; the others are written.
#[tokio::test]
async fn a_deal_whose_owner_or_stage_pipedrive_refuses_is_refused_alone() {
    use ferry_core::{Record, Value, field};
    let (emulator, running) = start().await;
    let sink = PipedriveSink::new(config(&running.base_url), "sink").unwrap();
    sink.prepare(ObjectType::DEALS).await.expect("prepare");
    let pipelines = sink.pipelines(ObjectType::DEALS).await.expect("pipelines");
    let (pipeline, stage) = (&pipelines[0].id, &pipelines[0].stages[1].id);
    // An active user other than the token's (the default owner).
    let users = sink.users().await.expect("users");
    let owner = users
        .iter()
        .filter(|u| u.active)
        .nth(1)
        .expect("a second active user")
        .id
        .clone();
    let deal = |sid: &str, owner: &str, stage: &str| {
        let mut r = Record::new(ObjectType::DEALS, sid);
        r.set(field::NAME, Value::Text("Renewal".into()));
        r.set(field::CURRENCY, Value::Text("EUR".into()));
        r.set(field::OWNER, Value::Text(owner.into()));
        r.set(field::STATUS, Value::Text("lost".into()));
        r.set(field::STAGE, Value::stage(pipeline.clone(), stage));
        r
    };
    let records = [
        deal("d-ok", &owner, stage),
        deal("d-owner", "1", stage),
        deal("d-stage", &owner, "999999"),
    ];
    let out = sink
        .upsert(ObjectType::DEALS, &records)
        .await
        .expect("upsert");
    assert!(out[0].result.is_ok(), "{:?}", out[0]);
    for (o, named) in out[1..]
        .iter()
        .zip(["owner_id (owner)", "stage_id (stage)"])
    {
        let refused = o.result.as_ref().expect_err("refused");
        assert_eq!(refused.code, "ERR_SCHEMA_VALIDATION_FAILED");
        assert!(refused.reason.contains(named), "{}", refused.reason);
        assert!(!refused.reason.contains("999999"), "{}", refused.reason);
    }
    assert_eq!(emulator.count("deals"), Some(1));
    let back = sink
        .read_back(ObjectType::DEALS, &["d-ok".to_owned()])
        .await
        .expect("read back");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].get(field::OWNER), Some(&Value::Text(owner.clone())));
    assert_eq!(
        back[0].get(field::STATUS),
        Some(&Value::Text("lost".into()))
    );
    assert_eq!(back[0].get(field::STAGE), records[0].get(field::STAGE));
}

/// A deal's persons are made its participants on every write: added when new, removed when the
/// source no longer has them, the first kept as `person_id`; read back as the deal's contacts.
#[tokio::test]
async fn a_deals_participants_follow_its_contacts() {
    use ferry_core::model::Link;
    use ferry_core::{Record, Value, field};
    let (emulator, running) = start().await;
    let sink = PipedriveSink::new(config(&running.base_url), "sink").unwrap();
    sink.prepare(ObjectType::DEALS).await.expect("prepare");
    let people: Vec<Record> = ["p-1", "p-2", "p-3"]
        .iter()
        .map(|sid| {
            let mut r = Record::new(ObjectType::CONTACTS, *sid);
            r.set(field::LAST_NAME, Value::Text(format!("Person {sid}")));
            r
        })
        .collect();
    let out = sink
        .upsert(ObjectType::CONTACTS, &people)
        .await
        .expect("people");
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    let deal = |contacts: &[&str]| {
        let mut r = Record::new(ObjectType::DEALS, "d-1");
        r.set(field::NAME, Value::Text("Expansion".into()));
        r.set(field::CURRENCY, Value::Text("EUR".into()));
        r.set(
            field::CONTACTS,
            Value::Links(
                contacts
                    .iter()
                    .map(|id| Link {
                        object: ObjectType::CONTACTS,
                        id: (*id).into(),
                    })
                    .collect(),
            ),
        );
        r
    };
    let key = emulator
        .custom_field_key("persons", "Ferry source id")
        .expect("field");
    for contacts in [&["p-2", "p-1", "p-3"][..], &["p-3"], &["p-1", "p-3"]] {
        let record = deal(contacts);
        let out = sink
            .upsert(ObjectType::DEALS, std::slice::from_ref(&record))
            .await
            .expect("upsert");
        assert!(out[0].result.is_ok(), "{out:?}");
        let back = sink
            .read_back(ObjectType::DEALS, &["d-1".to_owned()])
            .await
            .expect("read back");
        let mut got: Vec<String> = match back[0].get(field::CONTACTS) {
            Some(Value::Links(links)) => links.iter().map(|l| l.id.clone()).collect(),
            other => panic!("{other:?}"),
        };
        got.sort();
        let mut want: Vec<String> = contacts.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        assert_eq!(got, want);
        let sink_id: u64 = out[0].result.as_ref().unwrap().sink_id.parse().unwrap();
        assert_eq!(
            participant_source_ids(&running.base_url, sink_id, Some((&emulator, &key))).await,
            want
        );
        let person = emulator.record("deals", sink_id).expect("deal")["person_id"]
            .as_u64()
            .expect("a person");
        assert_eq!(person_source_id(&emulator, person), contacts[0]);
    }
    assert_eq!(emulator.count("deals"), Some(1));
}

/// Pipedrive gives a deal written without a value 0, and one without a currency the user's
/// default currency. The sink declares both (the currency learned by `survey` from
/// `GET /v1/users/me`), the engine's checker gives a deal without them those values with a
/// `SINK_DEFAULT` warning, and what is read back matches what was checked: a deal's own
/// amount of 0 included, and a deal's own currency kept.
#[tokio::test]
async fn pipedrives_defaults_for_an_unset_amount_and_currency_verify() {
    use ferry_core::quality::{Action, KnownIds, QualityChecker, QualityRules, SINK_DEFAULT};
    use ferry_core::{Projection, Record, Value, field, record_digest};
    let emulator = Emulator::new(Options {
        burst_limit: None,
        search_limit: None,
        daily_token_budget: None,
        default_currency: "EUR".into(),
        ..Options::default()
    });
    let running = ferry_sandbox::serve(
        "pipedrive",
        emulator.router(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("serve");
    let sink = PipedriveSink::new(config(&running.base_url), "sink").unwrap();
    sink.survey(ObjectType::DEALS).await.expect("survey");
    let capability = sink.capability(ObjectType::DEALS).expect("capability");
    sink.prepare(ObjectType::DEALS).await.expect("prepare");
    let pipelines = sink.pipelines(ObjectType::DEALS).await.expect("pipelines");
    let stage = Value::stage(pipelines[0].id.clone(), pipelines[0].stages[0].id.clone());
    let deal = |sid: &str, amount: Option<f64>, currency: Option<&str>| {
        let mut r = Record::new(ObjectType::DEALS, sid);
        r.set(field::NAME, Value::Text(format!("Deal {sid}")));
        r.set(field::STAGE, stage.clone());
        if let Some(a) = amount {
            r.set(field::AMOUNT, Value::Decimal(a));
        }
        if let Some(c) = currency {
            r.set(field::CURRENCY, Value::Text(c.into()));
        }
        r
    };
    let mut records = vec![
        deal("d-zero", Some(0.0), Some("GBP")),
        deal("d-bare", None, None),
        deal("d-some", Some(1250.5), Some("USD")),
    ];
    let mut checker = QualityChecker::new(
        QualityRules::default(),
        "pipedrive",
        capability.required.clone(),
        KnownIds::new(),
    )
    .with_limits(capability.limits.clone());
    let findings: Vec<_> = records.iter_mut().map(|r| checker.check(r)).collect();
    assert!(
        findings[0].is_empty() && findings[2].is_empty(),
        "{findings:?}"
    );
    let warned: Vec<(&str, Action)> = findings[1].iter().map(|f| (f.code, f.action)).collect();
    assert_eq!(warned, [(SINK_DEFAULT, Action::Write); 2], "{findings:?}");
    assert!(findings[1][1].reason.contains("EUR"), "{findings:?}");
    let out = sink
        .upsert(ObjectType::DEALS, &records)
        .await
        .expect("upsert");
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    let ids: Vec<String> = records.iter().map(|r| r.source_id.clone()).collect();
    let mut back = sink
        .read_back(ObjectType::DEALS, &ids)
        .await
        .expect("read back");
    back.sort_by(|a, b| {
        ids.iter()
            .position(|i| *i == a.source_id)
            .cmp(&ids.iter().position(|i| *i == b.source_id))
    });
    assert_eq!(back.len(), 3);
    assert_eq!(
        back[1].get(field::CURRENCY),
        Some(&Value::Text("EUR".into()))
    );
    let projection = Projection::new([field::NAME, field::AMOUNT, field::CURRENCY, field::STAGE]);
    for (sent, got) in records.iter().zip(&back) {
        assert_eq!(
            record_digest(sent, &projection),
            record_digest(got, &projection),
            "{} sent {sent:?}, read back {got:?}",
            sent.source_id
        );
    }
}

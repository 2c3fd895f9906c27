//! Deals, notes and owners through `ferry_core::run`: Dynamics → Dynamics, every object, each
//! emulator on loopback; then what the sink environment holds, read through the connector.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{assert_read_back_equal, config, read_all, start, upsert_all};
use ferry_core::directory::DirectoryRules;
use ferry_core::report::Progress;
use ferry_core::stages::StageRules;
use ferry_core::{Mode, ObjectType, Outcome, Record, RunOptions, Sink, Source, Value, field, run};
use ferry_dynamics::{DynamicsSink, DynamicsSource};
use ferry_sandbox::seed::{Mess, generate};

fn options() -> RunOptions {
    let spec = ferry_sandbox::dynamics::SPEC;
    RunOptions {
        objects: ObjectType::ALL.to_vec(),
        directory: DirectoryRules {
            deal_stages: StageRules {
                pairs: ferry_sandbox::accounts::stage_crosswalk(spec.deal_stages, spec.deal_stages),
            },
            ..DirectoryRules::default()
        },
        ..RunOptions::default()
    }
}

async fn migrate(source: Arc<dyn Source>, sink: Arc<dyn Sink>) -> ferry_core::Report {
    let options = options();
    let progress = Arc::new(Progress::new(&options.objects));
    run(Mode::Migrate, source, sink, &options, progress).await
}

fn assert_verified(report: &ferry_core::Report, counts: &[(ObjectType, usize)]) {
    assert_eq!(
        report.outcome,
        Outcome::Verified,
        "error {:?}, failures {:?}",
        report.error,
        report.failures.iter().take(5).collect::<Vec<_>>()
    );
    for (object, n) in counts {
        let o = report
            .objects
            .iter()
            .find(|o| o.object == Some(*object))
            .unwrap_or_else(|| panic!("{object} in the report"));
        assert_eq!((o.read, o.verified), (*n as u64, *n as u64), "{object}");
        assert!(o.digests_match, "{object}");
        assert!(*n > 0, "{object}: the seed holds some");
    }
}

/// Each user id of `users` → its email, lower case.
fn emails(users: &[ferry_core::User]) -> BTreeMap<String, String> {
    users
        .iter()
        .map(|u| (u.id.clone(), u.email.to_lowercase()))
        .collect()
}

#[tokio::test]
async fn dynamics_to_dynamics_moves_deals_notes_and_owners_verified_and_reruns_create_nothing() {
    let (source_env, source_running) = start(ferry_sandbox::dynamics::Options::default()).await;
    let (sink_env, sink_running) = start(ferry_sandbox::dynamics::Options::default()).await;
    let data = generate(120, 41, &Mess::none());
    let seeded = source_env.seed(&data);
    let source =
        Arc::new(DynamicsSource::new(config(&source_running.base_url), "source").expect("source"));
    let sink = Arc::new(DynamicsSink::new(config(&sink_running.base_url), "sink").expect("sink"));
    let counts = [
        (ObjectType::COMPANIES, seeded.accounts),
        (ObjectType::CONTACTS, seeded.contacts),
        (ObjectType::DEALS, seeded.opportunities),
        (ObjectType::NOTES, seeded.annotations),
    ];

    let report = migrate(source.clone(), sink.clone()).await;
    assert_verified(&report, &counts);
    for (object, n) in counts {
        let o = report.objects.iter().find(|o| o.object == Some(object));
        assert_eq!(o.map(|o| o.created), Some(n as u64), "{object} created");
    }
    // Nothing the sink could not hold: the timestamps aside, every field is carried, and a
    // Dataverse source has one contact per deal and one parent per note.
    for o in &report.objects {
        assert!(o.links_not_carried.is_empty(), "{:?}", o.links_not_carried);
    }
    assert_eq!(sink_env.count("opportunity"), seeded.opportunities);
    assert_eq!(sink_env.count("annotation"), seeded.annotations);

    // A rerun updates in place: won and lost deals included (reopened, updated, closed again).
    let again = migrate(source.clone(), sink.clone()).await;
    assert_verified(&again, &counts);
    for (object, n) in counts {
        let o = again.objects.iter().find(|o| o.object == Some(object));
        assert_eq!(
            o.map(|o| (o.created, o.updated)),
            Some((0, n as u64)),
            "{object} on the rerun"
        );
    }
    assert_eq!(sink_env.count("opportunity"), seeded.opportunities);
    assert_eq!(sink_env.count("annotation"), seeded.annotations);

    // What the sink holds, deal by deal and note by note, against the source.
    let source_users = emails(&source.users().await.expect("source users"));
    let sink_users = emails(&sink.users().await.expect("sink users"));
    let owner_email = |users: &BTreeMap<String, String>, r: &Record| {
        r.text(field::OWNER).and_then(|id| users.get(id)).cloned()
    };
    // Owners match active sink users by address; the others get the sink's default owner.
    let active: Vec<String> = sink
        .users()
        .await
        .expect("sink users")
        .into_iter()
        .filter(|u| u.active && !u.email.is_empty())
        .map(|u| u.email.to_lowercase())
        .collect();
    let (deals, _) = read_all(source.as_ref(), ObjectType::DEALS).await;
    let ids: Vec<String> = deals.iter().map(|d| d.source_id.clone()).collect();
    let back: BTreeMap<String, Record> = sink
        .read_back(ObjectType::DEALS, &ids)
        .await
        .expect("read back deals")
        .into_iter()
        .map(|r| (r.source_id.clone(), r))
        .collect();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut owned_by_a_person = 0;
    for deal in &deals {
        let held = &back[&deal.source_id];
        let status = deal.text(field::STATUS).expect("a status");
        assert_eq!(held.text(field::STATUS), Some(status), "{}", deal.source_id);
        *statuses.entry(status.to_owned()).or_default() += 1;
        assert_eq!(held.get(field::CONTACTS), deal.get(field::CONTACTS));
        assert_eq!(held.get(field::COMPANY), deal.get(field::COMPANY));
        assert_eq!(held.get(field::CURRENCY), deal.get(field::CURRENCY));
        assert_eq!(held.get(field::CLOSE_DATE), deal.get(field::CLOSE_DATE));
        // The same stage, by label (ids are the environment's own).
        let Some(Value::Stage(stage)) = held.get(field::STAGE) else {
            panic!("{}: no stage", deal.source_id);
        };
        let Some(Value::Stage(was)) = deal.get(field::STAGE) else {
            panic!("{}: no source stage", deal.source_id);
        };
        assert_eq!(stage.stage, was.stage);
        // The owner: the sink user with the source owner's address.
        let (from, to) = (
            owner_email(&source_users, deal),
            owner_email(&sink_users, held),
        );
        if from.as_ref().is_some_and(|e| active.contains(e)) {
            assert_eq!(from, to, "{}", deal.source_id);
            owned_by_a_person += 1;
        } else {
            assert_eq!(
                to.as_deref(),
                Some(""),
                "the application user owns {}",
                deal.source_id
            );
        }
    }
    assert!(statuses.get("won").is_some_and(|n| *n > 0), "{statuses:?}");
    assert!(statuses.get("lost").is_some_and(|n| *n > 0), "{statuses:?}");
    assert!(statuses.get("open").is_some_and(|n| *n > 0), "{statuses:?}");
    assert!(owned_by_a_person > 0);
    // The seed's deal 0 has five contacts; Dataverse held its first.
    let first = &back[&deals[0].source_id];
    assert!(
        matches!(first.get(field::CONTACTS), Some(Value::Links(l)) if l.len() == 1),
        "{first:?}"
    );

    let (notes, _) = read_all(source.as_ref(), ObjectType::NOTES).await;
    let ids: Vec<String> = notes.iter().map(|n| n.source_id.clone()).collect();
    let back: BTreeMap<String, Record> = sink
        .read_back(ObjectType::NOTES, &ids)
        .await
        .expect("read back notes")
        .into_iter()
        .map(|r| (r.source_id.clone(), r))
        .collect();
    let mut on = BTreeMap::<ObjectType, usize>::new();
    for note in &notes {
        let held = &back[&note.source_id];
        assert_eq!(held.get(field::BODY), note.get(field::BODY));
        assert_eq!(held.get(field::PARENTS), note.get(field::PARENTS));
        // The note's original time, to the second Dataverse keeps.
        assert_eq!(held.get(field::TIMESTAMP), note.get(field::TIMESTAMP));
        let from = owner_email(&source_users, note);
        if from.as_ref().is_some_and(|e| active.contains(e)) {
            assert_eq!(from, owner_email(&sink_users, held), "{}", note.source_id);
        }
        if let Some(Value::Links(links)) = held.get(field::PARENTS) {
            for link in links {
                *on.entry(link.object).or_default() += 1;
            }
        }
    }
    assert_eq!(
        on.len(),
        3,
        "notes on deals, contacts and companies: {on:?}"
    );
}

fn text(r: &mut Record, name: &'static str, value: &str) {
    r.set(name, Value::Text(value.to_owned()));
}

fn link(object: ObjectType, id: &str) -> ferry_core::model::Link {
    ferry_core::model::Link {
        object,
        id: id.to_owned(),
    }
}

#[tokio::test]
async fn the_sink_holds_one_contact_per_deal_one_parent_per_note_and_closes_won_and_lost_deals() {
    let (env, running) = start(ferry_sandbox::dynamics::Options::default()).await;
    let sink = DynamicsSink::new(config(&running.base_url), "sink").expect("sink");
    for object in ObjectType::ALL {
        sink.prepare(object).await.expect("prepare");
    }
    // What the engine is told: one link per lookup, the note body's length, and the fields
    // that round-trip (status included: Dataverse keeps won and lost beside the stage).
    let deals = sink.capability(ObjectType::DEALS).expect("deals");
    assert_eq!(
        deals.limits,
        vec![ferry_core::FieldLimit::max_links(field::CONTACTS, 1)]
    );
    for f in [
        field::NAME,
        field::AMOUNT,
        field::CURRENCY,
        field::CLOSE_DATE,
        field::STAGE,
        field::STATUS,
        field::OWNER,
        field::COMPANY,
        field::CONTACTS,
    ] {
        assert!(deals.stored.contains(&f.to_owned()), "{f}");
    }
    let notes = sink.capability(ObjectType::NOTES).expect("notes");
    assert_eq!(
        notes.limits,
        vec![
            ferry_core::FieldLimit::max_chars(field::BODY, 100_000),
            ferry_core::FieldLimit::max_links(field::PARENTS, 1),
            ferry_core::FieldLimit::to_the_second(field::TIMESTAMP)
        ]
    );
    // Kept to the second, and verified so.
    assert!(notes.stored.contains(&field::TIMESTAMP.to_owned()));

    let mut company = Record::new(ObjectType::COMPANIES, "co-1");
    text(&mut company, field::NAME, "Acme");
    let mut person = Record::new(ObjectType::CONTACTS, "p-1");
    text(&mut person, field::LAST_NAME, "Okafor");
    upsert_all(&sink, ObjectType::COMPANIES, &[company]).await;
    upsert_all(&sink, ObjectType::CONTACTS, &[person]).await;
    let pipeline = sink
        .pipelines(ObjectType::DEALS)
        .await
        .expect("pipelines")
        .remove(0);
    let deal = |id: &str, status: &str, stage: &str| {
        let mut r = Record::new(ObjectType::DEALS, id);
        text(&mut r, field::NAME, "Renewal");
        r.set(field::AMOUNT, Value::Decimal(1200.0));
        text(&mut r, field::CURRENCY, "EUR");
        r.set(field::CLOSE_DATE, Value::Date(19_782));
        r.set(
            field::STAGE,
            Value::stage(pipeline.id.clone(), stage.to_owned()),
        );
        text(&mut r, field::STATUS, status);
        r.set(field::COMPANY, Value::Reference("co-1".into()));
        r.set(
            field::CONTACTS,
            Value::Links(vec![link(ObjectType::CONTACTS, "p-1")]),
        );
        r
    };
    let records = vec![
        deal("d-open", "open", "1"),
        deal("d-won", "won", "3"),
        deal("d-lost", "lost", "3"),
    ];
    for round in 0..2 {
        let outcomes = upsert_all(&sink, ObjectType::DEALS, &records).await;
        for o in &outcomes {
            let written = o.result.as_ref().expect("written");
            assert_eq!(written.created, round == 0, "{}", o.source_id);
            assert!(!written.sink_id.is_empty());
        }
        assert_read_back_equal(&sink, ObjectType::DEALS, &records).await;
    }
    assert_eq!(env.count("opportunity"), 3);

    // A note on the deal; its body up to Dataverse's 100,000 characters, no more.
    let mut note = Record::new(ObjectType::NOTES, "n-1");
    text(&mut note, field::BODY, &"x".repeat(100_000));
    note.set(
        field::PARENTS,
        Value::Links(vec![link(ObjectType::DEALS, "d-won")]),
    );
    // Its original time, to the second Dataverse keeps (every source's notes have one).
    note.set(field::TIMESTAMP, Value::Timestamp(1_700_000_000_000));
    let mut long = note.clone();
    long.source_id = "n-2".into();
    text(&mut long, field::BODY, &"x".repeat(100_001));
    let outcomes = upsert_all(&sink, ObjectType::NOTES, &[note.clone(), long]).await;
    assert!(outcomes[0].result.is_ok());
    let refused = outcomes[1].result.as_ref().expect_err("over the limit");
    assert_eq!(refused.code, "0x80044331");
    assert!(
        refused.reason.contains("notetext (body)"),
        "{}",
        refused.reason
    );
    assert_read_back_equal(&sink, ObjectType::NOTES, &[note]).await;

    // A deal whose contact is not in the sink names the reference, not a value.
    let mut orphan = deal("d-orphan", "open", "0");
    orphan.set(
        field::CONTACTS,
        Value::Links(vec![link(ObjectType::CONTACTS, "p-missing")]),
    );
    let outcomes = upsert_all(&sink, ObjectType::DEALS, &[orphan]).await;
    let refused = outcomes[0].result.as_ref().expect_err("no such contact");
    assert_eq!(refused.code, "0x80040217");
    assert!(
        refused
            .reason
            .contains("contacts reference (parentcontactid): no contact has"),
        "{}",
        refused.reason
    );
    assert!(!refused.reason.contains("p-missing"));
}

#[tokio::test]
async fn owners_are_bound_by_user_id_and_a_missing_or_disabled_user_is_refused_naming_the_owner() {
    let (_env, running) = start(ferry_sandbox::dynamics::Options::default()).await;
    let sink = DynamicsSink::new(config(&running.base_url), "sink").expect("sink");
    sink.prepare(ObjectType::COMPANIES).await.expect("prepare");
    let users = sink.users().await.expect("users");
    let active = users
        .iter()
        .find(|u| u.active && !u.email.is_empty())
        .expect("an active user");
    let disabled = users.iter().find(|u| !u.active).expect("a disabled user");
    let company = |id: &str, owner: &str| {
        let mut r = Record::new(ObjectType::COMPANIES, id);
        text(&mut r, field::NAME, "Acme");
        text(&mut r, field::OWNER, owner);
        r
    };
    let owned = company("co-owned", &active.id);
    let outcomes = upsert_all(
        &sink,
        ObjectType::COMPANIES,
        &[
            owned.clone(),
            company("co-nobody", "5e5e5e5e-0000-0000-0000-00000000ffff"),
            company("co-disabled", &disabled.id),
        ],
    )
    .await;
    assert!(outcomes[0].result.is_ok());
    assert_read_back_equal(&sink, ObjectType::COMPANIES, &[owned]).await;
    for (o, code) in outcomes[1..].iter().zip(["0x80040217", "0x80040203"]) {
        let refused = o.result.as_ref().expect_err("refused");
        assert_eq!(refused.code, code);
        assert!(
            refused
                .reason
                .starts_with("Dynamics refused the owner (ownerid)"),
            "{}",
            refused.reason
        );
        assert!(!refused.reason.contains(&disabled.id) && !refused.reason.contains("ffff"));
    }
}

/// A Dynamics source whose first deal has five contacts and first note three parents, as other
/// vendors hold them (Dataverse itself holds one of each): the real source otherwise.
struct ManyLinks {
    inner: DynamicsSource,
    deal: (String, Vec<ferry_core::model::Link>),
    note: (String, Vec<ferry_core::model::Link>),
}

#[async_trait::async_trait]
impl Source for ManyLinks {
    fn vendor(&self) -> &'static str {
        self.inner.vendor()
    }

    async fn check(&self) -> ferry_core::ConnectorResult<()> {
        self.inner.check().await
    }

    async fn account_id(&self) -> ferry_core::ConnectorResult<Option<ferry_core::AccountId>> {
        self.inner.account_id().await
    }

    async fn users(&self) -> ferry_core::ConnectorResult<Vec<ferry_core::User>> {
        self.inner.users().await
    }

    async fn pipelines(
        &self,
        object: ObjectType,
    ) -> ferry_core::ConnectorResult<Vec<ferry_core::Pipeline>> {
        self.inner.pipelines(object).await
    }

    async fn count(&self, object: ObjectType) -> ferry_core::ConnectorResult<Option<u64>> {
        self.inner.count(object).await
    }

    async fn read_page(
        &self,
        object: ObjectType,
        cursor: Option<&str>,
    ) -> ferry_core::ConnectorResult<ferry_core::Page> {
        let mut page = self.inner.read_page(object, cursor).await?;
        for r in &mut page.records {
            for (id, field, links) in [
                (&self.deal.0, field::CONTACTS, &self.deal.1),
                (&self.note.0, field::PARENTS, &self.note.1),
            ] {
                if r.object.field(field).is_some() && &r.source_id == id {
                    r.set(field, Value::Links(links.clone()));
                }
            }
        }
        Ok(page)
    }
}

#[tokio::test]
async fn a_deal_with_five_contacts_and_a_note_with_three_parents_keep_one_and_report_the_rest() {
    let (source_env, source_running) = start(ferry_sandbox::dynamics::Options::default()).await;
    let (_sink_env, sink_running) = start(ferry_sandbox::dynamics::Options::default()).await;
    let seeded = source_env.seed(&generate(60, 43, &Mess::none()));
    let inner = DynamicsSource::new(config(&source_running.base_url), "source").expect("source");
    let ids = |records: Vec<Record>| -> Vec<String> {
        records.into_iter().map(|r| r.source_id).collect()
    };
    let companies = ids(read_all(&inner, ObjectType::COMPANIES).await.0);
    let contacts = ids(read_all(&inner, ObjectType::CONTACTS).await.0);
    let deals = ids(read_all(&inner, ObjectType::DEALS).await.0);
    let notes = ids(read_all(&inner, ObjectType::NOTES).await.0);
    let five: Vec<_> = contacts[..5]
        .iter()
        .map(|id| link(ObjectType::CONTACTS, id))
        .collect();
    // Company first: the engine keeps the deal, the first target of a note's parents.
    let three = vec![
        link(ObjectType::COMPANIES, &companies[0]),
        link(ObjectType::CONTACTS, &contacts[0]),
        link(ObjectType::DEALS, &deals[1]),
    ];
    let source = Arc::new(ManyLinks {
        inner,
        deal: (deals[0].clone(), five.clone()),
        note: (notes[0].clone(), three),
    });
    let sink = Arc::new(DynamicsSink::new(config(&sink_running.base_url), "sink").expect("sink"));

    let report = migrate(source, sink.clone()).await;
    assert_verified(
        &report,
        &[
            (ObjectType::COMPANIES, seeded.accounts),
            (ObjectType::CONTACTS, seeded.contacts),
            (ObjectType::DEALS, seeded.opportunities),
            (ObjectType::NOTES, seeded.annotations),
        ],
    );
    let not_carried = |object: ObjectType| {
        report
            .objects
            .iter()
            .find(|o| o.object == Some(object))
            .map(|o| o.links_not_carried.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        not_carried(ObjectType::DEALS),
        BTreeMap::from([(field::CONTACTS.to_owned(), 1)])
    );
    assert_eq!(
        not_carried(ObjectType::NOTES),
        BTreeMap::from([(field::PARENTS.to_owned(), 1)])
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.code == "NOT_CARRIED" && w.source_id == deals[0]),
        "{:?}",
        report.warnings
    );
    let deal = sink
        .read_back(ObjectType::DEALS, &deals[..1])
        .await
        .expect("deal");
    assert_eq!(
        deal[0].get(field::CONTACTS),
        Some(&Value::Links(vec![five[0].clone()]))
    );
    let note = sink
        .read_back(ObjectType::NOTES, &notes[..1])
        .await
        .expect("note");
    assert_eq!(
        note[0].get(field::PARENTS),
        Some(&Value::Links(vec![link(ObjectType::DEALS, &deals[1])]))
    );
}

//! End-to-end: deletions carried by `ferry sync` through the real binary from a Salesforce
//! emulator into each sink that gained removals: Dataverse (`delete`: its only removal),
//! Pipedrive (`archive`; companies, contacts and deals, since Pipedrive notes carry no source
//! id) and Zoho CRM (`archive`, every object). One record of every object is deleted in the
//! source (an account with what Salesforce deletes with it); the sync removes exactly those
//! from the sink, counted in the sink's emulator, once from Salesforce's deletion log and once
//! by id sets (the Recycle Bin emptied); records made in the sink (no source id) survive both.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{all_credentials, count as n, emulator_table, ferry, industry_table, object};
use ferry_sandbox::accounts::{stage_crosswalk, stage_crosswalk_config};
use ferry_sandbox::faults::Faults;
use ferry_sandbox::salesforce;
use ferry_sandbox::seed::{Mess, generate};
use ferry_sandbox::{Limits, Running, VendorEmulator};

const SOBJECTS: [(&str, &str); 4] = [
    ("companies", "Account"),
    ("contacts", "Contact"),
    ("deals", "Opportunity"),
    ("notes", "Note"),
];

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A seeded Salesforce org, a sink holding a few records of its own, and a directory.
struct Pair {
    source: Running,
    org: salesforce::Emulator,
    sink: Running,
    sink_state: Arc<dyn VendorEmulator>,
    vendor: &'static str,
    objects: Vec<&'static str>,
    dir: PathBuf,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn pair(vendor: &'static str, objects: &[&'static str]) -> Pair {
    let org = salesforce::Emulator::new(salesforce::Options::default());
    org.seed(&generate(40, 23, &Mess::none()));
    let spec = ferry_sandbox::emulator(vendor).expect("sink emulator");
    let sink_state = (spec.build)(Faults::default(), Limits::Unlimited);
    // Records made in the sink: they carry no source id.
    sink_state.seed(&generate(3, 41, &Mess::none()));
    let any = "127.0.0.1:0".parse().expect("loopback address");
    let source = ferry_sandbox::serve("salesforce", org.router(), any)
        .await
        .expect("serve salesforce");
    let sink = ferry_sandbox::serve(vendor, sink_state.router(), any)
        .await
        .expect("serve the sink");
    let dir = std::env::temp_dir().join(format!(
        "ferry-sync-deletes-sinks-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("test dir");
    Pair {
        source,
        org,
        sink,
        sink_state,
        vendor,
        objects: objects.to_vec(),
        dir,
    }
}

impl Pair {
    fn config(&self, deletes: &str) -> String {
        let path = self.dir.join("ferry.toml");
        let sf = ferry_sandbox::emulator("salesforce").expect("salesforce");
        let to = ferry_sandbox::emulator(self.vendor).expect("sink");
        let text = format!(
            "version = 1\n\n{}\n{}\n[migration]\nobjects = {:?}\n\n[sync]\nstate = {:?}\n\
             deletes = \"{deletes}\"\nmax_deletes = 1000\n\n{}\n{}\n",
            emulator_table("source", "salesforce", &self.source.base_url),
            emulator_table("sink", self.vendor, &self.sink.base_url),
            self.objects,
            self.dir.join("state.json").display().to_string(),
            industry_table(&sf, &to),
            stage_crosswalk_config(&stage_crosswalk(sf.deal_stages, to.deal_stages)),
        );
        std::fs::write(&path, text).expect("write config");
        path.to_string_lossy().into_owned()
    }

    fn source_counts(&self) -> Vec<usize> {
        self.objects
            .iter()
            .map(|o| {
                let sobject = SOBJECTS.iter().find(|(c, _)| c == o).expect("object").1;
                self.org.count(sobject)
            })
            .collect()
    }

    fn sink_counts(&self) -> Vec<usize> {
        self.objects
            .iter()
            .map(|o| self.sink_state.count(o))
            .collect()
    }

    async fn rest(&self, method: reqwest::Method, path: &str) -> serde_json::Value {
        common::salesforce_call(&self.source.base_url, method, path, &[], None).await
    }

    async fn id(&self, sobject: &str, filter: &str) -> String {
        let soql = format!("SELECT Id FROM {sobject} {filter} ORDER BY Id LIMIT 1");
        let answer = self
            .rest(
                reqwest::Method::GET,
                &format!("/services/data/v62.0/query?q={}", soql.replace(' ', "+")),
            )
            .await;
        answer["records"][0]["Id"]
            .as_str()
            .unwrap_or_else(|| panic!("no {sobject} {filter}: {answer}"))
            .to_owned()
    }

    /// One deleted record of every object (the account with what Salesforce deletes with it).
    async fn delete_some_of_everything(&self) {
        let ids = [
            self.id("Note", "").await,
            self.id("Opportunity", "").await,
            self.id("Contact", "WHERE AccountId = null").await,
            self.id("Account", "").await,
        ];
        let answer = self
            .rest(
                reqwest::Method::DELETE,
                &format!(
                    "/services/data/v62.0/composite/sobjects?ids={}",
                    ids.join(",")
                ),
            )
            .await;
        assert!(
            answer
                .as_array()
                .expect("results")
                .iter()
                .all(|r| r["success"] == true),
            "{answer}"
        );
    }
}

async fn sync(config: &str) -> (i32, serde_json::Value, String) {
    let args = ["sync", "--config", config, "--report", "json", "-q"];
    let out = ferry(&args, &all_credentials()).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr:\n{stderr}"));
    (out.status.code().unwrap_or(-1), report, stderr)
}

/// Deletes in the source, syncs, and checks the sink lost exactly those (its own records
/// kept), each counted as `removal` in the report, learnt `how`.
async fn follows(vendor: &'static str, objects: &[&'static str], deletes: &str, forgotten: bool) {
    let pair = pair(vendor, objects).await;
    let config = pair.config(deletes);
    let born = pair.sink_counts();
    let (code, first, stderr) = sync(&config).await;
    assert_eq!(code, 0, "{vendor}: {first:#}\n{stderr}");
    let synced = pair.sink_counts();
    let expected: Vec<usize> = pair
        .source_counts()
        .iter()
        .zip(&born)
        .map(|(s, b)| s + b)
        .collect();
    assert_eq!(
        synced, expected,
        "{vendor}: the source's records beside the sink's own"
    );

    pair.org.advance_clock(Duration::from_secs(3600));
    pair.delete_some_of_everything().await;
    pair.org.advance_clock(Duration::from_secs(3600));
    if forgotten {
        pair.org.purge_deleted(Duration::from_secs(60));
    }
    let left = pair.source_counts();
    let (code, second, stderr) = sync(&config).await;
    assert_eq!(code, 0, "{vendor} {deletes}: {second:#}\n{stderr}");
    let now: Vec<usize> = left.iter().zip(&born).map(|(s, b)| s + b).collect();
    assert_eq!(
        pair.sink_counts(),
        now,
        "{vendor} {deletes}: exactly the deleted records went, the sink's own stayed"
    );
    for ((name, before), after) in objects.iter().zip(&synced).zip(pair.sink_counts()) {
        let o = object(&second, name);
        assert!(before > &after, "{vendor}: something of {name} went");
        assert_eq!(
            (n(o, "deleted"), n(o, "archived"), n(o, "not_removed")),
            ((before - after) as u64, 0, 0),
            "{vendor} {deletes}: {o:#}"
        );
        let how = if forgotten { "id_sets" } else { "source" };
        assert_eq!(o["sync"]["deletions"], how, "{vendor}: {o:#}");
    }
    eprintln!(
        "{vendor} {deletes} ({}): requests of the sync after the deletes: salesforce {}, {vendor} {}",
        if forgotten { "id sets" } else { "deletion log" },
        n(&second["source_http"], "requests"),
        n(&second["sink_http"], "requests")
    );
    // Nothing deleted since: nothing more removed.
    let (code, third, stderr) = sync(&config).await;
    assert_eq!(code, 0, "{vendor}: {third:#}\n{stderr}");
    assert_eq!(pair.sink_counts(), now, "{vendor}: {third:#}");
}

const ALL: [&str; 4] = ["companies", "contacts", "deals", "notes"];

#[tokio::test(flavor = "multi_thread")]
async fn dataverse_deletes_what_the_source_deleted() {
    follows("dynamics", &ALL, "delete", false).await;
    follows("dynamics", &ALL, "delete", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pipedrive_deletes_what_the_source_deleted() {
    let objects = ["companies", "contacts", "deals"];
    follows("pipedrive", &objects, "archive", false).await;
    follows("pipedrive", &objects, "archive", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn zoho_deletes_what_the_source_deleted() {
    follows("zoho", &ALL, "archive", false).await;
    follows("zoho", &ALL, "archive", true).await;
}

/// Dataverse has no archive: `archive` is refused before anything is read or written.
#[tokio::test(flavor = "multi_thread")]
async fn dataverse_refuses_archive_and_pipedrive_notes_before_anything() {
    for (vendor, objects, deletes) in [
        ("dynamics", &ALL[..], "archive"),
        ("pipedrive", &ALL[..], "delete"),
    ] {
        let pair = pair(vendor, objects).await;
        let born = pair.sink_counts();
        let (code, report, stderr) = sync(&pair.config(deletes)).await;
        assert_eq!(code, 2, "{vendor}: {report:#}\n{stderr}");
        assert_eq!(pair.sink_counts(), born, "{vendor}: nothing written");
    }
}

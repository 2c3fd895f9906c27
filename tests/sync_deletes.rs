//! End-to-end: deletions in `ferry sync` through the real binary, from a Salesforce emulator
//! into a HubSpot emulator, every object (companies, contacts, deals, notes). Records deleted
//! in the source (with what Salesforce deletes with them) stay in the sink under `ignore` and
//! are archived under `archive` and `delete` (HubSpot's one removal); a sync that would remove
//! more than `max_deletes` exits 3 with the sink untouched until `--allow-mass-delete`; when
//! the Recycle Bin forgot the deletes, id sets are compared, and a record made in HubSpot (no
//! source id) is never removed. From HubSpot into Salesforce, an archived company whose contact
//! is still live is not deleted (Salesforce would take the contact with it).

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

const OBJECTS: [&str; 4] = ["companies", "contacts", "deals", "notes"];
const SOBJECTS: [&str; 4] = ["Account", "Contact", "Opportunity", "Note"];

/// A seeded Salesforce org, an empty HubSpot portal, and a directory for config and state.
struct Pair {
    source: Running,
    org: salesforce::Emulator,
    sink: Running,
    sink_state: Arc<dyn VendorEmulator>,
    dir: PathBuf,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

async fn pair() -> Pair {
    let org = salesforce::Emulator::new(salesforce::Options::default());
    org.seed(&generate(40, 23, &Mess::none()));
    let hubspot = ferry_sandbox::emulator("hubspot").expect("hubspot emulator");
    let sink_state = (hubspot.build)(Faults::default(), Limits::Unlimited);
    let any = "127.0.0.1:0".parse().expect("loopback address");
    let source = ferry_sandbox::serve("salesforce", org.router(), any)
        .await
        .expect("serve salesforce");
    let sink = ferry_sandbox::serve("hubspot", sink_state.router(), any)
        .await
        .expect("serve hubspot");
    let dir = std::env::temp_dir().join(format!(
        "ferry-sync-deletes-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("test dir");
    Pair {
        source,
        org,
        sink,
        sink_state,
        dir,
    }
}

impl Pair {
    /// Writes the config with `deletes` and `max_deletes` in `[sync]`; returns its path.
    fn config(&self, deletes: &str, max_deletes: u64) -> String {
        let path = self.dir.join("ferry.toml");
        let (sf, hs) = (
            ferry_sandbox::emulator("salesforce").expect("salesforce"),
            ferry_sandbox::emulator("hubspot").expect("hubspot"),
        );
        let text = format!(
            "version = 1\n\n{}\n{}\n[migration]\nobjects = {OBJECTS:?}\n\n[sync]\nstate = {:?}\n\
             deletes = \"{deletes}\"\nmax_deletes = {max_deletes}\n\n{}\n{}\n",
            emulator_table("source", "salesforce", &self.source.base_url),
            emulator_table("sink", "hubspot", &self.sink.base_url),
            self.dir.join("state.json").display().to_string(),
            industry_table(&sf, &hs),
            stage_crosswalk_config(&stage_crosswalk(sf.deal_stages, hs.deal_stages)),
        );
        std::fs::write(&path, text).expect("write config");
        path.to_string_lossy().into_owned()
    }

    fn source_counts(&self) -> Vec<usize> {
        SOBJECTS.iter().map(|o| self.org.count(o)).collect()
    }

    fn sink_counts(&self) -> Vec<usize> {
        OBJECTS.iter().map(|o| self.sink_state.count(o)).collect()
    }

    /// The id of the first record of `sobject` matching `filter` (a SOQL condition, or none).
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

    /// Deletes `ids` in the source, as a user would (with what Salesforce deletes with them).
    async fn delete(&self, ids: &[String]) {
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

    /// One deleted record of every object, the account with its contacts, deals and notes.
    async fn delete_some_of_everything(&self) {
        let note = self.id("Note", "").await;
        let deal = self.id("Opportunity", "").await;
        let contact = self.id("Contact", "WHERE AccountId = null").await;
        let account = self.id("Account", "").await;
        self.delete(&[note, deal, contact, account]).await;
    }

    async fn rest(&self, method: reqwest::Method, path: &str) -> serde_json::Value {
        common::salesforce_call(&self.source.base_url, method, path, &[], None).await
    }

    /// Creates a company directly in HubSpot: it carries no source id.
    async fn company_made_in_hubspot(&self) -> String {
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/crm/v3/objects/companies", self.sink.base_url))
            .bearer_auth(ferry_sandbox::HUBSPOT_TOKEN)
            .json(&serde_json::json!({"properties": {"name": "Made in HubSpot"}}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("create JSON");
        answer["id"].as_str().expect("id").to_owned()
    }

    /// Whether the HubSpot company `id` is live (not archived).
    async fn live_in_hubspot(&self, id: &str) -> bool {
        reqwest::Client::new()
            .get(format!(
                "{}/crm/v3/objects/companies/{id}",
                self.sink.base_url
            ))
            .bearer_auth(ferry_sandbox::HUBSPOT_TOKEN)
            .send()
            .await
            .expect("read")
            .status()
            .is_success()
    }
}

/// Runs `ferry sync --config <config> --report json -q` and `extra` arguments.
async fn sync(config: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec!["sync", "--config", config, "--report", "json", "-q"];
    args.extend_from_slice(extra);
    let out = ferry(&args, &all_credentials()).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr:\n{stderr}"));
    (out.status.code().unwrap_or(-1), report, stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn deletions_in_the_source_follow_each_policy() {
    for policy in ["ignore", "archive", "delete"] {
        let pair = pair().await;
        let config = pair.config(policy, 1_000);
        let (code, first, stderr) = sync(&config, &[]).await;
        assert_eq!(code, 0, "{policy}: {first:#}\n{stderr}");
        let synced = pair.sink_counts();
        assert_eq!(synced, pair.source_counts(), "{policy}");

        pair.org.advance_clock(Duration::from_secs(3600));
        pair.delete_some_of_everything().await;
        pair.org.advance_clock(Duration::from_secs(3600));
        let left = pair.source_counts();
        for (before, after) in synced.iter().zip(&left) {
            assert!(after < before, "{policy}: something of every object went");
        }
        let (code, second, stderr) = sync(&config, &[]).await;
        assert_eq!(code, 0, "{policy}: {second:#}\n{stderr}");
        assert_eq!(second["outcome"], "verified", "{policy}");
        eprintln!(
            "{policy}: requests of the sync after the deletes: salesforce {}, hubspot {}",
            n(&second["source_http"], "requests"),
            n(&second["sink_http"], "requests")
        );
        match policy {
            "ignore" => {
                assert_eq!(pair.sink_counts(), synced, "the sink keeps them");
                for name in OBJECTS {
                    let o = object(&second, name);
                    assert_eq!((n(o, "archived"), n(o, "deleted")), (0, 0), "{o:#}");
                    assert!(o["sync"].get("deletions").is_none(), "{o:#}");
                }
            }
            _ => {
                assert_eq!(pair.sink_counts(), left, "{policy}: the sink follows");
                for ((name, before), after) in OBJECTS.iter().zip(&synced).zip(&left) {
                    let o = object(&second, name);
                    // HubSpot archives whatever is asked: `delete` is reported as archived.
                    assert_eq!(
                        (n(o, "archived"), n(o, "deleted")),
                        ((before - after) as u64, 0),
                        "{policy}: {o:#}"
                    );
                    assert_eq!(o["sync"]["deletions"], "source", "{o:#}");
                    assert!(o["sync"]["deletions_after"].is_string(), "{o:#}");
                }
                // Nothing deleted since: nothing more removed.
                let (code, third, stderr) = sync(&config, &[]).await;
                assert_eq!(code, 0, "{third:#}\n{stderr}");
                assert!(
                    OBJECTS
                        .iter()
                        .all(|name| n(object(&third, name), "archived") == 0),
                    "{third:#}"
                );
                assert_eq!(pair.sink_counts(), left);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mass_delete_exits_3_with_the_sink_untouched_until_allowed() {
    let pair = pair().await;
    let config = pair.config("archive", 3);
    let (code, first, stderr) = sync(&config, &[]).await;
    assert_eq!(code, 0, "{first:#}\n{stderr}");
    pair.org.advance_clock(Duration::from_secs(3600));
    pair.delete_some_of_everything().await;
    let left = pair.source_counts();
    let synced = pair.sink_counts();
    let state = std::fs::read(pair.dir.join("state.json")).expect("state");

    let (code, refused, stderr) = sync(&config, &[]).await;
    assert_eq!(code, 3, "{refused:#}\n{stderr}");
    assert_eq!(refused["outcome"], "failed");
    assert_eq!(refused["error_kind"], "mass_delete");
    let error = refused["error"].as_str().expect("error");
    assert!(
        error.contains("max_deletes` = 3") && error.contains("--allow-mass-delete"),
        "{error}"
    );
    assert_eq!(pair.sink_counts(), synced, "nothing removed");
    assert_eq!(
        std::fs::read(pair.dir.join("state.json")).expect("state"),
        state,
        "the state is untouched"
    );

    let (code, allowed, stderr) = sync(&config, &["--allow-mass-delete"]).await;
    assert_eq!(code, 0, "{allowed:#}\n{stderr}");
    assert_eq!(pair.sink_counts(), left);
}

#[tokio::test(flavor = "multi_thread")]
async fn forgotten_deletes_are_found_by_id_sets_and_records_made_in_the_sink_stay() {
    let pair = pair().await;
    let config = pair.config("delete", 1_000);
    let (code, first, stderr) = sync(&config, &[]).await;
    assert_eq!(code, 0, "{first:#}\n{stderr}");
    let made = pair.company_made_in_hubspot().await;

    pair.org.advance_clock(Duration::from_secs(3600));
    pair.delete_some_of_everything().await;
    // The Recycle Bin is emptied: getDeleted no longer knows these deletes.
    pair.org.advance_clock(Duration::from_secs(3600));
    pair.org.purge_deleted(Duration::from_secs(60));
    let left = pair.source_counts();

    let (code, second, stderr) = sync(&config, &[]).await;
    assert_eq!(code, 0, "{second:#}\n{stderr}");
    for name in OBJECTS {
        let o = object(&second, name);
        assert_eq!(o["sync"]["deletions"], "id_sets", "{o:#}");
        assert!(n(o, "archived") > 0, "{o:#}");
    }
    let mut expected = left.clone();
    expected[0] += 1;
    assert_eq!(
        pair.sink_counts(),
        expected,
        "the sink follows, but for its own"
    );
    assert!(pair.live_in_hubspot(&made).await, "never removed");
}

/// From HubSpot (its archived list) into Salesforce: an archived contact is deleted; an
/// archived company whose contact is still live in HubSpot is not, since Salesforce would
/// delete that contact with it: refused (`WOULD_CASCADE`, exit 3), listed, kept.
#[tokio::test(flavor = "multi_thread")]
async fn from_hubspot_archives_into_salesforce_never_take_live_children_with_them() {
    let portal = ferry_sandbox::hubspot::Emulator::new(ferry_sandbox::hubspot::Options::default());
    portal.seed(&generate(30, 29, &Mess::none()));
    let salesforce = ferry_sandbox::emulator("salesforce").expect("salesforce emulator");
    let org = (salesforce.build)(Faults::default(), Limits::Unlimited);
    let any = "127.0.0.1:0".parse().expect("loopback address");
    let source = ferry_sandbox::serve("hubspot", portal.router(), any)
        .await
        .expect("serve hubspot");
    let sink = ferry_sandbox::serve("salesforce", org.router(), any)
        .await
        .expect("serve salesforce");
    let dir = std::env::temp_dir().join(format!(
        "ferry-sync-deletes-hs-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("test dir");
    let hs = ferry_sandbox::emulator("hubspot").expect("hubspot");
    let config = dir.join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n\n{}\n{}\n[migration]\nobjects = [\"companies\", \"contacts\"]\n\n\
             [sync]\nstate = {:?}\ndeletes = \"archive\"\n\n{}\n",
            emulator_table("source", "hubspot", &source.base_url),
            emulator_table("sink", "salesforce", &sink.base_url),
            dir.join("state.json").display().to_string(),
            industry_table(&hs, &salesforce),
        ),
    )
    .expect("write config");
    let config = config.to_string_lossy().into_owned();
    let (code, first, stderr) = sync(&config, &[]).await;
    assert_eq!(code, 0, "{first:#}\n{stderr}");
    let synced = (org.count("companies"), org.count("contacts"));

    // A contact with a company: its company is archived, the contact stays; another contact
    // is archived.
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = &http;
        let base = &source.base_url;
        async move {
            http.get(format!("{base}{path}"))
                .bearer_auth(ferry_sandbox::HUBSPOT_TOKEN)
                .send()
                .await
                .expect("request")
                .json::<serde_json::Value>()
                .await
                .expect("JSON")
        }
    };
    let contacts = get("/crm/v3/objects/contacts?limit=100&associations=companies".into()).await;
    let contacts = contacts["results"].as_array().expect("results");
    let kept = contacts
        .iter()
        .find(|c| c["associations"]["companies"]["results"][0]["id"].is_string())
        .expect("a contact with a company");
    let company = kept["associations"]["companies"]["results"][0]["id"]
        .as_str()
        .expect("company id")
        .to_owned();
    let gone = contacts
        .iter()
        .find(|c| c["id"] != kept["id"])
        .expect("another contact")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    portal.advance_clock(Duration::from_secs(3600));
    assert!(portal.archive("contacts", gone.parse().expect("numeric id")));
    assert!(portal.archive("companies", company.parse().expect("numeric id")));
    portal.advance_clock(Duration::from_secs(3600));

    let (code, second, stderr) = sync(&config, &[]).await;
    assert_eq!(code, 3, "{second:#}\n{stderr}");
    assert_eq!(second["outcome"], "records_failed");
    let contacts = object(&second, "contacts");
    let companies = object(&second, "companies");
    assert_eq!(
        (n(contacts, "deleted"), n(contacts, "not_removed")),
        (1, 0),
        "{contacts:#}"
    );
    assert_eq!(
        (n(companies, "deleted"), n(companies, "not_removed")),
        (0, 1),
        "{companies:#}"
    );
    let failure = second["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .find(|f| f["stage"] == "remove")
        .expect("the refused removal");
    assert_eq!(
        (failure["source_id"].as_str(), failure["code"].as_str()),
        (Some(company.as_str()), Some("WOULD_CASCADE"))
    );
    assert_eq!(
        (org.count("companies"), org.count("contacts")),
        (synced.0, synced.1 - 1),
        "the live contact and its company stay"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

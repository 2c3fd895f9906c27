//! Shared harness of the end-to-end tests: emulators in the test process on loopback, and the
//! real `ferry` binary run as a child process against them.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_sandbox::faults::Faults;
use ferry_sandbox::seed::{self, Mess};
use ferry_sandbox::{Running, hubspot, salesforce};

/// Both emulators, HubSpot seeded, and a config file pointing at them.
pub struct Sandbox {
    pub hubspot: Running,
    pub hubspot_state: hubspot::Emulator,
    pub salesforce: Running,
    pub salesforce_state: salesforce::Emulator,
    pub seeded: seed::SeedData,
    pub config: PathBuf,
    dir: PathBuf,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An emulator of `vendor` without rate limits, empty, to be a consent test's sink: HubSpot's
/// account has the SMS add-on, so that it can hold SMS opt-outs (without it, HubSpot has no
/// SMS subscription type and the sink refuses them).
pub fn opt_out_sink(vendor: &str) -> std::sync::Arc<dyn ferry_sandbox::VendorEmulator> {
    if vendor == "hubspot" {
        return std::sync::Arc::new(hubspot::Emulator::new(hubspot::Options {
            burst_limit: None,
            daily_limit: None,
            search_limit: None,
            sms_addon: true,
            ..hubspot::Options::default()
        }));
    }
    let build = ferry_sandbox::emulator(vendor)
        .expect("an emulator of every vendor")
        .build;
    build(Faults::default(), ferry_sandbox::Limits::Unlimited)
}

/// What to start.
pub struct Setup {
    pub contacts: usize,
    pub mess: Mess,
    pub hubspot_faults: Faults,
    pub salesforce_faults: Faults,
}

impl Setup {
    pub fn clean(contacts: usize) -> Setup {
        Setup {
            contacts,
            mess: Mess::none(),
            hubspot_faults: Faults::default(),
            salesforce_faults: Faults::default(),
        }
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

pub async fn start(setup: Setup) -> Sandbox {
    let data = seed::generate(setup.contacts, 7, &setup.mess);
    let hub = hubspot::Emulator::new(hubspot::Options {
        faults: setup.hubspot_faults,
        ..Default::default()
    });
    hub.seed(&data);
    let sf = salesforce::Emulator::new(salesforce::Options {
        faults: setup.salesforce_faults,
        ..Default::default()
    });
    let any = "127.0.0.1:0".parse().expect("loopback address");
    let hubspot = ferry_sandbox::serve("hubspot", hub.router(), any)
        .await
        .expect("serve hubspot");
    let salesforce = ferry_sandbox::serve("salesforce", sf.router(), any)
        .await
        .expect("serve salesforce");
    let dir = std::env::temp_dir().join(format!(
        "ferry-e2e-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("test dir");
    let config = dir.join("ferry.toml");
    write_config(&config, &hubspot.base_url, &salesforce.base_url, "");
    Sandbox {
        hubspot,
        hubspot_state: hub,
        salesforce,
        salesforce_state: sf,
        seeded: data,
        config,
        dir,
    }
}

/// Writes a config for the two emulators, with `extra` appended to `[migration]`, and the
/// `[values.companies.industry]` table that carries HubSpot's industries into Salesforce's list.
pub fn write_config(path: &Path, hubspot: &str, salesforce: &str, extra: &str) {
    let industries = industry_table(
        &ferry_sandbox::hubspot::SPEC,
        &ferry_sandbox::salesforce::SPEC,
    );
    let text = format!(
        r#"version = 1

[source]
connector = "hubspot"
base_url = "{hubspot}"
token = "${{HUBSPOT_TOKEN}}"

[sink]
connector = "salesforce"
login_url = "{salesforce}"
client_id = "${{SF_CLIENT_ID}}"
client_secret = "${{SF_CLIENT_SECRET}}"

[migration]
objects = ["companies", "contacts"]
{extra}
{industries}"#
    );
    std::fs::write(path, text).expect("write config");
}

/// The `[values.companies.industry]` table (and `[fields.companies]` pair, where one is needed)
/// an operator would write to carry the seeded industries of `from`'s account into `to`'s.
pub fn industry_table(
    from: &ferry_sandbox::EmulatorSpec,
    to: &ferry_sandbox::EmulatorSpec,
) -> String {
    ferry_sandbox::industry_crosswalk(from, to)
        .map(|c| c.to_config())
        .unwrap_or_default()
}

/// The sandbox's credentials, as environment variables for the child.
pub fn sandbox_env() -> Vec<(&'static str, String)> {
    vec![
        ("HUBSPOT_TOKEN", ferry_sandbox::HUBSPOT_TOKEN.to_owned()),
        (
            "SF_CLIENT_ID",
            ferry_sandbox::SALESFORCE_CLIENT_ID.to_owned(),
        ),
        (
            "SF_CLIENT_SECRET",
            ferry_sandbox::SALESFORCE_CLIENT_SECRET.to_owned(),
        ),
    ]
}

/// Every sandbox emulator's credentials, for a child's `${VAR}` references.
pub fn all_credentials() -> Vec<(&'static str, String)> {
    ferry_sandbox::emulators()
        .iter()
        .flat_map(|e| e.credentials.iter())
        .map(|(var, value)| (*var, (*value).to_owned()))
        .collect()
}

/// A `[source]` or `[sink]` table for `connector` with the emulator's connector settings.
pub fn connector_table(role: &str, connector: &str, settings: &[(&'static str, String)]) -> String {
    let mut text = format!("[{role}]\nconnector = \"{connector}\"\n");
    for (key, value) in settings {
        text.push_str(&format!("{key} = {}\n", toml::Value::String(value.clone())));
    }
    text
}

/// `method path?query` on a Salesforce emulator at `base_url` with `body`, signed in with the
/// sandbox's client credentials, as another app of the org would call it; the JSON answer
/// (`Null` when there is none). Panics on an error status.
pub async fn salesforce_call(
    base_url: &str,
    method: reqwest::Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{base_url}/services/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ferry_sandbox::SALESFORCE_CLIENT_ID),
            ("client_secret", ferry_sandbox::SALESFORCE_CLIENT_SECRET),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    let mut request = http
        .request(method, format!("{base_url}{path}"))
        .query(query)
        .bearer_auth(token["access_token"].as_str().expect("access token"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.expect("request");
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
    answer.json().await.unwrap_or(serde_json::Value::Null)
}

/// Connector settings lifting a connector's own pacing, for tests against emulators without
/// limits: Pipedrive's default of 20 requests per 2 s (one search per record read back) would
/// otherwise make a pair of a few hundred contacts take a minute, and pacing is not what those
/// tests are about. Appended to the connector's table.
pub fn unpaced(vendor: &str) -> &'static str {
    match vendor {
        "pipedrive" => "rate_limit_per_2s = 100000\nsearch_rate_limit_per_2s = 100000\n",
        _ => "",
    }
}

/// The API name of the custom field labelled `label` on `object`'s `side` (`"source"` or
/// `"sink"`) of a `ferry fields --report json` report.
pub fn field_name_by_label(
    fields: &serde_json::Value,
    object: &str,
    side: &str,
    label: &str,
) -> Option<String> {
    fields["objects"]
        .as_array()?
        .iter()
        .find(|o| o["object"] == object)?[side]["fields"]
        .as_array()?
        .iter()
        .find(|f| f["label"] == label && f["custom"] == true)
        .and_then(|f| f["name"].as_str().map(str::to_owned))
}

/// Runs the ferry binary with `args` and `env`, no stdin, and waits for it.
pub async fn ferry(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .env_remove("FERRY_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("run ferry")
}

/// What a background ferry does with its output: kept for the test to read, or discarded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    /// stdout and stderr piped, for `wait_with_output`.
    Piped,
    /// stdout and stderr discarded.
    Discarded,
}

/// Starts `ferry <command> --config <config> --report json -q` in the background with `env`,
/// no stdin, killed when dropped: for tests that kill a run mid-way or act while it runs.
pub fn spawn_ferry(
    command: &str,
    config: &str,
    env: &[(&str, String)],
    streams: Streams,
) -> tokio::process::Child {
    let io = || match streams {
        Streams::Piped => std::process::Stdio::piped(),
        Streams::Discarded => std::process::Stdio::null(),
    };
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args([command, "--config", config, "--report", "json", "-q"])
        .stdin(std::process::Stdio::null())
        .stdout(io())
        .stderr(io())
        .env_remove("FERRY_LOG")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn ferry")
}

/// Runs `ferry <command> --config <sandbox config> --report json -q` and parses the report.
pub async fn run_json(
    command: &str,
    sandbox: &Sandbox,
    env: &[(&str, String)],
) -> (i32, serde_json::Value, String) {
    run_config(command, &sandbox.config.to_string_lossy(), env).await
}

/// Runs `ferry <command> --config <config> --report json -q` and parses the report: the exit
/// code, the report and stderr.
pub async fn run_config(
    command: &str,
    config: &str,
    env: &[(&str, String)],
) -> (i32, serde_json::Value, String) {
    let out = ferry(
        &[command, "--config", config, "--report", "json", "-q"],
        env,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a JSON report ({e}); stderr:\n{stderr}\nstdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().unwrap_or(-1), report, stderr)
}

/// A `[source]` or `[sink]` table for `vendor`'s emulator at `base_url`, with the emulator's
/// connector settings (numbers as TOML integers).
pub fn emulator_table(role: &str, vendor: &str, base_url: &str) -> String {
    let spec = ferry_sandbox::emulator(vendor).expect("emulator");
    let mut out = format!("[{role}]\nconnector = \"{vendor}\"\n");
    for (key, value) in (spec.connector_settings)(base_url) {
        match value.parse::<u64>() {
            Ok(n) => out.push_str(&format!("{key} = {n}\n")),
            Err(_) => out.push_str(&format!("{key} = {}\n", toml::Value::String(value))),
        }
    }
    out
}

/// `ferry plan`'s estimate of the requests a migration needs from `role`'s vendor (`source`
/// or `sink`), from its daily-quota lines.
pub fn estimate(plan: &str, role: &str) -> u64 {
    let line = plan
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{role} ")) && l.contains("needs about"))
        .unwrap_or_else(|| panic!("no {role} estimate in the plan:\n{plan}"));
    let after = line.split("needs about ").nth(1).unwrap_or_default();
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

/// The report's per-object entry for `object`.
pub fn object<'a>(report: &'a serde_json::Value, object: &str) -> &'a serde_json::Value {
    report["objects"]
        .as_array()
        .and_then(|objects| objects.iter().find(|o| o["object"] == object))
        .unwrap_or_else(|| panic!("no {object} in report: {report:#}"))
}

/// The count `key` of a report entry.
pub fn count(value: &serde_json::Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no count {key} in {value:#}"))
}

static SYNC_PAIRS: AtomicUsize = AtomicUsize::new(0);

/// A seeded source emulator and an empty sink emulator, served on loopback, and a directory
/// for the config and the sync state: the setup of the end-to-end `ferry sync` tests. `account`
/// is the source emulator's own handle, for the vendor's edits and its clock.
pub struct SyncPair<E> {
    pub source: Running,
    pub account: E,
    pub sink: Running,
    pub sink_state: std::sync::Arc<dyn ferry_sandbox::VendorEmulator>,
    pub dir: PathBuf,
    vendors: (&'static str, &'static str),
    /// The requests the source served, by `"METHOD /path"`.
    source_traffic: Traffic,
    /// The requests the sink served, by `"METHOD /path"`.
    sink_traffic: Traffic,
}

/// Requests served, by `"METHOD /path"` (no query).
type Traffic = std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>;

/// `router` counting every request it serves into `traffic`.
fn logged(router: axum::Router, traffic: &Traffic) -> axum::Router {
    let log = std::sync::Arc::clone(traffic);
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let log = std::sync::Arc::clone(&log);
            async move {
                let endpoint = format!("{} {}", request.method(), request.uri().path());
                *log.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(endpoint)
                    .or_default() += 1;
                next.run(request).await
            }
        },
    ))
}

impl<E> Drop for SyncPair<E> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl<E: ferry_sandbox::VendorEmulator> SyncPair<E> {
    /// Serves `account` (already seeded) as `source_vendor`, and a new, empty, unlimited
    /// emulator of `sink_vendor`.
    pub async fn start(source_vendor: &'static str, account: E, sink_vendor: &'static str) -> Self {
        Self::start_with(source_vendor, account, sink_vendor, Faults::default()).await
    }

    /// [`SyncPair::start`] with the sink emulator injecting `sink_faults`.
    pub async fn start_with(
        source_vendor: &'static str,
        account: E,
        sink_vendor: &'static str,
        sink_faults: Faults,
    ) -> Self {
        let spec = ferry_sandbox::emulator(sink_vendor).expect("sink emulator");
        let sink_state = (spec.build)(sink_faults, ferry_sandbox::Limits::Unlimited);
        let any = "127.0.0.1:0".parse().expect("loopback address");
        let source_traffic = Traffic::default();
        let source = ferry_sandbox::serve(
            source_vendor,
            logged(account.router(), &source_traffic),
            any,
        )
        .await
        .expect("serve the source");
        let sink_traffic = Traffic::default();
        let sink =
            ferry_sandbox::serve(sink_vendor, logged(sink_state.router(), &sink_traffic), any)
                .await
                .expect("serve the sink");
        let dir = std::env::temp_dir().join(format!(
            "ferry-sync-{source_vendor}-{}-{}",
            std::process::id(),
            SYNC_PAIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("test dir");
        SyncPair {
            source,
            account,
            sink,
            sink_state,
            dir,
            vendors: (source_vendor, sink_vendor),
            source_traffic,
            sink_traffic,
        }
    }

    /// The requests the sink served since the last call, by `"METHOD /path"` (no query).
    pub fn take_sink_requests(&self) -> std::collections::BTreeMap<String, u64> {
        std::mem::take(&mut *self.sink_traffic.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The requests the source served since the last call, by `"METHOD /path"` (no query).
    pub fn take_source_requests(&self) -> std::collections::BTreeMap<String, u64> {
        std::mem::take(
            &mut *self
                .source_traffic
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// The sync state file the config names.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Writes the config (`objects`, the industry and stage tables both vendors need, the
    /// state file); returns its path.
    pub fn config(&self, objects: &[&str]) -> String {
        let (from, to) = self.vendors;
        let (source, sink) = (
            ferry_sandbox::emulator(from).expect("source emulator"),
            ferry_sandbox::emulator(to).expect("sink emulator"),
        );
        let path = self.dir.join("ferry.toml");
        let text = format!(
            "version = 1\n\n{}\n{}\n[migration]\nobjects = {objects:?}\n\n[sync]\nstate = {:?}\n\n{}\n{}\n",
            emulator_table("source", from, &self.source.base_url),
            emulator_table("sink", to, &self.sink.base_url),
            self.state().display().to_string(),
            industry_table(&source, &sink),
            ferry_sandbox::accounts::stage_crosswalk_config(
                &ferry_sandbox::accounts::stage_crosswalk(source.deal_stages, sink.deal_stages)
            ),
        );
        std::fs::write(&path, text).expect("write config");
        path.to_string_lossy().into_owned()
    }
}

/// Asserts that a first sync read every object in full, created `totals` of each and set its
/// watermark.
pub fn assert_full_sync(report: &serde_json::Value, objects: &[&str], totals: &[usize]) {
    for (name, total) in objects.iter().zip(totals) {
        let o = object(report, name);
        assert_eq!(
            (count(o, "read"), count(o, "created")),
            (*total as u64, *total as u64),
            "{o:#}"
        );
        assert_eq!(o["sync"]["read"], "full", "{o:#}");
        assert_eq!(o["sync"]["advanced"], true, "{o:#}");
    }
}

/// Asserts that an incremental sync read, updated and verified exactly one changed record of
/// each object, created nothing and moved each watermark; returns the source's requests per
/// object.
pub fn assert_one_change_each(report: &serde_json::Value, objects: &[&str]) -> Vec<u64> {
    assert_eq!(report["outcome"], "verified", "{report:#}");
    objects
        .iter()
        .map(|name| {
            let o = object(report, name);
            assert_eq!(
                (
                    count(o, "read"),
                    count(o, "created"),
                    count(o, "updated"),
                    count(o, "verified")
                ),
                (1, 0, 1, 1),
                "exactly the changed record: {o:#}"
            );
            assert_eq!(o["sync"]["read"], "incremental", "{o:#}");
            assert_eq!(o["sync"]["advanced"], true, "{o:#}");
            count(&o["source_http"], "requests")
        })
        .collect()
}

/// `method path` on the sandbox's HubSpot emulator, as an app's call would (to edit its
/// records before a run); panics on an error status.
pub async fn hubspot_call(
    sandbox: &Sandbox,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", sandbox.hubspot.base_url))
        .bearer_auth(ferry_sandbox::HUBSPOT_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.expect("request");
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
    answer.json().await.expect("JSON")
}

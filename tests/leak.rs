//! End-to-end leak test: migrations at the most verbose log level (`-vvv`, progress lines on,
//! `--report json`), clean, faulty (throttling and 503s), with rejected records (messy seed) and
//! with a bad token, between HubSpot and Salesforce and between Zoho and Dynamics. Every byte
//! of stdout and stderr, and the checkpoint file where one is configured, is searched for every
//! sandbox secret and every seeded customer field value. None may appear.
//!
//! Which values are searched: every text field of every seeded company and contact (email,
//! names, phones, job title, street, city, state, postal code, country, domain, industry) that
//! is at least 6 characters long and not only digits. Shorter values ("Ltd", "CA", "Ohio") and
//! digit strings (postal codes) are skipped because they match ids, digests, counts and
//! ordinary words by chance; the distinctive values (emails, full names, phones, streets) are
//! what a leak would show. Matching ignores case.
//!
//! `ferry plan` is covered too: its preview masks values, and `--show-values` (the one way to
//! see them) is the positive control showing that the search finds values when they are there.

use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_sandbox::faults::Faults;
use ferry_sandbox::seed::{self, Mess};
use ferry_sandbox::{SandboxConfig, VendorSetup};

const SEED: u64 = 11;

/// Every credential of every emulator: none may be printed.
fn secrets() -> Vec<String> {
    ferry_sandbox::emulators()
        .iter()
        .flat_map(|e| e.credentials.iter().map(|(_, value)| (*value).to_owned()))
        .collect()
}

/// The seeded customers' distinctive field values (see the module comment).
fn customer_values(records: usize, mess: &Mess) -> Vec<String> {
    let data = seed::generate(records, SEED, mess);
    let mut values = Vec::new();
    for c in &data.companies {
        values.extend(
            [
                &c.name,
                &c.domain,
                &c.phone,
                &c.industry,
                &c.street,
                &c.city,
                &c.state,
                &c.postal_code,
                &c.country,
            ]
            .into_iter()
            .flatten()
            .cloned(),
        );
    }
    for c in &data.contacts {
        values.extend(
            [
                &c.email,
                &c.first_name,
                &c.last_name,
                &c.phone,
                &c.mobile_phone,
                &c.job_title,
                &c.street,
                &c.city,
                &c.state,
                &c.postal_code,
                &c.country,
            ]
            .into_iter()
            .flatten()
            .cloned(),
        );
    }
    let mut values: Vec<String> = values
        .into_iter()
        .map(|v| v.trim().to_lowercase())
        .filter(|v| v.chars().count() >= 6 && !v.chars().all(|c| c.is_ascii_digit()))
        .collect();
    values.sort();
    values.dedup();
    values
}

/// Two emulators, the source seeded, and a config file pointing ferry at them.
struct Run {
    _sandbox: ferry_sandbox::Sandbox,
    dir: PathBuf,
    config: PathBuf,
    checkpoint: Option<PathBuf>,
    records: usize,
    mess: Mess,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// What a scenario starts.
struct Scenario {
    from: &'static str,
    to: &'static str,
    records: usize,
    mess: Mess,
    source_faults: Faults,
    sink_faults: Faults,
    checkpoint: bool,
    /// Settings replacing the emulator's, as raw TOML values (a secret command, say).
    source_overrides: Vec<(&'static str, String)>,
}

impl Scenario {
    fn clean(from: &'static str, to: &'static str) -> Scenario {
        Scenario {
            from,
            to,
            records: 250,
            mess: Mess::none(),
            source_faults: Faults::default(),
            sink_faults: Faults::default(),
            checkpoint: false,
            source_overrides: Vec::new(),
        }
    }
}

fn messy() -> Mess {
    Mess {
        missing_last_name: 0.04,
        malformed_email: 0.04,
        duplicate_email: 0.04,
        overlong_title: 0.04,
        ..Mess::default()
    }
}

fn faulty() -> Faults {
    Faults {
        throttle_every: Some(5),
        unavailable_every: Some(7),
        seed: 3,
        ..Faults::default()
    }
}

async fn start(s: Scenario) -> Run {
    let spec = |vendor: &str| ferry_sandbox::emulator(vendor).expect("emulator");
    let setup = |vendor: &str, faults: Faults, seeded: bool| VendorSetup {
        faults,
        ..VendorSetup::ephemeral(spec(vendor), seeded)
    };
    let sandbox = ferry_sandbox::start(SandboxConfig {
        records: s.records,
        seed: SEED,
        mess: s.mess.clone(),
        vendors: vec![
            setup(s.from, s.source_faults, true),
            setup(s.to, s.sink_faults, false),
        ],
    })
    .await
    .expect("start emulators");
    let dir = std::env::temp_dir().join(format!(
        "ferry-leak-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("test dir");
    let checkpoint = s.checkpoint.then(|| dir.join("ferry.ckpt"));
    let table = |role: &str, vendor: &str, overrides: &[(&str, String)]| {
        let settings = sandbox.get(vendor).expect("running").connector_settings();
        let mut text = format!("[{role}]\nconnector = \"{vendor}\"\n");
        for (key, value) in settings {
            match overrides.iter().find(|(k, _)| *k == key) {
                Some((_, raw)) => text.push_str(&format!("{key} = {raw}\n")),
                None => text.push_str(&format!(
                    "{key} = {}\n",
                    serde_json::to_string(&value).unwrap()
                )),
            }
        }
        text
    };
    let mut text = format!(
        "version = 1\n\n{}\n{}\n[migration]\nobjects = [\"companies\", \"contacts\"]\n",
        table("source", s.from, &s.source_overrides),
        table("sink", s.to, &[]),
    );
    if let Some(path) = &checkpoint {
        text.push_str(&format!("checkpoint = {:?}\n", path.to_string_lossy()));
    }
    // The industries, carried from the source's list into the sink's as an operator would.
    let spec = |v| ferry_sandbox::emulator(v).expect("an emulator of every vendor");
    if let Some(crosswalk) = ferry_sandbox::industry_crosswalk(&spec(s.from), &spec(s.to)) {
        text.push_str(&crosswalk.to_config());
    }
    let config = dir.join("ferry.toml");
    std::fs::write(&config, text).expect("write config");
    Run {
        _sandbox: sandbox,
        dir,
        config,
        checkpoint,
        records: s.records,
        mess: s.mess,
    }
}

/// Every emulator's credentials as environment variables, as an operator would set them.
fn credentials_env() -> Vec<(String, String)> {
    ferry_sandbox::emulators()
        .iter()
        .flat_map(|e| {
            e.credentials
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        })
        .collect()
}

async fn ferry(args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .env_remove("FERRY_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("run ferry")
}

/// Runs `ferry <command>` at `-vvv` with `--report json` and progress lines every second.
async fn run_verbose(run: &Run, command: &str, env: &[(String, String)]) -> (Output, String) {
    let config = run.config.to_string_lossy().into_owned();
    let out = ferry(
        &[
            command,
            "-vvv",
            "--config",
            &config,
            "--report",
            "json",
            "--progress-interval",
            "1",
        ],
        env,
    )
    .await;
    let mut captured = String::from_utf8_lossy(&out.stdout).into_owned();
    captured.push_str(&String::from_utf8_lossy(&out.stderr));
    if let Some(path) = &run.checkpoint {
        captured.push_str(&String::from_utf8_lossy(
            &std::fs::read(path).expect("the checkpoint was written"),
        ));
    }
    (out, captured)
}

/// Fails naming what leaked (the finding's position only, never the surrounding output).
fn assert_nothing_leaked(scenario: &str, captured: &str, secrets: &[String], values: &[String]) {
    let haystack = captured.to_lowercase();
    let leaked_secrets: Vec<&String> = secrets
        .iter()
        .filter(|s| haystack.contains(&s.to_lowercase()))
        .collect();
    assert!(
        leaked_secrets.is_empty(),
        "{scenario}: secrets printed: {leaked_secrets:?}"
    );
    let leaked: Vec<&String> = values.iter().filter(|v| haystack.contains(*v)).collect();
    assert!(
        leaked.is_empty(),
        "{scenario}: {} customer values printed, e.g. {:?}",
        leaked.len(),
        &leaked[..leaked.len().min(5)]
    );
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a JSON report ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs `migrate` for `scenario` and checks its output. Returns the report.
async fn migrate_and_check(
    name: &str,
    scenario: Scenario,
    env: &[(String, String)],
    extra_secrets: &[&str],
) -> (serde_json::Value, String) {
    let run = start(scenario).await;
    let (out, captured) = run_verbose(&run, "migrate", env).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG"),
        "{name}: -vvv logs nothing; is the capture working?\n{stderr}"
    );
    let mut secrets = secrets();
    secrets.extend(extra_secrets.iter().map(|s| (*s).to_owned()));
    let values = customer_values(run.records, &run.mess);
    assert!(values.len() > 100, "{name}: too few values to search");
    assert_nothing_leaked(name, &captured, &secrets, &values);
    (report(&out), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_to_salesforce_clean_with_a_checkpoint_and_a_secret_command() {
    let mut scenario = Scenario::clean("hubspot", "salesforce");
    scenario.checkpoint = true;
    // The token comes from a command (no shell), as from a password manager's CLI.
    scenario.source_overrides = vec![(
        "token",
        format!(
            "{{ command = [\"printf\", \"%s\", \"{}\"] }}",
            ferry_sandbox::HUBSPOT_TOKEN
        ),
    )];
    let env: Vec<(String, String)> = credentials_env()
        .into_iter()
        .filter(|(k, _)| k != "HUBSPOT_TOKEN")
        .collect();
    let (report, _) = migrate_and_check("clean", scenario, &env, &[]).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert!(report["sandbox"]["landlock"].is_string(), "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_to_salesforce_faulty() {
    let mut scenario = Scenario::clean("hubspot", "salesforce");
    scenario.source_faults = faulty();
    scenario.sink_faults = faulty();
    scenario.checkpoint = true;
    let (report, _) = migrate_and_check("faulty", scenario, &credentials_env(), &[]).await;
    assert_eq!(report["outcome"], "verified", "{report:#}");
    let retried = report["source_http"]["retries"].as_u64().unwrap_or(0)
        + report["sink_http"]["retries"].as_u64().unwrap_or(0);
    assert!(retried > 0, "the faults were retried: {report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_to_salesforce_rejected_records() {
    let mut scenario = Scenario::clean("hubspot", "salesforce");
    scenario.mess = messy();
    let (report, _) = migrate_and_check("rejected", scenario, &credentials_env(), &[]).await;
    assert_eq!(report["outcome"], "records_failed", "{report:#}");
    assert!(
        report["failures"].as_array().is_some_and(|f| f.len() > 3),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_to_salesforce_bad_token() {
    const WRONG: &str = "pat-na1-leaktest-wrong-token-7f3a";
    let env: Vec<(String, String)> = credentials_env()
        .into_iter()
        .map(|(k, v)| {
            if k == "HUBSPOT_TOKEN" {
                (k, WRONG.to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    let scenario = Scenario::clean("hubspot", "salesforce");
    let (report, _) = migrate_and_check("bad token", scenario, &env, &[WRONG]).await;
    assert_eq!(report["outcome"], "failed", "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_to_dynamics_faulty_with_rejected_records() {
    let mut scenario = Scenario::clean("zoho", "dynamics");
    scenario.mess = messy();
    scenario.source_faults = faulty();
    scenario.sink_faults = faulty();
    scenario.checkpoint = true;
    let (report, _) = migrate_and_check("zoho faulty", scenario, &credentials_env(), &[]).await;
    assert!(
        ["verified", "records_failed"].contains(&report["outcome"].as_str().unwrap_or("")),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_to_dynamics_bad_secret() {
    const WRONG: &str = "leaktest-wrong-zoho-refresh-token-91c2";
    let env: Vec<(String, String)> = credentials_env()
        .into_iter()
        .map(|(k, v)| {
            if k == "ZOHO_REFRESH_TOKEN" {
                (k, WRONG.to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    let scenario = Scenario::clean("zoho", "dynamics");
    let (report, _) = migrate_and_check("zoho bad secret", scenario, &env, &[WRONG]).await;
    assert_eq!(report["outcome"], "failed", "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_masks_values_unless_asked() {
    let run = start(Scenario::clean("hubspot", "salesforce")).await;
    let config = run.config.to_string_lossy().into_owned();
    let env = credentials_env();
    let values = customer_values(run.records, &run.mess);

    let out = ferry(&["plan", "-vvv", "--config", &config], &env).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut captured = stdout.clone();
    captured.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "plan failed:\n{captured}");
    for expected in [
        "source hubspot: reachable",
        "sink salesforce: reachable",
        "companies:",
        "contacts:",
        "records in hubspot",
        "written and verified: ",
        "not carried (salesforce has no place for them)",
        "values masked",
        "***@",
        "sandbox: Landlock",
    ] {
        assert!(
            stdout.contains(expected),
            "plan lacks {expected:?}:\n{stdout}"
        );
    }
    assert_nothing_leaked("plan", &captured, &secrets(), &values);

    // The positive control: with --show-values the same search finds the values.
    let out = ferry(&["plan", "--config", &config, "--show-values"], &env).await;
    let shown = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(out.status.success());
    assert!(shown.contains("warning: --show-values"), "{shown}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning: --show-values"),
        "the warning is on stderr too"
    );
    let found = values.iter().filter(|v| shown.contains(*v)).count();
    assert!(
        found >= 3,
        "--show-values shows values ({found} found):\n{shown}"
    );
    assert!(
        secrets().iter().all(|s| !shown.contains(&s.to_lowercase())),
        "even --show-values shows no secret"
    );
}

//! End-to-end: the same-account guard. A HubSpot → HubSpot config whose sink is the account it
//! reads is refused (exit 2) by `check`, `plan`, `migrate` and `verify` before anything is
//! written, whether the config says so (same URL and credentials) or the vendor does (the same
//! portal id behind two URLs); `--allow-same-account` lets it run, and a rerun creates nothing.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use ferry_sandbox::seed::{self, Mess};
use ferry_sandbox::{Running, hubspot};

/// A temporary directory removed on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn temp_dir() -> Dir {
    let dir = std::env::temp_dir().join(format!(
        "ferry-same-account-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("test dir");
    Dir(dir)
}

/// A HubSpot emulator on a free loopback port, seeded with `contacts` contacts (and a fifth
/// as many companies) unless `contacts` is 0; `portal_id` `None` gives it a portal of its own.
async fn emulator(contacts: usize, portal_id: Option<u64>) -> (hubspot::Emulator, Running) {
    let state = hubspot::Emulator::new(hubspot::Options {
        portal_id,
        ..Default::default()
    });
    if contacts > 0 {
        state.seed(&seed::generate(contacts, 7, &Mess::none()));
    }
    let any = "127.0.0.1:0".parse().expect("loopback address");
    let running = ferry_sandbox::serve("hubspot", state.router(), any)
        .await
        .expect("serve hubspot");
    (state, running)
}

/// A HubSpot → HubSpot config; each table's token is read from the variable named.
fn config(dir: &Dir, source: &str, source_var: &str, sink: &str, sink_var: &str) -> String {
    let path = dir.0.join("ferry.toml");
    let text = format!(
        r#"version = 1

[source]
connector = "hubspot"
base_url = "{source}"
token = "${{{source_var}}}"

[sink]
connector = "hubspot"
base_url = "{sink}"
token = "${{{sink_var}}}"

[migration]
objects = ["companies", "contacts"]
"#
    );
    std::fs::write(&path, text).expect("write config");
    path.to_string_lossy().into_owned()
}

fn env() -> Vec<(&'static str, String)> {
    vec![
        ("HUBSPOT_TOKEN", ferry_sandbox::HUBSPOT_TOKEN.to_owned()),
        (
            "HUBSPOT_SINK_TOKEN",
            ferry_sandbox::HUBSPOT_TOKEN.to_owned(),
        ),
    ]
}

/// Runs `ferry <args…> --config <config>` and returns the exit code, stdout and stderr.
async fn run(args: &[&str], config: &str) -> (i32, String, String) {
    let mut all = args.to_vec();
    all.extend(["--config", config]);
    let out = ferry(&all, &env()).await;
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every guarded command exits 2 with `expected` in its message, and `counts` (the sink's
/// companies and contacts) are the same afterwards.
async fn refused_everywhere(
    config: &str,
    expected: &[&str],
    counts: impl Fn() -> (Option<usize>, Option<usize>),
) {
    let before = counts();
    for command in [
        vec!["check"],
        vec!["plan"],
        vec!["migrate", "-q"],
        vec!["verify", "-q"],
    ] {
        let (code, stdout, stderr) = run(&command, config).await;
        assert_eq!(
            code, 2,
            "{command:?} should refuse\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        for part in expected {
            assert!(
                stderr.contains(part),
                "{command:?}: `{part}` missing from stderr:\n{stderr}"
            );
        }
        assert!(stderr.contains("--allow-same-account"), "{stderr}");
        assert!(
            !stderr.contains(ferry_sandbox::HUBSPOT_TOKEN),
            "a token in the message: {stderr}"
        );
    }
    assert_eq!(counts(), before, "the guard let something be written");
}

#[tokio::test(flavor = "multi_thread")]
async fn same_url_and_token_reference_is_refused_from_the_config_alone() {
    let (state, running) = emulator(50, None).await;
    let dir = temp_dir();
    let url = &running.base_url;
    // The sink's URL differs only in case and a trailing slash: the same account.
    let sink_url = format!("{}/", url.replace("http://", "HTTP://"));
    let config = config(&dir, url, "HUBSPOT_TOKEN", &sink_url, "HUBSPOT_TOKEN");
    let (requests_before, _) = state.request_counts();
    refused_everywhere(
        &config,
        &["same hubspot account", "source.base_url", "`token`"],
        || (state.count("companies"), state.count("contacts")),
    )
    .await;
    // Refused before any request, by the settings alone.
    assert_eq!(state.request_counts().0, requests_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_emulator_under_another_variable_is_refused_by_its_portal_id() {
    let (state, running) = emulator(50, None).await;
    let dir = temp_dir();
    let url = &running.base_url;
    let config = config(&dir, url, "HUBSPOT_TOKEN", url, "HUBSPOT_SINK_TOKEN");
    let portal = format!("portal id {}", state.portal_id());
    refused_everywhere(&config, &["same hubspot account", &portal], || {
        (state.count("companies"), state.count("contacts"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_emulators_claiming_one_portal_are_refused_and_the_flag_lets_them_run() {
    let (_, source) = emulator(50, Some(44_001_234)).await;
    let (sink_state, sink) = emulator(0, Some(44_001_234)).await;
    let dir = temp_dir();
    let config = config(
        &dir,
        &source.base_url,
        "HUBSPOT_TOKEN",
        &sink.base_url,
        "HUBSPOT_TOKEN",
    );
    refused_everywhere(
        &config,
        &["same hubspot account", "portal id 44001234"],
        || (sink_state.count("companies"), sink_state.count("contacts")),
    )
    .await;
    assert_eq!(sink_state.count("companies"), Some(0));

    // `check` with the flag says what it found and does not refuse.
    let (code, stdout, stderr) = run(&["check", "--allow-same-account"], &config).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("same hubspot account (portal id 44001234)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("allowed by --allow-same-account"),
        "{stdout}"
    );

    // With the flag the migration runs, and a rerun creates nothing.
    let migrate = ["migrate", "-q", "--report", "json", "--allow-same-account"];
    let (code, stdout, stderr) = run(&migrate, &config).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let first: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    let companies = count(object(&first, "companies"), "created");
    assert!(companies > 0, "{first:#}");
    assert_eq!(sink_state.count("companies"), Some(companies as usize));
    let (code, stdout, stderr) = run(&migrate, &config).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let again: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    for object_name in ["companies", "contacts"] {
        assert_eq!(
            count(object(&again, object_name), "created"),
            0,
            "{again:#}"
        );
    }
    assert_eq!(sink_state.count("companies"), Some(companies as usize));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_accounts_of_one_vendor_are_allowed() {
    let (source_state, source) = emulator(50, None).await;
    let (sink_state, sink) = emulator(0, None).await;
    assert_ne!(source_state.portal_id(), sink_state.portal_id());
    let dir = temp_dir();
    let config = config(
        &dir,
        &source.base_url,
        "HUBSPOT_TOKEN",
        &sink.base_url,
        "HUBSPOT_TOKEN",
    );
    let (code, stdout, stderr) = run(&["check"], &config).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("different hubspot accounts"), "{stdout}");
    let (code, stdout, stderr) = run(&["migrate", "-q"], &config).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(
        sink_state.count("companies"),
        source_state.count("companies")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_within_one_portal_with_the_flag_does_not_copy_the_copies() {
    let (state, running) = emulator(50, None).await;
    let dir = temp_dir();
    let url = &running.base_url;
    let config = config(&dir, url, "HUBSPOT_TOKEN", url, "HUBSPOT_TOKEN");
    // Companies only: HubSpot keeps one contact per email address in a portal, so a copy of a
    // contact with an email is refused by HubSpot itself.
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace(
        r#"objects = ["companies", "contacts"]"#,
        r#"objects = ["companies"]"#,
    );
    std::fs::write(&config, text).expect("config");
    let seeded = state.count("companies").expect("companies");
    let migrate = ["migrate", "-q", "--report", "json", "--allow-same-account"];
    for run_number in 0..3 {
        let (code, stdout, stderr) = run(&migrate, &config).await;
        assert_eq!(
            code, 0,
            "run {run_number}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
        let companies = object(&report, "companies");
        // Only the originals are read: the copies carry the source-id property.
        assert_eq!(count(companies, "read"), seeded as u64, "{report:#}");
        let created = if run_number == 0 { seeded as u64 } else { 0 };
        assert_eq!(count(companies, "created"), created, "{report:#}");
        assert_eq!(count(companies, "verified"), seeded as u64, "{report:#}");
        assert_eq!(
            state.count("companies"),
            Some(2 * seeded),
            "run {run_number}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_that_cannot_leave_out_its_copies_is_refused_even_with_the_flag() {
    use ferry_sandbox::pipedrive;
    let state = pipedrive::Emulator::new(pipedrive::Options::default());
    state.seed(&seed::generate(20, 7, &Mess::none()));
    let any = "127.0.0.1:0".parse().expect("loopback address");
    let running = ferry_sandbox::serve("pipedrive", state.router(), any)
        .await
        .expect("serve pipedrive");
    let url = &running.base_url;
    let dir = temp_dir();
    let path = dir.0.join("ferry.toml");
    // Two variables holding one token: only the vendor's company id tells it is one account.
    let text = format!(
        "[source]\nconnector = \"pipedrive\"\nbase_url = \"{url}\"\napi_token = \"${{PD_A}}\"\n\
         [sink]\nconnector = \"pipedrive\"\nbase_url = \"{url}\"\napi_token = \"${{PD_B}}\"\n"
    );
    std::fs::write(&path, text).expect("write config");
    let config = path.to_string_lossy().into_owned();
    let env = [
        ("PD_A", pipedrive::TOKEN.to_owned()),
        ("PD_B", pipedrive::TOKEN.to_owned()),
    ];
    let before = (state.count("persons"), state.count("organizations"));
    let company = format!("company id {}", state.company_id());
    for (args, expected) in [
        (vec!["migrate", "-q"], company.as_str()),
        (
            vec!["migrate", "-q", "--allow-same-account"],
            "cannot leave out the copies",
        ),
    ] {
        let mut args = args.clone();
        args.extend(["--config", &config]);
        let out = ferry(&args, &env).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert_eq!(
        (state.count("persons"), state.count("organizations")),
        before
    );
}

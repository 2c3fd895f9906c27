//! End-to-end tests of config hardening, through the real `ferry` binary: parse errors, URLs
//! and credentials never echo a secret; bad settings stop the run (exit 2) before any request;
//! the summary never claims a checkpoint save that failed.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Setup;

/// A value that looks like a secret; no output of any test may contain its tail.
const SECRET: &str = "pat-na1-7f3c9e-SECRETVALUE";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory for one test's files.
fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ferry-hardening-config-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    dir
}

/// A loopback listener standing in for both vendors: any connection to it is a request ferry
/// should not have made.
struct Tripwire {
    listener: TcpListener,
    url: String,
}

impl Tripwire {
    fn new() -> Tripwire {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        Tripwire { listener, url }
    }

    /// Whether anything connected (the kernel queues connections until accepted).
    fn touched(&self) -> bool {
        self.listener.accept().is_ok()
    }
}

/// A HubSpot → HubSpot config pointing at `url`, with `source_extra` appended to `[source]`
/// and `migration` as the `[migration]` table's body.
fn config(dir: &Path, url: &str, source_extra: &str, migration: &str) -> PathBuf {
    let path = dir.join("ferry.toml");
    let text = format!(
        "version = 1\n\n[source]\nconnector = \"hubspot\"\nbase_url = \"{url}\"\n\
         token = \"${{HUBSPOT_TOKEN}}\"\n{source_extra}\n\n[sink]\nconnector = \"pipedrive\"\n\
         base_url = \"{url}\"\napi_token = \"${{PIPEDRIVE_TOKEN}}\"\n\n[migration]\n{migration}\n"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn env() -> Vec<(&'static str, String)> {
    vec![
        ("HUBSPOT_TOKEN", "pat-na1-test".to_owned()),
        ("PIPEDRIVE_TOKEN", "pd-test".to_owned()),
    ]
}

/// Runs ferry; returns the exit code and stdout + stderr.
async fn run(args: &[&str], env: &[(&str, String)]) -> (i32, String) {
    let out = common::ferry(args, env).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn a_broken_toml_line_is_located_but_never_shown() {
    let dir = temp_dir();
    let wire = Tripwire::new();
    let cases = [
        ("unterminated string", format!("api_key = \"{SECRET}")),
        ("unquoted value", format!("api_key = {SECRET}")),
        (
            "duplicate key",
            format!("token = \"{SECRET}\"\ntoken = \"{SECRET}\""),
        ),
    ];
    for (case, line) in cases {
        let path = config(&dir, &wire.url, "", "");
        let text = std::fs::read_to_string(&path).expect("read config");
        let broken = text.replace("[migration]\n", &format!("[migration]\n{line}\n"));
        std::fs::write(&path, broken).expect("write config");
        let config = path.to_string_lossy().into_owned();
        for command in ["check", "plan", "migrate"] {
            let (code, output) = run(&[command, "--config", &config], &env()).await;
            assert_eq!(code, 2, "{case}, {command}: {output}");
            assert!(
                !output.contains("SECRETVALUE"),
                "{case}, {command}: {output}"
            );
            assert!(output.contains(", column "), "{case}, {command}: {output}");
        }
    }
    assert!(!wire.touched(), "no request before the config is valid");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_url_with_a_password_is_refused_without_echo() {
    let dir = temp_dir();
    let wire = Tripwire::new();
    let with_password = wire
        .url
        .replace("http://", &format!("http://ops:{SECRET}@"));
    let path = config(&dir, &with_password, "", "");
    let config = path.to_string_lossy().into_owned();
    for command in ["check", "plan", "migrate"] {
        let (code, output) = run(&[command, "--config", &config], &env()).await;
        assert_eq!(code, 2, "{command}: {output}");
        assert!(output.contains("source.base_url"), "{command}: {output}");
        assert!(
            output.contains("user name or password"),
            "{command}: {output}"
        );
        assert!(!output.contains("SECRETVALUE"), "{command}: {output}");
    }
    assert!(!wire.touched(), "no request with a refused URL");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn bad_checkpoint_paths_stop_the_run_before_any_request() {
    let dir = temp_dir();
    let wire = Tripwire::new();
    let dir_text = dir.to_string_lossy().into_owned();
    let missing = dir.join("no-such-dir").join("ck.json");
    let cases = [
        ("empty", String::new(), "empty"),
        ("a directory", dir_text.clone(), "is a directory"),
        (
            "parent missing",
            missing.to_string_lossy().into_owned(),
            "no-such-dir",
        ),
    ];
    for (case, checkpoint, says) in cases {
        let migration = format!("checkpoint = {}", toml_string(&checkpoint));
        let path = config(&dir, &wire.url, "", &migration);
        let config = path.to_string_lossy().into_owned();
        for command in ["check", "migrate"] {
            let (code, output) = run(&[command, "--config", &config], &env()).await;
            assert_eq!(code, 2, "{case}, {command}: {output}");
            assert!(
                output.contains("migration.checkpoint") && output.contains(says),
                "{case}, {command}: {output}"
            );
        }
    }
    assert!(!wire.touched(), "no request with a bad checkpoint path");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn nonsensical_numbers_are_refused() {
    let dir = temp_dir();
    let wire = Tripwire::new();
    for (migration, key) in [
        ("max_record_bytes = 0", "migration.max_record_bytes"),
        ("batches_in_flight = 0", "migration.batches_in_flight"),
    ] {
        let path = config(&dir, &wire.url, "", migration);
        let config = path.to_string_lossy().into_owned();
        let (code, output) = run(&["check", "--config", &config], &env()).await;
        assert_eq!(code, 2, "{migration}: {output}");
        assert!(
            output.contains(key) && output.contains("between 1 and"),
            "{output}"
        );
    }
    assert!(!wire.touched());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_type_error_names_key_and_types_but_not_the_value() {
    let dir = temp_dir();
    let wire = Tripwire::new();
    let path = config(&dir, &wire.url, &format!("page_size = \"{SECRET}\""), "");
    let config = path.to_string_lossy().into_owned();
    let (code, output) = run(&["check", "--config", &config], &env()).await;
    assert_eq!(code, 2, "{output}");
    assert!(
        output.contains("source.page_size") && output.contains("string given"),
        "{output}"
    );
    assert!(!output.contains("SECRETVALUE"), "{output}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_endless_config_file_is_refused_quickly() {
    let started = Instant::now();
    let (code, output) = run(&["check", "--config", "/dev/zero"], &env()).await;
    assert_eq!(code, 2, "{output}");
    assert!(
        output.contains("/dev/zero") && output.contains("1024 KiB"),
        "{output}"
    );
    // Generous: reading 1 MiB takes milliseconds; before the cap it read until memory ran out.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn credentials_with_a_line_break_or_a_bad_name_are_refused_by_name() {
    let dir = temp_dir();
    let wire = Tripwire::new();
    let path = config(&dir, &wire.url, "", "");
    let config = path.to_string_lossy().into_owned();
    let newline = vec![
        ("HUBSPOT_TOKEN", format!("{SECRET}\n")),
        ("PIPEDRIVE_TOKEN", "pd-test".to_owned()),
    ];
    for command in ["check", "plan", "migrate"] {
        let (code, output) = run(&[command, "--config", &config], &newline).await;
        assert_eq!(code, 2, "{command}: {output}");
        assert!(
            output.contains("source.token")
                && output.contains("`HUBSPOT_TOKEN`")
                && output.contains("control character"),
            "{command}: {output}"
        );
        assert!(!output.contains("SECRETVALUE"), "{command}: {output}");
    }
    let text = std::fs::read_to_string(&path).expect("read config");
    std::fs::write(&path, text.replace("${HUBSPOT_TOKEN}", "${HUBSPOT TOKEN}")).expect("write");
    let (code, output) = run(&["check", "--config", &config], &env()).await;
    assert_eq!(code, 2, "{output}");
    assert!(
        output.contains("source.token") && output.contains("the name contains a space"),
        "{output}"
    );
    assert!(!wire.touched(), "no request with a refused credential");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint whose save fails mid-run (its `.tmp` sibling is a directory, so the write
/// fails): the run fails, and the summary must not say that progress is saved.
#[tokio::test]
async fn a_failed_checkpoint_save_is_not_reported_as_saved() {
    let sandbox = common::start(Setup::clean(20)).await;
    let dir = temp_dir();
    let checkpoint = dir.join("ck.json");
    std::fs::create_dir(ferry_core::checkpoint::temp_path(&checkpoint)).expect("tmp dir");
    common::write_config(
        &sandbox.config,
        &sandbox.hubspot.base_url,
        &sandbox.salesforce.base_url,
        &format!(
            "checkpoint = {}",
            toml_string(&checkpoint.to_string_lossy())
        ),
    );
    let config = sandbox.config.to_string_lossy().into_owned();
    let (code, output) = run(&["migrate", "--config", &config], &common::sandbox_env()).await;
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("cannot save progress"), "{output}");
    assert!(!output.contains("progress is saved"), "{output}");
    assert!(output.contains("could NOT be saved"), "{output}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Vendor data holding an OSC sequence (ESC ] 0 ; … BEL: retitles a terminal) and a newline
/// (forges a line): `ferry plan` prints them escaped, masked or shown.
#[tokio::test]
async fn plan_escapes_control_characters_from_vendor_data() {
    use ferry_sandbox::{hubspot, salesforce, seed};
    let mut data = seed::generate(6, 7, &seed::Mess::none());
    for company in &mut data.companies {
        company.name = Some("\u{1b}]0;pwned\u{7}Acme\nINFO forged log line".into());
    }
    let hub = hubspot::Emulator::new(hubspot::Options::default());
    hub.seed(&data);
    let sf = salesforce::Emulator::new(salesforce::Options::default());
    let any = "127.0.0.1:0".parse().expect("loopback address");
    let hubspot = ferry_sandbox::serve("hubspot", hub.router(), any)
        .await
        .expect("serve hubspot");
    let salesforce = ferry_sandbox::serve("salesforce", sf.router(), any)
        .await
        .expect("serve salesforce");
    let dir = temp_dir();
    let path = dir.join("ferry.toml");
    common::write_config(&path, &hubspot.base_url, &salesforce.base_url, "");
    let config = path.to_string_lossy().into_owned();
    for show in [true, false] {
        let mut args = vec!["plan", "--config", &config];
        if show {
            args.push("--show-values");
        }
        let out = common::ferry(&args, &common::sandbox_env()).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        assert!(
            !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
            "raw control characters in: {stdout:?}"
        );
        assert!(
            !stdout.lines().any(|l| l.starts_with("INFO forged")),
            "a forged line in: {stdout}"
        );
        assert!(stdout.contains("\\u{1b}"), "{stdout}");
        if show {
            assert!(
                stdout.contains("\\u{1b}]0;pwned\\u{7}Acme\\nINFO forged log line"),
                "{stdout}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

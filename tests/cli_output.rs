//! End-to-end: what the `ferry` binary prints and how it exits: a closed stdout, colours in a
//! log that is not a terminal or under `NO_COLOR`, the first progress line, `verify` after refusals, `verify`'s
//! arguments, and the error kind of the JSON report.

mod common;

use std::process::Stdio;

use common::*;
use ferry_sandbox::seed::Mess;

/// Runs ferry with `args` and `env`, its stdout a connection whose reading end is already
/// closed (as under `ferry … | head -1` once `head` has left: a write fails with EPIPE);
/// returns the exit code and stderr.
fn ferry_into_closed_pipe(args: &[&str], env: &[(&str, String)]) -> (i32, String) {
    let (writer, reader) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
    drop(reader);
    let writer = std::os::fd::OwnedFd::from(writer);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .env_remove("FERRY_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run ferry");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_stdout_is_no_panic() {
    let (code, stderr) = ferry_into_closed_pipe(&["connectors"], &[]);
    assert_eq!(code, 0, "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
}

#[test]
fn a_closed_stderr_is_no_panic() {
    // A config error is reported on stderr only: with nobody reading it, ferry still exits 2.
    let dir = std::env::temp_dir().join(format!("ferry-closed-stderr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("test dir");
    let config = dir.join("ferry.toml");
    std::fs::write(&config, "[source]\nconnector = \"hubspot\"\n").expect("write config");
    let (writer, reader) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
    drop(reader);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["check", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::os::fd::OwnedFd::from(writer)))
        .status()
        .expect("run ferry");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status.code(), Some(2), "a panic exits 101");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migration_into_a_closed_stdout_exits_with_its_outcome() {
    let sandbox = start(Setup::clean(100)).await;
    let config = sandbox.config.to_string_lossy().into_owned();
    let env = sandbox_env();
    let (code, stderr) = tokio::task::spawn_blocking(move || {
        ferry_into_closed_pipe(&["migrate", "--config", &config, "-q"], &env)
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
    // The migration itself ran to the end: the summary only was lost.
    assert_eq!(
        sandbox.salesforce_state.count("Contact"),
        sandbox.seeded.contacts.len()
    );

    // `ferry plan | head -1`, once head has left.
    let config = sandbox.config.to_string_lossy().into_owned();
    let env = sandbox_env();
    let (code, stderr) = tokio::task::spawn_blocking(move || {
        ferry_into_closed_pipe(&["plan", "--config", &config], &env)
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_and_progress_without_a_terminal_have_no_colours_and_start_at_once() {
    let sandbox = start(Setup::clean(100)).await;
    let config = sandbox.config.to_string_lossy().into_owned();
    // An interval longer than the run: only the line printed at the start can appear.
    let out = ferry(
        &[
            "-vv",
            "migrate",
            "--config",
            &config,
            "--progress-interval",
            "600",
        ],
        &sandbox_env(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(
        stderr.lines().count() > 1,
        "-vv logs at debug level:\n{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in stderr:\n{stderr:?}"
    );
    assert!(
        stderr.contains(
            "progress: migrate: reading companies, contacts from hubspot, writing to salesforce"
        ),
        "stderr:\n{stderr}"
    );
}

/// Runs ferry with `args` and `env` on a pseudo-terminal (util-linux `script`, as an operator's
/// shell would); returns the exit code and everything it drew there, stdout and stderr alike.
async fn ferry_on_a_terminal(args: &[&str], env: &[(&str, String)]) -> (i32, String) {
    let line = std::iter::once(env!("CARGO_BIN_EXE_ferry"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = tokio::process::Command::new("script");
    cmd.args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .stdin(Stdio::null())
        .env_remove("FERRY_LOG")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .await
        .expect("run ferry under script (util-linux)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn no_color_on_a_terminal_gives_plain_lines_instead_of_bars() {
    let sandbox = start(Setup::clean(100)).await;
    let config = sandbox.config.to_string_lossy().into_owned();
    let args = ["migrate", "--config", &config, "--progress-interval", "600"];
    let heading = "progress: migrate: reading companies";

    // On a terminal: bars, drawn with escape codes, and no plain progress line.
    let (code, drawn) = ferry_on_a_terminal(&args, &sandbox_env()).await;
    assert_eq!(code, 0, "{drawn}");
    assert!(drawn.contains('\u{1b}'), "bars on a terminal:\n{drawn:?}");
    assert!(!drawn.contains(heading), "{drawn}");

    // The same terminal with NO_COLOR: the plain lines a log gets, no escape code at all.
    let mut env = sandbox_env();
    env.push(("NO_COLOR", "1".to_owned()));
    let (code, plain) = ferry_on_a_terminal(&args, &env).await;
    assert_eq!(code, 0, "{plain}");
    assert!(plain.contains(heading), "{plain}");
    assert!(!plain.contains('\u{1b}'), "escape codes:\n{plain:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_after_refusals_reports_records_not_in_the_sink_not_a_mismatch() {
    // Only what the Salesforce sink itself refuses (no last name), nothing ferry's own checks
    // stop before writing.
    let mess = Mess {
        missing_last_name: 0.0,
        malformed_email: 0.0,
        duplicate_email: 0.0,
        no_company: 0.0,
        overlong_title: 0.05,
        opt_out_without_email: false,
        opt_out_channels: 0.0,
        legal_bases: 0.0,
    };
    let sandbox = start(Setup {
        contacts: 300,
        mess,
        ..Setup::clean(0)
    })
    .await;
    let env = sandbox_env();
    let (code, migrated, stderr) = run_json("migrate", &sandbox, &env).await;
    let refused = count(object(&migrated, "contacts"), "failed");
    assert!(refused > 0, "the sink refused some: {migrated:#}\n{stderr}");
    assert_eq!(code, 3, "{migrated:#}");

    let (code, report, stderr) = run_json("verify", &sandbox, &env).await;
    let contacts = object(&report, "contacts");
    assert_eq!(
        (
            count(contacts, "mismatched"),
            count(contacts, "not_in_sink")
        ),
        (0, refused),
        "{report:#}\n{stderr}"
    );
    assert_eq!(report["outcome"], "not_in_sink", "{report:#}");
    assert_eq!(code, 3, "the documented code for records not in the sink");
    assert_eq!(contacts["digests_match"], true, "{report:#}");
    let failures = report["failures"].as_array().expect("failures");
    assert!(
        failures.iter().all(|f| f["code"] == "NOT_IN_SINK"),
        "{report:#}"
    );

    // The human summary says the same, and never talks of a checkpoint.
    let config = sandbox.config.to_string_lossy().into_owned();
    let out = ferry(&["verify", "--config", &config, "-q"], &env).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{refused} source records are not in salesforce")),
        "{text}"
    );
    assert!(!text.contains("MISMATCH"), "{text}");
    assert!(!text.contains("checkpoint"), "{text}");
}

#[tokio::test]
async fn verify_has_no_fresh_flag() {
    let out = ferry(&["verify", "--config", "ferry.toml", "--fresh"], &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("--fresh"), "stderr:\n{stderr}");
}

/// A config whose source is at `hubspot` and sink at `salesforce`, without retries.
fn write_config_without_retries(path: &std::path::Path, hubspot: &str, salesforce: &str) {
    let text = format!(
        r#"version = 1

[source]
connector = "hubspot"
base_url = "{hubspot}"
token = "${{HUBSPOT_TOKEN}}"
max_retries = 0

[sink]
connector = "salesforce"
login_url = "{salesforce}"
client_id = "${{SF_CLIENT_ID}}"
client_secret = "${{SF_CLIENT_SECRET}}"
max_retries = 0

[migration]
objects = ["companies", "contacts"]
"#
    );
    std::fs::write(path, text).expect("write config");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_json_report_says_whose_fault_an_error_is() {
    let sandbox = start(Setup::clean(50)).await;
    let env = sandbox_env();

    // Nothing listens on the source's port: a network fault.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("address").port();
    drop(closed);
    write_config_without_retries(
        &sandbox.config,
        &format!("http://127.0.0.1:{port}"),
        &sandbox.salesforce.base_url,
    );
    let (code, report, stderr) = run_json("migrate", &sandbox, &env).await;
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    assert_eq!(report["outcome"], "failed");
    assert_eq!(report["error_kind"], "network", "{report:#}");
    assert!(report["error"].is_string(), "{report:#}");

    // A token the vendor refuses: a credentials fault.
    write_config_without_retries(
        &sandbox.config,
        &sandbox.hubspot.base_url,
        &sandbox.salesforce.base_url,
    );
    let mut wrong = env.clone();
    wrong.retain(|(k, _)| *k != "HUBSPOT_TOKEN");
    wrong.push(("HUBSPOT_TOKEN", "not-the-sandbox-token".to_owned()));
    let (code, report, stderr) = run_json("verify", &sandbox, &wrong).await;
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    assert_eq!(report["error_kind"], "credentials", "{report:#}");
    let summary = ferry(
        &[
            "verify",
            "--config",
            &sandbox.config.to_string_lossy(),
            "-q",
        ],
        &wrong,
    )
    .await;
    let text = String::from_utf8_lossy(&summary.stdout);
    assert!(text.contains("error (credentials): "), "{text}");
    assert!(!text.contains("checkpoint"), "a verify has none: {text}");

    // A reference to a variable that is not set: a config fault, before any run, still
    // reported as JSON.
    let mut unset = env.clone();
    unset.retain(|(k, _)| *k != "HUBSPOT_TOKEN");
    let (code, report, _) = run_json("migrate", &sandbox, &unset).await;
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(
        (&report["outcome"], &report["error_kind"]),
        (&serde_json::json!("failed"), &serde_json::json!("config")),
        "{report:#}"
    );
}

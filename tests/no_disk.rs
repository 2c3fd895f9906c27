//! End-to-end: whole runs, traced with strace, open no file for writing and create, rename,
//! truncate or delete none, except the configured checkpoint (and its `.tmp` sibling). Customer
//! data never touches disk. The runs also report the Landlock sandbox that enforces this.

mod common;

use std::process::{Output, Stdio};

/// Syscalls that create or change files.
const WRITE_SYSCALLS: &[&str] = &[
    "creat",
    "rename",
    "renameat",
    "renameat2",
    "truncate",
    "ftruncate",
    "unlink",
    "unlinkat",
    "mkdir",
    "mkdirat",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "mknod",
    "mknodat",
];

/// Files a process may open for writing without writing data anywhere.
const HARMLESS: &[&str] = &["/dev/null", "/dev/tty", "/dev/stdout", "/dev/stderr"];

/// Runs the ferry binary with `args` under `strace -f`, tracing file-creating syscalls.
fn strace_ferry(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut syscalls = vec!["open", "openat", "openat2", "memfd_create"];
    syscalls.extend_from_slice(WRITE_SYSCALLS);
    let mut cmd = std::process::Command::new("strace");
    cmd.args([
        "-f",
        "-qq",
        "-e",
        &format!("trace={}", syscalls.join(",")),
        "--",
    ])
    .arg(env!("CARGO_BIN_EXE_ferry"))
    .args(args)
    .stdin(Stdio::null())
    .env_remove("FERRY_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .expect("strace must be installed (scripts/test installs it)")
}

/// The traced calls that write to the filesystem anywhere but at the `allowed` paths. Fails
/// the test when strace traced nothing at all.
fn violations(stderr: &str, allowed: &[&str]) -> Vec<String> {
    let mut traced = 0;
    let mut violations = Vec::new();
    for line in stderr.lines() {
        // With -f, other threads' lines start with "[pid N] ".
        let call = match line.strip_prefix("[pid ") {
            Some(rest) => rest.split_once("] ").map(|(_, call)| call).unwrap_or(""),
            None => line,
        };
        let Some(name) = call.split('(').next() else {
            continue;
        };
        if !(name.starts_with("open") || name == "memfd_create" || WRITE_SYSCALLS.contains(&name)) {
            continue;
        }
        traced += 1;
        if call.contains("= -1") || call.contains("<unfinished") || call.contains("resumed>") {
            continue; // failed or split calls: the resumed half carries no path
        }
        let writes = WRITE_SYSCALLS.contains(&name)
            || name == "memfd_create"
            || ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"]
                .iter()
                .any(|f| call.contains(f));
        if !writes {
            continue;
        }
        // Every path the call names must be harmless or allowed (a rename names two).
        let paths: Vec<&str> = call.split('"').skip(1).step_by(2).collect();
        let fine = !paths.is_empty()
            && paths
                .iter()
                .all(|p| HARMLESS.contains(p) || allowed.contains(p));
        if !fine {
            violations.push(line.to_owned());
        }
    }
    assert!(
        traced > 0,
        "strace saw no file syscalls at all; is the trace working?\n{stderr}"
    );
    violations
}

/// The JSON report's sandbox status: it says whether Landlock was enforced, and why not.
fn assert_sandbox_reported(report: &serde_json::Value) -> String {
    let sandbox = &report["sandbox"];
    let landlock = sandbox["landlock"].as_str().unwrap_or_default().to_owned();
    assert!(
        ["enforced", "partial", "unavailable"].contains(&landlock.as_str()),
        "the report must state the Landlock status: {sandbox:#}"
    );
    if landlock != "enforced" {
        assert!(
            !sandbox["detail"].as_str().unwrap_or_default().is_empty(),
            "a sandbox that is not enforced says why: {sandbox:#}"
        );
    }
    assert_eq!(sandbox["core_dumps_disabled"], true, "{sandbox:#}");
    landlock
}

#[test]
fn demo_opens_no_file_for_writing() {
    let out = strace_ferry(&["demo", "--records", "600", "--report", "json", "-q"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo under strace failed:\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON report on stdout");
    assert!(
        common::count(common::object(&report, "contacts"), "verified") > 0,
        "the demo migrated nothing"
    );
    assert_sandbox_reported(&report);
    let violations = violations(&stderr, &[]);
    assert!(
        violations.is_empty(),
        "ferry wrote to the filesystem:\n{}",
        violations.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_writes_only_its_checkpoint() {
    let sandbox = common::start(common::Setup::clean(300)).await;
    let dir = sandbox.config.parent().expect("config dir").to_owned();
    let checkpoint_dir = dir.join("checkpoints");
    std::fs::create_dir_all(&checkpoint_dir).unwrap();
    let checkpoint = checkpoint_dir.join("ferry.ckpt");
    let tmp = ferry_core::checkpoint::temp_path(&checkpoint);
    let config = dir.join("with-checkpoint.toml");
    common::write_config(
        &config,
        &sandbox.hubspot.base_url,
        &sandbox.salesforce.base_url,
        &format!("checkpoint = {:?}", checkpoint.to_string_lossy()),
    );
    let config_arg = config.to_string_lossy().into_owned();
    let env = common::sandbox_env();
    let out = tokio::task::spawn_blocking(move || {
        strace_ferry(
            &["migrate", "--config", &config_arg, "--report", "json", "-q"],
            &env,
        )
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "migrate under strace failed:\n{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON report on stdout");
    assert_eq!(report["outcome"], "verified", "{report:#}");
    assert!(
        checkpoint.exists(),
        "the checkpoint was written (the run is traced writing it)"
    );
    let landlock = assert_sandbox_reported(&report);
    if landlock != "unavailable" {
        assert_eq!(
            report["sandbox"]["writable"],
            serde_json::json!([std::fs::canonicalize(&checkpoint_dir).unwrap()]),
            "only the checkpoint's directory is writable"
        );
    }

    let allowed = [checkpoint.to_str().unwrap(), tmp.to_str().unwrap()];
    let violations = violations(&stderr, &allowed);
    assert!(
        violations.is_empty(),
        "ferry wrote to the filesystem beyond its checkpoint:\n{}",
        violations.join("\n")
    );
    assert!(
        stderr.contains(&format!("{:?}", tmp.to_str().unwrap())),
        "the trace shows the checkpoint being written"
    );
}

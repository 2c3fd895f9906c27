//! End-to-end: a whole demo run, traced with strace, opens no file for writing and creates,
//! renames, truncates or deletes none. Customer data never touches disk.

mod common;

use std::process::Stdio;

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

#[test]
fn demo_opens_no_file_for_writing() {
    let mut syscalls = vec!["open", "openat", "openat2", "memfd_create"];
    syscalls.extend_from_slice(WRITE_SYSCALLS);
    let out = std::process::Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            &format!("trace={}", syscalls.join(",")),
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .args(["demo", "--records", "600", "--report", "json", "-q"])
        .stdin(Stdio::null())
        .output()
        .expect("strace must be installed (scripts/test installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo under strace failed:\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON report on stdout");
    assert!(
        common::count(common::object(&report, "contacts"), "verified") > 0,
        "the demo migrated nothing"
    );

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
        if writes && !HARMLESS.iter().any(|h| call.contains(&format!("\"{h}\""))) {
            violations.push(line.to_owned());
        }
    }
    assert!(
        traced > 0,
        "strace saw no file syscalls at all; is the trace working?\n{stderr}"
    );
    assert!(
        violations.is_empty(),
        "ferry wrote to the filesystem:\n{}",
        violations.join("\n")
    );
}

//! End-to-end: the README's by-hand flow. `ferry sandbox` in one process, then `ferry check`,
//! `migrate` twice and `verify` against it.

mod common;

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_then_migrate_twice_then_verify() {
    let mut sandbox = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "sandbox",
            "--records",
            "400",
            "--clean",
            "--any-port",
            "--empty",
            "salesforce",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start ferry sandbox");
    let stdout = sandbox.stdout.take().expect("sandbox stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (mut hubspot, mut salesforce) = (String::new(), String::new());
    let read_urls = async {
        while let Ok(Some(line)) = lines.next_line().await {
            let url = line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .unwrap_or_default()
                .to_owned();
            if line.starts_with("emulator hubspot ") {
                hubspot = url;
            } else if line.starts_with("emulator salesforce ") {
                salesforce = url;
            } else if line.starts_with("Ready.") {
                break;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), read_urls)
        .await
        .expect("sandbox printed its URLs");
    assert!(
        hubspot.starts_with("http://127.0.0.1:") && salesforce.starts_with("http://127.0.0.1:")
    );

    let dir = std::env::temp_dir().join(format!("ferry-e2e-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("ferry.toml");
    common::write_config(&config, &hubspot, &salesforce, "");
    let config = config.to_string_lossy().into_owned();
    let env = common::sandbox_env();

    let out = common::ferry(&["check", "--config", &config], &env).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("source hubspot: reachable") && text.contains("sink salesforce: reachable"),
        "{text}"
    );
    // The permission advice comes from each connector's spec, per role.
    assert!(
        text.contains("  needs: private-app scopes crm.objects.companies.read, ")
            && text
                .contains("  needs: OAuth scope `api`; a run-as user with Read, Create and Edit"),
        "{text}"
    );

    for (run, expect_created) in [(1, true), (2, false)] {
        let out = common::ferry(&["migrate", "--config", &config, "-q"], &env).await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "run {run}:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("every record written and verified"), "{text}");
        let contacts = text
            .lines()
            .find(|l| l.starts_with("contacts"))
            .expect("contacts row");
        let cols: Vec<&str> = contacts.split_whitespace().collect();
        // object read written created updated failed verified mismatched
        assert_eq!(cols[1], "400");
        assert_eq!(
            cols[3],
            if expect_created { "400" } else { "0" },
            "run {run}: {contacts}"
        );
        assert_eq!(cols[6], "400");
    }

    let out = common::ferry(&["verify", "--config", &config, "-q"], &env).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_that_goes_away_does_not_stop_the_sandbox() {
    // `ferry sandbox | head -1`: the pipe is closed before the banner is written.
    let mut sandbox = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["sandbox", "--records", "10", "--any-port"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start ferry sandbox");
    drop(sandbox.stdout.take());
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let status = sandbox.try_wait().expect("status");
    assert!(status.is_none(), "the sandbox stopped: {status:?}");
    sandbox.kill().await.expect("stop the sandbox");
}

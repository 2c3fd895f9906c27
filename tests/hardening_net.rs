//! Hostile and dead endpoints, end to end (issue #12, items 2 and 5): an endless body, an
//! endpoint that accepts and never answers, and a refused port must each end `ferry check`,
//! `plan` and `migrate` in seconds with an error naming vendor and endpoint, and retries must
//! show on stderr at the default log level.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the hostile server answers every request.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// 200 with a chunked JSON body that never ends.
    Endless,
    /// Reads the request and never answers.
    Hang,
}

/// A loopback server speaking HTTP/1.1 by hand: returns its base URL and the body bytes it
/// managed to send.
async fn hostile(mode: Hostile) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                match mode {
                    Hostile::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
                    Hostile::Endless => {
                        let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                        if socket.write_all(head).await.is_err() {
                            return;
                        }
                        let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
                        chunk.extend(std::iter::repeat_n(b' ', 64 * 1024));
                        chunk.extend_from_slice(b"\r\n");
                        while socket.write_all(&chunk).await.is_ok() {
                            counter.fetch_add(64 * 1024, Ordering::SeqCst);
                        }
                    }
                }
            });
        }
    });
    (url, sent)
}

/// A loopback URL where nothing listens: the connection is refused.
fn refused() -> String {
    // Port 1 (tcpmux): nothing listens there, and no server is ever handed it for `:0`, so
    // another test's emulator cannot take it between choosing it and using it (a port bound
    // and dropped could be reused at once).
    "http://127.0.0.1:1".to_owned()
}

/// What a run of the binary came to.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs `ferry args` (sandbox credentials, default log level), killing it after `limit`: a
/// run that would take minutes fails the test instead of holding it.
async fn ferry(args: &[&str], limit: Duration) -> Ran {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .env_remove("FERRY_LOG")
        .kill_on_drop(true);
    for (k, v) in common::sandbox_env() {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("`ferry {}` still running after {limit:?}", args.join(" ")))
        .expect("run ferry");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// The sandbox's Salesforce as the sink, and a config whose HubSpot source is at `source`,
/// with `extra` in the source table.
async fn config_with_source(source: &str, extra: &str) -> (common::Sandbox, String) {
    let sandbox = common::start(common::Setup::clean(0)).await;
    common::write_config(&sandbox.config, source, &sandbox.salesforce.base_url, "");
    // The source table's own keys go under [source]: after its token line.
    let text = std::fs::read_to_string(&sandbox.config).expect("read config");
    let text = text.replace(
        "token = \"${HUBSPOT_TOKEN}\"\n",
        &format!("token = \"${{HUBSPOT_TOKEN}}\"\n{extra}\n"),
    );
    std::fs::write(&sandbox.config, text).expect("write config");
    let path = sandbox.config.to_string_lossy().into_owned();
    (sandbox, path)
}

const CONTACTS: &str = "GET /crm/v3/objects/contacts";

#[tokio::test]
async fn check_stops_reading_an_endless_body_at_its_cap() {
    let (url, served) = hostile(Hostile::Endless).await;
    let (_sandbox, config) = config_with_source(&url, "").await;
    let ran = ferry(&["check", "--config", &config], Duration::from_secs(60)).await;
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    let line = ran
        .stdout
        .lines()
        .find(|l| l.starts_with("source hubspot:"))
        .unwrap_or_else(|| panic!("no source line:\n{}", ran.stdout));
    assert!(
        line.contains(CONTACTS) && line.contains("MiB cap") && line.contains("not retried"),
        "{line}"
    );
    assert!(
        ran.stdout.contains("sink salesforce: reachable"),
        "{}",
        ran.stdout
    );
    assert!(ran.took < Duration::from_secs(20), "took {:?}", ran.took);
    // ferry stopped reading at the cap: the server could send no more than the cap plus what
    // the sockets buffer, once (an unbounded read took 1 GB in 4 s, and was retried).
    let served = served.load(Ordering::SeqCst);
    assert!(served < 64 << 20, "{served} bytes served");
}

#[tokio::test]
async fn check_against_a_hung_endpoint_names_it_and_the_timeout_and_warns_of_retries() {
    let (url, _) = hostile(Hostile::Hang).await;
    let (_sandbox, config) = config_with_source(&url, "timeout_secs = 1").await;
    let ran = ferry(&["check", "--config", &config], Duration::from_secs(60)).await;
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    let line = ran
        .stdout
        .lines()
        .find(|l| l.starts_with("source hubspot:"))
        .unwrap_or_else(|| panic!("no source line:\n{}", ran.stdout));
    assert!(
        line.contains(CONTACTS) && line.contains("1 s request timeout (timeout_secs)"),
        "{line}"
    );
    // Three attempts of one second and two short waits.
    assert!(ran.took < Duration::from_secs(15), "took {:?}", ran.took);
    // The retry shows at the default log level, naming vendor, endpoint, attempt and wait.
    let warning = ran
        .stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("retrying in"))
        .unwrap_or_else(|| panic!("no retry warning on stderr:\n{}", ran.stderr));
    assert!(
        warning.contains("hubspot")
            && warning.contains(CONTACTS)
            && warning.contains("attempt 1 of 3"),
        "{warning}"
    );
}

#[tokio::test]
async fn check_ends_at_its_deadline() {
    let (url, _) = hostile(Hostile::Hang).await;
    let (_sandbox, config) = config_with_source(&url, "").await;
    let ran = ferry(
        &["check", "--config", &config, "--deadline", "2"],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains(
            "source hubspot: no result within the 2 s deadline of `ferry check` (--deadline); \
             its last request was GET /crm/v3/objects/contacts"
        ),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("sink salesforce: reachable"),
        "{}",
        ran.stdout
    );
    assert!(ran.took < Duration::from_secs(10), "took {:?}", ran.took);
}

#[tokio::test]
async fn plan_ends_at_its_deadline() {
    let (url, _) = hostile(Hostile::Hang).await;
    let (_sandbox, config) = config_with_source(&url, "").await;
    let ran = ferry(
        &["plan", "--config", &config, "--deadline", "2"],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    // The first requests read the field metadata, before any record.
    let all = format!("{}\n{}", ran.stdout, ran.stderr);
    assert!(
        all.contains(
            "did not finish within its 2 s deadline (--deadline), still reading the field \
             metadata; the last requests were hubspot GET /crm/v3/properties/"
        ),
        "{all}"
    );
    assert!(ran.took < Duration::from_secs(10), "took {:?}", ran.took);
}

#[tokio::test]
async fn a_refused_port_ends_plan_and_migrate_at_once() {
    let (_sandbox, config) = config_with_source(&refused(), "").await;
    for command in ["plan", "migrate"] {
        let ran = ferry(
            &[command, "--config", &config, "-q"],
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(ran.code, 1, "{command}:\n{}\n{}", ran.stdout, ran.stderr);
        let all = format!("{}\n{}", ran.stdout, ran.stderr);
        assert!(
            all.contains("hubspot")
                // The first request: the field metadata, read before any record.
                && all.contains("GET /crm/v3/properties/")
                && all.contains("could not connect")
                && all.contains("not retried"),
            "{command}:\n{all}"
        );
        // Certain at the first request: no retries (they took about 100 s).
        assert!(
            ran.took < Duration::from_secs(10),
            "{command} took {:?}",
            ran.took
        );
    }
}

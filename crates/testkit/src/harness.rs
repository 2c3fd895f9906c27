//! The machinery around the checks: environment, log capture, serving emulators behind a
//! request counter, building connectors the way the `ferry` binary does, and the runner that
//! prints one line per check.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use ferry_core::{ConnectorError, Sink, Source};
use ferry_sandbox::faults::Faults;
use ferry_sandbox::seed::SeedData;
use ferry_sandbox::{Running, SeedSummary, VendorEmulator};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::Target;
use crate::checks::{self, Check, Needs, Phase};

/// How long one check may take before it is failed as hung (a cursor that never ends, a
/// retry loop that never gives up).
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// Prefix of the environment variables holding deliberately wrong credentials.
const WRONG_PREFIX: &str = "FERRY_TESTKIT_WRONG_";

/// Why a check stopped before passing.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The connector (or emulator) does not conform; the reason says how.
    Fail(String),
    /// The check does not apply to this target; the reason says why.
    Skip(String),
}

impl From<String> for Stop {
    fn from(reason: String) -> Stop {
        Stop::Fail(reason)
    }
}

/// What a check returns: a one-line summary of what it saw, or why it stopped.
pub(crate) type Verdict = Result<String, Stop>;

/// A check's future.
pub(crate) type CheckFuture = Pin<Box<dyn Future<Output = Verdict> + Send>>;

/// Fails the check with a formatted reason unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($reason:tt)+) => {
        if !$cond {
            return Err($crate::harness::Stop::Fail(format!($($reason)+)));
        }
    };
}
pub(crate) use ensure;

/// The environment variable that holds the wrong value of credential `var`.
pub(crate) fn wrong_var(var: &str) -> String {
    format!("{WRONG_PREFIX}{var}")
}

/// The deliberately wrong value put in [`wrong_var`]`(var)`: distinctive, so that finding it
/// in a message is proof the message quotes a secret.
pub(crate) fn wrong_value(var: &str) -> String {
    format!(
        "ferry-testkit-wrong-{}-5d41402abc",
        var.to_ascii_lowercase()
    )
}

/// The in-memory log every tracing event (and `log` record) goes to, for the secret check.
#[derive(Clone, Default)]
pub(crate) struct LogBuffer {
    bytes: Arc<Mutex<Vec<u8>>>,
    installed: Arc<std::sync::atomic::AtomicBool>,
}

/// One event's writer into a [`LogBuffer`].
pub(crate) struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter(Arc::clone(&self.bytes))
    }
}

impl LogBuffer {
    /// Installs the global subscriber at TRACE writing into a new buffer. Events of the
    /// emulators (`ferry_sandbox`) and of the axum server under them are left out: the check is
    /// about what the connector logs, and an emulator may legitimately see the secrets.
    fn install() -> LogBuffer {
        let buffer = LogBuffer::default();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(buffer.clone())
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                let target = meta.target();
                !(target.starts_with("ferry_sandbox") || target.starts_with("axum"))
            }))
            .with_filter(tracing_subscriber::filter::LevelFilter::TRACE);
        let installed = tracing_subscriber::registry()
            .with(layer)
            .try_init()
            .is_ok();
        buffer.installed.store(installed, Ordering::Relaxed);
        buffer
    }

    /// Whether the subscriber could be installed (it cannot when another is already global).
    pub(crate) fn installed(&self) -> bool {
        self.installed.load(Ordering::Relaxed)
    }

    /// The captured lines so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        let bytes = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Requests an emulator served, counted by the testkit's own middleware (outside the
/// emulator's fault layer, so injected 429s and 503s are counted too).
#[derive(Default)]
pub(crate) struct Traffic {
    total: AtomicU64,
    log: Mutex<TrafficSnapshot>,
}

/// Counts at one moment; subtract two with [`TrafficSnapshot::since`].
#[derive(Clone, Debug, Default)]
pub(crate) struct TrafficSnapshot {
    /// Requests received.
    pub total: u64,
    /// Requests by `"METHOD /path"` (no query string).
    pub by_endpoint: BTreeMap<String, u64>,
    /// Responses by status code.
    pub by_status: BTreeMap<u16, u64>,
}

impl TrafficSnapshot {
    /// What happened between `earlier` and this snapshot.
    pub(crate) fn since(&self, earlier: &TrafficSnapshot) -> TrafficSnapshot {
        fn diff<K: Ord + Clone>(
            now: &BTreeMap<K, u64>,
            then: &BTreeMap<K, u64>,
        ) -> BTreeMap<K, u64> {
            now.iter()
                .filter_map(|(k, n)| {
                    let d = n.saturating_sub(then.get(k).copied().unwrap_or(0));
                    (d > 0).then(|| (k.clone(), d))
                })
                .collect()
        }
        TrafficSnapshot {
            total: self.total.saturating_sub(earlier.total),
            by_endpoint: diff(&self.by_endpoint, &earlier.by_endpoint),
            by_status: diff(&self.by_status, &earlier.by_status),
        }
    }

    /// Responses whose status satisfies `pred`.
    pub(crate) fn responses(&self, pred: impl Fn(u16) -> bool) -> u64 {
        self.by_status
            .iter()
            .filter(|(s, _)| pred(**s))
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests that write (any method but GET, HEAD and OPTIONS), by endpoint.
    pub(crate) fn writes(&self) -> BTreeMap<&str, u64> {
        self.by_endpoint
            .iter()
            .filter(|(e, _)| {
                !(e.starts_with("GET ") || e.starts_with("HEAD ") || e.starts_with("OPTIONS "))
            })
            .map(|(e, n)| (e.as_str(), *n))
            .collect()
    }
}

impl Traffic {
    /// The counts now.
    pub(crate) fn snapshot(&self) -> TrafficSnapshot {
        let mut snapshot = self
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        snapshot.total = self.total.load(Ordering::Relaxed);
        snapshot
    }
}

/// An emulator the testkit serves, with its request counter.
pub(crate) struct Served {
    /// The emulator's state (for `count`).
    pub emulator: Arc<dyn VendorEmulator>,
    /// Where it listens; dropping it stops the server.
    pub running: Running,
    /// The requests it served.
    pub traffic: Arc<Traffic>,
    /// What was seeded, if it was.
    pub seeded: Option<SeedSummary>,
}

impl Served {
    /// How many live records of `object` the emulator holds.
    pub(crate) fn count(&self, object: ferry_core::ObjectType) -> usize {
        self.emulator.count(object.as_str())
    }
}

/// What every check shares.
pub(crate) struct Ctx {
    /// The connector and emulator under test.
    pub target: Target,
    /// The captured log.
    pub logs: LogBuffer,
    /// Every credential a connector sent in an `Authorization` header (access tokens the
    /// emulator issued included), for the secret check.
    pub seen_credentials: Arc<Mutex<BTreeSet<String>>>,
    /// Every error message and rejection reason the checks saw, for the secret check.
    texts: Mutex<Vec<String>>,
    /// The source checks' shared full read of the seeded emulator.
    pub source_read: tokio::sync::OnceCell<Result<Arc<checks::source::FullRead>, String>>,
}

impl Ctx {
    /// The vendor's name.
    pub(crate) fn vendor(&self) -> &'static str {
        self.target.connector.name
    }

    /// Remembers a message a connector produced, so the secret check scans it.
    pub(crate) fn note(&self, text: impl Into<String>) {
        self.texts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(text.into());
    }

    /// Every message noted so far.
    pub(crate) fn noted(&self) -> Vec<String> {
        self.texts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A failure for connector error `e` while doing `what`; the message is noted.
    pub(crate) fn error(&self, what: &str, e: &ConnectorError) -> Stop {
        let text = e.to_string();
        self.note(text.clone());
        Stop::Fail(format!("{what}: {text}"))
    }

    /// Builds the vendor's emulator with `faults`, seeds it with `seed` if given, and serves it
    /// on a free loopback port behind the request counter.
    pub(crate) async fn serve(
        &self,
        faults: Faults,
        seed: Option<&SeedData>,
    ) -> Result<Served, Stop> {
        let emulator = (self.target.emulator.build)(faults, ferry_sandbox::Limits::Documented);
        let seeded = seed.map(|data| emulator.seed(data));
        let traffic = Arc::new(Traffic::default());
        let counter = Arc::clone(&traffic);
        let seen = Arc::clone(&self.seen_credentials);
        let router = emulator.router().layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let counter = Arc::clone(&counter);
                let seen = Arc::clone(&seen);
                async move {
                    counter.total.fetch_add(1, Ordering::Relaxed);
                    let endpoint = format!("{} {}", request.method(), request.uri().path());
                    if let Some(credential) = request
                        .headers()
                        .get(axum::http::header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.split_whitespace().last())
                        .filter(|c| c.len() >= 8)
                    {
                        seen.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(credential.to_owned());
                    }
                    let response = next.run(request).await;
                    let mut log = counter.log.lock().unwrap_or_else(PoisonError::into_inner);
                    *log.by_endpoint.entry(endpoint).or_default() += 1;
                    *log.by_status.entry(response.status().as_u16()).or_default() += 1;
                    drop(log);
                    response
                }
            },
        ));
        let running = ferry_sandbox::serve(
            self.target.emulator.vendor,
            router,
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
        .map_err(|e| Stop::Fail(format!("cannot serve the emulator on loopback: {e}")))?;
        Ok(Served {
            emulator,
            running,
            traffic,
            seeded,
        })
    }

    /// The connector settings pointing at `served`, as the `ferry` binary builds them (a table
    /// of strings); with `wrong` set, that credential's `${VAR}` is swapped for the variable
    /// holding a wrong value.
    pub(crate) fn settings(&self, served: &Served, wrong: Option<&str>) -> serde_json::Value {
        let pairs = (self.target.emulator.connector_settings)(&served.running.base_url);
        let map = pairs
            .into_iter()
            .map(|(key, value)| {
                let value = match wrong {
                    Some(var) => {
                        value.replace(&format!("${{{var}}}"), &format!("${{{}}}", wrong_var(var)))
                    }
                    None => value,
                };
                (key.to_owned(), serde_json::Value::String(value))
            })
            .collect();
        serde_json::Value::Object(map)
    }

    /// The connector as a source reading `served`.
    pub(crate) fn source(
        &self,
        served: &Served,
        wrong: Option<&str>,
    ) -> Result<Arc<dyn Source>, Stop> {
        let build = self
            .target
            .connector
            .source
            .ok_or_else(|| Stop::Skip(format!("{} cannot be a source", self.vendor())))?;
        build(self.settings(served, wrong), "source")
            .map_err(|e| self.error("building the source from the emulator's settings", &e))
    }

    /// The connector as a sink writing `served`.
    pub(crate) fn sink(&self, served: &Served, wrong: Option<&str>) -> Result<Arc<dyn Sink>, Stop> {
        let build = self
            .target
            .connector
            .sink
            .ok_or_else(|| Stop::Skip(format!("{} cannot be a sink", self.vendor())))?;
        build(self.settings(served, wrong), "sink")
            .map_err(|e| self.error("building the sink from the emulator's settings", &e))
    }
}

/// The command-line arguments cargo passes on (`cargo test --test conformance -- <args>`):
/// libtest's filter, `--exact`, `--skip` and `--list`; other flags are ignored.
#[derive(Debug, Default)]
struct Args {
    filters: Vec<String>,
    skips: Vec<String>,
    exact: bool,
    list: bool,
    ignored: bool,
}

impl Args {
    fn parse(args: impl IntoIterator<Item = String>) -> Args {
        // libtest flags that take a value as the next argument; that value is not a filter.
        const WITH_VALUE: &[&str] = &[
            "--test-threads",
            "--format",
            "--color",
            "--logfile",
            "--shuffle-seed",
            "-Z",
        ];
        let mut parsed = Args::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--exact" => parsed.exact = true,
                "--list" => parsed.list = true,
                "--ignored" => parsed.ignored = true,
                "--skip" => parsed.skips.extend(args.next()),
                a if WITH_VALUE.contains(&a) => {
                    args.next();
                }
                a if a.starts_with("--skip=") => parsed.skips.push(a["--skip=".len()..].into()),
                a if a.starts_with('-') => {}
                _ => parsed.filters.push(arg),
            }
        }
        parsed
    }

    fn selects(&self, name: &str) -> bool {
        let matches = |pattern: &String| {
            if self.exact {
                name == pattern
            } else {
                name.contains(pattern.as_str())
            }
        };
        (self.filters.is_empty() || self.filters.iter().any(matches))
            && !self.skips.iter().any(matches)
    }
}

/// Puts the emulator's credentials, and deliberately wrong ones, into the environment.
///
/// # Safety
///
/// No other thread may exist (or at least read or write the environment) while this runs.
pub(crate) unsafe fn set_credentials(target: &Target) {
    for (var, value) in target.emulator.credentials {
        // SAFETY: the caller guarantees no other thread touches the environment.
        unsafe {
            std::env::set_var(var, value);
            std::env::set_var(wrong_var(var), wrong_value(var));
        }
    }
}

/// The process's log capture, installed on first use.
pub(crate) fn logs() -> LogBuffer {
    static LOGS: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    LOGS.get_or_init(LogBuffer::install).clone()
}

/// See [`crate::run`].
pub(crate) fn run(target: Target) -> ExitCode {
    // SAFETY: this is the first thing the conformance binary does, before the runtime or any
    // other thread exists, so nothing can read the environment concurrently.
    unsafe { set_credentials(&target) };
    let vendor = target.connector.name;
    let args = Args::parse(std::env::args().skip(1));
    let all = checks::all();
    if args.list {
        if !args.ignored {
            for check in all.iter().filter(|c| args.selects(c.name)) {
                println!("{}: test", check.name);
            }
        }
        return ExitCode::SUCCESS;
    }
    let logs = logs();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            println!("conformance {vendor}: cannot start the tokio runtime: {e}");
            println!("conformance {vendor}: 0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    let selected: Vec<Check> = if args.ignored {
        Vec::new()
    } else {
        all.into_iter().filter(|c| args.selects(c.name)).collect()
    };
    println!(
        "conformance {vendor}: {} as {} against the {} emulator",
        target.connector.title,
        match (
            target.connector.source.is_some(),
            target.connector.sink.is_some()
        ) {
            (true, true) => "source and sink",
            (true, false) => "source",
            (false, true) => "sink",
            (false, false) => "neither source nor sink",
        },
        target.emulator.vendor,
    );
    let (mut passed, mut failed) = (0u32, 0u32);
    runtime.block_on(execute(
        target,
        selected,
        logs,
        |name, result| match result {
            Status::Passed(detail) => {
                passed += 1;
                println!("ok {name}: {detail}");
            }
            Status::Failed(reason) => {
                failed += 1;
                println!("FAILED {name}: {reason}");
            }
            Status::Skipped(reason) => println!("skipped {name}: {reason}"),
        },
    ));
    // The emulators' server tasks end with the runtime; nothing to wait for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    println!("conformance {vendor}: {passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// How one check ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// It passed; what it saw.
    Passed(String),
    /// It failed; why.
    Failed(String),
    /// It did not apply; why.
    Skipped(String),
}

/// Runs the main-phase checks of `selected` concurrently, then the last-phase ones (which look
/// at what the others left behind), reporting each result to `report` in the checks' order.
pub(crate) async fn execute(
    target: Target,
    selected: Vec<Check>,
    logs: LogBuffer,
    mut report: impl FnMut(&'static str, Status),
) {
    let vendor = target.connector.name;
    let ctx = Arc::new(Ctx {
        target,
        logs,
        seen_credentials: Arc::default(),
        texts: Mutex::default(),
        source_read: tokio::sync::OnceCell::new(),
    });
    let is_source = target.connector.source.is_some();
    let is_sink = target.connector.sink.is_some();
    for phase in [Phase::Main, Phase::Last] {
        let mut handles = Vec::new();
        for check in selected.iter().filter(|c| c.phase == phase) {
            let missing = match check.needs {
                Needs::Source if !is_source => Some("not a source"),
                Needs::Sink if !is_sink => Some("not a sink"),
                Needs::Both if !(is_source && is_sink) => Some("not both a source and a sink"),
                _ => None,
            };
            if let Some(why) = missing {
                handles.push((check.name, Err(why)));
                continue;
            }
            let future = (check.run)(Arc::clone(&ctx));
            let handle = tokio::spawn(async move {
                let started = Instant::now();
                let verdict = match tokio::time::timeout(CHECK_TIMEOUT, future).await {
                    Ok(verdict) => verdict,
                    Err(_) => Err(Stop::Fail(format!(
                        "did not finish within {}s",
                        CHECK_TIMEOUT.as_secs()
                    ))),
                };
                (verdict, started.elapsed())
            });
            handles.push((check.name, Ok(handle)));
        }
        for (name, handle) in handles {
            let handle = match handle {
                Ok(handle) => handle,
                Err(why) => {
                    report(name, Status::Skipped(format!("{vendor} is {why}")));
                    continue;
                }
            };
            let status = match handle.await {
                Ok((Ok(detail), took)) => {
                    Status::Passed(format!("{detail} [{} ms]", took.as_millis()))
                }
                Ok((Err(Stop::Fail(reason)), took)) => {
                    Status::Failed(format!("{reason} [{} ms]", took.as_millis()))
                }
                Ok((Err(Stop::Skip(reason)), _)) => Status::Skipped(reason),
                Err(e) => Status::Failed(format!("the check panicked: {e}")),
            };
            report(name, status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::parse(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn libtest_flags_are_ignored_and_filters_kept() {
        let a = args(&[
            "--nocapture",
            "--test-threads",
            "4",
            "sink",
            "--skip",
            "retries",
        ]);
        assert_eq!(a.filters, vec!["sink".to_owned()]);
        assert!(a.selects("sink::idempotent_upsert"));
        assert!(!a.selects("sink::retries_429"));
        assert!(!a.selects("source::paging"));
        let exact = args(&["--exact", "secrets"]);
        assert!(exact.selects("secrets") && !exact.selects("secrets::x"));
        assert!(args(&[]).selects("anything"));
    }

    #[test]
    fn traffic_deltas_subtract_per_endpoint() {
        let mut before = TrafficSnapshot::default();
        before.by_endpoint.insert("GET /a".into(), 2);
        let mut after = before.clone();
        after.total = 3;
        after.by_endpoint.insert("GET /a".into(), 3);
        after.by_endpoint.insert("POST /b".into(), 1);
        after.by_status.insert(429, 1);
        let d = after.since(&before);
        assert_eq!(d.by_endpoint.get("GET /a"), Some(&1));
        assert_eq!(
            d.writes().into_iter().collect::<Vec<_>>(),
            vec![("POST /b", 1)]
        );
        assert_eq!(d.responses(|s| s == 429), 1);
    }
}

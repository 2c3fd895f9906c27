//! The one HTTP layer every connector uses: rate limiting, retries, and vendor-aware errors.
//!
//! Every attempt, retries included, first takes a permit from the vendor account's limiter, so
//! retries can never push ferry over a vendor's limit. Transient failures (429, 5xx, timeouts,
//! dropped connections) are retried with exponential backoff and jitter, waiting at least as
//! long as the vendor's `Retry-After` says. Anything else is handed back to the connector, which
//! knows whether a 4xx is the request's fault or one record's.
//!
//! A connection that cannot be made (refused, unknown host, connect timeout) is not retried
//! while the vendor's host has never answered: a wrong address or port is certain at the first
//! request, and retrying it only hides the mistake for minutes. Once the host has answered, a
//! connect error is a passing network fault again and is retried like the others.
//!
//! Response bodies are read in chunks with a running count against a [`BodyCap`], so a vendor
//! (or anything posing as one) sending an endless body cannot exhaust memory. A body over its
//! cap is a malformed answer, never retried.
//!
//! Sending a request again is safe for reads and upserts. A create is different: when its
//! answer is lost after the vendor carried it out, sending it again makes a second record.
//! [`HttpClient::send_create`] guards such writes: before it sends one again after a failure
//! that leaves open whether the vendor carried it out, it asks the caller whether the write
//! already landed.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use bytes::{Bytes, BytesMut};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{ConnectorError, ConnectorResult};

/// A request budget: at most `requests` per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in each window.
    pub requests: u32,
    /// The window's length.
    pub per: Duration,
}

impl RateLimit {
    /// A budget of `requests` per `per`.
    pub fn new(requests: u32, per: Duration) -> RateLimit {
        RateLimit { requests, per }
    }
}

/// How patient the client is: timeouts and retry limits.
#[derive(Clone, Debug)]
pub struct RetrySettings {
    /// Time allowed for one request, from send to the last byte of the body.
    pub timeout: Duration,
    /// Time allowed to open a connection (TCP and TLS handshakes). Short and apart from
    /// `timeout`: an address that drops packets should fail in seconds, not after a whole
    /// request's patience. The smaller of this and `timeout` applies.
    pub connect_timeout: Duration,
    /// How many times a transient failure is retried before giving up.
    pub max_retries: usize,
    /// The first backoff delay.
    pub min_backoff: Duration,
    /// The longest backoff delay (a longer `Retry-After` is still honoured).
    pub max_backoff: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            timeout: Duration::from_secs(60),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_retries: 8,
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// The default [`RetrySettings::connect_timeout`]: a TCP and TLS handshake with a vendor takes
/// well under a second; 10 s allows for a slow DNS resolver and a distant region.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes one response body may hold, by the kind of answer the endpoint gives. A
/// longer body (or a `Content-Length` announcing one) is refused as malformed and not retried.
///
/// The numbers, and why: a token, identity or check answer is a few KiB, and a check that
/// lists one record holds at most that record (refused above `migration.max_record_bytes`,
/// 1 MiB by default), so [`BodyCap::Small`] is 4 MiB. The largest page a connector asks for is 5,000 records
/// (Dataverse), then 2,000 (Salesforce); real CRM records are 1 to 10 KiB of JSON, so the
/// largest legitimate page is some 20 to 50 MiB, and a batch answer (ids and statuses) far
/// less. [`BodyCap::Page`] is 256 MiB: five times that page, and room for 250 records at the
/// 1 MiB `migration.max_record_bytes` in one page. A full page of records each at that limit
/// (5 GB) is not something any vendor sends; the connectors' `page_size` makes pages smaller
/// if ever needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyCap {
    /// Token, identity and connectivity-check answers: 4 MiB.
    Small,
    /// Record pages, batch answers, metadata listings: 256 MiB. The default of
    /// [`HttpClient::send`] and [`HttpClient::send_create`].
    Page,
}

impl BodyCap {
    /// The cap in bytes.
    pub const fn bytes(self) -> usize {
        match self {
            BodyCap::Small => 4 << 20,
            BodyCap::Page => 256 << 20,
        }
    }

    /// The cap for messages: "the 4 MiB cap for token and check answers".
    fn describe(self) -> String {
        let what = match self {
            BodyCap::Small => "token and check answers",
            BodyCap::Page => "record pages and batch answers",
        };
        format!("the {} MiB cap for {what}", self.bytes() >> 20)
    }
}

/// A complete HTTP response, body buffered.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body bytes.
    pub body: Bytes,
}

impl HttpResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// Parses the body as JSON, naming vendor and endpoint when it cannot. Bytes that are not
    /// valid UTF-8 (a vendor holding text in another encoding) become U+FFFD, so one bad value
    /// fails only its record (`quality` refuses text holding U+FFFD), not the whole page.
    pub fn json<T: DeserializeOwned>(
        &self,
        vendor: &'static str,
        endpoint: &str,
    ) -> ConnectorResult<T> {
        let body = utf8_lossy(&self.body);
        if let std::borrow::Cow::Owned(_) = &body {
            self.log_invalid_utf8(vendor, endpoint);
        }
        serde_json::from_slice(&body).map_err(|e| self.malformed(vendor, endpoint, e))
    }

    /// [`HttpResponse::json`] into a type that borrows its text from the body, so the strings
    /// of a page need no allocation each. Text that is not UTF-8 is replaced in the body first,
    /// as `json` does.
    pub fn json_borrowed<'a, T: Deserialize<'a>>(
        &'a mut self,
        vendor: &'static str,
        endpoint: &str,
    ) -> ConnectorResult<T> {
        if let std::borrow::Cow::Owned(repaired) = utf8_lossy(&self.body) {
            self.log_invalid_utf8(vendor, endpoint);
            self.body = Bytes::from(repaired);
        }
        let this: &'a HttpResponse = self;
        serde_json::from_slice(&this.body).map_err(|e| this.malformed(vendor, endpoint, e))
    }

    fn log_invalid_utf8(&self, vendor: &'static str, endpoint: &str) {
        let invalid = self
            .body
            .utf8_chunks()
            .filter(|c| !c.invalid().is_empty())
            .count();
        tracing::debug!(
            vendor,
            endpoint,
            invalid,
            "body has byte sequences that are not UTF-8; replaced with U+FFFD"
        );
    }

    fn malformed(
        &self,
        vendor: &'static str,
        endpoint: &str,
        e: serde_json::Error,
    ) -> ConnectorError {
        ConnectorError::Malformed {
            vendor,
            endpoint: endpoint.to_owned(),
            // serde's message names the position and the expected type, not the data.
            detail: format!(
                "HTTP {} body is not the expected JSON: {}",
                self.status.as_u16(),
                e
            ),
        }
    }

    /// The `Retry-After` header as a duration: delay seconds, or an HTTP date (RFC 9110), which
    /// becomes the time left until then (zero if it has passed).
    pub fn retry_after(&self) -> Option<Duration> {
        let raw = self.headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
        if let Ok(seconds) = raw.parse::<f64>() {
            return (seconds.is_finite() && seconds >= 0.0)
                .then(|| Duration::from_secs_f64(seconds));
        }
        let when = httpdate::parse_http_date(raw).ok()?;
        Some(
            when.duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }

    /// The vendor's clock when it answered: the `Date` header (RFC 9110, whole seconds), in
    /// milliseconds since the Unix epoch. `None` when absent or unreadable.
    pub fn date_ms(&self) -> Option<i64> {
        let raw = self
            .headers
            .get(reqwest::header::DATE)?
            .to_str()
            .ok()?
            .trim();
        let when = httpdate::parse_http_date(raw).ok()?;
        let since = when.duration_since(std::time::UNIX_EPOCH).ok()?;
        i64::try_from(since.as_millis()).ok()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What a response means for the request that got it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the response to the connector (success, or an error a retry cannot fix).
    Done,
    /// Try again, waiting at least `after` when the vendor said how long.
    Retry {
        /// The vendor's requested wait.
        after: Option<Duration>,
        /// Why, for logs and for the final error if retries run out.
        reason: String,
    },
}

/// What a connector tells the HTTP layer about its vendor.
pub trait VendorPolicy: Send + Sync + 'static {
    /// The vendor's name for messages.
    fn vendor(&self) -> &'static str;

    /// Decides whether a response is final. The default retries 408, 429 and 5xx, honouring
    /// `Retry-After`.
    fn classify(&self, response: &HttpResponse) -> Verdict {
        default_classify(response)
    }

    /// A rate limit the vendor announced in its response headers, if it does that.
    fn announced_limit(&self, _headers: &HeaderMap) -> Option<RateLimit> {
        None
    }

    /// The account's daily request quota as the response's headers state it, if they do
    /// (none: unknown, never guessed).
    fn daily_quota(&self, _headers: &HeaderMap) -> Option<crate::quota::DailyQuota> {
        None
    }

    /// Whether `response` refuses the request because the account's daily quota is used up
    /// (no retry can succeed before it resets).
    fn daily_quota_refused(&self, _response: &HttpResponse) -> bool {
        false
    }

    /// A one-line account of an error response, from the vendor's error body. Must not quote
    /// record values; vendor error codes and messages about the request are fine.
    fn error_detail(&self, response: &HttpResponse) -> String {
        format!("{} bytes of error body", response.body.len())
    }

    /// What one attempt of the request `method url` (with `body`, when it has one in memory)
    /// costs against the vendor's limiting budget, in that budget's units: requests in a
    /// window, API calls of a daily quota, credits, tokens. Zero for what the vendor exempts
    /// (a token endpoint, HubSpot's search). The default counts every request as one.
    fn request_cost(&self, _method: &Method, _url: &Url, _body: Option<&[u8]>) -> u64 {
        1
    }
}

/// Whether the URL path `path` ends with the segments of `pattern` (`*` stands for any one
/// segment): how policies name endpoints in their cost tables, whatever prefix a base URL adds.
pub fn path_matches(path: &str, pattern: &str) -> bool {
    let mut path = path.trim_end_matches('/').rsplit('/');
    pattern
        .trim_matches('/')
        .rsplit('/')
        .all(|want| path.next().is_some_and(|got| want == "*" || want == got))
}

/// The standard classification: 408, 429 and 5xx are transient.
pub fn default_classify(response: &HttpResponse) -> Verdict {
    let status = response.status;
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Verdict::Retry {
            after: response.retry_after(),
            reason: format!("HTTP {}", status.as_u16()),
        }
    } else {
        Verdict::Done
    }
}

/// How many times a request whose 2xx answer is labelled JSON but does not parse (a body cut
/// short by a proxy or an overloaded vendor) is sent again. [`HttpClient::send`] carries reads
/// and idempotent upserts, so sending them again is safe (creates go through
/// [`HttpClient::send_create`], which never sends a write that got a 2xx again); a body still
/// broken after that goes to the connector, which reports it malformed.
const BROKEN_BODY_RETRIES: u64 = 3;

/// `bytes` as they are if they are valid UTF-8, else with U+FFFD for each invalid sequence.
fn utf8_lossy(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    // `from_utf8` checks ASCII a word at a time; the lossy decoder goes byte by byte, which
    // cost 3.6 % of a migration's instructions when it saw every body.
    if std::str::from_utf8(bytes).is_ok() {
        return std::borrow::Cow::Borrowed(bytes);
    }
    match String::from_utf8_lossy(bytes) {
        std::borrow::Cow::Borrowed(_) => std::borrow::Cow::Borrowed(bytes),
        std::borrow::Cow::Owned(text) => std::borrow::Cow::Owned(text.into_bytes()),
    }
}

/// Whether a response labelled JSON has a non-empty body that is cut short.
fn is_broken_json(response: &HttpResponse) -> bool {
    let json = response
        .header(reqwest::header::CONTENT_TYPE.as_str())
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .is_some_and(|t| t == "application/json" || t.ends_with("+json"));
    json && is_cut_short(response.body.trim_ascii())
}

/// Whether a JSON text is cut short: an object or array left open, a string left unterminated,
/// or bytes after the end of the value. One pass that skips through strings with `memchr` and
/// allocates nothing: a full parse here cost as much as the connector's own parse of every
/// response (5% of ferry's instructions). A complete but otherwise malformed body is the
/// connector's to report.
fn is_cut_short(text: &[u8]) -> bool {
    match text.first() {
        None => return false,
        Some(b'{' | b'[') => {}
        // A bare scalar is short: parsing it in full costs nothing.
        Some(_) => return serde_json::from_slice::<serde::de::IgnoredAny>(text).is_err(),
    }
    let mut depth = 0usize;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => loop {
                // The closing quote: the next `"` not escaped by a backslash.
                let Some(at) = memchr::memchr2(b'"', b'\\', &text[i + 1..]) else {
                    return true;
                };
                i += 1 + at;
                if text[i] == b'"' {
                    break;
                }
                i += 1; // the escaped byte
                if i >= text.len() {
                    return true;
                }
            },
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = match depth.checked_sub(1) {
                    Some(d) => d,
                    None => return true,
                };
                if depth == 0 {
                    return i + 1 != text.len();
                }
            }
            _ => {}
        }
        i += 1;
    }
    true
}

/// Counters of what the client did, for the report and benchmarks.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Attempts sent, retries included.
    pub requests: AtomicU64,
    /// Attempts that were retried.
    pub retries: AtomicU64,
    /// Responses with status 429.
    pub throttled: AtomicU64,
    /// Microseconds requests waited on the client's own pacer (the configured or announced
    /// rate limit) before they were sent, summed over requests (concurrent waits each count).
    pub paced_us: AtomicU64,
    /// Microseconds slept before retrying a request the vendor throttled (a 429, or any answer
    /// with `Retry-After`), summed over requests like `paced_us`.
    pub throttled_wait_us: AtomicU64,
    /// What the attempts cost against the vendor's limiting budget, in its units
    /// ([`VendorPolicy::request_cost`]).
    pub budget_cost: AtomicU64,
    /// The vendor account's daily quota, as its latest answer stated it.
    pub daily_quota: crate::quota::QuotaCell,
}

impl HttpStats {
    /// A snapshot of the counters: (requests, retries, throttled).
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
            self.throttled.load(Ordering::Relaxed),
        )
    }

    /// The counters now, waits included, as the report shows them.
    pub fn report(&self) -> crate::report::HttpReport {
        let (requests, retries, throttled) = self.snapshot();
        crate::report::HttpReport {
            requests,
            retries,
            throttled,
            paced_ms: self.paced_us.load(Ordering::Relaxed) / 1000,
            throttled_wait_ms: self.throttled_wait_us.load(Ordering::Relaxed) / 1000,
            budget_cost: self.budget_cost.load(Ordering::Relaxed),
            daily_quota: self.daily_quota.get(),
        }
    }

    /// Adds `other`'s counters to these: one vendor account's clients counted as one.
    pub fn absorb(&self, other: &HttpStats) {
        for (to, from) in [
            (&self.requests, &other.requests),
            (&self.retries, &other.retries),
            (&self.throttled, &other.throttled),
            (&self.paced_us, &other.paced_us),
            (&self.throttled_wait_us, &other.throttled_wait_us),
            (&self.budget_cost, &other.budget_cost),
        ] {
            to.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.daily_quota.absorb(&other.daily_quota);
    }

    /// Adds the time since `since` to `counter`, in microseconds.
    fn add_wait(counter: &AtomicU64, since: Instant) {
        let us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
        counter.fetch_add(us, Ordering::Relaxed);
    }
}

/// A rate limiter whose quota can be replaced when the vendor announces a different one.
struct Limiter {
    current: Mutex<Option<(RateLimit, Arc<DefaultDirectRateLimiter>)>>,
}

impl Limiter {
    fn new(limit: Option<RateLimit>) -> Limiter {
        Limiter {
            current: Mutex::new(limit.map(|l| (l, Arc::new(build_limiter(l))))),
        }
    }

    fn get(&self) -> Option<Arc<DefaultDirectRateLimiter>> {
        self.current
            .lock()
            .ok()?
            .as_ref()
            .map(|(_, l)| Arc::clone(l))
    }

    fn limit(&self) -> Option<RateLimit> {
        self.current.lock().ok()?.as_ref().map(|(l, _)| *l)
    }

    fn replace(&self, limit: RateLimit) {
        if let Ok(mut current) = self.current.lock()
            && current.as_ref().map(|(l, _)| *l) != Some(limit)
        {
            *current = Some((limit, Arc::new(build_limiter(limit))));
        }
    }
}

/// Paces requests evenly at 98% of the budget: a vendor counting a rolling window then never
/// sees more than its limit, whatever the window's phase.
///
/// A burst of two is allowed where the budget has room for it (any window then holds at most
/// 98% of the budget plus two, still under it), so that a permit taken a little late (a timer
/// waking late, no request ready at that instant) is made up instead of lost: with no burst
/// those losses cost 1 to 2% of the budget.
fn build_limiter(limit: RateLimit) -> DefaultDirectRateLimiter {
    let (interval, burst) = pacing(limit);
    let quota = Quota::with_period(interval)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    RateLimiter::direct(quota)
}

/// The interval between permits and the burst of [`build_limiter`]. The interval is the
/// window over 98% of its requests, unrounded: 98% of HubSpot search's 5 a second is 4.9 a
/// second (one permit per 204 ms), where whole requests would give 4.
fn pacing(limit: RateLimit) -> (Duration, NonZeroU32) {
    let requests = u128::from(limit.requests.max(1));
    let interval = (limit.per.as_nanos() * 100 / (requests * 98)).max(1);
    let interval = Duration::from_nanos(u64::try_from(interval).unwrap_or(u64::MAX));
    // 98% of the budget plus two stays under it only above 100 requests a window.
    let burst = if requests * 98 + 200 < requests * 100 {
        NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN)
    } else {
        NonZeroU32::MIN
    };
    (interval, burst)
}

/// The hosts (scheme, host and port) that have answered at least one request in this process.
/// Before a host's first answer a connect error is final (the address is wrong or nothing
/// listens there); after it, a connect error is a passing fault and is retried. Kept per host
/// rather than per client because a connector may use several clients for one vendor account.
static ANSWERED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Whether the host `origin` has answered a request before.
fn has_answered(origin: &str) -> bool {
    ANSWERED
        .lock()
        .map(|hosts| hosts.contains(origin))
        // A poisoned lock only means another thread panicked mid-insert: retry as before.
        .unwrap_or(true)
}

/// Records that the host `origin` answered.
fn mark_answered(origin: String) {
    if let Ok(mut hosts) = ANSWERED.lock()
        && !hosts.contains(&origin)
    {
        hosts.insert(origin);
    }
}

/// The endpoint of the request each vendor's clients started last in this process, for
/// messages about a whole operation that ran out of time (`ferry check --deadline`).
static LAST_REQUEST: Mutex<BTreeMap<&'static str, String>> = Mutex::new(BTreeMap::new());

/// The endpoint (method and path) of the request ferry started last to `vendor`, if any: what
/// an operation that ran out of time was most likely waiting for.
pub fn last_request(vendor: &str) -> Option<String> {
    LAST_REQUEST.lock().ok()?.get(vendor).cloned()
}

/// At most one retry warning per client in this interval; the other retries are logged at
/// debug level, and the next warning says how many there were. A 429 storm with eight batches
/// in flight retries dozens of times a second: one line every few seconds shows a CI job is
/// alive and why it is slow without burying the rest of the log.
const RETRY_WARN_EVERY: Duration = Duration::from_secs(5);

/// A vendor account's HTTP client: one limiter, one connection pool, one retry policy.
pub struct HttpClient {
    client: reqwest::Client,
    policy: Arc<dyn VendorPolicy>,
    limiter: Limiter,
    settings: RetrySettings,
    stats: Arc<HttpStats>,
    /// When the last retry warning was logged.
    last_warning: Mutex<Option<Instant>>,
    /// Retries logged at debug level since the last warning.
    quiet_retries: AtomicU64,
}

/// An attempt that failed in a way a retry can fix; anything else is returned as a response.
struct Transient {
    /// The vendor's requested wait.
    after: Option<Duration>,
    /// Why, for logs and for the final error.
    reason: String,
    /// Whether the vendor may have carried the request out: the request could have been sent
    /// and no answer says it was refused (a dropped connection, a timeout, a 5xx). `false` only
    /// when it certainly was not: the connection could not be made, or a 429 refused it.
    ambiguous: bool,
    /// Whether the vendor throttled the request (a 429, or an answer with `Retry-After`): the
    /// wait before the retry is then the vendor's limit, counted in `throttled_wait_us`.
    throttled: bool,
}

/// Why the retry loop stopped without a response.
enum Stop {
    /// A transient failure; retried while retries are left.
    Transient(Transient),
    /// The caller's landed check failed: whether the write landed is unknown, so it is not
    /// sent again.
    Check(ConnectorError),
    /// A failure no retry can fix: a body over its cap, or a host that cannot be reached
    /// before it ever answered.
    Fatal(ConnectorError),
}

/// What a guarded write ([`HttpClient::send_create`]) came to.
#[derive(Debug)]
pub enum Sent<T> {
    /// The vendor's final response, as [`HttpClient::send`] returns it: success, or an error
    /// status for the caller to judge.
    Response(HttpResponse),
    /// An attempt failed in a way that left open whether the vendor carried it out, and the
    /// caller's check found the write had landed: `T` is what the check found (typically the
    /// new record's id). Nothing was sent after that.
    Landed(T),
}

/// The type of the absent check of an unguarded [`HttpClient::send`].
type NoCheck = fn() -> std::future::Ready<ConnectorResult<Option<Infallible>>>;

impl HttpClient {
    /// A client for the vendor described by `policy`, limited to `rate_limit` (none: unlimited).
    pub fn new(
        policy: Arc<dyn VendorPolicy>,
        rate_limit: Option<RateLimit>,
        settings: RetrySettings,
    ) -> ConnectorResult<HttpClient> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(false) // base URLs are checked by `checked_base_url`: http only on loopback
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(settings.connect_timeout))
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| ConnectorError::Setup {
                vendor: policy.vendor(),
                detail: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(HttpClient {
            client,
            policy,
            limiter: Limiter::new(rate_limit),
            settings,
            stats: Arc::default(),
            last_warning: Mutex::new(None),
            quiet_retries: AtomicU64::new(0),
        })
    }

    /// The counters of this client.
    pub fn stats(&self) -> Arc<HttpStats> {
        Arc::clone(&self.stats)
    }

    /// The rate limit in force (configured, or announced by the vendor since).
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.limiter.limit()
    }

    /// The vendor's name.
    pub fn vendor(&self) -> &'static str {
        self.policy.vendor()
    }

    /// Sends the request `build` makes, retrying transient failures. `endpoint` names the
    /// request in messages (`"POST /crm/v3/objects/contacts/batch/upsert"`): never put a query
    /// string, a body or a secret in it.
    ///
    /// Returns every response the policy calls final, error statuses included: the caller
    /// decides what a 4xx means. Fails on network errors or exhausted retries.
    ///
    /// Only for requests that are safe to send twice (reads, upserts, updates): a write the
    /// vendor carried out but whose answer was lost is sent again. Use
    /// [`HttpClient::send_create`] for the others.
    ///
    /// The body may hold up to [`BodyCap::Page`]; [`HttpClient::send_capped`] sets another cap.
    pub async fn send<F>(&self, endpoint: &str, build: F) -> ConnectorResult<HttpResponse>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        self.send_capped(endpoint, BodyCap::Page, build).await
    }

    /// [`HttpClient::send`] with the body capped at `cap` instead of [`BodyCap::Page`]: for
    /// endpoints whose answers are small (tokens, identity, connectivity checks), so a hostile
    /// or broken endpoint costs at most that much memory.
    pub async fn send_capped<F>(
        &self,
        endpoint: &str,
        cap: BodyCap,
        build: F,
    ) -> ConnectorResult<HttpResponse>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        match self.run(endpoint, cap, &build, None::<&NoCheck>).await? {
            Sent::Response(response) => Ok(response),
            Sent::Landed(never) => match never {},
        }
    }

    /// Sends a write that is not safe to send twice (a create: sent again after the vendor
    /// carried it out, it makes a second record), retrying like [`HttpClient::send`] with one
    /// difference: after a failure that leaves open whether the vendor carried the write out
    /// (the connection broke after the request could have been sent, a timeout, a 5xx), the
    /// next attempt first awaits `landed`, the caller's check whether the write is there
    /// (typically a lookup by the record's source id). If it is (`Some`), nothing more is sent
    /// and [`Sent::Landed`] carries what the check found; if not (`None`), the write is sent
    /// again. Failures that certainly were not carried out (could not connect, 429) are
    /// retried without the check, and the check runs once more when retries run out after an
    /// ambiguous failure.
    ///
    /// A 2xx whose JSON body is broken was carried out, so it is never sent again: the check
    /// runs at once, and if it finds nothing the response goes to the caller, whose parse
    /// reports it malformed. A failing check fails the write (whether it landed is unknown).
    ///
    /// Every attempt takes a rate-limit permit and counts in the stats, as with `send`; the
    /// check's own requests count wherever the check sends them.
    pub async fn send_create<F, C, Fut, T>(
        &self,
        endpoint: &str,
        build: F,
        landed: C,
    ) -> ConnectorResult<Sent<T>>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        C: Fn() -> Fut,
        Fut: Future<Output = ConnectorResult<Option<T>>>,
    {
        self.run(endpoint, BodyCap::Page, &build, Some(&landed))
            .await
    }

    /// The retry loop of `send` and `send_create`: with `landed`, ambiguous failures are
    /// checked before the request is sent again.
    async fn run<F, C, Fut, T>(
        &self,
        endpoint: &str,
        cap: BodyCap,
        build: &F,
        landed: Option<&C>,
    ) -> ConnectorResult<Sent<T>>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        C: Fn() -> Fut,
        Fut: Future<Output = ConnectorResult<Option<T>>>,
    {
        let vendor = self.policy.vendor();
        let started = Instant::now();
        let attempts = AtomicU64::new(0);
        let broken_bodies = AtomicU64::new(0);
        // Set when a guarded write failed ambiguously and the check has not run since.
        let unsure = AtomicBool::new(false);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.settings.min_backoff)
            .with_max_delay(self.settings.max_backoff)
            .with_max_times(self.settings.max_retries)
            .with_jitter();
        // The caller's landed check (none for an unguarded send: nothing found).
        let check = || async {
            let Some(landed) = landed else {
                return Ok(None);
            };
            let found = landed().await.map_err(Stop::Check)?;
            if found.is_some() {
                tracing::debug!(
                    vendor,
                    endpoint,
                    "the write had landed before its answer was lost; not sending it again"
                );
            }
            Ok::<_, Stop>(found)
        };
        let attempt = || async {
            if unsure.swap(false, Ordering::Relaxed)
                && let Some(found) = check().await?
            {
                return Ok(Sent::Landed(found));
            }
            let n = attempts.fetch_add(1, Ordering::Relaxed) + 1;
            let response = match self.attempt(endpoint, cap, build).await {
                Ok(response) => response,
                Err(Stop::Transient(transient)) => {
                    if landed.is_some() && transient.ambiguous {
                        unsure.store(true, Ordering::Relaxed);
                    }
                    return Err(Stop::Transient(transient));
                }
                Err(stop) => return Err(stop),
            };
            if !(response.status.is_success() && is_broken_json(&response)) {
                return Ok(Sent::Response(response));
            }
            if landed.is_some() {
                // Carried out, answer unreadable: sending it again could only duplicate it.
                return Ok(match check().await? {
                    Some(found) => Sent::Landed(found),
                    None => Sent::Response(response),
                });
            }
            let retry_left = n <= self.settings.max_retries as u64;
            if retry_left && broken_bodies.fetch_add(1, Ordering::Relaxed) < BROKEN_BODY_RETRIES {
                return Err(Stop::Transient(Transient {
                    after: None,
                    reason: format!(
                        "HTTP {} with a malformed JSON body",
                        response.status.as_u16()
                    ),
                    ambiguous: true,
                    throttled: false,
                }));
            }
            Ok(Sent::Response(response))
        };
        // Set by `notify` when the retry it announces follows a throttled answer, so that the
        // sleep after it is counted as the vendor's limit.
        // (backon wants a sleeper that owns what it uses.)
        let throttled_sleep = Arc::new(AtomicBool::new(false));
        let sleep = {
            let (throttled_sleep, stats) = (Arc::clone(&throttled_sleep), Arc::clone(&self.stats));
            move |wait: Duration| {
                let throttled = throttled_sleep.swap(false, Ordering::Relaxed);
                let stats = Arc::clone(&stats);
                async move {
                    let sleeping = Instant::now();
                    tokio::time::sleep(wait).await;
                    if throttled {
                        HttpStats::add_wait(&stats.throttled_wait_us, sleeping);
                    }
                }
            }
        };
        let result = attempt
            .retry(backoff)
            .sleep(sleep)
            .when(|stop| matches!(stop, Stop::Transient(_)))
            .adjust(|stop, planned| match stop {
                // The vendor's word beats our schedule when it asks for longer.
                Stop::Transient(Transient {
                    after: Some(after), ..
                }) => planned.map(|p| p.max(*after).max(Duration::from_millis(1))),
                _ => planned,
            })
            .notify(|stop, wait| {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                if let Stop::Transient(e) = stop {
                    throttled_sleep.store(e.throttled, Ordering::Relaxed);
                    self.log_retry(endpoint, attempts.load(Ordering::Relaxed), wait, &e.reason);
                }
            })
            .await;
        match result {
            Ok(sent) => Ok(sent),
            Err(Stop::Check(e) | Stop::Fatal(e)) => Err(e),
            Err(Stop::Transient(Transient { reason, .. })) => {
                // Out of retries after an ambiguous failure: the write may still have landed.
                if unsure.load(Ordering::Relaxed)
                    && let Ok(Some(found)) = check().await
                {
                    return Ok(Sent::Landed(found));
                }
                Err(ConnectorError::RetriesExhausted {
                    vendor,
                    endpoint: endpoint.to_owned(),
                    attempts: attempts.load(Ordering::Relaxed) as usize,
                    elapsed: started.elapsed(),
                    last: reason,
                })
            }
        }
    }

    /// Logs a retry: at warn level (seen without `-v`) at most once per [`RETRY_WARN_EVERY`]
    /// per client, else at debug level.
    fn log_retry(&self, endpoint: &str, attempt: u64, wait: Duration, reason: &str) {
        let vendor = self.policy.vendor();
        let attempts = self.settings.max_retries as u64 + 1;
        let now = Instant::now();
        let due = match self.last_warning.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|t| now.duration_since(t) >= RETRY_WARN_EVERY);
                if due {
                    *last = Some(now);
                }
                due
            }
            Err(_) => false,
        };
        let wait = format!("{:.1} s", wait.as_secs_f64());
        if due {
            let quiet = self.quiet_retries.swap(0, Ordering::Relaxed);
            let since = match quiet {
                0 => String::new(),
                1 => " (1 other retry since the last warning, logged at debug level)".to_owned(),
                n => format!(" ({n} other retries since the last warning, logged at debug level)"),
            };
            tracing::warn!(
                "{vendor}: {endpoint}: attempt {attempt} of {attempts} failed ({reason}); retrying in {wait}{since}"
            );
        } else {
            self.quiet_retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                "{vendor}: {endpoint}: attempt {attempt} of {attempts} failed ({reason}); retrying in {wait}"
            );
        }
    }

    async fn attempt<F>(
        &self,
        endpoint: &str,
        cap: BodyCap,
        build: &F,
    ) -> Result<HttpResponse, Stop>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let vendor = self.policy.vendor();
        if let Some(limiter) = self.limiter.get()
            && limiter.check().is_err()
        {
            let waiting = Instant::now();
            limiter.until_ready().await;
            HttpStats::add_wait(&self.stats.paced_us, waiting);
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = LAST_REQUEST.lock()
            && last.get(vendor).is_none_or(|e| e != endpoint)
        {
            last.insert(vendor, endpoint.to_owned());
        }
        let transient = |e: reqwest::Error| {
            Stop::Transient(Transient {
                after: None,
                reason: self.describe_error(&e),
                // Only a connection never made certainly kept the request from the vendor.
                ambiguous: !e.is_connect(),
                throttled: false,
            })
        };
        let request = build(&self.client).build().map_err(transient)?;
        let cost = self.policy.request_cost(
            request.method(),
            request.url(),
            request.body().and_then(reqwest::Body::as_bytes),
        );
        self.stats.budget_cost.fetch_add(cost, Ordering::Relaxed);
        let origin = request.url().origin().ascii_serialization();
        let sent = Instant::now();
        let mut response = match self.client.execute(request).await {
            Ok(response) => response,
            Err(e) if e.is_connect() && !has_answered(&origin) => {
                return Err(Stop::Fatal(ConnectorError::Network {
                    vendor,
                    endpoint: endpoint.to_owned(),
                    detail: format!(
                        "{}; not retried, since this host has not answered yet: check the \
                         configured URL, the port and the network",
                        self.describe_error(&e)
                    ),
                }));
            }
            Err(e) => return Err(transient(e)),
        };
        mark_answered(origin);
        let status = response.status();
        let headers = response.headers().clone();
        let too_big = |detail: String| {
            Stop::Fatal(ConnectorError::Malformed {
                vendor,
                endpoint: endpoint.to_owned(),
                detail: format!(
                    "HTTP {} answer {detail}, over {}; not retried",
                    status.as_u16(),
                    cap.describe()
                ),
            })
        };
        let limit = cap.bytes();
        if let Some(length) = response.content_length()
            && length > limit as u64
        {
            return Err(too_big(format!(
                "announces {length} bytes (Content-Length)"
            )));
        }
        // One chunk (the usual case for a small answer) is kept as it is; more are gathered,
        // into room for the announced length at once (growing by doubling held up to twice a
        // large answer, a Bulk job's result set of megabytes).
        let announced = response.content_length().map_or(0, |n| n as usize);
        let mut single: Option<Bytes> = None;
        let mut gathered = BytesMut::new();
        let mut total = 0usize;
        while let Some(chunk) = response.chunk().await.map_err(transient)? {
            total += chunk.len();
            if total > limit {
                return Err(too_big(format!("holds more than {limit} bytes")));
            }
            if let Some(first) = single.take() {
                gathered.reserve(announced.max(total));
                gathered.extend_from_slice(&first);
                gathered.extend_from_slice(&chunk);
            } else if gathered.is_empty() {
                single = Some(chunk);
            } else {
                gathered.extend_from_slice(&chunk);
            }
        }
        let body = single.unwrap_or_else(|| gathered.freeze());
        // Each call's time, to draw a run's calls in flight (`-vvv`): the endpoint, no values.
        tracing::trace!(
            vendor,
            endpoint,
            status = status.as_u16(),
            ms = sent.elapsed().as_secs_f64() * 1000.0,
            "answered"
        );
        let response = HttpResponse {
            status,
            headers,
            body,
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(limit) = self.policy.announced_limit(&response.headers) {
            self.limiter.replace(limit);
        }
        if let Some(quota) = self.policy.daily_quota(&response.headers) {
            self.stats.daily_quota.note(quota);
        }
        if self.policy.daily_quota_refused(&response) {
            self.stats.daily_quota.note_exhausted();
        }
        match self.policy.classify(&response) {
            Verdict::Done => Ok(response),
            Verdict::Retry { after, reason } => {
                tracing::debug!(
                    vendor = self.policy.vendor(),
                    endpoint,
                    status = status.as_u16(),
                    "transient failure"
                );
                let throttled = status == StatusCode::TOO_MANY_REQUESTS || after.is_some();
                Err(Stop::Transient(Transient {
                    after,
                    reason,
                    // A 429 refuses the request; a 5xx or 408 may come after it was carried out.
                    ambiguous: status != StatusCode::TOO_MANY_REQUESTS,
                    throttled,
                }))
            }
        }
    }

    fn describe_error(&self, e: &reqwest::Error) -> String {
        describe_reqwest_error(e, &self.settings)
    }

    /// Turns a final non-2xx response into an error naming vendor and endpoint: 401/403 are
    /// credential problems, the rest are reported with the vendor's own account of the error.
    pub fn error_for(&self, endpoint: &str, response: &HttpResponse) -> ConnectorError {
        let vendor = self.policy.vendor();
        let detail = self.policy.error_detail(response);
        let status = response.status.as_u16();
        if status == 401 || status == 403 {
            ConnectorError::Auth {
                vendor,
                endpoint: endpoint.to_owned(),
                status,
                detail,
            }
        } else {
            ConnectorError::Status {
                vendor,
                endpoint: endpoint.to_owned(),
                status,
                detail,
            }
        }
    }
}

/// A transport error for messages, naming the timeout that ran out if one did.
fn describe_reqwest_error(e: &reqwest::Error, settings: &RetrySettings) -> String {
    // reqwest's Display includes the full URL, which may hold a query; describe the kind only.
    let connect_timeout = settings.timeout.min(settings.connect_timeout);
    let kind = if e.is_timeout() && e.is_connect() {
        &format!(
            "could not connect within the {} connect timeout",
            seconds(connect_timeout)
        )
    } else if e.is_timeout() {
        &format!(
            "timed out: no complete answer within the {} request timeout (timeout_secs)",
            seconds(settings.timeout)
        )
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection broke while reading the response"
    } else if e.is_request() {
        "request failed to send"
    } else {
        "transport error"
    };
    let mut source = std::error::Error::source(e);
    let mut cause = String::new();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind} ({cause})")
    }
}

/// A duration as whole seconds when it is, else with a decimal: "60 s", "0.4 s".
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Names a request for messages: method and URL path, never the query string.
pub fn endpoint_name(method: &Method, url: &Url) -> String {
    format!("{method} {}", url.path())
}

/// Parses a configured base URL, refusing plain `http://` anywhere but loopback: customer
/// data and tokens must never cross a network unencrypted. Also refuses credentials in the URL
/// (`https://user:password@host`: ferry takes secrets only as references, and a URL gets
/// printed and logged), a query string and a fragment (a base URL has no use for them, and they
/// too can carry a key). Errors name the key and never echo the URL as given: at most its
/// scheme, host, port and path (see [`display_url`]).
pub fn checked_base_url(vendor: &'static str, key: &str, raw: &str) -> ConnectorResult<Url> {
    let config_error = |detail: String| ConnectorError::Config {
        vendor,
        key: key.to_owned(),
        detail,
    };
    let url = Url::parse(raw.trim())
        .map_err(|e| config_error(format!("is not a URL ({e}); expected https://host")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(config_error(
            "holds a user name or password (`user:password@`); the URL is not shown. ferry takes \
             credentials only from their own settings, as \"${VARIABLE}\" references: remove \
             them from the URL"
                .into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(config_error(format!(
            "`{}` has a query string or fragment (not shown); give the base URL only",
            display_url(&url)
        )));
    }
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if !loopback {
                return Err(config_error(format!(
                    "`{}` uses plain http on a non-loopback host; ferry sends customer data and \
                     credentials only over https (plain http is allowed for 127.0.0.1/localhost emulators)",
                    display_url(&url)
                )));
            }
        }
        other => {
            return Err(config_error(format!(
                "has scheme `{other}`; expected https"
            )));
        }
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(config_error("has no host; expected https://host".into()));
    }
    Ok(url)
}

/// The longest `timeout_secs` a connector accepts: one hour. A request still unanswered after
/// that is hung, and a larger value only hides it.
pub const MAX_TIMEOUT_SECS: u64 = 3600;
/// The most `max_retries` a connector accepts: with backoff up to 30 s between attempts, 100
/// retries already wait most of an hour.
pub const MAX_RETRIES_LIMIT: usize = 100;

/// Retry settings from a connector's `timeout_secs` and `max_retries` settings (unset: the
/// defaults), refusing a timeout of 0 or over [`MAX_TIMEOUT_SECS`] and more than
/// [`MAX_RETRIES_LIMIT`] retries. Errors name `key_prefix.<key>` and the allowed range.
pub fn checked_retry(
    vendor: &'static str,
    key_prefix: &str,
    timeout_secs: Option<u64>,
    max_retries: Option<usize>,
) -> ConnectorResult<RetrySettings> {
    let config_error = |name: &str, detail: String| ConnectorError::Config {
        vendor,
        key: if key_prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{key_prefix}.{name}")
        },
        detail,
    };
    let mut retry = RetrySettings::default();
    if let Some(secs) = timeout_secs {
        if !(1..=MAX_TIMEOUT_SECS).contains(&secs) {
            return Err(config_error(
                "timeout_secs",
                format!("must be between 1 and {MAX_TIMEOUT_SECS} seconds, got {secs}"),
            ));
        }
        retry.timeout = Duration::from_secs(secs);
    }
    if let Some(n) = max_retries {
        if n > MAX_RETRIES_LIMIT {
            return Err(config_error(
                "max_retries",
                format!("must be between 0 and {MAX_RETRIES_LIMIT}, got {n}"),
            ));
        }
        retry.max_retries = n;
    }
    Ok(retry)
}

/// A URL as error messages may show it: scheme, host, port and path, without any user name,
/// password, query string or fragment (each can hold a secret or a customer's value).
pub fn display_url(url: &Url) -> String {
    let mut shown = format!("{}://", url.scheme());
    if let Some(host) = url.host_str() {
        shown.push_str(host);
    }
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    if !url.cannot_be_a_base() {
        shown.push_str(url.path());
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Plain;
    impl VendorPolicy for Plain {
        fn vendor(&self) -> &'static str {
            "testvendor"
        }
    }

    /// A loopback server that answers each request with the next (status, headers) in `script`.
    async fn scripted(
        script: Vec<(u16, Vec<(&'static str, &'static str)>)>,
    ) -> (String, Arc<AtomicUsize>) {
        use axum::response::IntoResponse;
        let hits = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let counter = Arc::clone(&hits);
        let app = axum::Router::new().fallback(move || {
            let i = counter.fetch_add(1, Ordering::SeqCst);
            let (status, headers) = script[i.min(script.len() - 1)].clone();
            async move {
                let mut resp = format!("{{\"attempt\":{i}}}").into_response();
                *resp.status_mut() = axum::http::StatusCode::from_u16(status).unwrap_or_default();
                for (k, v) in headers {
                    resp.headers_mut()
                        .insert(k, axum::http::HeaderValue::from_static(v));
                }
                resp
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/x"), hits)
    }

    fn fast() -> RetrySettings {
        RetrySettings {
            timeout: Duration::from_secs(5),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_retries: 3,
            min_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        }
    }

    #[tokio::test]
    async fn retries_429_and_5xx_then_succeeds() {
        let (url, hits) = scripted(vec![(429, vec![]), (503, vec![]), (200, vec![])]).await;
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        let resp = client.send("GET /x", |c| c.get(&url)).await.unwrap();
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        let (requests, retries, throttled) = client.stats().snapshot();
        assert_eq!((requests, retries, throttled), (3, 2, 1));
        assert_eq!(
            client.stats().report().paced_ms,
            0,
            "no rate limit: no pacing"
        );
    }

    /// A policy reading a test header `x-daily: USED/MAX` and refusing on 418.
    struct Daily;
    impl VendorPolicy for Daily {
        fn vendor(&self) -> &'static str {
            "testvendor"
        }
        fn daily_quota(&self, headers: &HeaderMap) -> Option<crate::quota::DailyQuota> {
            let value = headers.get("x-daily")?.to_str().ok()?;
            crate::quota::parse_api_usage(&format!("api-usage={value}"))
        }
        fn daily_quota_refused(&self, response: &HttpResponse) -> bool {
            response.status.as_u16() == 418
        }
    }

    #[tokio::test]
    async fn the_daily_quota_is_read_from_each_answer_and_reported() {
        let (url, _) = scripted(vec![
            (200, vec![]),
            (200, vec![("x-daily", "3/10")]),
            (200, vec![("x-daily", "4/10")]),
            (418, vec![]),
        ])
        .await;
        let client = HttpClient::new(Arc::new(Daily), None, fast()).unwrap();
        client.send("GET /x", |c| c.get(&url)).await.unwrap();
        assert_eq!(
            client.stats().report().daily_quota,
            None,
            "no header: unknown"
        );
        client.send("GET /x", |c| c.get(&url)).await.unwrap();
        client.send("GET /x", |c| c.get(&url)).await.unwrap();
        let reading = crate::quota::DailyQuota {
            limit: 10,
            remaining: 6,
        };
        assert_eq!(client.stats().report().daily_quota, Some(reading));
        assert!(!client.stats().daily_quota.exhausted());
        client.send("GET /x", |c| c.get(&url)).await.unwrap();
        assert!(client.stats().daily_quota.exhausted());
        assert_eq!(
            client.stats().daily_quota.get().map(|q| q.remaining),
            Some(0)
        );
    }

    #[tokio::test]
    async fn honours_retry_after() {
        let (url, _) = scripted(vec![(429, vec![("retry-after", "1")]), (200, vec![])]).await;
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        let started = Instant::now();
        client.send("GET /x", |c| c.get(&url)).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(950),
            "waited {:?}",
            started.elapsed()
        );
        // The report counts the sleep the vendor asked for, apart from pacing.
        let report = client.stats().report();
        assert!(report.throttled_wait_ms >= 1000, "{report:?}");
        assert_eq!(report.paced_ms, 0, "{report:?}");
    }

    #[tokio::test]
    async fn client_errors_are_not_retried() {
        let (url, hits) = scripted(vec![(400, vec![]), (200, vec![])]).await;
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        let resp = client.send("GET /x", |c| c.get(&url)).await.unwrap();
        assert_eq!(resp.status.as_u16(), 400);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let err = client.error_for("GET /x", &resp).to_string();
        assert!(
            err.contains("testvendor") && err.contains("GET /x") && err.contains("400"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn gives_up_naming_vendor_and_endpoint() {
        let (url, hits) = scripted(vec![(503, vec![])]).await;
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        let err = client.send("GET /x", |c| c.get(&url)).await.unwrap_err();
        assert_eq!(hits.load(Ordering::SeqCst), 4, "one try and three retries");
        let text = err.to_string();
        assert!(
            text.contains("testvendor") && text.contains("GET /x") && text.contains("4 attempts"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn connection_refused_is_a_network_failure_naming_the_endpoint() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        drop(listener);
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        let err = client
            .send("GET /x", |c| c.get(&url))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("could not connect") && err.contains("GET /x"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn every_attempt_takes_a_rate_limit_permit() {
        // 10 requests per second, paced: 5 requests with 2 retries each take >= 1.3 s.
        let (url, hits) = scripted(vec![(503, vec![]), (503, vec![]), (200, vec![])]).await;
        let limit = RateLimit::new(10, Duration::from_secs(1));
        let client = HttpClient::new(Arc::new(Plain), Some(limit), fast()).unwrap();
        let started = Instant::now();
        client.send("GET /x", |c| c.get(&url)).await.unwrap();
        for _ in 0..4 {
            client.send("GET /x", |c| c.get(&url)).await.unwrap();
        }
        assert_eq!(hits.load(Ordering::SeqCst), 7);
        assert!(
            started.elapsed() >= Duration::from_millis(550),
            "{:?}",
            started.elapsed()
        );
        // Six of the seven attempts waited some 100 ms each for a permit; a 503 without
        // `Retry-After` is no throttling, so its backoff is not counted as such.
        let report = client.stats().report();
        assert!(report.paced_ms >= 400, "{report:?}");
        assert_eq!(report.throttled_wait_ms, 0, "{report:?}");
    }

    #[test]
    fn the_limiter_paces_fractional_rates_exactly() {
        let search = pacing(RateLimit::new(5, Duration::from_secs(1)));
        assert_eq!(
            search.0,
            Duration::from_nanos(204_081_632),
            "4.9 a second, not 4"
        );
        assert_eq!(search.1.get(), 1);
        let window = pacing(RateLimit::new(190, Duration::from_secs(10)));
        assert_eq!(window.0, Duration::from_nanos(53_705_692), "186.2 per 10 s");
        let free = pacing(RateLimit::new(100, Duration::from_secs(10)));
        assert_eq!(
            free.0,
            Duration::from_nanos(102_040_816),
            "98 per 10 s, as before"
        );
        // Never faster than 98% of the budget, for any budget.
        for requests in 1..=1000 {
            let per = Duration::from_secs(10);
            let (interval, _) = pacing(RateLimit::new(requests, per));
            let in_window = per.as_nanos() / interval.as_nanos();
            assert!(
                in_window * 100 <= u128::from(requests) * 98 + 99,
                "{requests}"
            );
        }
    }

    #[test]
    fn the_limiter_bursts_two_only_where_the_budget_has_room() {
        let roomy = build_limiter(RateLimit::new(190, Duration::from_secs(10)));
        assert!(roomy.check().is_ok() && roomy.check().is_ok());
        assert!(
            roomy.check().is_err(),
            "186 per 10 s plus 2 stays under 190"
        );
        let tight = build_limiter(RateLimit::new(100, Duration::from_secs(10)));
        assert!(tight.check().is_ok());
        assert!(tight.check().is_err(), "98 per 10 s plus 2 would reach 100");
    }

    #[test]
    fn broken_json_is_a_2xx_labelled_json_that_does_not_parse() {
        let response = |content_type: &str, body: &'static str| HttpResponse {
            status: StatusCode::OK,
            headers: [(reqwest::header::CONTENT_TYPE, content_type.parse().unwrap())]
                .into_iter()
                .collect(),
            body: Bytes::from_static(body.as_bytes()),
        };
        assert!(is_broken_json(&response(
            "application/json;charset=UTF-8",
            "{\"results\":[{\"id\":"
        )));
        assert!(!is_broken_json(&response(
            "application/json",
            "{\"results\":[]}"
        )));
        assert!(!is_broken_json(&response("application/json", "")));
        assert!(!is_broken_json(&response("text/plain", "{not json")));
        for cut in [
            "{\"a\":\"x\\\"",
            "[1,2",
            "{\"a\":[{}]",
            "{\"a\":\"}\"",
            "{} {}",
            "tru",
            "]",
            "[\"\\",
        ] {
            assert!(is_cut_short(cut.as_bytes()), "{cut}");
        }
        for whole in [
            "{\"a\":\"x\\\\\",\"b\":[1,{\"c\":\"]}\"}]}",
            "[]",
            "\"text\"",
            "12",
        ] {
            assert!(!is_cut_short(whole.as_bytes()), "{whole}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_become_u_fffd_and_the_rest_parses() {
        let mut body =
            br#"{"results":[{"email":"lorelai@example.com"},{"email":"rory@example.com"}]}"#
                .to_vec();
        let at = body.iter().position(|b| *b == b'@').unwrap();
        body[at] = 0xFF;
        let response = HttpResponse {
            status: StatusCode::OK,
            headers: [(
                reqwest::header::CONTENT_TYPE,
                "application/json".parse().unwrap(),
            )]
            .into_iter()
            .collect(),
            body: Bytes::from(body),
        };
        assert!(
            !is_broken_json(&response),
            "not a cut-off body: not retried"
        );
        let parsed: serde_json::Value = response.json("v", "GET /x").unwrap();
        assert_eq!(parsed["results"][0]["email"], "lorelai\u{FFFD}example.com");
        assert_eq!(parsed["results"][1]["email"], "rory@example.com");
        let valid = HttpResponse {
            body: Bytes::from_static(b"{\"a\":\"\xc3\xa9\"}"),
            ..response
        };
        assert_eq!(
            valid.json::<serde_json::Value>("v", "GET /x").unwrap()["a"],
            "é"
        );
    }

    /// A loopback server answering 200 with the JSON body `bodies[i]` to request `i`.
    async fn bodies(bodies: Vec<&'static str>) -> (String, Arc<AtomicUsize>) {
        use axum::response::IntoResponse;
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let app = axum::Router::new().fallback(move || {
            let i = counter.fetch_add(1, Ordering::SeqCst);
            let body = bodies[i.min(bodies.len() - 1)];
            async move { ([("content-type", "application/json")], body).into_response() }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/x"), hits)
    }

    #[tokio::test]
    async fn a_cut_off_json_body_is_sent_again_then_handed_over() {
        let (url, hits) = bodies(vec!["{\"a\":[1,", "{\"a\":[1,2]}"]).await;
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        let resp = client.send("GET /x", |c| c.get(&url)).await.unwrap();
        assert_eq!(&resp.body[..], b"{\"a\":[1,2]}");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(client.stats().snapshot().1, 1, "one retry");

        // Always broken: after the retries the response goes to the caller, whose parse fails.
        let (url, hits) = bodies(vec!["{\"a\":"]).await;
        let settings = RetrySettings {
            max_retries: 8,
            ..fast()
        };
        let client = HttpClient::new(Arc::new(Plain), None, settings).unwrap();
        let resp = client.send("GET /x", |c| c.get(&url)).await.unwrap();
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1 + BROKEN_BODY_RETRIES as usize
        );
        let err = resp
            .json::<serde_json::Value>("testvendor", "GET /x")
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Malformed { .. }), "{err:?}");
    }

    /// How the write server answers one request.
    #[derive(Clone, Copy, Debug)]
    enum Answer {
        /// Creates a record and answers 201 with its id.
        Created,
        /// Creates a record, sends the headers and half the body, then drops the connection.
        CreatedThenReset,
        /// Creates a record, then answers 502 (a gateway that lost the vendor's answer).
        CreatedThen502,
        /// Creates a record, then answers only after the client's timeout.
        CreatedThenSlow,
        /// Creates a record and answers 201 with its JSON body cut in half.
        CreatedBrokenBody,
        /// Refuses with 429, creating nothing.
        Throttled,
        /// Answers 503, creating nothing.
        Unavailable,
    }

    /// A loopback server that carries out each POST as `script` says (the last answer
    /// repeats): returns its URL, the records it created, and the requests it got.
    async fn writes(script: Vec<Answer>) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        use axum::response::IntoResponse;
        let hits = Arc::new(AtomicUsize::new(0));
        let created = Arc::new(AtomicUsize::new(0));
        let (counter, store) = (Arc::clone(&hits), Arc::clone(&created));
        let app = axum::Router::new().fallback(move || {
            let i = counter.fetch_add(1, Ordering::SeqCst);
            let answer = script[i.min(script.len() - 1)];
            let store = Arc::clone(&store);
            async move {
                let status = |code: u16| axum::http::StatusCode::from_u16(code).unwrap();
                let create = || store.fetch_add(1, Ordering::SeqCst) + 1;
                let json = [("content-type", "application/json")];
                match answer {
                    Answer::Throttled => status(429).into_response(),
                    Answer::Unavailable => status(503).into_response(),
                    Answer::CreatedThen502 => {
                        create();
                        status(502).into_response()
                    }
                    Answer::Created => {
                        let body = format!("{{\"id\":{}}}", create());
                        (status(201), json, body).into_response()
                    }
                    Answer::CreatedBrokenBody => {
                        let body = format!("{{\"id\":{}", create());
                        (status(201), json, body).into_response()
                    }
                    Answer::CreatedThenSlow => {
                        create();
                        tokio::time::sleep(Duration::from_millis(800)).await;
                        (status(201), json, "{}").into_response()
                    }
                    Answer::CreatedThenReset => {
                        let body =
                            format!("{{\"id\":{},\"padding\":\"{}\"}}", create(), "x".repeat(64));
                        let half = Bytes::from(body.as_bytes()[..body.len() / 2].to_vec());
                        // The first half, a pause for the server to flush it, then a failed
                        // stream: the server drops the connection mid-body.
                        let chunks =
                            futures::stream::unfold(Some(Some(half)), |state| async move {
                                match state? {
                                    Some(first) => Some((Ok(first), Some(None))),
                                    None => {
                                        tokio::time::sleep(Duration::from_millis(20)).await;
                                        let reset = std::io::Error::new(
                                            std::io::ErrorKind::ConnectionReset,
                                            "reset mid-response",
                                        );
                                        Some((Err::<Bytes, _>(reset), None))
                                    }
                                }
                            });
                        (status(201), json, axum::body::Body::from_stream(chunks)).into_response()
                    }
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/x"), created, hits)
    }

    /// A landed check that looks at the server's records (as a lookup by source id would),
    /// answering with how many there are; counts its calls in `calls`.
    fn lookup(
        created: &Arc<AtomicUsize>,
        calls: &Arc<AtomicUsize>,
    ) -> impl Fn() -> std::future::Ready<ConnectorResult<Option<usize>>> {
        let (created, calls) = (Arc::clone(created), Arc::clone(calls));
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            let n = created.load(Ordering::SeqCst);
            std::future::ready(Ok((n > 0).then_some(n)))
        }
    }

    /// Short timeouts, so a slow answer times out quickly.
    fn impatient() -> RetrySettings {
        RetrySettings {
            timeout: Duration::from_millis(400),
            ..fast()
        }
    }

    #[tokio::test]
    async fn a_create_that_landed_before_its_answer_was_lost_is_not_sent_again() {
        for lost in [
            Answer::CreatedThenReset,
            Answer::CreatedThen502,
            Answer::CreatedThenSlow,
        ] {
            // Unguarded, the retry creates a second record: the hazard.
            let (url, created, _) = writes(vec![lost, Answer::Created]).await;
            let client = HttpClient::new(Arc::new(Plain), None, impatient()).unwrap();
            let resp = client.send("POST /x", |c| c.post(&url)).await.unwrap();
            assert_eq!(resp.status.as_u16(), 201, "{lost:?}");
            assert_eq!(created.load(Ordering::SeqCst), 2, "{lost:?}: duplicated");

            // Guarded: the check finds the record and nothing more is sent.
            let (url, created, hits) = writes(vec![lost, Answer::Created]).await;
            let calls = Arc::new(AtomicUsize::new(0));
            let client = HttpClient::new(Arc::new(Plain), None, impatient()).unwrap();
            let sent = client
                .send_create("POST /x", |c| c.post(&url), lookup(&created, &calls))
                .await
                .unwrap();
            assert!(matches!(sent, Sent::Landed(1)), "{lost:?}: {sent:?}");
            assert_eq!(created.load(Ordering::SeqCst), 1, "{lost:?}: one record");
            assert_eq!(hits.load(Ordering::SeqCst), 1, "{lost:?}: sent once");
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{lost:?}: checked once");
            let (requests, retries, _) = client.stats().snapshot();
            assert_eq!((requests, retries), (1, 1), "{lost:?}");
        }
    }

    #[tokio::test]
    async fn an_ambiguous_failure_that_did_not_land_is_sent_again_after_the_check() {
        let (url, created, hits) = writes(vec![Answer::Unavailable, Answer::Created]).await;
        let calls = Arc::new(AtomicUsize::new(0));
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        let sent = client
            .send_create("POST /x", |c| c.post(&url), lookup(&created, &calls))
            .await
            .unwrap();
        let Sent::Response(resp) = sent else {
            panic!("{sent:?}")
        };
        assert_eq!(&resp.body[..], b"{\"id\":1}");
        assert_eq!(
            (hits.load(Ordering::SeqCst), calls.load(Ordering::SeqCst)),
            (2, 1)
        );
        assert_eq!(created.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_that_were_certainly_not_carried_out_are_retried_without_the_check() {
        let (url, created, hits) =
            writes(vec![Answer::Throttled, Answer::Throttled, Answer::Created]).await;
        let calls = Arc::new(AtomicUsize::new(0));
        let limit = RateLimit::new(20, Duration::from_secs(1));
        let client = HttpClient::new(Arc::new(Plain), Some(limit), fast()).unwrap();
        let started = Instant::now();
        let sent = client
            .send_create("POST /x", |c| c.post(&url), lookup(&created, &calls))
            .await
            .unwrap();
        assert!(matches!(sent, Sent::Response(ref r) if r.status.as_u16() == 201));
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 0, "a 429 needs no check");
        assert_eq!(client.stats().snapshot(), (3, 2, 2));
        // Paced at 98% of 20 per second, every attempt taking a permit: three take >= 100 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(95),
            "{:?}",
            started.elapsed()
        );

        // Could not connect (to a host that answered before, so it is retried): the request
        // never left, so no check either.
        let (url, _) = raw(Raw::OnceThenGone).await;
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        client.send("GET /x", |c| c.get(&url)).await.unwrap();
        let err = client
            .send_create("POST /x", |c| c.post(&url), lookup(&created, &calls))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ConnectorError::RetriesExhausted { attempts: 4, .. }),
            "{err}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_create_answered_2xx_with_a_broken_body_is_never_sent_again() {
        let (url, created, hits) = writes(vec![Answer::CreatedBrokenBody, Answer::Created]).await;
        let calls = Arc::new(AtomicUsize::new(0));
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        let sent = client
            .send_create("POST /x", |c| c.post(&url), lookup(&created, &calls))
            .await
            .unwrap();
        assert!(matches!(sent, Sent::Landed(1)), "{sent:?}");
        assert_eq!(
            (hits.load(Ordering::SeqCst), calls.load(Ordering::SeqCst)),
            (1, 1)
        );

        // The check cannot find it: the broken response goes to the caller, not to the vendor again.
        let (url, created, hits) = writes(vec![Answer::CreatedBrokenBody, Answer::Created]).await;
        let sent = client
            .send_create(
                "POST /x",
                |c| c.post(&url),
                || async { Ok::<Option<()>, ConnectorError>(None) },
            )
            .await
            .unwrap();
        let Sent::Response(resp) = sent else {
            panic!("{sent:?}")
        };
        assert!(is_broken_json(&resp));
        assert_eq!(
            (hits.load(Ordering::SeqCst), created.load(Ordering::SeqCst)),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn a_failing_check_fails_the_write_without_sending_it_again() {
        let (url, created, hits) = writes(vec![Answer::CreatedThen502, Answer::Created]).await;
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        let err = client
            .send_create(
                "POST /x",
                |c| c.post(&url),
                || async {
                    Err::<Option<()>, _>(ConnectorError::Malformed {
                        vendor: "testvendor",
                        endpoint: "GET /search".into(),
                        detail: "lookup failed".into(),
                    })
                },
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("lookup failed"), "{err}");
        assert_eq!(
            (hits.load(Ordering::SeqCst), created.load(Ordering::SeqCst)),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn the_check_runs_once_more_when_retries_run_out() {
        // Every attempt is carried out and its answer lost, and the check lags behind the
        // writes until the end (like a search index): each retry duplicates, but the caller
        // still learns that the write landed instead of getting an error.
        let (url, created, hits) = writes(vec![Answer::CreatedThen502]).await;
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        let sent = client
            .send_create(
                "POST /x",
                |c| c.post(&url),
                move || {
                    let call = counted.fetch_add(1, Ordering::SeqCst) + 1;
                    std::future::ready(Ok::<_, ConnectorError>((call == 4).then_some(call)))
                },
            )
            .await
            .unwrap();
        assert!(matches!(sent, Sent::Landed(4)), "{sent:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 4, "one try and three retries");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "before each retry, and at the end"
        );
        assert_eq!(created.load(Ordering::SeqCst), 4);
    }

    /// How a raw loopback server (below) answers.
    #[derive(Clone, Copy, Debug)]
    enum Raw {
        /// 200 with a chunked body that never ends.
        Endless,
        /// 200 announcing a 10 GB body, then nothing.
        HugeLength,
        /// Reads the request and never answers.
        Hang,
        /// Answers the first connection with a small 200, then stops listening.
        OnceThenGone,
    }

    /// A loopback server speaking HTTP/1.1 by hand, so it can misbehave in ways a framework
    /// will not: returns its URL and the body bytes it managed to send.
    async fn raw(mode: Raw) -> (String, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!("http://{}/x", listener.local_addr().expect("local addr"));
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&sent);
        tokio::spawn(async move {
            let mut listener = Some(listener);
            while let Some(accepting) = listener.as_ref() {
                let Ok((mut socket, _)) = accepting.accept().await else {
                    return;
                };
                if matches!(mode, Raw::OnceThenGone) {
                    listener = None; // every later connection is refused
                }
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer: &[u8] = match mode {
                        Raw::Endless => b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
                        Raw::HugeLength => b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10000000000\r\n\r\n",
                        Raw::OnceThenGone => b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                        Raw::Hang => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            return;
                        }
                    };
                    if socket.write_all(answer).await.is_err() {
                        return;
                    }
                    if matches!(mode, Raw::Endless) {
                        let mut chunk = format!("{:x}\r\n", 16 * 1024).into_bytes();
                        chunk.extend(std::iter::repeat_n(b' ', 16 * 1024));
                        chunk.extend_from_slice(b"\r\n");
                        while socket.write_all(&chunk).await.is_ok() {
                            counter.fetch_add(16 * 1024, Ordering::SeqCst);
                        }
                    } else if matches!(mode, Raw::HugeLength) {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                });
            }
        });
        (url, sent)
    }

    #[tokio::test]
    async fn an_endless_body_stops_at_its_cap_and_is_not_retried() {
        let (url, sent) = raw(Raw::Endless).await;
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        let started = Instant::now();
        let err = client
            .send_capped("GET /x", BodyCap::Small, |c| c.get(&url))
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Malformed { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("testvendor")
                && text.contains("GET /x")
                && text.contains("4 MiB cap")
                && text.contains("not retried"),
            "{text}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(client.stats().snapshot(), (1, 0, 0), "sent once");
        // The client stopped reading at the cap: the server got no further than the cap and
        // what the sockets' buffers hold.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let served = sent.load(Ordering::SeqCst);
        assert!(
            served < BodyCap::Small.bytes() + (16 << 20),
            "{served} bytes served"
        );
    }

    #[tokio::test]
    async fn a_content_length_over_the_cap_is_refused_before_reading() {
        let (url, _) = raw(Raw::HugeLength).await;
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        let started = Instant::now();
        let err = client.send("GET /x", |c| c.get(&url)).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ConnectorError::Malformed { .. })
                && text.contains("10000000000 bytes")
                && text.contains("256 MiB cap for record pages"),
            "{text}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(client.stats().snapshot().0, 1);
    }

    #[tokio::test]
    async fn a_body_under_its_cap_arrives_whole() {
        let body: &'static str =
            Box::leak(format!("[\"{}\"]", "y".repeat(300_000)).into_boxed_str());
        let (url, _) = bodies(vec![body]).await;
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        let resp = client
            .send_capped("GET /x", BodyCap::Small, |c| c.get(&url))
            .await
            .unwrap();
        assert_eq!(&resp.body[..], body.as_bytes());
    }

    #[tokio::test]
    async fn a_refused_connection_is_final_until_the_host_has_answered() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        drop(listener);
        let settings = RetrySettings {
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_millis(200),
            ..fast()
        };
        let client = HttpClient::new(Arc::new(Plain), None, settings.clone()).unwrap();
        let started = Instant::now();
        let err = client.send("GET /x", |c| c.get(&url)).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ConnectorError::Network { .. }), "{err:?}");
        assert!(
            text.contains("testvendor") && text.contains("GET /x") && text.contains("not retried"),
            "{text}"
        );
        assert_eq!(client.stats().snapshot(), (1, 0, 0), "no retry");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );

        // After one answer, the same failure is a passing fault: retried.
        let (url, _) = raw(Raw::OnceThenGone).await;
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        client.send("GET /x", |c| c.get(&url)).await.unwrap();
        let err = client.send("GET /x", |c| c.get(&url)).await.unwrap_err();
        assert!(
            matches!(err, ConnectorError::RetriesExhausted { attempts: 4, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("could not connect"), "{err}");
    }

    #[tokio::test]
    async fn a_timeout_names_how_long_it_waited() {
        let (url, _) = raw(Raw::Hang).await;
        let settings = RetrySettings {
            timeout: Duration::from_millis(300),
            max_retries: 1,
            ..fast()
        };
        let client = HttpClient::new(Arc::new(Plain), None, settings).unwrap();
        let err = client.send("GET /x", |c| c.get(&url)).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ConnectorError::RetriesExhausted { attempts: 2, .. })
                && text.contains("GET /x")
                && text.contains("0.3 s request timeout (timeout_secs)"),
            "{text}"
        );
        // Other tests share the vendor name: only say the endpoint was recorded.
        assert!(last_request("testvendor").is_some());
    }

    #[test]
    fn retry_warnings_are_at_most_one_per_interval() {
        let client = HttpClient::new(Arc::new(Plain), None, fast()).unwrap();
        client.log_retry("GET /x", 1, Duration::from_millis(250), "HTTP 429");
        assert_eq!(
            client.quiet_retries.load(Ordering::Relaxed),
            0,
            "the first warns"
        );
        for n in 2..5 {
            client.log_retry("GET /x", n, Duration::from_millis(250), "HTTP 429");
        }
        assert_eq!(
            client.quiet_retries.load(Ordering::Relaxed),
            3,
            "the rest are quiet"
        );
        // Once the interval has passed, the next one warns again and counts the quiet ones.
        *client.last_warning.lock().unwrap() = Some(Instant::now() - RETRY_WARN_EVERY);
        client.log_retry("GET /x", 5, Duration::from_millis(250), "HTTP 429");
        assert_eq!(client.quiet_retries.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let response = |value: &str| HttpResponse {
            status: StatusCode::TOO_MANY_REQUESTS,
            headers: [(RETRY_AFTER, value.parse().unwrap())]
                .into_iter()
                .collect(),
            body: Bytes::new(),
        };
        assert_eq!(response("7").retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(
            response("Wed, 21 Oct 2015 07:28:00 GMT").retry_after(),
            Some(Duration::ZERO)
        );
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let wait = response(&soon).retry_after().unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(response("soon").retry_after(), None);
        assert_eq!(response("-3").retry_after(), None);
    }

    #[test]
    fn base_urls_must_be_https_unless_loopback() {
        assert!(checked_base_url("v", "base_url", "https://api.hubapi.com").is_ok());
        assert!(checked_base_url("v", "base_url", "http://127.0.0.1:18081").is_ok());
        assert!(checked_base_url("v", "base_url", "http://localhost:1").is_ok());
        assert!(checked_base_url("v", "base_url", "http://[::1]:1").is_ok());
        let err = checked_base_url("v", "sink.base_url", "http://crm.example.com")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sink.base_url") && err.contains("https"),
            "{err}"
        );
        assert!(checked_base_url("v", "base_url", "ftp://x").is_err());
        // Credentials in a URL are refused, and neither they nor the URL are echoed.
        for raw in [
            "http://user:hunter2-pw@127.0.0.1:1",
            "https://user:hunter2-pw@api.hubapi.com",
            "https://hunter2-pw@api.hubapi.com/",
            "https://api.hubapi.com/?hapikey=hunter2-pw",
            "https://api.hubapi.com/#hunter2-pw",
            "ftp://user:hunter2-pw@x",
            "http://user:hunter2-pw@crm.example.com",
            "not a url hunter2-pw",
        ] {
            let err = checked_base_url("v", "sink.base_url", raw)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("sink.base_url"), "{raw}: {err}");
            assert!(!err.contains("hunter2"), "{raw}: {err}");
        }
        let err = checked_base_url("v", "source.base_url", "http://u:p@127.0.0.1:1")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("user name or password"), "{err}");
        let err = |t, r| {
            checked_retry("v", "sink", t, r)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(Some(0), None).contains("sink.timeout_secs"));
        assert!(err(Some(3601), None).contains("between 1 and 3600"));
        assert!(err(None, Some(101)).contains("sink.max_retries"));
        let ok = checked_retry("v", "sink", Some(5), Some(0)).unwrap();
        assert_eq!((ok.timeout, ok.max_retries), (Duration::from_secs(5), 0));
        assert_eq!(
            display_url(&Url::parse("https://u:p@h.example:8443/a/b?k=v#f").unwrap()),
            "https://h.example:8443/a/b"
        );
        assert!(checked_base_url("v", "base_url", "not a url").is_err());
    }

    /// Prices a request by its body's length, so that the test can tell what was priced.
    struct ByBody;
    impl VendorPolicy for ByBody {
        fn vendor(&self) -> &'static str {
            "testvendor"
        }
        fn request_cost(&self, _method: &Method, url: &Url, body: Option<&[u8]>) -> u64 {
            if path_matches(url.path(), "free") {
                return 0;
            }
            body.map_or(1, |b| b.len() as u64)
        }
    }

    #[tokio::test]
    async fn every_attempt_costs_what_the_policy_prices_it_at() {
        let (url, _) = scripted(vec![(429, vec![]), (200, vec![]), (200, vec![])]).await;
        let client = HttpClient::new(Arc::new(ByBody), None, fast()).unwrap();
        client
            .send("POST /x", |c| c.post(&url).body("12345"))
            .await
            .unwrap();
        let free = url.replace("/x", "/free");
        client.send("GET /free", |c| c.get(&free)).await.unwrap();
        let report = client.stats().report();
        assert_eq!(report.requests, 3);
        assert_eq!(
            report.budget_cost, 10,
            "the 429'd attempt and its retry, 5 each"
        );
        let absorbed = HttpStats::default();
        absorbed.absorb(&client.stats());
        assert_eq!(absorbed.report().budget_cost, 10);
        assert_eq!(report.since(&absorbed.report()).budget_cost, 0);
    }

    #[test]
    fn path_patterns_match_the_last_segments() {
        assert!(path_matches(
            "/p/crm/v3/objects/contacts/search",
            "crm/v3/objects/*/search"
        ));
        assert!(path_matches(
            "/crm/v3/objects/contacts/search/",
            "crm/v3/objects/*/search"
        ));
        assert!(!path_matches(
            "/crm/v3/objects/contacts/batch/read",
            "crm/v3/objects/*/search"
        ));
        assert!(!path_matches("/search", "crm/v3/objects/*/search"));
    }
}

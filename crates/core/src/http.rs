//! The one HTTP layer every connector uses: rate limiting, retries, and vendor-aware errors.
//!
//! Every attempt, retries included, first takes a permit from the vendor account's limiter, so
//! retries can never push ferry over a vendor's limit. Transient failures (429, 5xx, timeouts,
//! dropped connections) are retried with exponential backoff and jitter, waiting at least as
//! long as the vendor's `Retry-After` says. Anything else is handed back to the connector, which
//! knows whether a 4xx is the request's fault or one record's.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
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
            max_retries: 8,
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
        }
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

    /// Parses the body as JSON, naming vendor and endpoint when it cannot.
    pub fn json<T: DeserializeOwned>(
        &self,
        vendor: &'static str,
        endpoint: &str,
    ) -> ConnectorResult<T> {
        serde_json::from_slice(&self.body).map_err(|e| ConnectorError::Malformed {
            vendor,
            endpoint: endpoint.to_owned(),
            // serde's message names the position and the expected type, not the data.
            detail: format!(
                "HTTP {} body is not the expected JSON: {}",
                self.status.as_u16(),
                e
            ),
        })
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

    /// A one-line account of an error response, from the vendor's error body. Must not quote
    /// record values; vendor error codes and messages about the request are fine.
    fn error_detail(&self, response: &HttpResponse) -> String {
        format!("{} bytes of error body", response.body.len())
    }
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
/// short by a proxy or an overloaded vendor) is sent again. Every request ferry sends is a
/// read or an idempotent upsert, so sending it again is safe; a body still broken after that
/// goes to the connector, which reports it malformed.
const BROKEN_BODY_RETRIES: u64 = 3;

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
        if let Ok(mut current) = self.current.lock() {
            if current.as_ref().map(|(l, _)| *l) != Some(limit) {
                *current = Some((limit, Arc::new(build_limiter(limit))));
            }
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
    let effective = (u64::from(limit.requests) * 98 / 100).max(1);
    let interval = (limit.per.as_nanos() as u64 / effective).max(1);
    let burst = if effective + 2 < u64::from(limit.requests) {
        NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN)
    } else {
        NonZeroU32::MIN
    };
    let quota = Quota::with_period(Duration::from_nanos(interval))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    RateLimiter::direct(quota)
}

/// A vendor account's HTTP client: one limiter, one connection pool, one retry policy.
pub struct HttpClient {
    client: reqwest::Client,
    policy: Arc<dyn VendorPolicy>,
    limiter: Limiter,
    settings: RetrySettings,
    stats: Arc<HttpStats>,
}

/// An attempt that failed in a way a retry can fix; anything else is returned as a response.
struct Transient {
    /// The vendor's requested wait.
    after: Option<Duration>,
    /// Why, for logs and for the final error.
    reason: String,
}

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
            .connect_timeout(settings.timeout.min(Duration::from_secs(15)))
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
    pub async fn send<F>(&self, endpoint: &str, build: F) -> ConnectorResult<HttpResponse>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let vendor = self.policy.vendor();
        let started = Instant::now();
        let attempts = AtomicU64::new(0);
        let broken_bodies = AtomicU64::new(0);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.settings.min_backoff)
            .with_max_delay(self.settings.max_backoff)
            .with_max_times(self.settings.max_retries)
            .with_jitter();
        let attempt = || async {
            let n = attempts.fetch_add(1, Ordering::Relaxed) + 1;
            let response = self.attempt(endpoint, &build).await?;
            let retry_left = n <= self.settings.max_retries as u64;
            if retry_left
                && response.status.is_success()
                && is_broken_json(&response)
                && broken_bodies.fetch_add(1, Ordering::Relaxed) < BROKEN_BODY_RETRIES
            {
                return Err(Transient {
                    after: None,
                    reason: format!(
                        "HTTP {} with a malformed JSON body",
                        response.status.as_u16()
                    ),
                });
            }
            Ok(response)
        };
        let result = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .adjust(|e, planned| match e.after {
                // The vendor's word beats our schedule when it asks for longer.
                Some(after) => planned.map(|p| p.max(after).max(Duration::from_millis(1))),
                None => planned,
            })
            .notify(|e, wait| {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(vendor, endpoint, reason = %e.reason, wait_ms = wait.as_millis() as u64, "retrying");
            })
            .await;
        match result {
            Ok(response) => Ok(response),
            Err(Transient { reason, .. }) => Err(ConnectorError::RetriesExhausted {
                vendor,
                endpoint: endpoint.to_owned(),
                attempts: attempts.load(Ordering::Relaxed) as usize,
                elapsed: started.elapsed(),
                last: reason,
            }),
        }
    }

    async fn attempt<F>(&self, endpoint: &str, build: &F) -> Result<HttpResponse, Transient>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        if let Some(limiter) = self.limiter.get() {
            limiter.until_ready().await;
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let transient = |e: reqwest::Error| Transient {
            after: None,
            reason: describe_reqwest_error(&e),
        };
        let response = build(&self.client).send().await.map_err(transient)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transient)?;
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
        match self.policy.classify(&response) {
            Verdict::Done => Ok(response),
            Verdict::Retry { after, reason } => {
                tracing::debug!(
                    vendor = self.policy.vendor(),
                    endpoint,
                    status = status.as_u16(),
                    "transient failure"
                );
                Err(Transient { after, reason })
            }
        }
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

fn describe_reqwest_error(e: &reqwest::Error) -> String {
    // reqwest's Display includes the full URL, which may hold a query; describe the kind only.
    let kind = if e.is_timeout() {
        "timed out"
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

/// Names a request for messages: method and URL path, never the query string.
pub fn endpoint_name(method: &Method, url: &Url) -> String {
    format!("{method} {}", url.path())
}

/// Parses a configured base URL, refusing plain `http://` anywhere but loopback: customer
/// data and tokens must never cross a network unencrypted.
pub fn checked_base_url(vendor: &'static str, key: &str, raw: &str) -> ConnectorResult<Url> {
    let config_error = |detail: String| ConnectorError::Config {
        vendor,
        key: key.to_owned(),
        detail,
    };
    let url = Url::parse(raw).map_err(|e| config_error(format!("`{raw}` is not a URL: {e}")))?;
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
                    "`{raw}` uses plain http on a non-loopback host; ferry sends customer data and \
                     credentials only over https (plain http is allowed for 127.0.0.1/localhost emulators)"
                )));
            }
        }
        other => {
            return Err(config_error(format!(
                "`{raw}` has scheme `{other}`; expected https"
            )));
        }
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(config_error(format!("`{raw}` has no host")));
    }
    Ok(url)
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
        assert!(checked_base_url("v", "base_url", "not a url").is_err());
    }
}

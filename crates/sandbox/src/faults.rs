//! Fault injection shared by every emulator: misbehaviour a real vendor (or the network and
//! load balancers in front of it) shows under load.
//!
//! A [`Faults`] profile switches faults on. [`inject`] applies the vendor-neutral ones around
//! an emulator's routes: 429 storms, 5xx answers, connections reset mid-response, answers
//! slower than the client's timeout, 200s whose JSON body is cut off, and email addresses sent
//! as bytes that are not UTF-8. Each emulator applies the vendor-specific ones itself
//! (`<vendor>/faults.rs`, or its batch handler): per-record failures inside a successful batch
//! answer, pages that shift because records change during a read (through [`shifting`], with
//! the emulator's own idea of a later page and of a change), and access tokens that expire
//! mid-run (through [`expiring`]).
//!
//! Every decision is a pure function of the profile's `seed` and a request (or input) count, so
//! a run is reproducible: with one client sending requests one at a time, the same requests
//! fail every time. (With several requests in flight the arrival order, and so which request
//! gets which number, varies; the rate of faults does not.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// Recurring bursts of throttled requests: `burst` consecutive requests answered 429 at the
/// end of every `every` requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Storm {
    /// How many consecutive requests each burst throttles.
    pub burst: u64,
    /// The period, in requests, at which bursts recur.
    pub every: u64,
}

/// Answers held back past the client's timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slow {
    /// Percentage of requests answered late.
    pub percent: u32,
    /// How long the answer is held back (after the request was carried out).
    pub delay: Duration,
}

/// Which faults an emulator injects, on top of its vendor's documented limits.
///
/// Percentages are of requests (or, for `partial`, of batch inputs), decided per request
/// number from `seed`, so a profile fails the same requests on every run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Answer every Nth request with the vendor's throttling response (429).
    pub throttle_every: Option<u64>,
    /// The `Retry-After` seconds sent with injected throttling (every 429 this layer sends,
    /// storms included), where the vendor sends one.
    pub retry_after_secs: Option<u64>,
    /// Answer every Nth request with `503 Service Unavailable` (plain text, as a load balancer
    /// in front of any vendor sends it).
    pub unavailable_every: Option<u64>,
    /// 429 storms: bursts of consecutive throttled requests, with the vendor's 429 body.
    pub storm: Option<Storm>,
    /// Percentage of requests answered 500, 502 or 503 (plain gateway bodies) before they
    /// reach the vendor.
    pub server_errors: Option<u32>,
    /// Percentage of requests carried out whose response is cut off mid-body: the headers and
    /// part of the body are sent, then the connection is dropped.
    pub resets: Option<u32>,
    /// Requests carried out but answered only after a delay longer than the client's timeout.
    pub slow: Option<Slow>,
    /// Percentage of successful (2xx) responses whose JSON body is cut short, sent as a
    /// complete, well-framed HTTP message: only parsing the body shows the fault.
    pub truncated: Option<u32>,
    /// Percentage of email addresses (decided by the address alone, so the same ones on every
    /// read and every emulator) whose `@` is replaced by the byte 0xFF in every successful
    /// answer to a read (`GET`, or a query or batch read sent as `POST`): text stored in
    /// another encoding, which is not valid UTF-8.
    pub bad_utf8: Option<u32>,
    /// Vendor-specific: percentage of a batch write's inputs that fail with the vendor's
    /// transient per-record error (a row lock) while the rest of the batch succeeds.
    pub partial: Option<u32>,
    /// Vendor-specific (Salesforce Bulk API 2.0): percentage of ingest jobs that end `Failed`
    /// before processing any record, every row unprocessed.
    pub bulk_fail: Option<u32>,
    /// Vendor-specific (Salesforce Bulk API 2.0): percentage of ingest jobs that end `Failed`
    /// part-way: the first half of their rows processed (saved or failed), the rest unprocessed.
    pub bulk_cut: Option<u32>,
    /// Vendor-specific: between one page of a listing and the next, this many records of the
    /// listed type are created and as many existing ones updated.
    pub shift: Option<u32>,
    /// Vendor-specific: every access token issued expires after this many API requests (401
    /// with the vendor's body; fetching a new token works). Vendors whose tokens never expire
    /// (HubSpot private-app tokens) ignore it.
    pub expire_after: Option<u64>,
    /// Vendor-specific: once an access token has served N API requests (counted across all the
    /// requests that carry it; refused ones excluded), every token issued so far is revoked as
    /// soon as that Nth request is answered, as a security policy or an administrator does:
    /// with many requests in flight, several hold a dead token at once and their renewals race.
    /// Vendors whose tokens never expire (HubSpot private-app tokens) ignore it.
    pub revoke_after: Option<u64>,
    /// Added to every request before it is carried out, as a distant vendor's round trip
    /// adds it (not a fault as such: `all` leaves it off).
    pub latency: Option<Duration>,
    /// Seed of the fault decisions.
    pub seed: u64,
}

/// The fault names a profile is written with, in the order `all` lists them.
pub const NAMES: &[&str] = &[
    "storm", "5xx", "reset", "slow", "truncate", "badutf8", "partial", "bulkfail", "bulkcut",
    "shift", "expire", "revoke",
];

/// Defaults of a named fault written without a value.
const DEFAULT_STORM: Storm = Storm {
    burst: 3,
    every: 40,
};
const DEFAULT_PERCENT: u32 = 5;
const DEFAULT_SLOW: Duration = Duration::from_millis(2_500);
const DEFAULT_SHIFT: u32 = 2;
const DEFAULT_EXPIRE_AFTER: u64 = 50;
const DEFAULT_REVOKE_AFTER: u64 = 10;

impl Faults {
    /// Whether any fault is switched on.
    pub fn any(&self) -> bool {
        self.any_generic()
            || self.partial.is_some()
            || self.bulk_fail.is_some()
            || self.bulk_cut.is_some()
            || self.shift.is_some()
            || self.expire_after.is_some()
            || self.revoke_after.is_some()
    }

    /// Whether any fault [`inject`] applies is switched on.
    fn any_generic(&self) -> bool {
        self.throttle_every.is_some()
            || self.unavailable_every.is_some()
            || self.storm.is_some()
            || self.server_errors.is_some()
            || self.resets.is_some()
            || self.slow.is_some()
            || self.truncated.is_some()
            || self.bad_utf8.is_some()
            || self.latency.is_some()
    }

    /// Every fault, with its default setting: the `all` profile.
    pub fn all() -> Faults {
        let mut faults = Faults::default();
        for name in NAMES {
            // The names are this module's own: each one parses.
            let _ = faults.switch_on(name, None);
        }
        faults
    }

    /// Parses a profile: comma-separated fault names, each optionally with a value after a
    /// colon. `all` switches every fault on; `none` is the empty profile.
    ///
    /// `storm[:BURST/EVERY]` (default 3/40), `retry-after[:SECS]` (sent with every injected 429;
    /// default 1), `5xx[:PCT]`, `reset[:PCT]`, `truncate[:PCT]`, `badutf8[:PCT]` (of email
    /// addresses), `partial[:PCT]`, `bulkfail[:PCT]`, `bulkcut[:PCT]` (of Bulk ingest jobs),
    /// `slow[:PCT]`
    /// (percentages default to 5), `slow-ms:MS` (how long slow answers are held, default 2500,
    /// and switches `slow` on), `shift[:N]` (records created and updated between pages,
    /// default 2), `expire[:N]` (uses of a token before it expires, default 50), `revoke[:N]`
    /// (API requests a token serves, across all requests, before every token is revoked;
    /// default 10),
    /// `latency:MS`
    /// (added to every request; not part of `all`), `seed:N`.
    pub fn parse(profile: &str) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for part in profile.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = match part.split_once(':') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (part, None),
            };
            match name {
                "all" if value.is_none() => {
                    let seed = faults.seed;
                    let retry_after = faults.retry_after_secs;
                    let latency = faults.latency;
                    faults = Faults {
                        seed,
                        retry_after_secs: retry_after,
                        latency,
                        ..Faults::all()
                    };
                }
                "none" if value.is_none() => faults = Faults::default(),
                _ => faults.switch_on(name, value)?,
            }
        }
        Ok(faults)
    }

    fn switch_on(&mut self, name: &str, value: Option<&str>) -> Result<(), String> {
        let bad = |expected: &str| {
            format!(
                "fault `{name}:{}`: expected {expected}",
                value.unwrap_or_default()
            )
        };
        let percent = |value: Option<&str>| -> Result<u32, String> {
            match value {
                None => Ok(DEFAULT_PERCENT),
                Some(v) => v
                    .trim_end_matches('%')
                    .parse::<u32>()
                    .ok()
                    .filter(|p| (1..=100).contains(p))
                    .ok_or_else(|| bad("a percentage from 1 to 100")),
            }
        };
        let number = |value: Option<&str>, default: u64| -> Result<u64, String> {
            match value {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("a positive whole number")),
            }
        };
        match name {
            "storm" => {
                self.storm = Some(match value {
                    None => DEFAULT_STORM,
                    Some(v) => v
                        .split_once('/')
                        .and_then(|(b, e)| Some((b.parse::<u64>().ok()?, e.parse::<u64>().ok()?)))
                        .filter(|(b, e)| *b > 0 && b < e)
                        .map(|(burst, every)| Storm { burst, every })
                        .ok_or_else(|| bad("BURST/EVERY with BURST < EVERY, e.g. 3/40"))?,
                });
            }
            "retry-after" => self.retry_after_secs = Some(number(value, 1)?),
            "5xx" => self.server_errors = Some(percent(value)?),
            "reset" => self.resets = Some(percent(value)?),
            "truncate" => self.truncated = Some(percent(value)?),
            "badutf8" => self.bad_utf8 = Some(percent(value)?),
            "partial" => self.partial = Some(percent(value)?),
            "bulkfail" => self.bulk_fail = Some(percent(value)?),
            "bulkcut" => self.bulk_cut = Some(percent(value)?),
            "slow" => {
                let delay = self.slow.map_or(DEFAULT_SLOW, |s| s.delay);
                self.slow = Some(Slow {
                    percent: percent(value)?,
                    delay,
                });
            }
            "slow-ms" => {
                let delay = Duration::from_millis(number(value, DEFAULT_SLOW.as_millis() as u64)?);
                let percent = self.slow.map_or(DEFAULT_PERCENT, |s| s.percent);
                self.slow = Some(Slow { percent, delay });
            }
            "shift" => {
                let n = number(value, u64::from(DEFAULT_SHIFT))?;
                self.shift = Some(u32::try_from(n).map_err(|_| bad("a smaller number"))?);
            }
            "expire" => self.expire_after = Some(number(value, DEFAULT_EXPIRE_AFTER)?),
            "revoke" => self.revoke_after = Some(number(value, DEFAULT_REVOKE_AFTER)?),
            "latency" => {
                let ms = value
                    .and_then(|v| v.trim_end_matches("ms").parse::<u64>().ok())
                    .ok_or_else(|| bad("milliseconds, e.g. latency:150"))?;
                self.latency = Some(Duration::from_millis(ms));
            }
            "seed" => {
                self.seed = value
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| bad("a number"))?;
            }
            _ => {
                return Err(format!(
                    "unknown fault `{name}` (known: {}, retry-after, slow-ms, latency, seed, all, none)",
                    NAMES.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Whether event number `n` of kind `salt` is hit by a fault of `percent`: a pure function
    /// of the seed, the kind and the number.
    pub fn hits(&self, salt: u64, n: u64, percent: u32) -> bool {
        percent > 0 && mix(self.seed ^ salt.rotate_left(32) ^ n) % 100 < u64::from(percent)
    }

    /// Whether request number `n` (from 1) falls in a throttling burst.
    fn throttles(&self, n: u64) -> bool {
        let every = self
            .throttle_every
            .is_some_and(|every| every > 0 && n.is_multiple_of(every));
        let storm = self.storm.is_some_and(|s| {
            s.every > 0 && (n.saturating_sub(1)) % s.every >= s.every.saturating_sub(s.burst)
        });
        every || storm
    }
}

/// SplitMix64's finaliser: spreads consecutive numbers over the whole range.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Salts that keep each fault's decisions independent of the others'.
mod salt {
    pub const SERVER_ERROR: u64 = 1;
    pub const SERVER_ERROR_KIND: u64 = 2;
    pub const RESET: u64 = 3;
    pub const SLOW: u64 = 4;
    pub const TRUNCATE: u64 = 5;
    pub const BAD_UTF8: u64 = 7;
}

/// The salt of the per-input `partial` decisions, for the emulators.
pub const PARTIAL_SALT: u64 = 6;
/// The salt of the per-job `bulkfail` and `bulkcut` decisions, for the emulators.
pub const BULK_SALT: u64 = 8;

/// What happens to one request after it was carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Answer,
    Reset,
    Truncate,
    Delay(Duration),
}

/// Wraps `router` so that it injects the vendor-neutral faults of `faults`; `throttled` builds
/// the vendor's own 429 response, given the `Retry-After` seconds to send (if any).
pub fn inject(router: Router, faults: Faults, throttled: fn(Option<u64>) -> Response) -> Router {
    if !faults.any_generic() {
        return router;
    }
    let seen = Arc::new(AtomicU64::new(0));
    let faults = Arc::new(faults);
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let seen = Arc::clone(&seen);
            let faults = Arc::clone(&faults);
            async move {
                if let Some(latency) = faults.latency {
                    tokio::time::sleep(latency).await;
                }
                let n = seen.fetch_add(1, Ordering::Relaxed) + 1;
                if faults.throttles(n) {
                    return throttled(faults.retry_after_secs);
                }
                if faults
                    .unavailable_every
                    .is_some_and(|every| every > 0 && n.is_multiple_of(every))
                {
                    return plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
                }
                if let Some(percent) = faults.server_errors
                    && faults.hits(salt::SERVER_ERROR, n, percent)
                {
                    return gateway_error(mix(faults.seed ^ salt::SERVER_ERROR_KIND ^ n));
                }
                let after = if faults
                    .resets
                    .is_some_and(|p| faults.hits(salt::RESET, n, p))
                {
                    After::Reset
                } else if faults
                    .truncated
                    .is_some_and(|p| faults.hits(salt::TRUNCATE, n, p))
                {
                    After::Truncate
                } else {
                    match faults.slow {
                        Some(slow) if faults.hits(salt::SLOW, n, slow.percent) => {
                            After::Delay(slow.delay)
                        }
                        _ => After::Answer,
                    }
                };
                let reads = is_read(&request);
                let mut response = next.run(request).await;
                if let (Some(percent), true) = (faults.bad_utf8, reads) {
                    response = garble_emails(response, percent).await;
                }
                match after {
                    After::Answer => response,
                    After::Reset => reset_mid_body(response).await,
                    After::Truncate => truncate_body(response).await,
                    After::Delay(delay) => {
                        tokio::time::sleep(delay).await;
                        response
                    }
                }
            }
        },
    ))
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A 500, 502 or 503 as the load balancer or gateway in front of a vendor sends it: an HTML
/// page, not the vendor's JSON.
fn gateway_error(pick: u64) -> Response {
    let (status, page) = match pick % 3 {
        0 => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "<html><body><h1>500 Internal Server Error</h1></body></html>",
        ),
        1 => (
            StatusCode::BAD_GATEWAY,
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
        ),
    };
    let mut response = plain(status, page);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// The response's body, buffered.
async fn buffered(response: Response) -> (axum::http::response::Parts, Bytes) {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    (parts, bytes)
}

/// Sends the headers and the first half of the body, then fails the body stream, which makes
/// the server drop the connection: the client sees the response break off.
async fn reset_mid_body(response: Response) -> Response {
    let (mut parts, bytes) = buffered(response).await;
    let half = bytes.slice(..bytes.len() / 2);
    // The pause lets the server flush the headers and the first half before the stream fails;
    // failing at once would drop them unsent, which is a different fault (no response at all).
    let chunks = futures::stream::unfold(Some(Some(half)), |state| async move {
        match state? {
            Some(first) => Some((Ok(first), Some(None))),
            None => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let reset = std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected fault: connection reset mid-response",
                );
                Some((Err::<Bytes, _>(reset), None))
            }
        }
    });
    // No length: the body is streamed, so the cut is a broken stream, not a short body.
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from_stream(chunks))
}

/// A successful response's body cut to half its length, sent whole with a matching length.
async fn truncate_body(response: Response) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, bytes) = buffered(response).await;
    let cut = bytes.slice(..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(cut))
}

/// Whether a request reads records: a `GET`, or a `POST` of a query or a batch read (Zoho's
/// COQL, HubSpot's search and batch reads), which answer with the same stored text.
fn is_read(request: &Request) -> bool {
    let path = request.uri().path();
    request.method() == axum::http::Method::GET
        || (request.method() == axum::http::Method::POST
            && (path.ends_with("/coql")
                || path.ends_with("/search")
                || path.ends_with("/batch/read")))
}

/// Whether the `badutf8` fault at `percent` garbles the email address `address`: a function of
/// the address alone, so a garbled address is garbled on every read and on every emulator
/// with the same percentage, as stored data would be.
pub fn garbles(address: &str, percent: u32) -> bool {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a: stable across runs and builds
    for b in address.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    mix(hash ^ salt::BAD_UTF8) % 100 < u64::from(percent)
}

/// The email-like string values of a JSON text: (start, end) of the value between its quotes
/// and the position of its `@`, for values that follow a `:` (object members, not keys).
fn email_values(body: &[u8]) -> Vec<(usize, usize, usize)> {
    let local = |b: u8| b.is_ascii_alphanumeric() || b"._%+-".contains(&b);
    let mut found = Vec::new();
    for (at, _) in body.iter().enumerate().filter(|(_, b)| **b == b'@') {
        let Some(open) = (0..at).rev().find(|&i| !local(body[i])) else {
            continue;
        };
        let before = body[..open].iter().rev().find(|b| !b.is_ascii_whitespace());
        if body[open] != b'"' || open + 1 == at || before != Some(&b':') {
            continue;
        }
        if let Some(close) = (at + 1..body.len()).find(|&i| !local(body[i]))
            && body[close] == b'"'
            && close > at + 1
        {
            found.push((open + 1, close, at));
        }
    }
    found
}

/// A successful answer whose garbled email addresses (see [`garbles`]) have the byte 0xFF,
/// which is never valid UTF-8, in place of their `@`.
async fn garble_emails(response: Response, percent: u32) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let (parts, bytes) = buffered(response).await;
    let mut body = bytes.to_vec();
    let mut garbled = 0;
    for (start, end, at) in email_values(&bytes) {
        let address = String::from_utf8_lossy(&bytes[start..end]);
        if garbles(&address, percent) {
            body[at] = 0xFF;
            garbled += 1;
        }
    }
    if garbled == 0 {
        return Response::from_parts(parts, Body::from(bytes));
    }
    Response::from_parts(parts, Body::from(body))
}

/// Wraps `router` so that access tokens die mid-run, through `expire` (which invalidates
/// every token issued so far; a token fetched afterwards works again):
///
/// - with `expire_after` N, a token expires at its Nth use: `expire` runs first, so that
///   request, and any other made with an old token, gets the vendor's 401;
/// - with `revoke_after` N, a token's Nth request served (answered with anything but 401),
///   counted across all the requests that carry it, runs `expire` once it is answered: the
///   requests in flight with that token get 401 and renew it at once, so renewals race, and a
///   renewed token can die again before a slow request (one waiting out a 429) uses it. Each
///   token serves N requests first, so a run makes progress however many are in flight.
///
/// Requests without an `Authorization` header (token requests) pass untouched.
pub fn expiring<F>(router: Router, faults: &Faults, expire: F) -> Router
where
    F: Fn() + Clone + Send + Sync + 'static,
{
    let expire_every = faults.expire_after.filter(|n| *n > 0);
    let revoke_every = faults.revoke_after.filter(|n| *n > 0);
    if expire_every.is_none() && revoke_every.is_none() {
        return router;
    }
    type Counts = Arc<std::sync::Mutex<std::collections::HashMap<Vec<u8>, u64>>>;
    let (uses, served): (Counts, Counts) = (Arc::default(), Arc::default());
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let (uses, served) = (Arc::clone(&uses), Arc::clone(&served));
            let expire = expire.clone();
            async move {
                let header = request.headers().get(header::AUTHORIZATION);
                let token = header
                    .filter(|_| revoke_every.is_some())
                    .map(|v| v.as_bytes().to_vec());
                if let (Some(every), Some(value), Ok(mut uses)) =
                    (expire_every, header, uses.lock())
                {
                    if uses.len() > 1_000 {
                        uses.clear(); // tokens long gone: keep the map small
                    }
                    let used = uses.entry(value.as_bytes().to_vec()).or_insert(0);
                    *used += 1;
                    if *used == every {
                        expire();
                    }
                }
                let response = next.run(request).await;
                if let (Some(every), Some(token), Ok(mut served)) =
                    (revoke_every, token, served.lock())
                    && response.status() != StatusCode::UNAUTHORIZED
                {
                    if served.len() > 1_000 {
                        served.clear(); // tokens long gone: keep the map small
                    }
                    let count = served.entry(token).or_insert(0);
                    *count += 1;
                    if *count == every {
                        expire();
                    }
                }
                response
            }
        },
    ))
}

/// Wraps `router` so that, if `faults` has `shift`, the records a listing reads change under
/// it: before a request `later_page` recognises as a later page (not the first) of a listing of
/// `K`, from its head and body (a query language's reads come in the body),
/// `change(kind, k)` runs `shift` times, with `k` counting the changes from 1. Each
/// emulator's `change` creates one record of the listed type and updates an existing one, as
/// other users and integrations do during a long read; its paging then decides what the reader
/// sees.
/// The largest request body the `shift` layer reads to recognise a later page.
const SHIFT_BODY_LIMIT: usize = 16 * 1024 * 1024;

pub fn shifting<K, F>(
    router: Router,
    faults: &Faults,
    later_page: fn(&Request, &[u8]) -> Option<K>,
    change: F,
) -> Router
where
    K: Send + 'static,
    F: Fn(&K, u64) + Clone + Send + Sync + 'static,
{
    let Some(n) = faults.shift.filter(|n| *n > 0) else {
        return router;
    };
    let changed = Arc::new(Counter::default());
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let (changed, change) = (Arc::clone(&changed), change.clone());
            async move {
                let (parts, body) = request.into_parts();
                // Emulator requests are small; a body too large to read is passed on empty,
                // and the route answers it as malformed.
                let body = axum::body::to_bytes(body, SHIFT_BODY_LIMIT)
                    .await
                    .unwrap_or_default();
                let request = Request::from_parts(parts, Body::empty());
                if let Some(kind) = later_page(&request, &body) {
                    for _ in 0..n {
                        change(&kind, changed.next());
                    }
                }
                let (parts, _) = request.into_parts();
                next.run(Request::from_parts(parts, Body::from(body))).await
            }
        },
    ))
}

/// Which of `len` records (in listing order) the `k`th change of a `shift` updates: spread
/// over the listing, so some were read already and some are still ahead. `None` if empty.
pub fn shift_target(k: u64, len: usize) -> Option<usize> {
    (len > 0).then(|| (k as usize).wrapping_mul(7_919) % len)
}

/// Whether the query string of `request` has the parameter `name` with a non-empty value.
pub fn has_param(request: &Request, name: &str) -> bool {
    request.uri().query().is_some_and(|q| {
        q.split('&').any(|p| {
            p.split_once('=')
                .is_some_and(|(k, v)| k == name && !v.is_empty())
        })
    })
}

/// Counts events (requests, batch inputs) for vendor-specific faults.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// The next event's number, from 1.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn teapot(retry_after: Option<u64>) -> Response {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        if let Some(secs) = retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }

    async fn serve(faults: Faults) -> String {
        let body = "{\"results\":[1,2,3,4,5,6,7,8,9,10],\"paging\":null}";
        let router = Router::new().route(
            "/",
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], body)
            }),
        );
        let running = crate::serve(
            "test",
            inject(router, faults, teapot),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let url = running.base_url.clone();
        std::mem::forget(running); // keep serving for the test's lifetime
        url
    }

    async fn statuses(url: &str, n: usize) -> Vec<u16> {
        let client = reqwest::Client::new();
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(client.get(url).send().await.unwrap().status().as_u16());
        }
        out
    }

    #[tokio::test]
    async fn revoke_kills_every_token_once_one_served_n_calls() {
        // Token `tN` is live while the generation is N; `expire` moves to the next one.
        let generation = Arc::new(AtomicU64::new(0));
        let live = Arc::clone(&generation);
        let router = Router::new().route(
            "/",
            axum::routing::get(move |headers: axum::http::HeaderMap| async move {
                let current = format!("Bearer t{}", live.load(Ordering::SeqCst));
                match headers.get(header::AUTHORIZATION) {
                    Some(v) if v.as_bytes() != current.as_bytes() => StatusCode::UNAUTHORIZED,
                    _ => StatusCode::OK,
                }
            }),
        );
        let faults = Faults::parse("revoke:3").unwrap();
        let revoked = Arc::clone(&generation);
        let router = expiring(router, &faults, move || {
            revoked.fetch_add(1, Ordering::SeqCst);
        });
        let running = crate::serve("test", router, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let client = reqwest::Client::new();
        let call = |token: Option<&'static str>| {
            let mut request = client.get(&running.base_url);
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            async move { request.send().await.unwrap().status().as_u16() }
        };
        let mut seen = Vec::new();
        for token in ["t0", "t0", "t0", "t0", "t1", "t1"] {
            seen.push(call(Some(token)).await);
        }
        // Token requests (no header) and refused calls do not count.
        seen.push(call(None).await);
        seen.push(call(Some("t0")).await);
        seen.push(call(Some("t1")).await);
        seen.push(call(Some("t1")).await);
        assert_eq!(seen, vec![200, 200, 200, 401, 200, 200, 200, 401, 200, 401]);
        assert_eq!(generation.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn injects_throttling_and_unavailability_on_schedule() {
        let url = serve(Faults {
            throttle_every: Some(3),
            unavailable_every: Some(4),
            ..Faults::default()
        })
        .await;
        assert_eq!(
            statuses(&url, 8).await,
            vec![200, 200, 429, 503, 200, 429, 200, 503]
        );
    }

    #[tokio::test]
    async fn latency_delays_every_answer() {
        let url = serve(Faults {
            latency: Some(Duration::from_millis(120)),
            ..Faults::default()
        })
        .await;
        let started = std::time::Instant::now();
        assert_eq!(statuses(&url, 2).await, vec![200, 200]);
        assert!(started.elapsed() >= Duration::from_millis(240));
    }

    #[tokio::test]
    async fn storms_are_bursts_of_consecutive_429s_with_retry_after_if_asked() {
        let url = serve(Faults {
            storm: Some(Storm { burst: 2, every: 5 }),
            retry_after_secs: Some(2),
            ..Faults::default()
        })
        .await;
        assert_eq!(
            statuses(&url, 10).await,
            vec![200, 200, 200, 429, 429, 200, 200, 200, 429, 429]
        );
        let response = reqwest::get(&url).await.unwrap(); // request 11: answered
        assert_eq!(response.status(), 200);
        let client = reqwest::Client::new();
        for _ in 0..2 {
            client.get(&url).send().await.unwrap();
        }
        let throttled = client.get(&url).send().await.unwrap(); // request 14
        assert_eq!(throttled.status(), 429);
        assert_eq!(throttled.headers()["retry-after"], "2");
    }

    #[tokio::test]
    async fn server_errors_come_at_the_given_rate_and_are_reproducible() {
        let faults = Faults {
            server_errors: Some(20),
            seed: 7,
            ..Faults::default()
        };
        let first = statuses(&serve(faults.clone()).await, 200).await;
        let second = statuses(&serve(faults).await, 200).await;
        assert_eq!(first, second, "the same seed fails the same requests");
        let failed = first.iter().filter(|s| **s >= 500).count();
        assert!((20..=65).contains(&failed), "{failed} of 200 failed");
        for code in [500, 502, 503] {
            assert!(first.contains(&code), "no {code} in {first:?}");
        }
    }

    #[tokio::test]
    async fn resets_break_the_body_off_and_truncation_cuts_the_json() {
        let url = serve(Faults {
            resets: Some(100),
            ..Faults::default()
        })
        .await;
        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(response.status(), 200, "headers arrive");
        assert!(response.bytes().await.is_err(), "the body breaks off");

        let url = serve(Faults {
            truncated: Some(100),
            ..Faults::default()
        })
        .await;
        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.expect("a complete HTTP message");
        assert!(!body.is_empty());
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
    }

    #[tokio::test]
    async fn slow_answers_outlast_the_client_timeout() {
        let url = serve(Faults {
            slow: Some(Slow {
                percent: 100,
                delay: Duration::from_millis(600),
            }),
            ..Faults::default()
        })
        .await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let err = client.get(&url).send().await.unwrap_err();
        assert!(err.is_timeout(), "{err}");
    }

    #[test]
    fn garbled_addresses_lose_their_at_sign_to_an_invalid_byte() {
        let body = br#"{"email": "a.b@example.com", "@odata.context": "x", "k": ["c@d.io"], "e":"rory@example.org"}"#;
        let found: Vec<&[u8]> = email_values(body)
            .into_iter()
            .map(|(s, e, _)| &body[s..e])
            .collect();
        assert_eq!(
            found,
            vec![&b"a.b@example.com"[..], &b"rory@example.org"[..]]
        );
        let addresses: Vec<String> = (0..1000).map(|i| format!("p{i}@example.com")).collect();
        let hit = addresses.iter().filter(|a| garbles(a, 10)).count();
        assert!((50..=150).contains(&hit), "{hit} of 1000");
        assert!(addresses.iter().all(|a| garbles(a, 10) == garbles(a, 10)));
        assert!(
            addresses
                .iter()
                .filter(|a| garbles(a, 5))
                .all(|a| garbles(a, 10))
        );
    }

    #[tokio::test]
    async fn badutf8_garbles_get_answers_only() {
        let router = Router::new().route(
            "/",
            axum::routing::get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"email":"x@example.com"}"#,
                )
            }),
        );
        let running = crate::serve(
            "test",
            inject(
                router,
                Faults {
                    bad_utf8: Some(100),
                    ..Faults::default()
                },
                teapot,
            ),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let body = reqwest::get(&running.base_url)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&body[..], b"{\"email\":\"x\xFFexample.com\"}");
        assert!(std::str::from_utf8(&body).is_err());
    }

    #[test]
    fn profiles_parse_names_values_and_all() {
        let all = Faults::parse("all").unwrap();
        assert!(all.storm.is_some() && all.server_errors.is_some() && all.resets.is_some());
        assert!(all.slow.is_some() && all.truncated.is_some() && all.partial.is_some());
        assert!(all.shift.is_some() && all.expire_after.is_some() && all.bad_utf8.is_some());
        assert_eq!(all.revoke_after, Some(DEFAULT_REVOKE_AFTER));
        assert_eq!(Faults::parse("revoke:4").unwrap().revoke_after, Some(4));
        assert!(all.bulk_fail.is_some() && all.bulk_cut.is_some());
        assert_eq!(Faults::parse("bulkcut:30").unwrap().bulk_cut, Some(30));
        assert_eq!(all.retry_after_secs, None);
        assert_eq!(all, Faults::all());

        let custom =
            Faults::parse("storm:2/10, retry-after:3, 5xx:20, slow:30, slow-ms:1500, seed:9")
                .unwrap();
        assert_eq!(
            custom.storm,
            Some(Storm {
                burst: 2,
                every: 10
            })
        );
        assert_eq!(custom.retry_after_secs, Some(3));
        assert_eq!(custom.server_errors, Some(20));
        assert_eq!(
            custom.slow,
            Some(Slow {
                percent: 30,
                delay: Duration::from_millis(1500)
            })
        );
        let delay_only = Faults::parse("slow-ms:900").unwrap().slow.unwrap();
        assert_eq!((delay_only.percent, delay_only.delay.as_millis()), (5, 900));
        assert_eq!(custom.seed, 9);
        assert!(custom.resets.is_none());

        let far = Faults::parse("latency:150,all").unwrap();
        assert_eq!(far.latency, Some(Duration::from_millis(150)));
        assert!(
            Faults::all().latency.is_none(),
            "latency is not a fault of `all`"
        );
        assert!(Faults::parse("latency").is_err());

        assert_eq!(Faults::parse("none").unwrap(), Faults::default());
        assert!(Faults::parse("").unwrap() == Faults::default());
        for bad in [
            "storm:5/5",
            "5xx:0",
            "5xx:101",
            "bogus",
            "expire:x",
            "revoke:0",
            "seed",
        ] {
            assert!(Faults::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(!Faults::default().any());
        assert!(
            Faults {
                shift: Some(1),
                ..Faults::default()
            }
            .any()
        );
    }
}

//! The checks in front of every route: the bearer token, then the rate limits.
//!
//! Limits are per token (the emulator accepts one): a ten-second rolling window (the burst
//! limit) and a daily count. The v4 association batch endpoints and search are exempt from the
//! burst window, as HubSpot's spec marks them (`x-hubspot-rate-limit-exemptions`). Search has
//! its own limit instead, five requests per one-second rolling window, and its responses carry
//! none of the rate-limit headers, 429s included.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

use super::Emulator;
use super::respond::{self, Policy, Quota};

const WINDOW: Duration = Duration::from_secs(10);
const SEARCH_WINDOW: Duration = Duration::from_secs(1);

/// Which rate-limit bucket a request draws on, besides the daily count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bucket {
    /// The ten-second rolling window.
    TenSecondly,
    /// None: exempt from the burst window (the v4 association batches).
    Exempt,
    /// Search's own per-second window.
    Search,
}

impl Bucket {
    /// The bucket of a request to `path`.
    fn of(path: &str) -> Bucket {
        if path.starts_with("/crm/v3/objects/") && path.ends_with("/search") {
            Bucket::Search
        } else if path.starts_with("/crm/v4/associations/") && path.contains("/batch/") {
            Bucket::Exempt
        } else {
            Bucket::TenSecondly
        }
    }
}

/// The configured limits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caps {
    /// Requests per ten-second window.
    pub burst: Option<u32>,
    /// Requests per day.
    pub daily: Option<u64>,
    /// Search requests per second.
    pub search: Option<u32>,
}

/// Drops the timestamps older than `window` from the front of `log`.
fn expire(log: &mut VecDeque<Instant>, window: Duration, now: Instant) {
    while log
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        log.pop_front();
    }
}

/// The request log behind the rate limits.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    window: VecDeque<Instant>,
    search_window: VecDeque<Instant>,
    daily_used: u64,
}

impl Limits {
    /// Sets the requests counted against the daily limit (0: a new day).
    pub(crate) fn set_daily_used(&mut self, used: u64) {
        self.daily_used = used;
    }

    /// Counts a request if the limits allow it; `Err` names the limit that refused it.
    fn admit(
        &mut self,
        caps: Caps,
        bucket: Bucket,
        now: Instant,
    ) -> Result<Quota, (Policy, Quota)> {
        expire(&mut self.window, WINDOW, now);
        expire(&mut self.search_window, SEARCH_WINDOW, now);
        let in_window = self.window.len() as u32;
        let quota = |used_window: u32, used_daily: u64| Quota {
            max: caps.burst,
            remaining: caps.burst.map(|max| max.saturating_sub(used_window)),
            daily: caps.daily,
            daily_remaining: caps.daily.map(|max| max.saturating_sub(used_daily)),
        };
        if caps.daily.is_some_and(|max| self.daily_used >= max) {
            return Err((Policy::Daily, quota(in_window, self.daily_used)));
        }
        match bucket {
            Bucket::TenSecondly if caps.burst.is_some_and(|max| in_window >= max) => {
                return Err((Policy::TenSecondly, quota(in_window, self.daily_used)));
            }
            Bucket::Search
                if caps
                    .search
                    .is_some_and(|max| self.search_window.len() as u32 >= max) =>
            {
                return Err((Policy::Secondly, quota(in_window, self.daily_used)));
            }
            _ => {}
        }
        self.daily_used += 1;
        match bucket {
            Bucket::TenSecondly => self.window.push_back(now),
            Bucket::Search => self.search_window.push_back(now),
            Bucket::Exempt => {}
        }
        Ok(quota(self.window.len() as u32, self.daily_used))
    }
}

/// The bearer token of an `Authorization` header.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Middleware: 401 without the right token, 429 over a limit, rate-limit headers otherwise.
pub(crate) async fn gate(
    State(emulator): State<Emulator>,
    request: Request,
    next: Next,
) -> Response {
    let inner = &emulator.inner;
    inner.stats.requests.fetch_add(1, Ordering::Relaxed);
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match token {
        None => {
            return respond::error(
                StatusCode::UNAUTHORIZED,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find \
                 more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            );
        }
        Some(t) if t != inner.options.token => {
            return respond::error(
                StatusCode::UNAUTHORIZED,
                "INVALID_AUTHENTICATION",
                "The access token provided is invalid or has been revoked. Check the token of your private app.",
            );
        }
        Some(_) => {}
    }
    let bucket = Bucket::of(request.uri().path());
    // "Responses from the search API endpoints will not include any of the rate limit headers."
    let headers = bucket != Bucket::Search;
    let caps = Caps {
        burst: inner.options.burst_limit,
        daily: inner.options.daily_limit,
        search: inner.options.search_limit,
    };
    let admitted = match inner.limits.lock() {
        Ok(mut limits) => limits.admit(caps, bucket, Instant::now()),
        Err(_) => {
            return respond::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "limiter poisoned",
            );
        }
    };
    match admitted {
        Ok(quota) => {
            let mut response = next.run(request).await;
            if headers {
                quota.apply(response.headers_mut());
            }
            response
        }
        Err((policy, quota)) => {
            inner.stats.throttled.fetch_add(1, Ordering::Relaxed);
            let mut response = respond::rate_limited(policy);
            if headers {
                quota.apply(response.headers_mut());
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(burst: Option<u32>, daily: Option<u64>) -> Caps {
        Caps {
            burst,
            daily,
            search: Some(5),
        }
    }

    #[test]
    fn rolling_window_refuses_the_101st_and_recovers() {
        let mut limits = Limits::default();
        let caps = caps(Some(100), Some(1000));
        let t0 = Instant::now();
        for i in 0..100 {
            let q = limits.admit(caps, Bucket::TenSecondly, t0).unwrap();
            assert_eq!(q.remaining, Some(99 - i));
        }
        assert_eq!(
            limits.admit(caps, Bucket::TenSecondly, t0).unwrap_err().0,
            Policy::TenSecondly
        );
        assert!(
            limits.admit(caps, Bucket::Exempt, t0).is_ok(),
            "exempt endpoints pass"
        );
        assert!(
            limits.admit(caps, Bucket::Search, t0).is_ok(),
            "search is exempt from the burst window"
        );
        assert!(limits.admit(caps, Bucket::TenSecondly, t0 + WINDOW).is_ok());
    }

    #[test]
    fn search_has_its_own_per_second_window() {
        let mut limits = Limits::default();
        let caps = caps(Some(2), Some(1000));
        let t0 = Instant::now();
        for _ in 0..5 {
            let q = limits.admit(caps, Bucket::Search, t0).unwrap();
            assert_eq!(q.remaining, Some(2), "search leaves the burst window alone");
        }
        assert_eq!(
            limits.admit(caps, Bucket::Search, t0).unwrap_err().0,
            Policy::Secondly
        );
        assert!(
            limits.admit(caps, Bucket::TenSecondly, t0).is_ok(),
            "the burst window is separate"
        );
        assert!(
            limits
                .admit(caps, Bucket::Search, t0 + SEARCH_WINDOW)
                .is_ok()
        );
    }

    #[test]
    fn daily_limit_refuses_with_daily_policy() {
        let mut limits = Limits::default();
        let caps = caps(None, Some(1));
        let t0 = Instant::now();
        limits.admit(caps, Bucket::TenSecondly, t0).unwrap();
        assert_eq!(
            limits.admit(caps, Bucket::TenSecondly, t0).unwrap_err().0,
            Policy::Daily
        );
        assert_eq!(
            limits.admit(caps, Bucket::Search, t0).unwrap_err().0,
            Policy::Daily
        );
    }

    #[test]
    fn buckets_by_path() {
        assert_eq!(
            Bucket::of("/crm/v3/objects/contacts/search"),
            Bucket::Search
        );
        assert_eq!(Bucket::of("/crm/v3/objects/contacts"), Bucket::TenSecondly);
        assert_eq!(
            Bucket::of("/crm/v4/associations/contacts/companies/batch/read"),
            Bucket::Exempt
        );
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}

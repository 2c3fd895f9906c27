//! The checks in front of every route: the bearer token, then the rate limits.
//!
//! Limits are per token (the emulator accepts one): a ten-second rolling window (the burst
//! limit) and a daily count. The v4 association batch endpoints are exempt from the burst
//! window, as HubSpot's spec marks them; search endpoints would also omit the headers.

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

/// The request log behind the rate limits.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    window: VecDeque<Instant>,
    daily_used: u64,
}

impl Limits {
    /// Counts a request if the limits allow it; `Err` names the limit that refused it.
    fn admit(
        &mut self,
        burst: Option<u32>,
        daily: Option<u64>,
        exempt: bool,
        now: Instant,
    ) -> Result<Quota, (Policy, Quota)> {
        while self
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            self.window.pop_front();
        }
        let in_window = self.window.len() as u32;
        let quota = |used_window: u32, used_daily: u64| Quota {
            max: burst,
            remaining: burst.map(|max| max.saturating_sub(used_window)),
            daily,
            daily_remaining: daily.map(|max| max.saturating_sub(used_daily)),
        };
        if daily.is_some_and(|max| self.daily_used >= max) {
            return Err((Policy::Daily, quota(in_window, self.daily_used)));
        }
        if !exempt && burst.is_some_and(|max| in_window >= max) {
            return Err((Policy::TenSecondly, quota(in_window, self.daily_used)));
        }
        self.daily_used += 1;
        if !exempt {
            self.window.push_back(now);
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
    let path = request.uri().path();
    let search = path.ends_with("/search");
    let exempt = search || (path.starts_with("/crm/v4/associations/") && path.contains("/batch/"));
    let admitted = match inner.limits.lock() {
        Ok(mut limits) => limits.admit(
            inner.options.burst_limit,
            inner.options.daily_limit,
            exempt,
            Instant::now(),
        ),
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
            if !search {
                quota.apply(response.headers_mut());
            }
            response
        }
        Err((policy, quota)) => {
            inner.stats.throttled.fetch_add(1, Ordering::Relaxed);
            let mut response = respond::rate_limited(policy);
            quota.apply(response.headers_mut());
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_window_refuses_the_101st_and_recovers() {
        let mut limits = Limits::default();
        let t0 = Instant::now();
        for i in 0..100 {
            let q = limits.admit(Some(100), Some(1000), false, t0).unwrap();
            assert_eq!(q.remaining, Some(99 - i));
        }
        assert_eq!(
            limits
                .admit(Some(100), Some(1000), false, t0)
                .unwrap_err()
                .0,
            Policy::TenSecondly
        );
        assert!(
            limits.admit(Some(100), Some(1000), true, t0).is_ok(),
            "exempt endpoints pass"
        );
        assert!(
            limits
                .admit(Some(100), Some(1000), false, t0 + WINDOW)
                .is_ok()
        );
    }

    #[test]
    fn daily_limit_refuses_with_daily_policy() {
        let mut limits = Limits::default();
        let t0 = Instant::now();
        limits.admit(None, Some(1), false, t0).unwrap();
        assert_eq!(
            limits.admit(None, Some(1), false, t0).unwrap_err().0,
            Policy::Daily
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

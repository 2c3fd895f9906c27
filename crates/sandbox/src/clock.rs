//! An account's clock, which tests move ahead instead of waiting, and the `Date` header every
//! answer carries from it: what writes stamp records' last-modified time with, and what a
//! connector takes the vendor's time from (incremental reads start from it).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::DATE;
use axum::middleware::Next;
use axum::response::Response;

/// The machine's clock, in milliseconds since the Unix epoch.
pub(crate) fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An account's clock: the machine's, moved ahead by [`Clock::advance`]. Clones share it.
#[derive(Clone, Default)]
pub(crate) struct Clock {
    ahead_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The account's time now, in milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        system_ms().saturating_add(self.ahead_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock `by` ahead, as time passing would.
    pub(crate) fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ahead_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Dates `response` by this clock (`Date`, RFC 9110's IMF-fixdate), as vendors date
    /// every answer.
    pub(crate) fn date(&self, response: &mut Response) {
        if let Ok(date) = HeaderValue::from_str(&crate::timestamp::http_date(self.now_ms())) {
            response.headers_mut().insert(DATE, date);
        }
    }
}

/// Dates every answer by the account's clock, as a vendor's own `Date` header does (RFC 9110,
/// whole seconds). Add it with `axum::middleware::from_fn_with_state(clock, date_header)`.
pub(crate) async fn date_header(
    State(clock): State<Clock>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    clock.date(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_and_the_date_header() {
        let clock = Clock::default();
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(3600));
        let after = clock.now_ms();
        assert!(after - before >= 3_600_000 && after - before < 3_660_000);
        let mut response = Response::new(axum::body::Body::empty());
        clock.date(&mut response);
        let date = response.headers()[DATE].to_str().expect("ascii");
        assert!(
            [after, after + 1000]
                .iter()
                .any(|ms| crate::timestamp::http_date(*ms) == date),
            "{date}"
        );
    }
}

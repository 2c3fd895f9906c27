//! An account's clock that tests can move ahead, and the `Date` header that shows it: what
//! emulators stamp records' last-modified times with, and what a client reads the vendor's
//! time from (incremental reads start from it).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// The machine's clock plus however far a test moved the account's clock ahead.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    ahead_ms: AtomicI64,
}

impl Clock {
    /// The account's time now, in milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        let machine = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        machine.saturating_add(self.ahead_ms.load(Ordering::Relaxed))
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
            response.headers_mut().insert(header::DATE, date);
        }
    }
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
        let date = response.headers()[header::DATE].to_str().expect("ascii");
        assert!(
            [after, after + 1000]
                .iter()
                .any(|ms| crate::timestamp::http_date(*ms) == date),
            "{date}"
        );
    }
}

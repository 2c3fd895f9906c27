//! An emulated account's clock: the machine's, moved ahead by a test. Writes stamp records'
//! last-modified time with it and every answer is dated (`Date`) by it, as a vendor's own clock
//! does; incremental reads start from what it says, so tests of them need not wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The machine's clock, in milliseconds since the Unix epoch.
pub(crate) fn machine_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An account's clock: the machine's plus how far a test moved it ahead.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    ahead_ms: AtomicI64,
}

impl Clock {
    /// The account's time now, in milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        machine_now_ms().saturating_add(self.ahead_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock `by` ahead, as time passing would.
    pub(crate) fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ahead_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// Dates every answer by the account's clock (`Date`, RFC 9110's IMF-fixdate), as the vendors'
/// servers do: what a client takes the vendor's time from. A layer:
/// `axum::middleware::from_fn_with_state(clock, date_header)`.
pub(crate) async fn date_header(
    State(clock): State<Arc<Clock>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if let Ok(date) = HeaderValue::from_str(&crate::timestamp::http_date(clock.now_ms())) {
        response.headers_mut().insert(header::DATE, date);
    }
    response
}

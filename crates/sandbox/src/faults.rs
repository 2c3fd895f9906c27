//! Fault injection shared by every emulator: misbehaviour a real vendor shows under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// Which faults an emulator injects, on top of its vendor's documented limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Answer every Nth request with the vendor's throttling response (429).
    pub throttle_every: Option<u64>,
    /// The `Retry-After` seconds sent with injected throttling, where the vendor sends one.
    pub retry_after_secs: Option<u64>,
    /// Answer every Nth request with `503 Service Unavailable` (plain text, as a load balancer
    /// in front of any vendor sends it).
    pub unavailable_every: Option<u64>,
}

impl Faults {
    /// Whether any fault is switched on.
    pub fn any(&self) -> bool {
        self.throttle_every.is_some() || self.unavailable_every.is_some()
    }
}

/// Wraps `router` so that it injects `faults`; `throttled` builds the vendor's own 429
/// response, given the `Retry-After` seconds to send (if any).
pub fn inject(router: Router, faults: Faults, throttled: fn(Option<u64>) -> Response) -> Router {
    if !faults.any() {
        return router;
    }
    let seen = Arc::new(AtomicU64::new(0));
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let seen = Arc::clone(&seen);
            let faults = faults.clone();
            async move {
                let n = seen.fetch_add(1, Ordering::Relaxed) + 1;
                if faults
                    .throttle_every
                    .is_some_and(|every| every > 0 && n % every == 0)
                {
                    return throttled(faults.retry_after_secs);
                }
                if faults
                    .unavailable_every
                    .is_some_and(|every| every > 0 && n % every == 0)
                {
                    let mut response = Response::new(axum::body::Body::from("Service Unavailable"));
                    *response.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    return response;
                }
                next.run(request).await
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn teapot(_: Option<u64>) -> Response {
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = axum::http::StatusCode::TOO_MANY_REQUESTS;
        r
    }

    #[tokio::test]
    async fn injects_throttling_and_unavailability_on_schedule() {
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let faults = Faults {
            throttle_every: Some(3),
            unavailable_every: Some(4),
            ..Faults::default()
        };
        let running = crate::serve(
            "test",
            inject(router, faults, teapot),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let client = reqwest::Client::new();
        let mut statuses = Vec::new();
        for _ in 0..8 {
            statuses.push(
                client
                    .get(&running.base_url)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
        }
        assert_eq!(statuses, vec![200, 200, 429, 503, 200, 429, 200, 503]);
    }
}

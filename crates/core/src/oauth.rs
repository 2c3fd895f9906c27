//! One OAuth access-token cache for every connector that signs its requests with a bearer token
//! (Salesforce, Zoho, Dynamics): the token held in memory only, fetched on first use, renewed
//! shortly before the lifetime the vendor gave runs out, and renewed whenever a request finds
//! the token it used refused, with one fetch shared by every request that saw the same stale
//! token. Each connector supplies only its vendor's token request and response, as a
//! [`TokenEndpoint`].
//!
//! A request that gets 401 asks [`TokenCache::refused`] for a token newer than the one it
//! used and tries again, as often as it takes while renewing makes sense; two bounds say when
//! it does not:
//!
//! - [`MAX_UNPROVEN_TOKENS`] fresh tokens in a row refused before any request succeeded with
//!   one: the credentials still get tokens, but the API no longer honours them (revoked);
//! - [`MAX_RENEWALS_PER_REQUEST`] renewals for one request: an endpoint that refuses every
//!   token while other requests succeed with the same tokens.
//!
//! Either ends the request with a credentials error naming the vendor, the endpoint and the
//! count. A token request the token endpoint itself refuses (400/401) is the connector's to
//! report as a credentials error at once; it is never repeated.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use secrecy::SecretString;
use tokio::sync::Mutex;

use crate::error::{ConnectorError, ConnectorResult};
use crate::http::HttpClient;

/// Fresh tokens refused in a row, before any request succeeded with one, after which a renewal
/// fails instead of fetching another: the credentials were most likely revoked.
pub const MAX_UNPROVEN_TOKENS: u32 = 5;

/// Renewals one request may make. Under heavy concurrency a request can lose the race for a
/// short-lived token several times; past this many, its endpoint refuses tokens that others
/// succeed with, and renewing again will not help.
pub const MAX_RENEWALS_PER_REQUEST: u32 = 25;

/// The longest margin before a token's announced expiry at which it is renewed.
const MAX_MARGIN: Duration = Duration::from_secs(300);

/// What a vendor's token endpoint granted: the token, what the vendor pairs with it (such as
/// Salesforce's `instance_url`), and how long it lives, if the vendor says.
pub struct Grant<T> {
    /// The access token.
    pub token: SecretString,
    /// What the vendor sends with the token that requests need.
    pub extra: T,
    /// The token's lifetime (`expires_in`), if the vendor gives one.
    pub lifetime: Option<Duration>,
}

/// A vendor's token request and response dialect.
#[async_trait]
pub trait TokenEndpoint: Send + Sync {
    /// What the vendor sends with a token that requests need (`()` if nothing).
    type Extra: Send + Sync;

    /// The vendor's name, for messages.
    fn vendor(&self) -> &'static str;

    /// Fetches a token. A refusal of the credentials (400/401 from the token endpoint) must be
    /// a [`ConnectorError::Auth`] naming the endpoint as method and path.
    async fn fetch(&self, http: &HttpClient) -> ConnectorResult<Grant<Self::Extra>>;
}

/// An access token in use: the secret, the vendor's companion data, and which fetch produced
/// it. Its `Debug` never shows the secret.
pub struct Token<T> {
    secret: SecretString,
    extra: T,
    serial: u64,
    renew_at: Option<Instant>,
    /// Whether any request succeeded with it (it was not refused).
    worked: AtomicBool,
}

impl<T> Token<T> {
    /// The bearer token, to expose only when setting the `Authorization` header.
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }

    /// What the vendor sent with the token.
    pub fn extra(&self) -> &T {
        &self.extra
    }

    /// Which fetch produced it, from 1.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    fn due(&self) -> bool {
        self.renew_at.is_some_and(|at| Instant::now() >= at)
    }
}

impl<T> fmt::Debug for Token<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("serial", &self.serial)
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

struct State<T> {
    current: Option<Arc<Token<T>>>,
    /// Fresh tokens refused in a row before any request succeeded with one.
    unproven: u32,
}

/// The token of one connector (source or sink), shared by all its requests.
pub struct TokenCache<E: TokenEndpoint> {
    endpoint: E,
    /// Held across a fetch: concurrent requests wait for that fetch and share its token.
    state: Mutex<State<E::Extra>>,
    fetches: AtomicU64,
}

impl<E: TokenEndpoint> TokenCache<E> {
    /// An empty cache: the first request fetches a token.
    pub fn new(endpoint: E) -> TokenCache<E> {
        TokenCache {
            endpoint,
            state: Mutex::new(State {
                current: None,
                unproven: 0,
            }),
            fetches: AtomicU64::new(0),
        }
    }

    /// The vendor's token endpoint (for what it remembers of the last response, like scopes).
    pub fn endpoint(&self) -> &E {
        &self.endpoint
    }

    /// How many tokens have been fetched.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The current token, fetched if there is none or it is due for renewal.
    pub async fn token(&self, http: &HttpClient) -> ConnectorResult<Arc<Token<E::Extra>>> {
        let mut state = self.state.lock().await;
        if let Some(token) = state.current.as_ref().filter(|t| !t.due()) {
            return Ok(Arc::clone(token));
        }
        self.fetch(http, &mut state).await
    }

    /// Records that a request succeeded with `token` (the vendor did not refuse it).
    pub fn accepted(&self, token: &Token<E::Extra>) {
        token.worked.store(true, Ordering::Relaxed);
    }

    /// A token to replace `stale`, which the vendor refused (401) for the request at
    /// `endpoint` (method and path); `renewals` counts this request's renewals so far. The
    /// token is newer than `stale`: another request's renewal if there was one since, else
    /// fetched now, once for every request that saw `stale`. Fails when a bound is hit (see
    /// the module's documentation), or when the fetch fails.
    pub async fn refused(
        &self,
        http: &HttpClient,
        stale: &Token<E::Extra>,
        endpoint: &str,
        renewals: &mut u32,
    ) -> ConnectorResult<Arc<Token<E::Extra>>> {
        let vendor = self.endpoint.vendor();
        *renewals += 1;
        if *renewals > MAX_RENEWALS_PER_REQUEST {
            return Err(ConnectorError::Auth {
                vendor,
                endpoint: endpoint.to_owned(),
                status: 401,
                detail: format!(
                    "the access token was refused again after renewal was attempted {} times for \
                     this request while other requests succeeded; tokens that stop working as soon as \
                     they are renewed suggest revoked credentials or a policy that revokes sessions \
                     (check the app's authorisation and the user's access)",
                    MAX_RENEWALS_PER_REQUEST
                ),
            });
        }
        tracing::debug!(
            vendor,
            endpoint,
            serial = stale.serial,
            renewals = *renewals,
            "token refused; renewing it"
        );
        let mut state = self.state.lock().await;
        if let Some(token) = state
            .current
            .as_ref()
            .filter(|t| t.serial > stale.serial && !t.due())
        {
            // Another request renewed it since this one read it.
            return Ok(Arc::clone(token));
        }
        if stale.worked.load(Ordering::Relaxed) {
            state.unproven = 0;
        } else if state
            .current
            .as_ref()
            .is_some_and(|t| t.serial == stale.serial)
        {
            state.unproven += 1;
            if state.unproven >= MAX_UNPROVEN_TOKENS {
                return Err(ConnectorError::Auth {
                    vendor,
                    endpoint: endpoint.to_owned(),
                    status: 401,
                    detail: format!(
                        "renewal was attempted {} times and each new access token was refused \
                         before any request succeeded with it: the token endpoint still grants \
                         tokens but the API does not honour them, which suggests revoked \
                         credentials (check that the app is still authorised and its user active)",
                        state.unproven
                    ),
                });
            }
        }
        self.fetch(http, &mut state).await
    }

    async fn fetch(
        &self,
        http: &HttpClient,
        state: &mut State<E::Extra>,
    ) -> ConnectorResult<Arc<Token<E::Extra>>> {
        let grant = self.endpoint.fetch(http).await?;
        let serial = self.fetches.fetch_add(1, Ordering::Relaxed) + 1;
        let renew_at = grant.lifetime.map(|lifetime| {
            // Renew a tenth of the lifetime early (five minutes at most): a request signed
            // just before expiry still arrives in time.
            let margin = (lifetime / 10).min(MAX_MARGIN);
            Instant::now() + lifetime.saturating_sub(margin)
        });
        tracing::debug!(
            vendor = self.endpoint.vendor(),
            serial,
            "fetched an access token"
        );
        let token = Arc::new(Token {
            secret: grant.token,
            extra: grant.extra,
            serial,
            renew_at,
            worked: AtomicBool::new(false),
        });
        state.current = Some(Arc::clone(&token));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{RetrySettings, VendorPolicy};
    use secrecy::ExposeSecret;
    use std::sync::atomic::AtomicUsize;

    struct Plain;
    impl VendorPolicy for Plain {
        fn vendor(&self) -> &'static str {
            "test"
        }
    }

    fn http() -> HttpClient {
        HttpClient::new(Arc::new(Plain), None, RetrySettings::default()).expect("client")
    }

    /// Grants `token-N` (with N as its companion value) after a pause long enough for
    /// concurrent callers to pile up behind the fetch.
    #[derive(Default)]
    struct Counting {
        fetched: AtomicUsize,
        lifetime: Option<Duration>,
    }

    #[async_trait]
    impl TokenEndpoint for Counting {
        type Extra = usize;
        fn vendor(&self) -> &'static str {
            "test"
        }
        async fn fetch(&self, _http: &HttpClient) -> ConnectorResult<Grant<usize>> {
            let n = self.fetched.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Grant {
                token: SecretString::from(format!("token-{n}")),
                extra: n,
                lifetime: self.lifetime,
            })
        }
    }

    #[tokio::test]
    async fn concurrent_refusals_of_one_token_share_one_fetch() {
        let (cache, http) = (TokenCache::new(Counting::default()), http());
        let stale = cache.token(&http).await.expect("token");
        assert_eq!(cache.fetches(), 1);
        let renewed = futures::future::join_all((0..16).map(|_| {
            let (cache, http, stale) = (&cache, &http, &stale);
            async move {
                let mut renewals = 0;
                cache
                    .refused(http, stale, "GET /x", &mut renewals)
                    .await
                    .expect("renewed")
            }
        }))
        .await;
        assert_eq!(cache.fetches(), 2, "one fetch for 16 requests");
        assert_eq!(cache.endpoint().fetched.load(Ordering::SeqCst), 2);
        for token in &renewed {
            assert_eq!(token.serial(), 2);
            assert_eq!(token.secret().expose_secret(), "token-2");
            assert_eq!(*token.extra(), 2);
        }
    }

    #[tokio::test]
    async fn a_token_renewed_by_another_request_is_reused_not_fetched_again() {
        let (cache, http) = (TokenCache::new(Counting::default()), http());
        let first = cache.token(&http).await.expect("token");
        let mut renewals = 0;
        let second = cache
            .refused(&http, &first, "GET /a", &mut renewals)
            .await
            .expect("renewed");
        cache.accepted(&second);
        // A request still holding the first token meets 401 later: it gets the second.
        let mut theirs = 0;
        let reused = cache
            .refused(&http, &first, "GET /b", &mut theirs)
            .await
            .expect("reused");
        assert_eq!((reused.serial(), cache.fetches()), (2, 2));
        // The second token refused in turn is renewed again: not once per request.
        let third = cache
            .refused(&http, &reused, "GET /b", &mut theirs)
            .await
            .expect("renewed twice");
        assert_eq!((third.serial(), cache.fetches(), theirs), (3, 3, 2));
    }

    #[tokio::test]
    async fn fresh_tokens_refused_before_any_success_end_in_a_credentials_error() {
        let (cache, http) = (TokenCache::new(Counting::default()), http());
        let mut token = cache.token(&http).await.expect("token");
        cache.accepted(&token);
        let mut renewals = 0;
        let mut error = None;
        for _ in 0..10 {
            match cache.refused(&http, &token, "GET /x", &mut renewals).await {
                Ok(t) => token = t,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let error = error.expect("the bound ends the renewals");
        // The first token worked; the next ones never did, and no more are fetched.
        assert_eq!(cache.fetches(), 1 + u64::from(MAX_UNPROVEN_TOKENS));
        assert!(error.is_operator_fault());
        let text = error.to_string();
        assert!(text.starts_with("test: GET /x: "), "{text}");
        assert!(
            text.contains(&format!(
                "renewal was attempted {MAX_UNPROVEN_TOKENS} times"
            )),
            "{text}"
        );
        assert!(text.contains("revoked credentials"), "{text}");
        assert!(!text.contains("token-"), "no token in {text}");
    }

    #[tokio::test]
    async fn one_request_renews_at_most_the_bound_even_while_tokens_work_for_others() {
        let (cache, http) = (TokenCache::new(Counting::default()), http());
        let mut token = cache.token(&http).await.expect("token");
        let mut renewals = 0;
        let error = loop {
            // Other requests succeed with every token; this one is refused every time.
            cache.accepted(&token);
            match cache.refused(&http, &token, "POST /y", &mut renewals).await {
                Ok(t) => token = t,
                Err(e) => break e,
            }
        };
        assert_eq!(cache.fetches(), 1 + u64::from(MAX_RENEWALS_PER_REQUEST));
        let text = error.to_string();
        assert!(text.starts_with("test: POST /y: "), "{text}");
        assert!(
            text.contains(&format!(
                "renewal was attempted {MAX_RENEWALS_PER_REQUEST} times"
            )),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_token_is_renewed_before_its_lifetime_runs_out() {
        let endpoint = Counting {
            lifetime: Some(Duration::from_millis(200)),
            ..Counting::default()
        };
        let (cache, http) = (TokenCache::new(endpoint), http());
        assert_eq!(cache.token(&http).await.expect("token").serial(), 1);
        assert_eq!(cache.token(&http).await.expect("token").serial(), 1);
        // Renewed a tenth of the lifetime early: at 180 ms.
        tokio::time::sleep(Duration::from_millis(190)).await;
        assert_eq!(cache.token(&http).await.expect("token").serial(), 2);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let token = Token {
            secret: SecretString::from("s3cret"),
            extra: (),
            serial: 1,
            renew_at: None,
            worked: AtomicBool::new(false),
        };
        let text = format!("{token:?}");
        assert!(
            !text.contains("s3cret") && text.contains("redacted"),
            "{text}"
        );
    }
}

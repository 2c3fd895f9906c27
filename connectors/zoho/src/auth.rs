//! The OAuth refresh-token grant: one access token per connector, held in memory only (never
//! persisted), refreshed before it expires and again when Zoho says it is invalid.
//!
//! Zoho's accounts server answers a refused grant with HTTP 200 and `{"error": "invalid_code"}`
//! (or `invalid_client`), so the body decides, not the status.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_core::http::{HttpClient, VendorPolicy};
use ferry_core::{ConnectorError, ConnectorResult};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use crate::VENDOR;
use crate::config::Credentials;
use crate::policy::{ZohoPolicy, clean_code};

/// Tokens are refreshed this long before Zoho's `expires_in` runs out.
const EXPIRY_MARGIN: Duration = Duration::from_secs(120);

/// An access token and when to stop using it.
pub(crate) struct Session {
    pub token: SecretString,
    expires: Instant,
    /// Which fetch produced it, so concurrent renewals fetch only once.
    serial: u64,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("serial", &self.serial)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// Fetches and caches access tokens.
pub(crate) struct Auth {
    token_url: Url,
    credentials: Credentials,
    current: Mutex<Option<Arc<Session>>>,
    fetches: AtomicU64,
    /// The scopes named by the last token response (vendors report them with each token).
    granted: std::sync::Mutex<Option<Vec<String>>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    /// The granted scopes, space- (or comma-) separated.
    #[serde(default)]
    scope: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
}

impl Auth {
    /// The scopes the last token response named.
    pub(crate) fn granted_scopes(&self) -> Option<Vec<String>> {
        self.granted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Tokens are refreshed at `{accounts_url}/oauth/v2/token`.
    pub(crate) fn new(accounts_url: &Url, credentials: Credentials) -> ConnectorResult<Auth> {
        let token_url =
            accounts_url
                .join("/oauth/v2/token")
                .map_err(|e| ConnectorError::Config {
                    vendor: VENDOR,
                    key: "accounts_url".into(),
                    detail: format!("cannot form the token URL: {e}"),
                })?;
        Ok(Auth {
            token_url,
            credentials,
            current: Mutex::new(None),
            fetches: AtomicU64::new(0),
            granted: std::sync::Mutex::new(None),
        })
    }

    /// How many tokens have been fetched.
    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// A valid session, refreshing the token if there is none or it is about to expire.
    pub(crate) async fn session(&self, http: &HttpClient) -> ConnectorResult<Arc<Session>> {
        let mut current = self.current.lock().await;
        if let Some(s) = current.as_ref().filter(|s| Instant::now() < s.expires) {
            return Ok(Arc::clone(s));
        }
        let session = Arc::new(self.fetch(http).await?);
        *current = Some(Arc::clone(&session));
        Ok(session)
    }

    /// A session to replace `stale`, which Zoho refused: refreshed unless another task
    /// already did so.
    pub(crate) async fn renew(
        &self,
        http: &HttpClient,
        stale: &Session,
    ) -> ConnectorResult<Arc<Session>> {
        let mut current = self.current.lock().await;
        if let Some(s) = current.as_ref().filter(|s| s.serial != stale.serial) {
            return Ok(Arc::clone(s));
        }
        tracing::debug!(vendor = VENDOR, "access token refused; refreshing it");
        let session = Arc::new(self.fetch(http).await?);
        *current = Some(Arc::clone(&session));
        Ok(session)
    }

    async fn fetch(&self, http: &HttpClient) -> ConnectorResult<Session> {
        let endpoint = format!("POST {}", self.token_url.path());
        let c = &self.credentials;
        let response = http
            .send(&endpoint, |client| {
                client.post(self.token_url.clone()).form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", c.client_id.expose_secret()),
                    ("client_secret", c.client_secret.expose_secret()),
                    ("refresh_token", c.refresh_token.expose_secret()),
                ])
            })
            .await?;
        if !response.is_success() {
            return Err(http.error_for(&endpoint, &response));
        }
        let body: TokenResponse = response.json(VENDOR, &endpoint)?;
        if let Some(scope) = &body.scope {
            let scopes = scope
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            *self
                .granted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(scopes);
        }
        if let Some(error) = body.error {
            let code = clean_code(&error);
            let hint = match code.as_str() {
                "invalid_client" => {
                    "the client id is not known to this data centre's accounts server (check client_id and data_centre)"
                }
                "invalid_client_secret" => "the client secret does not match the client id",
                "invalid_code" => {
                    "the refresh token is invalid or revoked, or belongs to another data centre (generate a new one, and check data_centre)"
                }
                _ => "the accounts server refused the refresh-token grant",
            };
            return Err(ConnectorError::Auth {
                vendor: VENDOR,
                endpoint,
                status: response.status.as_u16(),
                detail: format!("{code}: {hint}"),
            });
        }
        let Some(token) = body.access_token.filter(|t| !t.is_empty()) else {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint,
                detail: format!(
                    "the token response has no access_token ({})",
                    ZohoPolicy.error_detail(&response)
                ),
            });
        };
        let lifetime = Duration::from_secs(body.expires_in.unwrap_or(3600));
        let serial = self.fetches.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(vendor = VENDOR, serial, "refreshed the access token");
        Ok(Session {
            token: SecretString::from(token),
            expires: Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN),
            serial,
        })
    }
}

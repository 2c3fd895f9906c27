//! OAuth 2.0 client credentials: one access token per connector (source or sink), held in memory only, fetched on
//! first use and again when Salesforce says the session is invalid or expired.
//!
//! The token response names the org's `instance_url`, which every REST call must use (never
//! the login host). The token is a [`SecretString`]: redacted in `Debug`, zeroized on drop,
//! exposed only to set the `Authorization` header.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ferry_core::http::{HttpClient, VendorPolicy, checked_base_url};
use ferry_core::{ConnectorError, ConnectorResult};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use crate::VENDOR;
use crate::policy::SalesforcePolicy;

/// An authenticated session: the token and where to use it.
pub(crate) struct Session {
    /// The bearer token.
    pub token: SecretString,
    /// The org's REST base URL, from the token response.
    pub instance_url: Url,
    /// Which fetch produced it, so concurrent renewals fetch only once.
    serial: u64,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("instance_url", &self.instance_url.as_str())
            .field("token", &"[redacted]")
            .finish()
    }
}

/// Fetches and caches sessions.
pub(crate) struct Auth {
    token_url: Url,
    /// The config key of the login URL (`sink.login_url`), for hints in errors.
    login_key: String,
    client_id: SecretString,
    client_secret: SecretString,
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
    access_token: String,
    instance_url: String,
}

impl Auth {
    /// The scopes the last token response named.
    pub(crate) fn granted_scopes(&self) -> Option<Vec<String>> {
        self.granted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Token requests go to `{login_url}/services/oauth2/token`.
    pub(crate) fn new(
        login_url: &Url,
        login_key: String,
        client_id: SecretString,
        client_secret: SecretString,
    ) -> ConnectorResult<Auth> {
        let token_url =
            login_url
                .join("/services/oauth2/token")
                .map_err(|e| ConnectorError::Config {
                    vendor: VENDOR,
                    key: login_key.clone(),
                    detail: format!("cannot form the token URL: {e}"),
                })?;
        Ok(Auth {
            token_url,
            login_key,
            client_id,
            client_secret,
            current: Mutex::new(None),
            fetches: AtomicU64::new(0),
            granted: std::sync::Mutex::new(None),
        })
    }

    /// How many tokens have been fetched (for tests and logs).
    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The current session, fetching a token if there is none.
    pub(crate) async fn session(&self, http: &HttpClient) -> ConnectorResult<Arc<Session>> {
        let mut current = self.current.lock().await;
        if let Some(session) = current.as_ref() {
            return Ok(Arc::clone(session));
        }
        let session = Arc::new(self.fetch(http).await?);
        *current = Some(Arc::clone(&session));
        Ok(session)
    }

    /// A session to replace `stale`, which Salesforce refused: fetched anew unless another
    /// task already did so.
    pub(crate) async fn renew(
        &self,
        http: &HttpClient,
        stale: &Session,
    ) -> ConnectorResult<Arc<Session>> {
        let mut current = self.current.lock().await;
        if let Some(session) = current.as_ref().filter(|s| s.serial != stale.serial) {
            return Ok(Arc::clone(session));
        }
        tracing::debug!(
            vendor = VENDOR,
            "session expired or invalid; fetching a new token"
        );
        let session = Arc::new(self.fetch(http).await?);
        *current = Some(Arc::clone(&session));
        Ok(session)
    }

    async fn fetch(&self, http: &HttpClient) -> ConnectorResult<Session> {
        // The endpoint names the host too: client credentials only work on the My Domain host.
        let endpoint = format!("POST {}", self.token_url);
        let response = http
            .send(&endpoint, |c| {
                c.post(self.token_url.clone()).form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", self.client_id.expose_secret()),
                    ("client_secret", self.client_secret.expose_secret()),
                ])
            })
            .await?;
        let status = response.status.as_u16();
        if matches!(status, 400 | 401 | 403) {
            let mut detail = SalesforcePolicy.error_detail(&response);
            let host = self.token_url.host_str().unwrap_or_default();
            if host.eq_ignore_ascii_case("login.salesforce.com")
                || host.eq_ignore_ascii_case("test.salesforce.com")
            {
                detail.push_str(&format!(
                    "; note that the client-credentials flow needs your org's My Domain URL \
                     (https://<MyDomain>.my.salesforce.com) as {}",
                    self.login_key
                ));
            } else {
                detail.push_str("; check the connected app's consumer key and secret and that its client-credentials flow is enabled with a run-as user");
            }
            return Err(ConnectorError::Auth {
                vendor: VENDOR,
                endpoint,
                status,
                detail,
            });
        }
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
        let instance_url =
            checked_base_url(VENDOR, "instance_url", &body.instance_url).map_err(|e| {
                ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: endpoint.clone(),
                    detail: format!("unusable instance_url: {e}"),
                }
            })?;
        let serial = self.fetches.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(vendor = VENDOR, serial, "fetched an access token");
        Ok(Session {
            token: SecretString::from(body.access_token),
            instance_url,
            serial,
        })
    }
}

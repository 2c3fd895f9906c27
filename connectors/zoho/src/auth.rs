//! The OAuth refresh-token grant: Zoho's token request and response, for the shared
//! [`TokenCache`] (one access token per connector, held in memory only and never persisted,
//! refreshed before it expires and whenever Zoho refuses the one a request used).
//!
//! Zoho's accounts server answers a refused grant with HTTP 200 and `{"error": "invalid_code"}`
//! (or `invalid_client`), so the body decides, not the status.

use std::time::Duration;

use async_trait::async_trait;
use ferry_core::http::{BodyCap, HttpClient, VendorPolicy};
use ferry_core::oauth::{Grant, TokenCache, TokenEndpoint};
use ferry_core::{ConnectorError, ConnectorResult};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::VENDOR;
use crate::config::Credentials;
use crate::policy::{ZohoPolicy, clean_code};

/// The access-token cache of one connector.
pub(crate) type Auth = TokenCache<Refresh>;

/// The refresh-token grant at the data centre's accounts server.
pub(crate) struct Refresh {
    token_url: Url,
    credentials: Credentials,
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

impl Refresh {
    /// The scopes the last token response named.
    pub(crate) fn granted_scopes(&self) -> Option<Vec<String>> {
        self.granted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Tokens are refreshed at `{accounts_url}/oauth/v2/token`.
    pub(crate) fn new(accounts_url: &Url, credentials: Credentials) -> ConnectorResult<Refresh> {
        let token_url =
            accounts_url
                .join("/oauth/v2/token")
                .map_err(|e| ConnectorError::Config {
                    vendor: VENDOR,
                    key: "accounts_url".into(),
                    detail: format!("cannot form the token URL: {e}"),
                })?;
        Ok(Refresh {
            token_url,
            credentials,
            granted: std::sync::Mutex::new(None),
        })
    }
}

#[async_trait]
impl TokenEndpoint for Refresh {
    type Extra = ();

    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn fetch(&self, http: &HttpClient) -> ConnectorResult<Grant<()>> {
        let endpoint = format!("POST {}", self.token_url.path());
        let c = &self.credentials;
        let response = http
            .send_capped(&endpoint, BodyCap::Small, |client| {
                client.post(self.token_url.clone()).form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", c.client_id.expose_secret()),
                    ("client_secret", c.client_secret.expose_secret()),
                    ("refresh_token", c.refresh_token.expose_secret()),
                ])
            })
            .await?;
        let status = response.status.as_u16();
        if matches!(status, 400 | 401 | 403) {
            // The grant itself refused: a credentials error now, never repeated.
            return Err(ConnectorError::Auth {
                vendor: VENDOR,
                endpoint,
                status,
                detail: format!(
                    "{}; check client_id, client_secret, refresh_token and data_centre",
                    ZohoPolicy.error_detail(&response)
                ),
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
        Ok(Grant {
            token: SecretString::from(token),
            extra: (),
            lifetime: Some(Duration::from_secs(body.expires_in.unwrap_or(3600))),
        })
    }
}

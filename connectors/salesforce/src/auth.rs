//! OAuth 2.0 client credentials: Salesforce's token request and response, for the shared
//! [`TokenCache`] (one token per connector, source or sink, held in memory only, fetched on
//! first use and again whenever Salesforce says the session a request used is invalid or
//! expired).
//!
//! The token response names the org's `instance_url`, which every REST call must use (never
//! the login host). The token is a [`SecretString`]: redacted in `Debug`, zeroized on drop,
//! exposed only to set the `Authorization` header.

use async_trait::async_trait;
use ferry_core::http::{BodyCap, HttpClient, VendorPolicy, checked_base_url};
use ferry_core::oauth::{Grant, TokenCache, TokenEndpoint};
use ferry_core::{ConnectorError, ConnectorResult};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::VENDOR;
use crate::policy::SalesforcePolicy;

/// The session cache of one connector; each token comes with the org's REST base URL.
pub(crate) type Auth = TokenCache<Login>;

/// The client-credentials request to the org's token endpoint.
pub(crate) struct Login {
    token_url: Url,
    /// The config key of the login URL (`sink.login_url`), for hints in errors.
    login_key: String,
    client_id: SecretString,
    client_secret: SecretString,
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

impl Login {
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
    ) -> ConnectorResult<Login> {
        let token_url =
            login_url
                .join("/services/oauth2/token")
                .map_err(|e| ConnectorError::Config {
                    vendor: VENDOR,
                    key: login_key.clone(),
                    detail: format!("cannot form the token URL: {e}"),
                })?;
        Ok(Login {
            token_url,
            login_key,
            client_id,
            client_secret,
            granted: std::sync::Mutex::new(None),
        })
    }
}

#[async_trait]
impl TokenEndpoint for Login {
    /// The org's REST base URL.
    type Extra = Url;

    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn fetch(&self, http: &HttpClient) -> ConnectorResult<Grant<Url>> {
        // Method and path only, like every endpoint: a URL may carry userinfo (a password).
        let endpoint = format!("POST {}", self.token_url.path());
        let response = http
            .send_capped(&endpoint, BodyCap::Small, |c| {
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
        Ok(Grant {
            token: SecretString::from(body.access_token),
            extra: instance_url,
            // Salesforce's response names no lifetime: a session lasts until it is refused.
            lifetime: None,
        })
    }
}

//! Authenticated Web API calls: a client-credentials token from the Microsoft identity
//! platform, held in the shared token cache (in memory), renewed shortly before it expires and
//! whenever Dataverse answers 401 to the token a request used (bounded by the cache); at most `concurrency` requests in flight (Dataverse refuses more than 52 per
//! user at once); everything through ferry's shared HTTP layer (pacing, retries).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::http::{BodyCap, HttpClient, HttpResponse, HttpStats};
use ferry_core::oauth::{Grant, TokenCache, TokenEndpoint};
use ferry_core::{ConnectorError, ConnectorResult};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Semaphore;
use url::Url;

use crate::VENDOR;
use crate::config::Settings;
use crate::policy::{DynamicsPolicy, describe};

/// The Web API path under the environment URL.
pub(crate) const API_PATH: &str = "api/data/v9.2/";

/// The client-credentials request to the tenant's token endpoint.
struct Credentials {
    token_url: Url,
    scope: String,
    client_id: SecretString,
    client_secret: SecretString,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[async_trait]
impl TokenEndpoint for Credentials {
    type Extra = ();

    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn fetch(&self, http: &HttpClient) -> ConnectorResult<Grant<()>> {
        // Method and path, like every endpoint (a URL may carry userinfo, a password); the
        // tenant is in the path.
        let endpoint = format!("POST {}", self.token_url.path());
        let response = http
            .send_capped(&endpoint, BodyCap::Small, |c| {
                c.post(self.token_url.clone()).form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", self.client_id.expose_secret()),
                    ("client_secret", self.client_secret.expose_secret()),
                    ("scope", self.scope.as_str()),
                ])
            })
            .await?;
        let status = response.status.as_u16();
        if (400..500).contains(&status) {
            return Err(ConnectorError::Auth {
                vendor: VENDOR,
                endpoint,
                status,
                detail: format!(
                    "{}; check tenant_id, the app registration's client id and secret (the secret's value, not its \
                     id), and that the secret has not expired",
                    describe(status, &response.body)
                ),
            });
        }
        if !response.is_success() {
            return Err(http.error_for(&endpoint, &response));
        }
        let body: TokenResponse = response.json(VENDOR, &endpoint)?;
        // The cache renews a tenth of the lifetime early, five minutes at most.
        Ok(Grant {
            token: SecretString::from(body.access_token),
            extra: (),
            lifetime: Some(Duration::from_secs(body.expires_in.unwrap_or(3599))),
        })
    }
}

/// One request.
pub(crate) struct Call<'a> {
    pub method: Method,
    /// The full URL (built with [`Client::api_url`] or a validated next link).
    pub url: Url,
    pub headers: &'a [(&'static str, &'a str)],
    /// Content type and bytes.
    pub body: Option<(String, Vec<u8>)>,
    /// The most bytes the answer may hold.
    pub cap: BodyCap,
}

/// An environment's Web API, authenticated.
pub(crate) struct Client {
    http: HttpClient,
    api_base: Url,
    tokens: TokenCache<Credentials>,
    permits: Semaphore,
}

/// Names a request for messages: method and path, never the query.
pub(crate) fn endpoint(method: &Method, url: &Url) -> String {
    format!("{method} {}", url.path())
}

impl Client {
    pub(crate) fn new(settings: &Settings) -> ConnectorResult<Client> {
        let http = HttpClient::new(
            Arc::new(DynamicsPolicy),
            Some(settings.rate_limit),
            settings.retry.clone(),
        )?;
        let api_base =
            settings
                .environment_url
                .join(API_PATH)
                .map_err(|e| ConnectorError::Config {
                    vendor: VENDOR,
                    key: "environment_url".into(),
                    detail: format!("cannot form the Web API URL: {e}"),
                })?;
        Ok(Client {
            http,
            api_base,
            tokens: TokenCache::new(Credentials {
                token_url: settings.token_url.clone(),
                scope: settings.scope.clone(),
                client_id: settings.client_id.clone(),
                client_secret: settings.client_secret.clone(),
            }),
            permits: Semaphore::new(settings.concurrency),
        })
    }

    /// `{environment}/api/data/v9.2/{rest}`, where `rest` is already percent-encoded.
    pub(crate) fn api_url(&self, rest: &str) -> ConnectorResult<Url> {
        Url::parse(&format!("{}{rest}", self.api_base)).map_err(|e| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("{}…", self.api_base.path()),
            detail: format!("cannot form a request URL: {e}"),
        })
    }

    /// The Web API base URL (`…/api/data/v9.2/`).
    pub(crate) fn api_base(&self) -> &Url {
        &self.api_base
    }

    pub(crate) fn stats(&self) -> Arc<HttpStats> {
        self.http.stats()
    }

    pub(crate) fn token_fetches(&self) -> u64 {
        self.tokens.fetches()
    }

    /// Makes sure a token can be had.
    pub(crate) async fn authenticate(&self) -> ConnectorResult<()> {
        self.tokens.token(&self.http).await.map(|_| ())
    }

    /// Sends `call`, renewing the token whenever Dataverse refuses the one it used (401).
    /// Returns every final response; the caller decides what a 4xx means (see
    /// [`Client::send_ok`]).
    pub(crate) async fn send(&self, call: &Call<'_>) -> ConnectorResult<HttpResponse> {
        let endpoint = endpoint(&call.method, &call.url);
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ConnectorError::Network {
                vendor: VENDOR,
                endpoint: endpoint.clone(),
                detail: "the connector is shutting down".into(),
            })?;
        let mut token = self.tokens.token(&self.http).await?;
        let mut renewals = 0;
        loop {
            let secret = token.secret();
            let response = self
                .http
                .send_capped(&endpoint, call.cap, |c| {
                    let mut request = c
                        .request(call.method.clone(), call.url.clone())
                        .bearer_auth(secret.expose_secret())
                        .header(ACCEPT, "application/json")
                        .header("OData-MaxVersion", "4.0")
                        .header("OData-Version", "4.0");
                    for (name, value) in call.headers {
                        request = request.header(*name, *value);
                    }
                    if let Some((content_type, body)) = &call.body {
                        request = request
                            .header(CONTENT_TYPE, content_type.as_str())
                            .body(body.clone());
                    }
                    request
                })
                .await?;
            if response.status.as_u16() == 401 {
                token = self
                    .tokens
                    .refused(&self.http, &token, &endpoint, &mut renewals)
                    .await?;
                continue;
            }
            self.tokens.accepted(&token);
            return Ok(response);
        }
    }

    /// Sends `call` and fails on any non-2xx answer, naming the endpoint.
    pub(crate) async fn send_ok(&self, call: &Call<'_>) -> ConnectorResult<HttpResponse> {
        let response = self.send(call).await?;
        if response.is_success() {
            Ok(response)
        } else {
            Err(self
                .http
                .error_for(&endpoint(&call.method, &call.url), &response))
        }
    }

    /// The error for a non-2xx `response` to `endpoint`, naming the vendor and endpoint.
    pub(crate) fn error_for(&self, endpoint: &str, response: &HttpResponse) -> ConnectorError {
        self.http.error_for(endpoint, response)
    }

    /// The organisation id of the environment, from the `WhoAmI` function
    /// (`GET /api/data/v9.2/WhoAmI`, `OrganizationId`).
    pub(crate) async fn account_id(&self) -> ConnectorResult<ferry_core::AccountId> {
        let url = self.api_url("WhoAmI")?;
        let endpoint = endpoint(&Method::GET, &url);
        let answer: serde_json::Value = self.get_json_capped(url, &[], BodyCap::Small).await?;
        ferry_core::AccountId::from_json(
            VENDOR,
            &endpoint,
            "organisation id",
            &answer,
            "/OrganizationId",
        )
    }

    /// The environment's clock: the `Date` header of a `GET WhoAmI` (whole seconds), in
    /// milliseconds since the Unix epoch.
    pub(crate) async fn server_time_ms(&self) -> ConnectorResult<i64> {
        let call = Call {
            method: Method::GET,
            url: self.api_url("WhoAmI")?,
            headers: &[],
            body: None,
            cap: BodyCap::Small,
        };
        let response = self.send_ok(&call).await?;
        response.date_ms().ok_or_else(|| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: endpoint(&call.method, &call.url),
            detail: "the answer has no readable Date header, so the environment's clock, where \
                     the next sync starts, is unknown"
                .into(),
        })
    }

    /// `GET` a JSON resource.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
        headers: &[(&'static str, &str)],
    ) -> ConnectorResult<T> {
        self.get_json_capped(url, headers, BodyCap::Page).await
    }

    /// `GET` a JSON resource whose answer may hold at most `cap` (small for `WhoAmI`).
    pub(crate) async fn get_json_capped<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
        headers: &[(&'static str, &str)],
        cap: BodyCap,
    ) -> ConnectorResult<T> {
        let call = Call {
            method: Method::GET,
            url,
            headers,
            body: None,
            cap,
        };
        let response = self.send_ok(&call).await?;
        response.json(VENDOR, &endpoint(&call.method, &call.url))
    }
}

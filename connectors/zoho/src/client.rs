//! Authenticated calls to the Zoho API: `Authorization: Zoho-oauthtoken …` on every request,
//! at most `max_concurrent_requests` in flight (Zoho limits simultaneous calls per org), a
//! token renewal and retry whenever Zoho answers 401 `INVALID_TOKEN` to the token a request
//! used (bounded by the shared token cache).

use std::sync::Arc;

use ferry_core::http::{HttpClient, HttpResponse, HttpStats, RetrySettings};
use ferry_core::{ConnectorError, ConnectorResult};
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use secrecy::ExposeSecret;
use tokio::sync::Semaphore;
use url::Url;

use crate::VENDOR;
use crate::auth::{Auth, Refresh};
use crate::config::{Credentials, Settings};
use crate::policy::{ZohoPolicy, error_code};

/// The org's API, authenticated.
pub(crate) struct Client {
    http: HttpClient,
    auth: Auth,
    api_url: Url,
    permits: Semaphore,
    /// The last `GET /crm/v8/org` answer (the org's settings, which do not change within a
    /// run): asked for the clock or the org id anyway, it answers the settings without a call.
    org: std::sync::Mutex<Option<serde_json::Value>>,
}

impl Client {
    pub(crate) fn new(settings: &Settings, credentials: Credentials) -> ConnectorResult<Client> {
        let retry: RetrySettings = settings.retry.clone();
        let http = HttpClient::new(Arc::new(ZohoPolicy), None, retry)?;
        Ok(Client {
            http,
            auth: Auth::new(Refresh::new(&settings.accounts_url, credentials)?),
            api_url: settings.api_url.clone(),
            permits: Semaphore::new(settings.max_concurrent),
            org: std::sync::Mutex::new(None),
        })
    }

    pub(crate) fn stats(&self) -> Arc<HttpStats> {
        self.http.stats()
    }

    pub(crate) fn granted_scopes(&self) -> Option<Vec<String>> {
        self.auth.endpoint().granted_scopes()
    }

    pub(crate) fn token_fetches(&self) -> u64 {
        self.auth.fetches()
    }

    /// Sends a request to `path` (under `/crm/v8/`), renewing the token whenever Zoho refuses
    /// the one it used. Returns every final response, error statuses included (a 400 upsert answer carries
    /// per-record results); fails on a refused token, the network, or exhausted retries.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> ConnectorResult<HttpResponse> {
        self.send_with(method, path, query, body, &[]).await
    }

    /// Like [`Client::send`], with extra request `headers` (`If-Modified-Since`).
    pub(crate) async fn send_with(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> ConnectorResult<HttpResponse> {
        let endpoint = format!("{method} {path}");
        if !path.starts_with("/crm/v8/") || path.contains("..") || path.contains("//") {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint,
                detail: "refusing a path outside /crm/v8/".into(),
            });
        }
        let mut url = self
            .api_url
            .join(path)
            .map_err(|e| ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: endpoint.clone(),
                detail: format!("cannot form the request URL: {e}"),
            })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let body =
            body.map(serde_json::to_vec)
                .transpose()
                .map_err(|e| ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: endpoint.clone(),
                    detail: format!("cannot encode the request: {e}"),
                })?;
        let mut session = self.auth.token(&self.http).await?;
        let mut renewals = 0;
        loop {
            let response = {
                let _permit =
                    self.permits
                        .acquire()
                        .await
                        .map_err(|_| ConnectorError::Malformed {
                            vendor: VENDOR,
                            endpoint: endpoint.clone(),
                            detail: "the request limiter was closed".into(),
                        })?;
                let header = format!("Zoho-oauthtoken {}", session.secret().expose_secret());
                self.http
                    .send(&endpoint, |c| {
                        let mut request = c
                            .request(method.clone(), url.clone())
                            .header(AUTHORIZATION, header.as_str())
                            .header(ACCEPT, "application/json");
                        for (name, value) in headers {
                            request = request.header(*name, *value);
                        }
                        if let Some(body) = &body {
                            request = request
                                .header(CONTENT_TYPE, "application/json")
                                .body(body.clone());
                        }
                        request
                    })
                    .await?
            };
            if response.status.as_u16() == 401
                && error_code(&response).as_deref() == Some("INVALID_TOKEN")
            {
                session = self
                    .auth
                    .refused(&self.http, &session, &endpoint, &mut renewals)
                    .await?;
                continue;
            }
            self.auth.accepted(&session);
            if matches!(response.status.as_u16(), 401 | 403) {
                return Err(self.http.error_for(&endpoint, &response));
            }
            return Ok(response);
        }
    }

    /// Like [`Client::send`], but any status other than 2xx is an error naming the endpoint.
    pub(crate) async fn send_ok(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> ConnectorResult<HttpResponse> {
        let response = self.send(method.clone(), path, query, body).await?;
        if response.is_success() {
            Ok(response)
        } else {
            Err(self.http.error_for(&format!("{method} {path}"), &response))
        }
    }

    /// The org id of the credentials' org, from `GET /crm/v8/org` (`org[0].id`; scope
    /// `ZohoCRM.org.READ`).
    pub(crate) async fn account_id(&self) -> ConnectorResult<ferry_core::AccountId> {
        const PATH: &str = "/crm/v8/org";
        let response = self.send_ok(Method::GET, PATH, &[], None).await?;
        let endpoint = format!("GET {PATH}");
        let answer: serde_json::Value = response.json(VENDOR, &endpoint)?;
        self.remember_org(&answer);
        ferry_core::AccountId::from_json(VENDOR, &endpoint, "org id", &answer, "/org/0/id")
    }

    /// The org's details (`GET /crm/v8/org`, scope `ZohoCRM.org.READ`): the answer of an
    /// earlier call of this run, else one call.
    pub(crate) async fn org(&self) -> ConnectorResult<serde_json::Value> {
        const PATH: &str = "/crm/v8/org";
        let known = self
            .org
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(answer) = known {
            return Ok(answer);
        }
        let response = self.send_ok(Method::GET, PATH, &[], None).await?;
        let answer: serde_json::Value = response.json(VENDOR, &format!("GET {PATH}"))?;
        self.remember_org(&answer);
        Ok(answer)
    }

    fn remember_org(&self, answer: &serde_json::Value) {
        *self
            .org
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(answer.clone());
    }

    /// Zoho's clock now: the `Date` header of `GET /crm/v8/org` (one credit), in ms since the
    /// epoch, whole seconds.
    pub(crate) async fn server_time_ms(&self) -> ConnectorResult<i64> {
        const PATH: &str = "/crm/v8/org";
        let response = self.send_ok(Method::GET, PATH, &[], None).await?;
        if let Ok(answer) = response.json::<serde_json::Value>(VENDOR, PATH) {
            self.remember_org(&answer);
        }
        response.date_ms().ok_or_else(|| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("GET {PATH}"),
            detail: "the answer has no readable Date header, so Zoho's clock, where the next \
                     sync starts, is unknown"
                .into(),
        })
    }

    /// A final error response as a [`ConnectorError`].
    pub(crate) fn error_for(&self, endpoint: &str, response: &HttpResponse) -> ConnectorError {
        self.http.error_for(endpoint, response)
    }
}

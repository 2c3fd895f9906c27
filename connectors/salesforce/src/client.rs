//! Authenticated REST calls to the org: the session's bearer token on every request, one
//! token renewal and retry on 401, and errors that say whose fault they are.

use ferry_core::http::{HttpClient, HttpResponse, HttpStats};
use ferry_core::{ConnectorError, ConnectorResult};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use secrecy::ExposeSecret;
use std::sync::Arc;

use crate::VENDOR;
use crate::auth::Auth;
use crate::policy::{REQUEST_LIMIT_EXCEEDED, error_code};

/// The org's REST API, authenticated.
pub(crate) struct Client {
    http: HttpClient,
    auth: Auth,
    /// `vNN.N`.
    version: String,
}

/// One REST request: where, what, and any extra headers.
pub(crate) struct Call<'a> {
    pub method: Method,
    /// A path under the instance URL, starting `/services/data/`.
    pub path: &'a str,
    pub query: &'a [(&'a str, &'a str)],
    pub body: Option<Vec<u8>>,
    pub headers: &'a [(&'static str, &'a str)],
}

impl Client {
    pub(crate) fn new(http: HttpClient, auth: Auth, version: String) -> Client {
        Client {
            http,
            auth,
            version,
        }
    }

    /// `/services/data/vNN.N/{rest}`.
    pub(crate) fn data_path(&self, rest: &str) -> String {
        format!("/services/data/{}/{rest}", self.version)
    }

    pub(crate) fn stats(&self) -> Arc<HttpStats> {
        self.http.stats()
    }

    pub(crate) fn token_fetches(&self) -> u64 {
        self.auth.fetches()
    }

    /// Makes sure a session exists (fetches a token if needed).
    pub(crate) async fn authenticate(&self) -> ConnectorResult<()> {
        self.auth.session(&self.http).await.map(|_| ())
    }

    /// Sends `call`, renewing the session once if Salesforce says it is invalid or expired.
    /// Returns the 2xx response; anything else is an error naming the endpoint.
    pub(crate) async fn send(&self, call: Call<'_>) -> ConnectorResult<HttpResponse> {
        let endpoint = format!("{} {}", call.method, call.path);
        if !call.path.starts_with("/services/data/")
            || call.path.contains("..")
            || call.path.contains("//")
        {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint,
                detail: "refusing a path outside /services/data/".into(),
            });
        }
        let mut session = self.auth.session(&self.http).await?;
        let mut renewed = false;
        loop {
            let mut url =
                session
                    .instance_url
                    .join(call.path)
                    .map_err(|e| ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint: endpoint.clone(),
                        detail: format!("cannot form the request URL: {e}"),
                    })?;
            if !call.query.is_empty() {
                url.query_pairs_mut().extend_pairs(call.query);
            }
            let token = &session.token;
            let response = self
                .http
                .send(&endpoint, |c| {
                    let mut request = c
                        .request(call.method.clone(), url.clone())
                        .bearer_auth(token.expose_secret())
                        .header(ACCEPT, "application/json");
                    for (name, value) in call.headers {
                        request = request.header(*name, *value);
                    }
                    if let Some(body) = &call.body {
                        request = request
                            .header(CONTENT_TYPE, "application/json")
                            .body(body.clone());
                    }
                    request
                })
                .await?;
            if response.status.as_u16() == 401 && !renewed {
                renewed = true;
                session = self.auth.renew(&self.http, &session).await?;
                continue;
            }
            if response.is_success() {
                return Ok(response);
            }
            return Err(self.error_for(&endpoint, &response));
        }
    }

    /// A final error response as a [`ConnectorError`]. An exhausted daily allocation is the
    /// vendor's limit, not a credential problem, so it is a status error rather than `Auth`.
    fn error_for(&self, endpoint: &str, response: &HttpResponse) -> ConnectorError {
        let status = response.status.as_u16();
        if status == 403 && error_code(response).as_deref() == Some(REQUEST_LIMIT_EXCEEDED) {
            let detail = ferry_core::http::VendorPolicy::error_detail(
                &crate::policy::SalesforcePolicy,
                response,
            );
            return ConnectorError::Status {
                vendor: VENDOR,
                endpoint: endpoint.to_owned(),
                status,
                detail,
            };
        }
        self.http.error_for(endpoint, response)
    }
}

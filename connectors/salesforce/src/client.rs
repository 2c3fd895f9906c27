//! Authenticated REST calls to the org: the session's bearer token on every request, a
//! renewal and retry whenever the token a request used is refused (401, bounded by the shared
//! token cache), SOQL queries and their `nextRecordsUrl` paging, and errors
//! that say whose fault they are. The source and the sink share all of it.

use ferry_core::http::{BodyCap, HttpClient, HttpResponse, HttpStats};
use ferry_core::{ConnectorError, ConnectorResult};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::sync::Arc;

use crate::VENDOR;
use crate::auth::{Auth, Login};
use crate::config::{SalesforceConfig, Settings};
use crate::policy::{REQUEST_LIMIT_EXCEEDED, SalesforcePolicy, error_code};
use ferry_core::json::Object;

/// OpenID Connect's userinfo endpoint on the instance, which names the org.
pub(crate) const USERINFO_PATH: &str = "/services/oauth2/userinfo";
/// The request header that sets a query's page size (`batchSize=N`, 200 to 2,000).
const QUERY_OPTIONS: &str = "Sforce-Query-Options";
/// Longest query locator ferry follows; real ones are about 25 characters.
const MAX_LOCATOR: usize = 64;

/// One page of a SOQL query's results, its records' text borrowed from the response body.
#[derive(Debug, Deserialize)]
pub(crate) struct QueryPage<'a> {
    /// How many records the whole query matches (all pages), or the count of `COUNT()`.
    #[serde(rename = "totalSize", default)]
    pub total_size: Option<u64>,
    /// Whether this is the last page.
    #[serde(default)]
    pub done: bool,
    /// The path of the next page, when not `done`.
    #[serde(rename = "nextRecordsUrl", default)]
    pub next_records_url: Option<String>,
    /// This page's records.
    #[serde(default, borrow)]
    pub records: Vec<Object<'a>>,
}

/// The answer to a query, to be parsed with [`QueryResponse::page`] (whose records borrow
/// from it).
pub(crate) struct QueryResponse {
    endpoint: String,
    response: HttpResponse,
}

impl QueryResponse {
    /// The page of results in the answer.
    pub(crate) fn page(&mut self) -> ConnectorResult<QueryPage<'_>> {
        self.response.json_borrowed(VENDOR, &self.endpoint)
    }
}

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
    /// The most bytes the answer may hold.
    pub cap: BodyCap,
}

impl Client {
    /// Builds the settings and the client of `config` (no I/O: the token is fetched on first
    /// use). Errors name the offending key as `{key_prefix}.{setting}`.
    pub(crate) fn build(
        config: &SalesforceConfig,
        key_prefix: &str,
    ) -> ConnectorResult<(Settings, Client)> {
        let settings = config.settings(key_prefix)?;
        let secret = |name: &str, r: &ferry_core::SecretRef| {
            r.resolve().map_err(|e| ConnectorError::Config {
                vendor: VENDOR,
                key: format!("{key_prefix}.{name}"),
                detail: e.to_string(),
            })
        };
        let client_id = secret("client_id", &config.client_id)?;
        let client_secret = secret("client_secret", &config.client_secret)?;
        let auth = Auth::new(Login::new(
            &settings.login_url,
            format!("{key_prefix}.login_url"),
            client_id,
            client_secret,
        )?);
        let http = HttpClient::new(
            Arc::new(SalesforcePolicy),
            settings.rate_limit,
            settings.retry.clone(),
        )?;
        let client = Client {
            http,
            auth,
            version: settings.api_version.clone(),
        };
        Ok((settings, client))
    }

    /// `/services/data/vNN.N/{rest}`.
    pub(crate) fn data_path(&self, rest: &str) -> String {
        format!("/services/data/{}/{rest}", self.version)
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

    /// Checks credentials and connectivity: a token, then `GET …/limits`, which every API user
    /// may call and which costs one API request.
    pub(crate) async fn check(&self) -> ConnectorResult<()> {
        self.auth.token(&self.http).await?;
        let path = self.data_path("limits");
        self.send(Call {
            method: Method::GET,
            path: &path,
            query: &[],
            body: None,
            headers: &[],
            cap: BodyCap::Small,
        })
        .await?;
        tracing::debug!(vendor = VENDOR, "credentials accepted");
        Ok(())
    }

    /// The org id of the credentials' org, from OpenID Connect's `GET /services/oauth2/userinfo`
    /// on the instance (`organization_id`).
    pub(crate) async fn account_id(&self) -> ConnectorResult<ferry_core::AccountId> {
        let response = self
            .send(Call {
                method: Method::GET,
                path: USERINFO_PATH,
                query: &[],
                body: None,
                headers: &[],
                cap: BodyCap::Small,
            })
            .await?;
        let endpoint = format!("GET {USERINFO_PATH}");
        let answer: serde_json::Value = response.json(VENDOR, &endpoint)?;
        ferry_core::AccountId::from_json(VENDOR, &endpoint, "org id", &answer, "/organization_id")
    }

    /// The org's clock now: the `Date` header of `GET …/limits` (one cheap request), in ms
    /// since the epoch, whole seconds.
    pub(crate) async fn server_time_ms(&self) -> ConnectorResult<i64> {
        let path = self.data_path("limits");
        let response = self
            .send(Call {
                method: Method::GET,
                path: &path,
                query: &[],
                body: None,
                headers: &[],
                cap: BodyCap::Small,
            })
            .await?;
        response.date_ms().ok_or_else(|| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("GET {path}"),
            detail: "the answer has no readable Date header, so the org's clock, where the next \
                     sync starts, is unknown"
                .into(),
        })
    }

    /// The first page of `soql` (`GET …/query?q=`, which leaves deleted records out), with
    /// `batch_size` records per page if given.
    pub(crate) async fn query(
        &self,
        soql: &str,
        batch_size: Option<usize>,
    ) -> ConnectorResult<QueryResponse> {
        self.query_resource("query", soql, batch_size).await
    }

    /// The first page of `soql` through `GET …/queryAll?q=`: live records and those deleted
    /// into the Recycle Bin. Its `nextRecordsUrl` names `query` (Salesforce's own), so later
    /// pages come through [`Client::query_more`].
    pub(crate) async fn query_all(
        &self,
        soql: &str,
        batch_size: Option<usize>,
    ) -> ConnectorResult<QueryResponse> {
        self.query_resource("queryAll", soql, batch_size).await
    }

    async fn query_resource(
        &self,
        resource: &str,
        soql: &str,
        batch_size: Option<usize>,
    ) -> ConnectorResult<QueryResponse> {
        let path = self.data_path(resource);
        let options = batch_size.map(|n| format!("batchSize={n}"));
        let headers: Vec<(&'static str, &str)> = options
            .as_deref()
            .map(|o| (QUERY_OPTIONS, o))
            .into_iter()
            .collect();
        let response = self
            .send(Call {
                method: Method::GET,
                path: &path,
                query: &[("q", soql)],
                body: None,
                headers: &headers,
                cap: BodyCap::Page,
            })
            .await?;
        Ok(QueryResponse {
            endpoint: format!("GET {path}"),
            response,
        })
    }

    /// The page at `next`, a `nextRecordsUrl` Salesforce handed out. Only a query-locator path
    /// of this API version on the org's instance is followed: anything else (an absolute URL,
    /// another host, another resource) is refused without a request, since the cursor is
    /// opaque data that may have been stored and tampered with.
    pub(crate) async fn query_more(
        &self,
        next: &str,
        batch_size: Option<usize>,
    ) -> ConnectorResult<QueryResponse> {
        let query_path = self.data_path("query");
        let endpoint = format!("GET {query_path}/{{locator}}");
        if !self.is_query_locator(next) {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint,
                detail: format!(
                    "refusing to follow a next-page URL that is not a query locator path \
                     ({query_path}/<locator>) on the org's instance"
                ),
            });
        }
        let options = batch_size.map(|n| format!("batchSize={n}"));
        let headers: Vec<(&'static str, &str)> = options
            .as_deref()
            .map(|o| (QUERY_OPTIONS, o))
            .into_iter()
            .collect();
        let response = self
            .send(Call {
                method: Method::GET,
                path: next,
                query: &[],
                body: None,
                headers: &headers,
                cap: BodyCap::Page,
            })
            .await?;
        Ok(QueryResponse { endpoint, response })
    }

    /// Whether `path` is `/services/data/vNN.N/query/<locator>` for this client's version, the
    /// locator made of letters, digits and dashes only.
    pub(crate) fn is_query_locator(&self, path: &str) -> bool {
        let prefix = format!("{}/", self.data_path("query"));
        path.strip_prefix(&prefix).is_some_and(|locator| {
            !locator.is_empty()
                && locator.len() <= MAX_LOCATOR
                && locator
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    }

    /// Runs `soql` and follows `nextRecordsUrl` to the end, handing every record to `each`
    /// (records borrow from their page, so they are not collected).
    pub(crate) async fn query_each(
        &self,
        soql: &str,
        mut each: impl FnMut(&Object<'_>),
    ) -> ConnectorResult<()> {
        let mut response = self.query(soql, None).await?;
        loop {
            let page = response.page()?;
            page.records.iter().for_each(&mut each);
            match (page.done, page.next_records_url) {
                (true, _) => break,
                (false, Some(next)) => response = self.query_more(&next, None).await?,
                (false, None) => {
                    return Err(ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint: format!("GET {}", self.data_path("query")),
                        detail: "a page with done: false has no nextRecordsUrl".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Sends `call`, renewing the session whenever Salesforce says the one it used is invalid
    /// or expired (within the token cache's bounds).
    /// Returns the 2xx response; anything else is an error naming the endpoint.
    pub(crate) async fn send(&self, call: Call<'_>) -> ConnectorResult<HttpResponse> {
        let endpoint = format!("{} {}", call.method, call.path);
        let served = call.path.starts_with("/services/data/") || call.path == USERINFO_PATH;
        if !served || call.path.contains("..") || call.path.contains("//") {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint,
                detail: "refusing a path outside /services/data/ and the userinfo endpoint".into(),
            });
        }
        // Shared by every attempt, not copied for each (a Bulk job's CSV is megabytes).
        let body = call.body.map(bytes::Bytes::from);
        let mut session = self.auth.token(&self.http).await?;
        let mut renewals = 0;
        loop {
            let mut url =
                session
                    .extra()
                    .join(call.path)
                    .map_err(|e| ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint: endpoint.clone(),
                        detail: format!("cannot form the request URL: {e}"),
                    })?;
            if !call.query.is_empty() {
                url.query_pairs_mut().extend_pairs(call.query);
            }
            let token = session.secret();
            // JSON both ways unless the call says otherwise (Bulk API 2.0 sends and reads CSV).
            let named = |h: &str| call.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(h));
            let (accept, content_type) = (!named(ACCEPT.as_str()), !named(CONTENT_TYPE.as_str()));
            let response = self
                .http
                .send_capped(&endpoint, call.cap, |c| {
                    let mut request = c
                        .request(call.method.clone(), url.clone())
                        .bearer_auth(token.expose_secret());
                    if accept {
                        request = request.header(ACCEPT, "application/json");
                    }
                    for (name, value) in call.headers {
                        request = request.header(*name, *value);
                    }
                    if let Some(body) = &body {
                        if content_type {
                            request = request.header(CONTENT_TYPE, "application/json");
                        }
                        request = request.body(body.clone());
                    }
                    request
                })
                .await?;
            if response.status.as_u16() == 401 {
                session = self
                    .auth
                    .refused(&self.http, &session, &endpoint, &mut renewals)
                    .await?;
                continue;
            }
            self.auth.accepted(&session);
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

//! An authenticated Pipedrive API client: the `x-api-token` header, the base URL, Pipedrive's
//! envelope, and two limiters (the burst window for everything, search's own for search).

use std::future::Future;
use std::sync::Arc;

use ferry_core::http::{BodyCap, HttpClient, HttpResponse, HttpStats, RateLimit, Sent};
use ferry_core::{ConnectorError, ConnectorResult};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::VENDOR;
use crate::config::{PipedriveConfig, Settings};
use crate::policy::PipedrivePolicy;

/// One Pipedrive company account's client.
pub struct PipedriveClient {
    http: HttpClient,
    /// Search has its own client because Pipedrive limits it separately (10 requests per
    /// 2 seconds on every plan); through the main limiter it would be paced at the burst limit.
    search: HttpClient,
    base_url: Url,
    token: SecretString,
}

impl PipedriveClient {
    /// A client for the account `config` describes; also returns the validated settings.
    pub(crate) fn new(
        config: &PipedriveConfig,
        key_prefix: &str,
    ) -> ConnectorResult<(PipedriveClient, Settings)> {
        let settings = config.settings(key_prefix)?;
        let policy = if settings.rate_limit_is_cap {
            PipedrivePolicy::capped(settings.rate_limit.requests)
        } else {
            PipedrivePolicy::uncapped()
        };
        let http = HttpClient::new(
            Arc::new(policy),
            Some(settings.rate_limit),
            settings.retry.clone(),
        )?;
        let search = HttpClient::new(
            Arc::new(PipedrivePolicy::ignoring_announced_limits()),
            Some(settings.search_rate_limit),
            settings.retry.clone(),
        )?;
        let client = PipedriveClient {
            http,
            search,
            base_url: settings.base_url.clone(),
            token: settings.token.clone(),
        };
        Ok((client, settings))
    }

    /// The URL of `path` (which starts with `/`) under the base URL, with `query`.
    fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base_url.clone();
        let joined = format!("{}{path}", self.base_url.path().trim_end_matches('/'));
        url.set_path(&joined);
        url.set_query(None);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().copied());
        }
        url
    }

    /// The request `method path?query` with `body`, authenticated, for the HTTP client to send.
    fn request<'a>(
        &'a self,
        method: Method,
        url: Url,
        body: Option<&'a Value>,
    ) -> impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + 'a {
        move |c| {
            let req = c
                .request(method.clone(), url.clone())
                .header("x-api-token", self.token.expose_secret());
            match body {
                Some(b) => req.json(b),
                None => req,
            }
        }
    }

    async fn send(
        &self,
        client: &HttpClient,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> ConnectorResult<HttpResponse> {
        // Endpoints in messages are method and path: never the query (it carries search terms).
        let endpoint = format!("{method} {}", endpoint_path(path));
        let url = self.url(path, query);
        client
            .send(&endpoint, self.request(method, url, body))
            .await
    }

    /// Parses a successful response's envelope; any other status is an error.
    fn envelope(
        &self,
        client: &HttpClient,
        method: &Method,
        path: &str,
        response: HttpResponse,
    ) -> ConnectorResult<Value> {
        let endpoint = format!("{method} {}", endpoint_path(path));
        if !response.is_success() {
            return Err(client.error_for(&endpoint, &response));
        }
        let body: Value = response.json(VENDOR, &endpoint)?;
        if body.get("success").and_then(Value::as_bool) != Some(true) {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint,
                detail: "a 2xx response without `success: true`".into(),
            });
        }
        Ok(body)
    }

    /// `GET path?query`: the whole envelope of a successful answer.
    pub(crate) async fn get(&self, path: &str, query: &[(&str, &str)]) -> ConnectorResult<Value> {
        let response = self
            .send(&self.http, Method::GET, path, query, None)
            .await?;
        self.envelope(&self.http, &Method::GET, path, response)
    }

    /// `GET path?query`: a successful answer as it came (its envelope not read, for a caller
    /// that parses it borrowed), and Pipedrive's clock when it answered (its `Date` header,
    /// whole seconds; `None` if unreadable); any other status is an error.
    pub(crate) async fn get_response(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> ConnectorResult<(HttpResponse, Option<i64>)> {
        let response = self
            .send(&self.http, Method::GET, path, query, None)
            .await?;
        if !response.is_success() {
            let endpoint = format!("GET {}", endpoint_path(path));
            return Err(self.http.error_for(&endpoint, &response));
        }
        let date = response.date_ms();
        Ok((response, date))
    }

    /// [`PipedriveClient::get`] with the body capped at [`BodyCap::Small`], for the check.
    pub(crate) async fn get_small(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> ConnectorResult<Value> {
        let endpoint = format!("GET {}", endpoint_path(path));
        let url = self.url(path, query);
        let response = self
            .http
            .send_capped(
                &endpoint,
                BodyCap::Small,
                self.request(Method::GET, url, None),
            )
            .await?;
        self.envelope(&self.http, &Method::GET, path, response)
    }

    /// The company id of the account, from `GET /v1/users/me` (`data.company_id`).
    pub(crate) async fn account_id(&self) -> ConnectorResult<ferry_core::AccountId> {
        const PATH: &str = "/v1/users/me";
        let answer = self.get_small(PATH, &[]).await?;
        ferry_core::AccountId::from_json(
            crate::VENDOR,
            &format!("GET {PATH}"),
            "company id",
            &answer,
            "/data/company_id",
        )
    }

    /// Pipedrive's clock now, in epoch milliseconds (whole seconds): the `Date` header of `GET
    /// /v1/users/me`, a small answer every token may read.
    pub(crate) async fn server_time_ms(&self) -> ConnectorResult<i64> {
        const PATH: &str = "/v1/users/me";
        let endpoint = format!("GET {PATH}");
        let url = self.url(PATH, &[]);
        let response = self
            .http
            .send_capped(
                &endpoint,
                BodyCap::Small,
                self.request(Method::GET, url, None),
            )
            .await?;
        if !response.is_success() {
            return Err(self.http.error_for(&endpoint, &response));
        }
        response.date_ms().ok_or_else(|| no_date(endpoint))
    }

    /// `GET path?query` through the search limiter.
    pub(crate) async fn search(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> ConnectorResult<Value> {
        let response = self
            .send(&self.search, Method::GET, path, query, None)
            .await?;
        self.envelope(&self.search, &Method::GET, path, response)
    }

    /// A write; the response is returned whatever its status, for the caller to decide
    /// whether a 4xx is the record's fault.
    pub(crate) async fn write(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> ConnectorResult<HttpResponse> {
        self.send(&self.http, method, path, &[], Some(body)).await
    }

    /// `DELETE path`, with no body: the response, whatever its status.
    pub(crate) async fn delete(&self, path: &str) -> ConnectorResult<HttpResponse> {
        self.send(&self.http, Method::DELETE, path, &[], None).await
    }

    /// A create (`POST path`): Pipedrive has no upsert, so a create sent twice makes two
    /// records. After a failure that leaves open whether Pipedrive saved it (the connection
    /// broke, a timeout, a 5xx), `landed` looks for it before it is sent again, and a 2xx whose
    /// body is cut off is never sent again ([`HttpClient::send_create`]); `Sent::Landed` carries
    /// what `landed` found. Otherwise like [`PipedriveClient::write`].
    pub(crate) async fn create<T, C, Fut>(
        &self,
        path: &str,
        body: &Value,
        landed: C,
    ) -> ConnectorResult<Sent<T>>
    where
        C: Fn() -> Fut,
        Fut: Future<Output = ConnectorResult<Option<T>>>,
    {
        let endpoint = format!("POST {}", endpoint_path(path));
        let url = self.url(path, &[]);
        self.http
            .send_create(
                &endpoint,
                self.request(Method::POST, url, Some(body)),
                landed,
            )
            .await
    }

    /// The envelope of a write's response, whose failure is the whole operation's (creating a
    /// field).
    pub(crate) fn write_envelope(
        &self,
        method: &Method,
        path: &str,
        response: HttpResponse,
    ) -> ConnectorResult<Value> {
        self.envelope(&self.http, method, path, response)
    }

    /// The error a final non-2xx response stands for.
    pub(crate) fn error_for(&self, endpoint: &str, response: &HttpResponse) -> ConnectorError {
        self.http.error_for(endpoint, response)
    }

    /// Both clients' counters (requests, retries, 429s, waits, budget cost), summed when called.
    pub fn stats(&self) -> Arc<HttpStats> {
        let total = HttpStats::default();
        for stats in [self.http.stats(), self.search.stats()] {
            total.absorb(&stats);
        }
        Arc::new(total)
    }

    /// The burst limit in force (configured, or announced since).
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.http.rate_limit()
    }
}

/// A path for messages: record ids replaced by `{id}`, so logs and errors carry no ids of
/// customer records beyond what the caller names itself.
pub(crate) fn endpoint_path(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                "{id}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// An answer without a readable `Date` header: Pipedrive's clock is unknown.
pub(crate) fn no_date(endpoint: String) -> ConnectorError {
    ConnectorError::Malformed {
        vendor: VENDOR,
        endpoint,
        detail: "the answer has no readable Date header, so Pipedrive's clock, where the next \
                 sync or the open window of a full read starts, is unknown"
            .into(),
    }
}

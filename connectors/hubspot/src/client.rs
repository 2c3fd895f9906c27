//! An authenticated HubSpot API client: the bearer token, the base URL, and JSON requests
//! through ferry's shared HTTP layer (rate limiting, retries, vendor-aware errors).

use std::sync::Arc;
use std::time::Duration;

use ferry_core::http::{BodyCap, HttpClient, HttpResponse, HttpStats, RateLimit, RetrySettings};
use ferry_core::{ConnectorError, ConnectorResult};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::config::{HubspotConfig, RoleSettings, Settings};
use crate::policy::HubspotPolicy;

/// HubSpot's search limit: "The search endpoints are rate limited to five requests per second
/// per account" (an older changelog says four per token; the current guide says five).
const SEARCH_LIMIT: u32 = 5;
/// The second the search clients pace [`SEARCH_LIMIT`] over: 100 ms
/// longer than HubSpot's, so that a request delayed up to about 120 ms on its way (a loaded
/// machine, the network) still finds at most five in any second HubSpot counts: at 98 % of
/// 5 per 1.1 s (4.45 a second) six requests span 1.12 s, where at 4.9 a second they span
/// 1.02 s and 20 ms of delay makes a 429.
const SEARCH_PACED_OVER: Duration = Duration::from_millis(1_100);
/// The search client's patience: it feeds progress estimates, the sink's count, and read-backs
/// that fall back to batch read, so a slow or refusing search endpoint must not hold up a run
/// for long.
const SEARCH_MAX_RETRIES: usize = 2;
/// The longest one search request may take.
const SEARCH_TIMEOUT: Duration = Duration::from_secs(10);

/// One HubSpot account's client: one token, and two limiters (the ten-second burst limit for
/// everything but search, five per second for search), each with its own connection pool.
pub struct HubspotClient {
    http: HttpClient,
    /// Search has its own client because its limit is separate and different: HubSpot exempts
    /// search from the ten-second bucket (`x-hubspot-rate-limit-exemptions: ten-secondly`) and
    /// limits it to five per second instead. Through the main limiter, search would both take
    /// burst permits it does not use and be paced at up to 9.8 per second (98% of 100 per
    /// 10 s, or more once a higher limit is announced), above its own limit. Pacing is even
    /// and burst-free at 98% of 5 per second, so this client alone never trips HubSpot's
    /// per-second window; another app searching the same account still can, and its 429 is
    /// retried like any other.
    search: HttpClient,
    /// Search for a source's reads, where it is the read itself, not an estimate: incremental
    /// reads (`ferry sync`), the search side of a partitioned full read and the count beside
    /// it. The same five per 1.1 s, with the run's own patience (timeouts and retries).
    reads: HttpClient,
    /// The v4 association batch endpoints, which HubSpot's spec also exempts from the
    /// ten-second bucket (`x-hubspot-rate-limit-exemptions: ten-secondly`): paced by the burst
    /// limiter they would only slow the sink down. Unpaced, they still count towards the daily
    /// limit, and a 429 is retried like any other.
    exempt: HttpClient,
    base_url: Url,
    token: SecretString,
    /// Records (and owners) per list page (`page_size`).
    page_size: u32,
}

impl HubspotClient {
    /// A client for the account `config` describes; errors name `key_prefix.<key>`. Also
    /// returns the settings the source or sink itself needs.
    pub(crate) fn new(
        config: &HubspotConfig,
        key_prefix: &str,
    ) -> ConnectorResult<(HubspotClient, RoleSettings)> {
        let Settings {
            base_url,
            token,
            rate_limit,
            rate_limit_is_cap,
            page_size,
            retry,
            source_id_property,
        } = config.settings(key_prefix)?;
        let policy = if rate_limit_is_cap {
            HubspotPolicy::capped(rate_limit)
        } else {
            HubspotPolicy::uncapped()
        };
        let search_retry = RetrySettings {
            timeout: retry.timeout.min(SEARCH_TIMEOUT),
            max_retries: retry.max_retries.min(SEARCH_MAX_RETRIES),
            ..retry.clone()
        };
        let exempt = HttpClient::new(
            Arc::new(HubspotPolicy::ignoring_announced_limits()),
            None,
            retry.clone(),
        )?;
        let http = HttpClient::new(Arc::new(policy), Some(rate_limit), retry.clone())?;
        let search = HttpClient::new(
            Arc::new(HubspotPolicy::ignoring_announced_limits()),
            Some(RateLimit::new(SEARCH_LIMIT, SEARCH_PACED_OVER)),
            search_retry,
        )?;
        let reads = HttpClient::new(
            Arc::new(HubspotPolicy::ignoring_announced_limits()),
            Some(RateLimit::new(SEARCH_LIMIT, SEARCH_PACED_OVER)),
            retry,
        )?;
        Ok((
            HubspotClient {
                http,
                search,
                reads,
                exempt,
                base_url,
                token,
                page_size,
            },
            RoleSettings {
                page_size,
                source_id_property,
                read_partitions: config.read_partitions.unwrap_or(true),
            },
        ))
    }

    /// The URL of `path` (which starts with `/`) under the base URL.
    fn url(&self, path: &str) -> Url {
        let mut url = self.base_url.clone();
        let joined = format!("{}{path}", self.base_url.path().trim_end_matches('/'));
        url.set_path(&joined);
        url.set_query(None);
        url
    }

    /// `GET path?query`: the 2xx response and the endpoint's name, for parsing into types that
    /// borrow from the body ([`HttpResponse::json_borrowed`]). A non-2xx answer is an error
    /// naming the endpoint (`GET /crm/v3/objects/contacts`; never the query, which may carry a
    /// cursor).
    pub(crate) async fn get_ok(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> ConnectorResult<(String, HttpResponse)> {
        self.get_ok_capped(path, query, BodyCap::Page).await
    }

    /// [`HubspotClient::get_ok`] with the body capped at `cap` (small for the check).
    pub(crate) async fn get_ok_capped(
        &self,
        path: &str,
        query: &[(&str, &str)],
        cap: BodyCap,
    ) -> ConnectorResult<(String, HttpResponse)> {
        let endpoint = format!("GET {path}");
        let mut url = self.url(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().copied());
        }
        let response = self
            .http
            .send_capped(&endpoint, cap, |c| {
                c.get(url.clone()).bearer_auth(self.token.expose_secret())
            })
            .await?;
        if !response.is_success() {
            return Err(self.http.error_for(&endpoint, &response));
        }
        Ok((endpoint, response))
    }

    /// The account's portal id (HubSpot's "Hub ID"), from `GET /account-info/v3/details`
    /// (documented as needing no scope beyond the token's own).
    pub(crate) async fn account_id(&self) -> ConnectorResult<ferry_core::AccountId> {
        let (endpoint, response) = self.get_ok("/account-info/v3/details", &[]).await?;
        let answer: Value = response.json(crate::VENDOR, &endpoint)?;
        ferry_core::AccountId::from_json(
            crate::VENDOR,
            &endpoint,
            "portal id",
            &answer,
            "/portalId",
        )
    }

    /// `method path?query` with an optional JSON `body` through the ten-second client,
    /// returning the final response whatever its status (the caller decides what a 404 or a
    /// 403 means), and the endpoint's name for messages (method and path only).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> ConnectorResult<(String, HttpResponse)> {
        let endpoint = format!("{method} {path}");
        self.send_as(endpoint, method, path, query, body).await
    }

    /// [`HubspotClient::send`] under the endpoint name `endpoint`, for paths that hold
    /// personal data (an email address) that must not appear in messages or logs.
    pub(crate) async fn send_as(
        &self,
        endpoint: String,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> ConnectorResult<(String, HttpResponse)> {
        let mut url = self.url(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().copied());
        }
        let response = self
            .http
            .send(&endpoint, |c| {
                let request = c
                    .request(method.clone(), url.clone())
                    .bearer_auth(self.token.expose_secret());
                match body {
                    Some(b) => request.json(b),
                    None => request,
                }
            })
            .await?;
        Ok((endpoint, response))
    }

    /// `POST path?query` with the JSON `body`, parsed as JSON from any 2xx answer (200, 201,
    /// and 207 multi-status, whose per-input errors the caller reads). Other statuses are errors
    /// naming the endpoint, never the body.
    pub(crate) async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: &Value,
    ) -> ConnectorResult<T> {
        let (endpoint, response) = self.post_ok(path, query, body).await?;
        response.json(crate::VENDOR, &endpoint)
    }

    /// [`HubspotClient::post_json`] returning the 2xx response and the endpoint's name, for
    /// parsing into types that borrow from the body.
    pub(crate) async fn post_ok(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: &Value,
    ) -> ConnectorResult<(String, HttpResponse)> {
        let (endpoint, response) = self.send(Method::POST, path, query, Some(body)).await?;
        if !response.is_success() {
            return Err(self.http.error_for(&endpoint, &response));
        }
        Ok((endpoint, response))
    }

    /// `POST path` with the JSON `body` to an endpoint exempt from the ten-second bucket (the
    /// v4 association batches), parsed as JSON from any 2xx answer, 207 included.
    pub(crate) async fn post_exempt<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> ConnectorResult<T> {
        let response = self.post_exempt_raw(path, body).await?;
        response.json(crate::VENDOR, &format!("POST {path}"))
    }

    /// [`HubspotClient::post_exempt`] for answers without a body (204): any 2xx is success.
    pub(crate) async fn post_exempt_raw(
        &self,
        path: &str,
        body: &Value,
    ) -> ConnectorResult<HttpResponse> {
        let endpoint = format!("POST {path}");
        let url = self.url(path);
        let response = self
            .exempt
            .send(&endpoint, |c| {
                c.post(url.clone())
                    .bearer_auth(self.token.expose_secret())
                    .json(body)
            })
            .await?;
        if !response.is_success() {
            return Err(self.exempt.error_for(&endpoint, &response));
        }
        Ok(response)
    }

    /// The error for a final non-2xx `response` to `endpoint` (401/403 are credential errors).
    pub(crate) fn error_for(&self, endpoint: &str, response: &HttpResponse) -> ConnectorError {
        self.http.error_for(endpoint, response)
    }

    /// `POST path` with the JSON `body` through the search client (five per second), parsed
    /// as JSON. Errors name the endpoint, never the body.
    pub(crate) async fn search_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> ConnectorResult<T> {
        let (endpoint, response) = self.search_ok(path, body).await?;
        response.json(crate::VENDOR, &endpoint)
    }

    /// `POST path` with the JSON `body` through the search client of estimates and counts (five
    /// per second, short patience): the 2xx response and the endpoint's name, for parsing into
    /// types that borrow from the body. A sink's read-back searches here, so that its searches
    /// and its count share one limiter; a search that fails is read back by batch read instead,
    /// so the short patience costs nothing but counted requests.
    pub(crate) async fn search_ok(
        &self,
        path: &str,
        body: &Value,
    ) -> ConnectorResult<(String, HttpResponse)> {
        self.post_search(&self.search, path, body).await
    }

    /// `POST path` with the JSON `body` through the search client of a source's reads (five per
    /// second, the run's patience): incremental reads and the search side of a partitioned
    /// full read. The 2xx response and the endpoint's name, for parsing into types that
    /// borrow from the body. Errors name the endpoint, never the body.
    pub(crate) async fn search_read(
        &self,
        path: &str,
        body: &Value,
    ) -> ConnectorResult<(String, HttpResponse)> {
        self.post_search(&self.reads, path, body).await
    }

    /// `POST path` with the JSON `body` through `client`, one of the two search clients.
    async fn post_search(
        &self,
        client: &HttpClient,
        path: &str,
        body: &Value,
    ) -> ConnectorResult<(String, HttpResponse)> {
        let endpoint = format!("POST {path}");
        let url = self.url(path);
        let response = client
            .send(&endpoint, |c| {
                c.post(url.clone())
                    .bearer_auth(self.token.expose_secret())
                    .json(body)
            })
            .await?;
        if !response.is_success() {
            return Err(client.error_for(&endpoint, &response));
        }
        Ok((endpoint, response))
    }

    /// HubSpot's clock now, in epoch milliseconds: the `Date` header of `GET
    /// /account-info/v3/details` (a small answer, no scope needed).
    pub(crate) async fn server_time_ms(&self) -> ConnectorResult<i64> {
        let path = "/account-info/v3/details";
        let (endpoint, response) = self.get_ok_capped(path, &[], BodyCap::Small).await?;
        response.date_ms().ok_or_else(|| ConnectorError::Malformed {
            vendor: crate::VENDOR,
            endpoint,
            detail: "the answer has no readable Date header, so HubSpot's clock, where the next \
                     sync starts, is unknown"
                .into(),
        })
    }

    /// The counters of requests, retries, 429s and waits, search and association batches
    /// included: a snapshot summing all four clients, taken when called.
    pub fn stats(&self) -> Arc<HttpStats> {
        let total = HttpStats::default();
        for stats in [
            self.http.stats(),
            self.search.stats(),
            self.reads.stats(),
            self.exempt.stats(),
        ] {
            total.absorb(&stats);
        }
        Arc::new(total)
    }

    /// Records per list page, as configured (`page_size`): also the owners list's page size.
    pub(crate) fn page_size(&self) -> u32 {
        self.page_size
    }

    /// The ten-second rate limit in force (search has its own five per second).
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.http.rate_limit()
    }
}

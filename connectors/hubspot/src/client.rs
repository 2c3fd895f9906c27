//! An authenticated HubSpot API client: the bearer token, the base URL, and JSON requests
//! through ferry's shared HTTP layer (rate limiting, retries, vendor-aware errors).

use std::sync::Arc;

use ferry_core::ConnectorResult;
use ferry_core::http::{HttpClient, HttpStats, RateLimit};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::{HubspotConfig, Settings};
use crate::policy::HubspotPolicy;

/// One HubSpot account's client: one token, one limiter, one connection pool.
pub struct HubspotClient {
    http: HttpClient,
    base_url: Url,
    token: SecretString,
}

impl HubspotClient {
    /// A client for the account `config` describes; errors name `key_prefix.<key>`. Also
    /// returns the configured page size.
    pub(crate) fn new(
        config: &HubspotConfig,
        key_prefix: &str,
    ) -> ConnectorResult<(HubspotClient, u32)> {
        let Settings {
            base_url,
            token,
            rate_limit,
            page_size,
            retry,
        } = config.settings(key_prefix)?;
        let policy = Arc::new(HubspotPolicy::new(rate_limit));
        let http = HttpClient::new(policy, Some(rate_limit), retry)?;
        Ok((
            HubspotClient {
                http,
                base_url,
                token,
            },
            page_size,
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

    /// `GET path?query`, parsed as JSON. A non-2xx answer is an error naming the endpoint
    /// (`GET /crm/v3/objects/contacts`; never the query, which may carry a cursor).
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> ConnectorResult<T> {
        let endpoint = format!("GET {path}");
        let mut url = self.url(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().copied());
        }
        let response = self
            .http
            .send(&endpoint, |c| {
                c.get(url.clone()).bearer_auth(self.token.expose_secret())
            })
            .await?;
        if !response.is_success() {
            return Err(self.http.error_for(&endpoint, &response));
        }
        response.json(crate::VENDOR, &endpoint)
    }

    /// The counters of requests, retries and 429s.
    pub fn stats(&self) -> Arc<HttpStats> {
        self.http.stats()
    }

    /// The rate limit in force.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.http.rate_limit()
    }
}

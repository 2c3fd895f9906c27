//! The optional DNS check that an email address's domain takes mail (`migration.email_mx_check`).
//!
//! Only the domain is ever asked for: an MX query, then A and AAAA queries when there is no MX
//! (RFC 5321 §5.1's implicit MX). The local part of an address never leaves the machine. Each
//! distinct domain is asked once per run, at most `concurrency` at once, each within the
//! timeout; the answers are kept as a 64-bit hash of the domain and a one-byte verdict, never
//! the domain itself.
//!
//! Findings are flags, never refusals, and a domain the resolver could not answer for (a
//! timeout, SERVFAIL) is not flagged but counted as unchecked: a DNS outage never fails a run.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};

use crate::quality::{HashIndex, id_hash};

/// How the check runs: `migration.mx_timeout_ms`, `mx_concurrency` and `dns_server`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxSettings {
    /// The longest one domain's queries (MX, then A and AAAA) may take together.
    pub timeout: Duration,
    /// Domains asked about at once.
    pub concurrency: usize,
    /// The DNS server to ask (UDP, TCP for truncated answers); `None`: the system resolver's
    /// configuration (`/etc/resolv.conf`).
    pub server: Option<SocketAddr>,
}

impl Default for MxSettings {
    fn default() -> Self {
        MxSettings {
            timeout: Duration::from_millis(2000),
            concurrency: 8,
            server: None,
        }
    }
}

/// What DNS says about a domain's mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It has an MX record, or no MX but an address (A or AAAA) mail is delivered to.
    Accepts,
    /// It publishes a "null MX" (`MX 0 .`, RFC 7505): it accepts no mail.
    NoMail,
    /// It does not exist (NXDOMAIN), or has neither MX nor address records.
    NoMx,
    /// No answer within the timeout, or the server failed (SERVFAIL, refused): not judged.
    Unchecked,
}

/// Why the resolver could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MxError {
    /// The system resolver configuration could not be read.
    #[error(
        "config key `migration.email_mx_check`: the system resolver configuration could not be \
         read ({0}); set `migration.dns_server` to the DNS server to ask"
    )]
    SystemConfig(String),
}

/// After this many domains in a row went unanswered, the rest of the run asks no more: a DNS
/// server that is down would otherwise cost a timeout for every new domain.
const GIVE_UP_AFTER: usize = 64;

/// Looks up email domains, each once per run, and remembers the verdicts.
pub struct MxChecker {
    resolver: TokioResolver,
    settings: MxSettings,
    state: Mutex<State>,
}

/// The verdicts so far, by hash of the domain's ASCII form.
#[derive(Default)]
struct State {
    verdicts: HashIndex<Verdict>,
    unanswered_in_a_row: usize,
    given_up: bool,
}

impl std::fmt::Debug for MxChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MxChecker")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The ASCII (IDNA/punycode) lower-case form of the domain of a valid address, or `None` when
/// it has none (an internationalised domain IDNA refuses).
pub fn domain_of(email: &str) -> Option<String> {
    let (_, domain) = email.trim().rsplit_once('@')?;
    let ascii = idna::domain_to_ascii(domain).ok()?;
    (!ascii.is_empty()).then(|| ascii.to_ascii_lowercase())
}

impl MxChecker {
    /// A checker asking `settings.server`, or the servers of the system configuration. Needs a
    /// Tokio runtime.
    pub fn new(settings: MxSettings) -> Result<MxChecker, MxError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match settings.server {
            Some(server) => {
                let connection = |mut c: ConnectionConfig| {
                    c.port = server.port();
                    c
                };
                let name_server = NameServerConfig::new(
                    server.ip(),
                    true,
                    vec![
                        connection(ConnectionConfig::udp()),
                        connection(ConnectionConfig::tcp()),
                    ],
                );
                let mut builder = TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![name_server]),
                    provider,
                );
                // The configured server only: no hosts file either.
                builder.options_mut().use_hosts_file = ResolveHosts::Never;
                builder
            }
            None => TokioResolver::builder(provider)
                .map_err(|e| MxError::SystemConfig(e.to_string()))?,
        };
        let options: &mut ResolverOpts = builder.options_mut();
        // Half the budget per attempt: a question lost on the way (UDP) is sent once more
        // within the domain's timeout.
        options.timeout = settings.timeout / 2;
        options.attempts = 1;
        // The checker keeps its own verdicts; the resolver's cache would only hold names.
        options.cache_size = 0;
        let resolver = builder
            .build()
            .map_err(|e| MxError::SystemConfig(e.to_string()))?;
        Ok(MxChecker {
            resolver,
            settings,
            state: Mutex::new(State::default()),
        })
    }

    /// The verdict on `domain` (as [`domain_of`] gives it), if it was looked up.
    pub fn verdict(&self, domain: &str) -> Option<Verdict> {
        self.lock().verdicts.get(id_hash(domain))
    }

    /// Looks up those of `domains` not looked up yet, at most `concurrency` at once, and
    /// remembers their verdicts.
    pub async fn look_up<I: IntoIterator<Item = String>>(&self, domains: I) {
        let mut fresh: Vec<String> = {
            let state = self.lock();
            domains
                .into_iter()
                .filter(|d| state.verdicts.get(id_hash(d)).is_none())
                .collect()
        };
        fresh.sort_unstable();
        fresh.dedup();
        if fresh.is_empty() {
            return;
        }
        {
            let mut state = self.lock();
            if state.given_up {
                for domain in &fresh {
                    state.verdicts.insert(id_hash(domain), Verdict::Unchecked);
                }
                return;
            }
        }
        let mut answers = futures::stream::iter(fresh)
            .map(|domain| async move {
                let verdict = tokio::time::timeout(self.settings.timeout, self.ask(&domain))
                    .await
                    .unwrap_or(Verdict::Unchecked);
                (domain, verdict)
            })
            .buffer_unordered(self.settings.concurrency.max(1));
        while let Some((domain, verdict)) = answers.next().await {
            let mut state = self.lock();
            state.verdicts.insert(id_hash(&domain), verdict);
            if verdict == Verdict::Unchecked {
                state.unanswered_in_a_row += 1;
                if state.unanswered_in_a_row >= GIVE_UP_AFTER && !state.given_up {
                    state.given_up = true;
                    tracing::warn!(
                        domains = state.unanswered_in_a_row,
                        "email MX check: the DNS server answered none of the last domains; \
                         the rest of the run is not checked"
                    );
                }
            } else {
                state.unanswered_in_a_row = 0;
            }
        }
    }

    /// Asks DNS about one domain: MX, then A and AAAA when it has no MX.
    async fn ask(&self, domain: &str) -> Verdict {
        // Fully qualified, so that no search domain of the system configuration is appended.
        let Ok(name) = Name::from_ascii(format!("{domain}.")) else {
            return Verdict::NoMx;
        };
        match self.resolver.lookup(name.clone(), RecordType::MX).await {
            Ok(lookup) => {
                let exchanges: Vec<&Name> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some(&mx.exchange),
                        _ => None,
                    })
                    .collect();
                if exchanges.iter().any(|e| !e.is_root()) {
                    return Verdict::Accepts;
                }
                if !exchanges.is_empty() {
                    return Verdict::NoMail;
                }
            }
            Err(e) => match no_records(&e) {
                Some(ResponseCode::NXDomain) => return Verdict::NoMx,
                Some(_) => {}
                None => return Verdict::Unchecked,
            },
        }
        for ty in [RecordType::A, RecordType::AAAA] {
            match self.resolver.lookup(name.clone(), ty).await {
                Ok(lookup) if !lookup.answers().is_empty() => return Verdict::Accepts,
                Ok(_) => {}
                Err(e) => match no_records(&e) {
                    Some(ResponseCode::NXDomain) => return Verdict::NoMx,
                    Some(_) => {}
                    None => return Verdict::Unchecked,
                },
            }
        }
        Verdict::NoMx
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The response code of an answer that holds no records (NXDOMAIN, or NOERROR with no data);
/// `None` for any other failure.
fn no_records(e: &NetError) -> Option<ResponseCode> {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(none)) => Some(none.response_code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_asked_for_in_ascii_lower_case() {
        assert_eq!(
            domain_of("Jane@Example.COM").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            domain_of("josé@Bücher.de").as_deref(),
            Some("xn--bcher-kva.de")
        );
        assert_eq!(
            domain_of("\"a@b\"@example.org").as_deref(),
            Some("example.org")
        );
        assert_eq!(domain_of("no address"), None);
    }
}

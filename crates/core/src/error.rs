//! Errors a connector reports: each says which vendor and endpoint, and whose fault it is.

use std::time::Duration;

use crate::report::ErrorKind;

/// A failure of a whole request or operation (not of one record: see [`crate::RecordRejection`]).
///
/// Messages name the vendor and the endpoint (method and path, never a query string or body),
/// and never carry a secret or a customer's field value.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The connection failed or timed out.
    #[error("{vendor}: {endpoint}: network error: {detail}")]
    Network {
        vendor: &'static str,
        endpoint: String,
        detail: String,
    },

    /// The vendor refused the credentials (401) or their permissions (403).
    #[error("{vendor}: {endpoint}: the vendor rejected the credentials (HTTP {status}): {detail}")]
    Auth {
        vendor: &'static str,
        endpoint: String,
        status: u16,
        detail: String,
    },

    /// The vendor answered with an error status that a retry cannot fix.
    #[error("{vendor}: {endpoint}: HTTP {status}: {detail}")]
    Status {
        vendor: &'static str,
        endpoint: String,
        status: u16,
        detail: String,
    },

    /// Retries were exhausted on a transient failure.
    #[error(
        "{vendor}: {endpoint}: still failing after {} over {elapsed:?}: {last}",
        attempts_text(.attempts)
    )]
    RetriesExhausted {
        vendor: &'static str,
        endpoint: String,
        attempts: usize,
        elapsed: Duration,
        last: String,
    },

    /// The vendor's response could not be understood.
    #[error("{vendor}: {endpoint}: malformed response: {detail}")]
    Malformed {
        vendor: &'static str,
        endpoint: String,
        detail: String,
    },

    /// The vendor account is not set up the way ferry needs, with what to do about it.
    #[error("{vendor}: {detail}")]
    Setup {
        vendor: &'static str,
        detail: String,
    },

    /// The connector's configuration is wrong; `key` names the offending setting.
    #[error("{vendor}: configuration key `{key}`: {detail}")]
    Config {
        vendor: &'static str,
        key: String,
        detail: String,
    },

    /// The connector does not support what was asked.
    #[error("{vendor}: {detail}")]
    Unsupported {
        vendor: &'static str,
        detail: String,
    },
}

impl ConnectorError {
    /// Whether the operator's configuration or credentials are at fault (exit code 2 or a
    /// clear "fix your setup" message), as opposed to the vendor or the network.
    pub fn is_operator_fault(&self) -> bool {
        matches!(
            self,
            ConnectorError::Auth { .. }
                | ConnectorError::Setup { .. }
                | ConnectorError::Config { .. }
        )
    }
}

/// "1 attempt", "3 attempts".
fn attempts_text(n: &usize) -> String {
    crate::report::count(*n as u64, "attempt", "attempts")
}

impl ConnectorError {
    /// This vendor answer's error with what it was about put before its detail (`creating
    /// field "Tier": …`), its kind, status and endpoint kept. Only the vendor's answers (`Auth`,
    /// `Status`, `Malformed`) take it: the other kinds already say what failed.
    pub fn about(self, what: impl std::fmt::Display) -> ConnectorError {
        match self {
            ConnectorError::Auth {
                vendor,
                endpoint,
                status,
                detail,
            } => ConnectorError::Auth {
                vendor,
                endpoint,
                status,
                detail: format!("{what}: {detail}"),
            },
            ConnectorError::Status {
                vendor,
                endpoint,
                status,
                detail,
            } => ConnectorError::Status {
                vendor,
                endpoint,
                status,
                detail: format!("{what}: {detail}"),
            },
            ConnectorError::Malformed {
                vendor,
                endpoint,
                detail,
            } => ConnectorError::Malformed {
                vendor,
                endpoint,
                detail: format!("{what}: {detail}"),
            },
            other => other,
        }
    }

    /// Whose fault this error is, for the report's `error_kind` and the exit code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConnectorError::Network { .. } => ErrorKind::Network,
            ConnectorError::Auth { .. } => ErrorKind::Credentials,
            ConnectorError::Status { .. } | ConnectorError::Malformed { .. } => ErrorKind::Vendor,
            // The last transient failure says whose: an HTTP status (5xx, 429) is the vendor's
            // answer; anything else (refused, reset, timed out) never got one.
            ConnectorError::RetriesExhausted { last, .. } => {
                if last.starts_with("HTTP ") {
                    ErrorKind::Vendor
                } else {
                    ErrorKind::Network
                }
            }
            ConnectorError::Setup { .. }
            | ConnectorError::Config { .. }
            | ConnectorError::Unsupported { .. } => ErrorKind::Config,
        }
    }
}

/// Result alias for connector operations.
pub type ConnectorResult<T> = Result<T, ConnectorError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_names_what_a_vendor_answer_concerned_and_keeps_its_kind() {
        let status = ConnectorError::Status {
            vendor: "v",
            endpoint: "POST /fields".into(),
            status: 400,
            detail: "INVALID".into(),
        }
        .about("creating field `tier`");
        assert_eq!(
            status.to_string(),
            "v: POST /fields: HTTP 400: creating field `tier`: INVALID"
        );
        assert_eq!(status.kind(), ErrorKind::Vendor);
        let network = || ConnectorError::Network {
            vendor: "v",
            endpoint: "POST /fields".into(),
            detail: "reset".into(),
        };
        assert_eq!(
            network().about("x").to_string(),
            network().to_string(),
            "a network error says what failed itself"
        );
    }

    #[test]
    fn each_error_says_whose_fault_it_is() {
        let vendor = "hubspot";
        let endpoint = String::from("GET /crm/v3/objects/contacts");
        let exhausted = |last: &str| ConnectorError::RetriesExhausted {
            vendor,
            endpoint: endpoint.clone(),
            attempts: 3,
            elapsed: Duration::from_secs(1),
            last: last.into(),
        };
        let cases = [
            (
                ConnectorError::Network {
                    vendor,
                    endpoint: endpoint.clone(),
                    detail: "could not connect".into(),
                },
                ErrorKind::Network,
            ),
            (
                ConnectorError::Auth {
                    vendor,
                    endpoint: endpoint.clone(),
                    status: 401,
                    detail: String::new(),
                },
                ErrorKind::Credentials,
            ),
            (
                ConnectorError::Status {
                    vendor,
                    endpoint: endpoint.clone(),
                    status: 400,
                    detail: String::new(),
                },
                ErrorKind::Vendor,
            ),
            (exhausted("HTTP 503"), ErrorKind::Vendor),
            (exhausted("could not connect (refused)"), ErrorKind::Network),
            (
                ConnectorError::Config {
                    vendor,
                    key: "token".into(),
                    detail: String::new(),
                },
                ErrorKind::Config,
            ),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
        }
    }

    #[test]
    fn one_attempt_is_not_plural() {
        let error = |attempts| ConnectorError::RetriesExhausted {
            vendor: "zoho",
            endpoint: "GET /crm/v6/Accounts".into(),
            attempts,
            elapsed: Duration::from_millis(5),
            last: "HTTP 503".into(),
        };
        assert!(
            error(1).to_string().contains("after 1 attempt over"),
            "{}",
            error(1)
        );
        assert!(
            error(4).to_string().contains("after 4 attempts over"),
            "{}",
            error(4)
        );
    }
}

//! Secrets in configuration: only references (`${ENV_VAR}`), never literal values.
//!
//! A config file gets copied, committed and pasted into tickets; a secret in it leaks with it.
//! So a secret setting holds the *name* of an environment variable, and the value is read into
//! a [`SecretString`] (zeroized on drop, redacted in `Debug`) only when a connector is built.

use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

/// A reference to a secret, as written in a config file: `"${HUBSPOT_TOKEN}"`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRef {
    var: String,
}

/// Why a secret could not be had. Names the variable, never a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The setting holds something other than a `${VAR}` reference.
    #[error(
        "secrets are never written in the config file (it gets copied and shared): put the value \
         in an environment variable and write \"${{VARIABLE_NAME}}\" here"
    )]
    Literal,
    /// The referenced variable is not set (or not valid UTF-8).
    #[error("environment variable `{0}` is not set")]
    Unset(String),
    /// The referenced variable is set but empty.
    #[error("environment variable `{0}` is empty")]
    Empty(String),
}

impl SecretRef {
    /// Parses `"${NAME}"`; anything else is refused as a literal secret.
    pub fn parse(raw: &str) -> Result<SecretRef, SecretError> {
        let name = raw.trim().strip_prefix("${").and_then(|r| r.strip_suffix('}')).ok_or(SecretError::Literal)?;
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(SecretError::Literal);
        }
        Ok(SecretRef { var: name.to_owned() })
    }

    /// A reference to the environment variable `var`.
    pub fn env(var: &str) -> SecretRef {
        SecretRef { var: var.to_owned() }
    }

    /// The environment variable's name.
    pub fn var(&self) -> &str {
        &self.var
    }

    /// Reads the secret from the environment.
    pub fn resolve(&self) -> Result<SecretString, SecretError> {
        match std::env::var(&self.var) {
            Ok(v) if v.is_empty() => Err(SecretError::Empty(self.var.clone())),
            Ok(v) => Ok(SecretString::from(v)),
            Err(_) => Err(SecretError::Unset(self.var.clone())),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}}}", self.var)
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The raw string is deliberately not echoed in the error: it may be the secret itself.
        let raw = String::deserialize(d)?;
        SecretRef::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_env_references_are_accepted() {
        assert_eq!(SecretRef::parse("${HUBSPOT_TOKEN}").unwrap().var(), "HUBSPOT_TOKEN");
        assert_eq!(SecretRef::parse("pat-na1-1234"), Err(SecretError::Literal));
        assert_eq!(SecretRef::parse("${}"), Err(SecretError::Literal));
        assert_eq!(SecretRef::parse("${A B}"), Err(SecretError::Literal));
        assert_eq!(SecretRef::parse("$HUBSPOT_TOKEN"), Err(SecretError::Literal));
    }

    #[test]
    fn a_literal_secret_is_not_echoed_in_the_error() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct C {
            token: SecretRef,
        }
        let err = serde_json::from_str::<C>(r#"{"token":"pat-na1-super-secret"}"#).unwrap_err().to_string();
        assert!(!err.contains("super-secret"), "{err}");
        assert!(err.contains("environment variable"), "{err}");
    }

    #[test]
    fn unset_variable_is_named() {
        let r = SecretRef::env("FERRY_TEST_SURELY_UNSET_VAR");
        assert_eq!(r.resolve().unwrap_err().to_string(), "environment variable `FERRY_TEST_SURELY_UNSET_VAR` is not set");
    }
}

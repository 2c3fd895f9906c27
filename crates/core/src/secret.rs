//! Secrets in configuration: only references (`${ENV_VAR}`), never literal values.
//!
//! A config file gets copied, committed and pasted into tickets; a secret in it leaks with it.
//! So a secret setting holds the *name* of an environment variable, and the value is read into
//! a [`SecretString`] (zeroized on drop, redacted in `Debug`) only when a connector is built.

use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

/// A reference to a secret, as written in a config file: `"${HUBSPOT_TOKEN}"`; or, for
/// programs embedding ferry (the demo), a value already in memory.
#[derive(Clone)]
pub struct SecretRef {
    source: SecretSource,
}

#[derive(Clone)]
enum SecretSource {
    Env(String),
    InMemory(SecretString),
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
        let name = raw
            .trim()
            .strip_prefix("${")
            .and_then(|r| r.strip_suffix('}'))
            .ok_or(SecretError::Literal)?;
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(SecretError::Literal);
        }
        Ok(SecretRef::env(name))
    }

    /// A reference to the environment variable `var`.
    pub fn env(var: &str) -> SecretRef {
        SecretRef {
            source: SecretSource::Env(var.to_owned()),
        }
    }

    /// A secret already held in memory (never from a config file).
    pub fn in_memory(secret: SecretString) -> SecretRef {
        SecretRef {
            source: SecretSource::InMemory(secret),
        }
    }

    /// The environment variable's name, for a reference to one.
    pub fn var(&self) -> Option<&str> {
        match &self.source {
            SecretSource::Env(var) => Some(var),
            SecretSource::InMemory(_) => None,
        }
    }

    /// Reads the secret (from the environment, for a reference).
    pub fn resolve(&self) -> Result<SecretString, SecretError> {
        let var = match &self.source {
            SecretSource::Env(var) => var,
            SecretSource::InMemory(secret) => return Ok(secret.clone()),
        };
        match std::env::var(var) {
            Ok(v) if v.is_empty() => Err(SecretError::Empty(var.clone())),
            Ok(v) => Ok(SecretString::from(v)),
            Err(_) => Err(SecretError::Unset(var.clone())),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            SecretSource::Env(var) => write!(f, "${{{var}}}"),
            SecretSource::InMemory(_) => f.write_str("[in-memory secret]"),
        }
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
        assert_eq!(
            SecretRef::parse("${HUBSPOT_TOKEN}").unwrap().var(),
            Some("HUBSPOT_TOKEN")
        );
        for literal in ["pat-na1-1234", "${}", "${A B}", "$HUBSPOT_TOKEN", "${1ABC}"] {
            assert_eq!(
                SecretRef::parse(literal).unwrap_err(),
                SecretError::Literal,
                "{literal}"
            );
        }
    }

    #[test]
    fn a_literal_secret_is_not_echoed_in_the_error() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct C {
            token: SecretRef,
        }
        let err = serde_json::from_str::<C>(r#"{"token":"pat-na1-super-secret"}"#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("super-secret"), "{err}");
        assert!(err.contains("environment variable"), "{err}");
    }

    #[test]
    fn in_memory_secrets_are_not_debug_printed() {
        let r = SecretRef::in_memory(SecretString::from("hunter2"));
        assert!(!format!("{r:?}").contains("hunter2"));
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&r.resolve().unwrap()),
            "hunter2"
        );
    }

    #[test]
    fn unset_variable_is_named() {
        let r = SecretRef::env("FERRY_TEST_SURELY_UNSET_VAR");
        assert_eq!(
            r.resolve().unwrap_err().to_string(),
            "environment variable `FERRY_TEST_SURELY_UNSET_VAR` is not set"
        );
    }
}

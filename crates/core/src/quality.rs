//! Data-quality checks on records as they are read: invalid data is found and reported, not
//! silently carried into the sink.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};

use crate::model::{FieldType, Record, Value};

/// What to do with a record whose email address is malformed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidEmail {
    /// Do not write it; list it as failed (the default: a bad address is never carried silently).
    #[default]
    Reject,
    /// Write it anyway and list a warning.
    Warn,
}

/// A problem found in one record. Names the field, never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// A short code, e.g. `INVALID_EMAIL`.
    pub code: &'static str,
    /// A sentence naming the field.
    pub reason: String,
    /// Whether the record must not be written.
    pub blocks_write: bool,
}

/// Whether `email` looks like an address a CRM will accept: one `@`, a non-empty local part,
/// a dotted domain, no spaces or control characters.
pub fn is_plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let bad_char =
        |c: char| c.is_whitespace() || c.is_control() || c == '@' || c == ',' || c == ';';
    !local.is_empty()
        && local.len() <= 64
        && !domain.is_empty()
        && !local.chars().any(bad_char)
        && !domain.chars().any(bad_char)
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && domain.contains('.')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'))
}

/// Checks records one by one and remembers email addresses (as 64-bit hashes, so memory
/// stays small and no address is kept) to find duplicates.
pub struct QualityChecker {
    invalid_email: InvalidEmail,
    seen_emails: HashSet<u64>,
    hasher: std::collections::hash_map::RandomState,
}

impl QualityChecker {
    /// A checker applying `invalid_email` to malformed addresses.
    pub fn new(invalid_email: InvalidEmail) -> QualityChecker {
        QualityChecker {
            invalid_email,
            seen_emails: HashSet::new(),
            hasher: Default::default(),
        }
    }

    /// The problems in `record`; an empty list when there are none.
    pub fn check(&mut self, record: &Record) -> Vec<Finding> {
        let mut findings = Vec::new();
        for spec in record
            .object
            .fields()
            .iter()
            .filter(|f| f.ty == FieldType::Email)
        {
            let Some(Value::Text(email)) = record.get(spec.name) else {
                continue;
            };
            if !is_plausible_email(email) {
                findings.push(Finding {
                    code: "INVALID_EMAIL",
                    reason: format!("field `{}` is not a valid email address", spec.name),
                    blocks_write: self.invalid_email == InvalidEmail::Reject,
                });
                continue;
            }
            let mut h = self.hasher.build_hasher();
            h.write(email.trim().to_lowercase().as_bytes());
            if !self.seen_emails.insert(h.finish()) {
                findings.push(Finding {
                    code: "DUPLICATE_EMAIL",
                    reason: format!(
                        "field `{}` has the same address as a record read earlier; both were written",
                        spec.name
                    ),
                    blocks_write: false,
                });
            }
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ObjectType, field};

    #[test]
    fn email_shapes() {
        for good in [
            "a@example.com",
            "first.last+tag@sub.example.co.uk",
            "o'brien@example.ie",
            "jürgen@exämple.de",
        ] {
            assert!(is_plausible_email(good), "{good}");
        }
        for bad in [
            "",
            "no-at.example.com",
            "two@@example.com",
            "trailing@",
            "@leading.example",
            "sp ace@example.com",
            "a@nodot",
            "a..b@example.com",
            "a@-x.example.com",
            "a@example..com",
        ] {
            assert!(!is_plausible_email(bad), "{bad}");
        }
    }

    fn contact(id: &str, email: &str) -> Record {
        let mut r = Record::new(ObjectType::Contacts, id);
        r.set(field::EMAIL, Value::Text(email.into()));
        r
    }

    #[test]
    fn duplicates_are_found_case_insensitively_and_reported_without_the_value() {
        let mut q = QualityChecker::new(InvalidEmail::Reject);
        assert!(q.check(&contact("1", "Lorelai@Example.com")).is_empty());
        let findings = q.check(&contact("2", "lorelai@example.com"));
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, "DUPLICATE_EMAIL");
        assert!(!findings[0].blocks_write);
        assert!(!findings[0].reason.contains("lorelai"));
    }

    #[test]
    fn invalid_email_policy() {
        let mut reject = QualityChecker::new(InvalidEmail::Reject);
        let f = reject.check(&contact("1", "trailing@"));
        assert_eq!((f[0].code, f[0].blocks_write), ("INVALID_EMAIL", true));
        assert!(!f[0].reason.contains("trailing@"));
        let mut warn = QualityChecker::new(InvalidEmail::Warn);
        assert!(!warn.check(&contact("1", "trailing@"))[0].blocks_write);
    }
}

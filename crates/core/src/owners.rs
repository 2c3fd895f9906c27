//! Owners: a record's owner is a user of its vendor, and user ids are local to each account.
//! Owners are never created: each source user is matched to a sink user by email (ignoring
//! case and surrounding spaces), explicit pairs of `[mapping.owners]` first, and a record whose
//! owner has no active match follows the operator's `unmatched` rule.
//!
//! Emails are personal data: they are compared here and hashed into digests
//! ([`OwnerMap::canonical_email`]), never printed. Messages name config keys and user ids.

use std::collections::HashMap;

use crate::connector::User;

/// What happens to a record whose owner has no active sink user with the same email.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    /// The owner is left out of the record: the sink's own default owner applies (the default).
    #[default]
    Unset,
    /// The record is owned by the configured fallback sink user.
    Fallback,
    /// The record is not written (refused with [`OWNER_UNMATCHED`]).
    Reject,
}

impl Unmatched {
    /// The configuration spelling: `unset`, `fallback`, `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unmatched::Unset => "unset",
            Unmatched::Fallback => "fallback",
            Unmatched::Reject => "reject",
        }
    }
}

/// The code of a record refused because its owner has no active sink user
/// (`unmatched = "reject"`).
pub const OWNER_UNMATCHED: &str = "OWNER_UNMATCHED";

/// The operator's `[mapping.owners]` table, checked for shape (not yet against any vendor).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerRules {
    /// What happens to records of unmatched owners.
    pub unmatched: Unmatched,
    /// The email of the sink user that owns them with [`Unmatched::Fallback`].
    pub fallback: Option<String>,
    /// Explicit pairs, source user's email → sink user's email, with the keys as the operator
    /// wrote them (for messages); they win over matching by email.
    pub pairs: Vec<(String, String)>,
}

/// Why the owner rules cannot be applied to these vendors' users: a config error naming its
/// key, never an email.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("config key `{key}`: {detail}")]
pub struct OwnerError {
    /// The config key at fault, as the operator wrote it (`mapping.owners.fallback`).
    pub key: String,
    /// What is wrong with it.
    pub detail: String,
}

/// An email as owners are matched by: trimmed and lowercased.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// The key of an explicit pair in messages: `mapping.owners."jane@old.example"`.
fn pair_key(source_email: &str) -> String {
    format!("mapping.owners.{:?}", source_email)
}

/// Source user ids matched to sink user ids, and what to do with the others. Built once per
/// run from both sides' users ([`OwnerMap::build`]).
#[derive(Debug)]
pub struct OwnerMap {
    /// Source user id → sink user id, for every source user with an active match.
    matched: HashMap<String, String>,
    /// Sink user id → normalised email, for the digests of both sides.
    sink_emails: HashMap<String, String>,
    unmatched: Unmatched,
    /// The fallback sink user's id (with [`Unmatched::Fallback`]).
    fallback: Option<String>,
    /// Source user ids without an active match, sorted (for `plan`).
    unmatched_users: Vec<String>,
    source_users: usize,
}

/// What becomes of one record's owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerOutcome {
    /// Owned by this sink user, matched by email.
    Matched(String),
    /// Unmatched: owned by the fallback sink user.
    Fallback(String),
    /// Unmatched: the owner is left out.
    Unset,
    /// Unmatched: the record is refused.
    Reject,
}

impl OwnerMap {
    /// Matches `source` users to `sink` users by `rules`. An explicit pair or the fallback
    /// naming a sink email that no active sink user has is an error naming its key.
    pub fn build(
        rules: &OwnerRules,
        source: &[User],
        sink: &[User],
    ) -> Result<OwnerMap, OwnerError> {
        // The first active sink user with each email; inactive users count as absent.
        let mut active: HashMap<String, &User> = HashMap::new();
        for user in sink.iter().filter(|u| u.active) {
            active.entry(normalise_email(&user.email)).or_insert(user);
        }
        let inactive_or_missing = |email: &str| {
            if sink
                .iter()
                .any(|u| normalise_email(&u.email) == normalise_email(email))
            {
                "the sink user with this email is inactive"
            } else {
                "no sink user has this email"
            }
        };
        let mut explicit: HashMap<String, &User> = HashMap::new();
        for (from, to) in &rules.pairs {
            // A pair naming no source user does nothing: most likely a typo, which must not
            // pass silently and leave that user's records unmatched.
            if !source
                .iter()
                .any(|u| normalise_email(&u.email) == normalise_email(from))
            {
                return Err(OwnerError {
                    key: pair_key(from),
                    detail: "no source user has this email; the key names a source user's email"
                        .into(),
                });
            }
            let target = active.get(&normalise_email(to)).ok_or_else(|| OwnerError {
                key: pair_key(from),
                detail: format!(
                    "{}; name an active sink user's email",
                    inactive_or_missing(to)
                ),
            })?;
            explicit.insert(normalise_email(from), target);
        }
        let fallback = match (rules.unmatched, &rules.fallback) {
            (Unmatched::Fallback, Some(email)) => Some(
                active
                    .get(&normalise_email(email))
                    .map(|u| u.id.clone())
                    .ok_or_else(|| OwnerError {
                        key: "mapping.owners.fallback".into(),
                        detail: format!(
                            "{}; name an active sink user's email",
                            inactive_or_missing(email)
                        ),
                    })?,
            ),
            (Unmatched::Fallback, None) => {
                return Err(OwnerError {
                    key: "mapping.owners.fallback".into(),
                    detail: "is required with unmatched = \"fallback\"".into(),
                });
            }
            _ => None,
        };
        let mut matched = HashMap::new();
        let mut unmatched_users = Vec::new();
        for user in source {
            let email = normalise_email(&user.email);
            let target = explicit
                .get(&email)
                .or_else(|| (!email.is_empty()).then(|| active.get(&email)).flatten());
            match target {
                Some(target) => {
                    matched.insert(user.id.clone(), target.id.clone());
                }
                None => unmatched_users.push(user.id.clone()),
            }
        }
        unmatched_users.sort();
        unmatched_users.dedup();
        let sink_emails = sink
            .iter()
            .map(|u| (u.id.clone(), normalise_email(&u.email)))
            .collect();
        Ok(OwnerMap {
            matched,
            sink_emails,
            unmatched: rules.unmatched,
            fallback,
            unmatched_users,
            source_users: source.len(),
        })
    }

    /// What becomes of a record owned by source user `source_id` (a user the source did not
    /// list is unmatched too).
    pub fn owner(&self, source_id: &str) -> OwnerOutcome {
        if let Some(sink_id) = self.matched.get(source_id) {
            return OwnerOutcome::Matched(sink_id.clone());
        }
        match (self.unmatched, &self.fallback) {
            (Unmatched::Fallback, Some(id)) => OwnerOutcome::Fallback(id.clone()),
            (Unmatched::Reject, _) => OwnerOutcome::Reject,
            _ => OwnerOutcome::Unset,
        }
    }

    /// The rule for unmatched owners.
    pub fn unmatched_rule(&self) -> Unmatched {
        self.unmatched
    }

    /// The normalised email of sink user `sink_id`, what an owner is hashed as; `None` for a
    /// user the sink did not list.
    pub fn canonical_email(&self, sink_id: &str) -> Option<&str> {
        self.sink_emails.get(sink_id).map(String::as_str)
    }

    /// How many source users have an active sink user.
    pub fn matched_count(&self) -> usize {
        self.source_users - self.unmatched_users.len()
    }

    /// The ids of the source users without an active sink user, sorted.
    pub fn unmatched_users(&self) -> &[String] {
        &self.unmatched_users
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, email: &str, active: bool) -> User {
        User {
            id: id.into(),
            email: email.into(),
            active,
        }
    }

    fn source() -> Vec<User> {
        vec![
            user("s1", "Jane@Old.example", true),
            user("s2", " bob@example.com ", true),
            user("s3", "gone@example.com", false),
            user("s4", "carol@example.com", true),
            user("s5", "", true),
        ]
    }

    fn sink() -> Vec<User> {
        vec![
            user("k1", "jane@new.example", true),
            user("k2", "BOB@example.com", true),
            user("k3", "gone@example.com", true),
            user("k4", "carol@example.com", false),
            user("k5", "ops@example.com", true),
            user("k6", "", true),
        ]
    }

    #[test]
    fn users_match_by_email_ignoring_case_and_spaces_and_inactive_sink_users_do_not() {
        let map = OwnerMap::build(&OwnerRules::default(), &source(), &sink()).unwrap();
        assert_eq!(map.owner("s2"), OwnerOutcome::Matched("k2".into()));
        // An inactive source user still owns records, and they go to its active match.
        assert_eq!(map.owner("s3"), OwnerOutcome::Matched("k3".into()));
        // Carol is inactive in the sink: unmatched; Jane's address differs; no email matches no one.
        assert_eq!(map.owner("s4"), OwnerOutcome::Unset);
        assert_eq!(map.owner("s1"), OwnerOutcome::Unset);
        assert_eq!(map.owner("s5"), OwnerOutcome::Unset);
        // A user the source did not list is unmatched too.
        assert_eq!(map.owner("s404"), OwnerOutcome::Unset);
        assert_eq!(map.unmatched_users(), ["s1", "s4", "s5"]);
        assert_eq!(map.matched_count(), 2);
        assert_eq!(map.canonical_email("k2"), Some("bob@example.com"));
        assert_eq!(map.canonical_email("k404"), None);
    }

    #[test]
    fn explicit_pairs_win_over_matching_by_email() {
        let rules = OwnerRules {
            pairs: vec![
                ("jane@old.example".into(), "JANE@new.example ".into()),
                // Bob would match k2 by email; the pair sends his records to ops instead.
                ("Bob@Example.com".into(), "ops@example.com".into()),
            ],
            ..OwnerRules::default()
        };
        let map = OwnerMap::build(&rules, &source(), &sink()).unwrap();
        assert_eq!(map.owner("s1"), OwnerOutcome::Matched("k1".into()));
        assert_eq!(map.owner("s2"), OwnerOutcome::Matched("k5".into()));
        assert_eq!(map.unmatched_users(), ["s4", "s5"]);
    }

    #[test]
    fn unmatched_owners_follow_the_rule() {
        let fallback = OwnerRules {
            unmatched: Unmatched::Fallback,
            fallback: Some("Ops@Example.com".into()),
            pairs: Vec::new(),
        };
        let map = OwnerMap::build(&fallback, &source(), &sink()).unwrap();
        assert_eq!(map.owner("s4"), OwnerOutcome::Fallback("k5".into()));
        assert_eq!(map.owner("s2"), OwnerOutcome::Matched("k2".into()));
        let reject = OwnerRules {
            unmatched: Unmatched::Reject,
            ..OwnerRules::default()
        };
        let map = OwnerMap::build(&reject, &source(), &sink()).unwrap();
        assert_eq!(map.owner("s4"), OwnerOutcome::Reject);
        assert_eq!(map.owner("s2"), OwnerOutcome::Matched("k2".into()));
    }

    #[test]
    fn a_pair_or_fallback_naming_a_missing_or_inactive_sink_user_names_its_key_not_emails() {
        let with_fallback = |email: &str| OwnerRules {
            unmatched: Unmatched::Fallback,
            fallback: Some(email.into()),
            pairs: Vec::new(),
        };
        for (email, why) in [
            ("nobody@example.com", "no sink user has this email"),
            ("carol@example.com", "inactive"),
        ] {
            let err = OwnerMap::build(&with_fallback(email), &source(), &sink()).unwrap_err();
            assert_eq!(err.key, "mapping.owners.fallback");
            let text = err.to_string();
            assert!(text.contains(why), "{text}");
            assert!(!text.contains('@'), "no email in {text}");
        }
        let no_fallback = OwnerRules {
            unmatched: Unmatched::Fallback,
            ..OwnerRules::default()
        };
        let err = OwnerMap::build(&no_fallback, &source(), &sink()).unwrap_err();
        assert_eq!(err.key, "mapping.owners.fallback");
        let pair = OwnerRules {
            pairs: vec![("Jane@Old.example".into(), "carol@example.com".into())],
            ..OwnerRules::default()
        };
        let err = OwnerMap::build(&pair, &source(), &sink()).unwrap_err();
        assert_eq!(err.key, "mapping.owners.\"Jane@Old.example\"");
        assert!(err.detail.contains("inactive") && !err.detail.contains('@'));
        let typo = OwnerRules {
            pairs: vec![("jnae@old.example".into(), "ops@example.com".into())],
            ..OwnerRules::default()
        };
        let err = OwnerMap::build(&typo, &source(), &sink()).unwrap_err();
        assert_eq!(err.key, "mapping.owners.\"jnae@old.example\"");
        assert!(err.detail.contains("no source user") && !err.detail.contains('@'));
    }

    #[test]
    fn a_user_prints_no_email() {
        let debug = format!("{:?}", user("k1", "jane@new.example", true));
        assert!(!debug.contains("jane"), "{debug}");
        assert!(debug.contains("k1") && debug.contains("active"), "{debug}");
    }
}

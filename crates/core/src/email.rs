//! Email addresses: whether one is valid (the practical subset of RFC 5321/5322 that CRMs
//! accept, with internationalised addresses), and whether a valid one is a placeholder typed
//! to get past a required field, or a role account rather than a person.
//!
//! Placeholders and role accounts are flagged, never refused: `info@` may be the only address
//! a customer gave, and only the operator can say whether `noreply@` is wrong.

use email_address::{EmailAddress, Options};

/// Why a valid address deserves a second look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Concern {
    /// An address nobody reads, typed to fill a required field (`test@test.com`, `noreply@…`,
    /// a domain reserved for testing such as `….invalid`).
    Placeholder,
    /// A shared mailbox of a team or function (`info@`, `sales@`), not a person: marketing to
    /// it reaches whoever reads it, and consent given by one person does not cover them.
    Role,
}

/// The longest address SMTP carries (RFC 5321's 256-octet path less its angle brackets).
const MAX_LEN: usize = 254;

/// Whether `email` is an address a CRM should accept: valid RFC 5322 syntax as the
/// `email_address` crate checks it (quoted local parts and Unicode included), a domain of two
/// or more labels, no display name (`Jane <jane@…>`), no domain literal (`user@[10.0.0.1]`),
/// no trailing dot, and at most 254 bytes.
pub fn is_valid(email: &str) -> bool {
    let options = Options::default()
        .with_required_tld()
        .without_display_text()
        .without_domain_literal();
    email.len() <= MAX_LEN
        && !email.ends_with('.')
        && EmailAddress::parse_with_options(email, options).is_ok()
}

/// Local parts of addresses nobody reads.
const PLACEHOLDER_LOCAL: &[&str] = &[
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "do_not_reply",
    "nobody",
    "none",
    "null",
    "nomail",
    "noemail",
    "no-email",
    "test",
    "testing",
    "fake",
    "dummy",
    "asdf",
    "qwerty",
    "xxx",
    "unknown",
    "notavailable",
    "na",
    "n.a",
];

/// Domains that stand for "no address": placeholders people type, not mail providers.
const PLACEHOLDER_DOMAINS: &[&str] = &[
    "test.com",
    "domain.com",
    "nomail.com",
    "noemail.com",
    "none.com",
    "fake.com",
    "asdf.com",
];

/// Top-level domains reserved so that they never resolve (RFC 2606, RFC 6761).
const RESERVED_TLDS: &[&str] = &["test", "example", "invalid", "localhost"];

/// Local parts of shared mailboxes (RFC 2142's and the common ones).
const ROLE_LOCAL: &[&str] = &[
    "info",
    "sales",
    "support",
    "help",
    "admin",
    "administrator",
    "contact",
    "office",
    "hello",
    "billing",
    "accounts",
    "accounting",
    "finance",
    "marketing",
    "team",
    "careers",
    "jobs",
    "hr",
    "enquiries",
    "inquiries",
    "service",
    "customerservice",
    "webmaster",
    "postmaster",
    "hostmaster",
    "abuse",
    "security",
    "noc",
    "press",
    "media",
    "legal",
    "privacy",
];

/// Whether a valid `email` is a placeholder or a role account (ignoring case and a `+tag`).
/// `None` for an ordinary address, and for an invalid one (which [`is_valid`] reports).
pub fn concern(email: &str) -> Option<Concern> {
    if !is_valid(email) {
        return None;
    }
    let (local, domain) = email.rsplit_once('@')?;
    let local = local.to_lowercase();
    let local = local
        .split_once('+')
        .map_or(local.as_str(), |(base, _)| base);
    let domain = domain.to_lowercase();
    let tld = domain.rsplit('.').next().unwrap_or_default();
    if PLACEHOLDER_LOCAL.contains(&local)
        || PLACEHOLDER_DOMAINS.contains(&domain.as_str())
        || RESERVED_TLDS.contains(&tld)
    {
        Some(Concern::Placeholder)
    } else if ROLE_LOCAL.contains(&local) {
        Some(Concern::Role)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_addresses_as_crms_take_them() {
        for good in [
            "a@example.com",
            "first.last+tag@sub.example.co.uk",
            "o'brien@example.ie",
            "jürgen@exämple.de",
            "josé@bücher.de",
            "user@xn--bcher-kva.de",
            "\"john doe\"@example.com",
            "\"a@b\"@example.com",
            "x@example.museum",
            "1234567890@example.com",
            "user@123.example",
        ] {
            assert!(is_valid(good), "{good}");
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
            ".a@example.com",
            "a.@example.com",
            "a@-x.example.com",
            "a@example..com",
            "user@example.com.",
            "Jane Doe <jane@example.com>",
            "user@[192.168.0.1]",
            "a@b@example.com",
            "user@exa mple.com",
            "user@example.com\n",
            &format!("{}@example.com", "x".repeat(65)),
            &format!("a@{}.com", vec!["b".repeat(60); 5].join(".")),
        ] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn placeholders_and_role_accounts_are_told_apart_from_people() {
        for placeholder in [
            "test@test.com",
            "noreply@shop.example.com",
            "No-Reply@company.de",
            "donotreply@company.de",
            "jane@anything.invalid",
            "jane@company.test",
            "someone@domain.com",
            "none+crm@company.de",
        ] {
            assert_eq!(
                concern(placeholder),
                Some(Concern::Placeholder),
                "{placeholder}"
            );
        }
        for role in [
            "info@company.de",
            "Sales@company.de",
            "support+eu@company.de",
        ] {
            assert_eq!(concern(role), Some(Concern::Role), "{role}");
        }
        for person in [
            "jane.doe@company.de",
            "information.officer@company.de",
            "testa@company.de",
            "jane@example.com",
            "infos@company.de",
        ] {
            assert_eq!(concern(person), None, "{person}");
        }
        assert_eq!(concern("not an address"), None);
    }
}

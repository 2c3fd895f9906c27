//! The one rule for what of a vendor's error body may go into ferry's errors, reports and logs.
//!
//! Vendor messages can quote the customer values that failed ("Cannot convert the literal
//! 'x'…"), so connectors repeat a message only where they know it cannot (a list of safe codes,
//! a validation message reduced to its codes and field names); that choice stays with each
//! connector. What this module fixes is the shape of what is kept: a vendor error code goes
//! through [`clean_code`], a repeated message through [`truncate`].

/// The longest vendor error code kept, in characters. The longest documented codes (HubSpot's
/// dotted sub-categories such as `crm.associations.INVALID_OBJECT_IDS`, Salesforce's
/// `FIELD_FILTER_VALIDATION_EXCEPTION`) are well under it.
pub const MAX_CODE_CHARS: usize = 64;

/// The longest vendor message kept, in characters, the ellipsis of a cut message included.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// What ends a message [`truncate`] cut.
pub const ELLIPSIS: char = '…';

/// Keeps a vendor error code to the characters codes are made of, so nothing else can ride
/// along in it: ASCII letters and digits, `_`, `.` (HubSpot's dotted sub-categories) and `-`,
/// at most [`MAX_CODE_CHARS`] of them. Everything else (spaces, quotes, `@`, control and
/// non-ASCII characters) is dropped, so a code can never carry a sentence, an email address or
/// a line break into a report.
pub fn clean_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .take(MAX_CODE_CHARS)
        .collect()
}

/// Cuts a vendor message that a connector has judged safe to repeat to at most
/// [`MAX_MESSAGE_CHARS`] characters, on a character boundary.
///
/// A cut message ends in [`ELLIPSIS`], which counts towards the cap: a reader can tell a cut
/// message from one the vendor ended there, and the cap stays a true bound on what a vendor
/// can put into a report line.
pub fn truncate(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => message.to_owned(),
        Some(_) => {
            let mut kept: String = message.chars().take(MAX_MESSAGE_CHARS - 1).collect();
            kept.push(ELLIPSIS);
            kept
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_only_code_characters() {
        assert_eq!(clean_code("INVALID_EMAIL"), "INVALID_EMAIL");
        assert_eq!(clean_code("0x80048d19"), "0x80048d19");
        assert_eq!(
            clean_code("crm.associations.INVALID_OBJECT_IDS"),
            "crm.associations.INVALID_OBJECT_IDS"
        );
        assert_eq!(clean_code("invalid-client"), "invalid-client");
        assert_eq!(
            clean_code("BAD CODE 'lorelai@example.com'\r\nX-Injected: yes"),
            "BADCODElorelaiexample.comX-Injectedyes"
        );
        assert_eq!(clean_code("Zoë_ÉTÉ"), "Zo_T");
        assert_eq!(clean_code(""), "");
    }

    #[test]
    fn codes_are_capped() {
        let long = "A".repeat(MAX_CODE_CHARS + 10);
        assert_eq!(clean_code(&long).len(), MAX_CODE_CHARS);
        let exact = "B".repeat(MAX_CODE_CHARS);
        assert_eq!(clean_code(&exact), exact);
    }

    #[test]
    fn short_messages_are_kept_whole() {
        assert_eq!(truncate(""), "");
        assert_eq!(truncate("token expired"), "token expired");
        let exact = "é".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(truncate(&exact), exact, "exactly at the cap is not cut");
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary_with_an_ellipsis_inside_the_cap() {
        // Multi-byte characters throughout, so a cut by bytes would panic or split one.
        let long = "ł€😀".repeat(MAX_MESSAGE_CHARS);
        let cut = truncate(&long);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS);
        assert!(cut.ends_with(ELLIPSIS));
        let kept = cut.strip_suffix(ELLIPSIS).unwrap_or_default();
        assert!(long.starts_with(kept));
        let one_over = "x".repeat(MAX_MESSAGE_CHARS + 1);
        let cut = truncate(&one_over);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS);
        assert_eq!(cut, format!("{}…", "x".repeat(MAX_MESSAGE_CHARS - 1)));
    }
}

//! Building SOQL safely: literals escaped by SOQL's rules, and `IN` lists split so that the
//! request URL stays far below Salesforce's 16 KB limit.

/// Longest URL-encoded query (`q=`) ferry sends; Salesforce refuses URIs past about 16 KB.
pub(crate) const MAX_ENCODED_QUERY: usize = 12_000;

/// A SOQL string literal: quoted, with backslash, quotes and control characters escaped.
pub(crate) fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Longest SOQL statement ferry sends in a Bulk query job: Salesforce's limit is 100,000
/// characters ("Maximum length of SOQL statements").
pub(crate) const MAX_SOQL_CHARS: usize = 100_000;

/// `{prefix} IN ('a','b',…)` queries covering `values`, each at most [`MAX_ENCODED_QUERY`]
/// bytes once URL-encoded (a single huge value still gets a query of its own).
pub(crate) fn in_queries(prefix: &str, values: &[String]) -> Vec<String> {
    let encoded = |s: &str| urlencoding::encode(s).len();
    split_in(prefix, values, MAX_ENCODED_QUERY, encoded)
}

/// `{prefix} IN (…)` statements covering `values`, each at most [`MAX_SOQL_CHARS`]
/// characters: what a Bulk query job (a POST body, no URL) takes.
pub(crate) fn in_statements(prefix: &str, values: &[String]) -> Vec<String> {
    split_in(prefix, values, MAX_SOQL_CHARS, |s| s.chars().count())
}

/// `{prefix} IN (…)` queries covering `values`, each at most `max` long as `len` measures.
fn split_in(
    prefix: &str,
    values: &[String],
    max: usize,
    len: impl Fn(&str) -> usize,
) -> Vec<String> {
    let base = len(prefix) + len(" IN ()");
    let comma = len(",");
    let mut queries = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut size = base;
    for v in values {
        let lit = literal(v);
        let cost = len(&lit) + comma;
        if !current.is_empty() && size + cost > max {
            queries.push(format!("{prefix} IN ({})", current.join(",")));
            current.clear();
            size = base;
        }
        size += cost;
        current.push(lit);
    }
    if !current.is_empty() {
        queries.push(format!("{prefix} IN ({})", current.join(",")));
    }
    queries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_escaped() {
        assert_eq!(literal("plain"), "'plain'");
        assert_eq!(literal(r"o'brien\x"), r"'o\'brien\\x'");
        assert_eq!(literal("a\nb\"c"), r#"'a\nb\"c'"#);
    }

    #[test]
    fn in_lists_are_split_by_encoded_length() {
        let ids: Vec<String> = (0..2000).map(|i| format!("{i:0>40}")).collect();
        let queries = in_queries("SELECT Id FROM Contact WHERE X__c", &ids);
        assert!(queries.len() > 1);
        for q in &queries {
            assert!(
                urlencoding::encode(q).len() <= MAX_ENCODED_QUERY,
                "{}",
                q.len()
            );
        }
        let total: usize = queries.iter().map(|q| q.matches('\'').count() / 2).sum();
        assert_eq!(total, 2000);
        assert_eq!(
            in_queries("SELECT Id FROM Contact WHERE X__c", &["1".into()]).len(),
            1
        );
        // A Bulk statement is measured in characters: 20,000 ids of 10 take three.
        let ids: Vec<String> = (0..20_000).map(|i| format!("{i:0>10}")).collect();
        let statements = in_statements("SELECT Id FROM Contact WHERE X__c", &ids);
        assert_eq!(statements.len(), 3);
        assert!(
            statements
                .iter()
                .all(|q| q.chars().count() <= MAX_SOQL_CHARS)
        );
    }
}

//! Building COQL queries safely: field names are validated API names, values are quoted with
//! `\'` escapes, and `in` lists respect Zoho's limit of 50 values.

/// Most values COQL accepts in one `in (…)`.
pub(crate) const MAX_IN_VALUES: usize = 50;

/// A COQL string literal: single-quoted, quotes escaped as `\'`.
pub(crate) fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "\\'"))
}

/// `select {columns} from {module} where {field} in (…) limit {n}` for each chunk of at most
/// 50 values. `columns` and `field` must be API names (checked by the caller's config).
pub(crate) fn in_queries(
    columns: &[String],
    module: &str,
    field: &str,
    values: &[String],
) -> Vec<String> {
    values
        .chunks(MAX_IN_VALUES)
        .map(|chunk| {
            let list: Vec<String> = chunk.iter().map(|v| quote(v)).collect();
            format!(
                "select {} from {module} where {field} in ({}) limit {}",
                columns.join(", "),
                list.join(", "),
                chunk.len().max(1)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_and_chunked() {
        assert_eq!(quote("o'brien"), "'o\\'brien'");
        let values: Vec<String> = (0..120).map(|i| i.to_string()).collect();
        let qs = in_queries(&["id".into(), "Src".into()], "Accounts", "Src", &values);
        assert_eq!(qs.len(), 3);
        assert!(qs[0].starts_with("select id, Src from Accounts where Src in ('0', '1'"));
        assert!(qs[2].ends_with("limit 20"));
    }
}

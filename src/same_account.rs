//! The same-account guard: a migration whose sink is the account it reads writes copies into
//! that account, and every rerun copies the copies. Two checks refuse it (exit 2) before any
//! write, unless the operator passes `--allow-same-account`:
//!
//! - [`static_match`], at config time and without network: the same connector at the same
//!   normalised URL with the same credential references.
//! - [`compare_identities`], where the vendors can be asked: the account id each vendor reports
//!   for the source's and the sink's credentials (HubSpot's portal id, Salesforce's org id, …).
//!
//! An account id is neither a secret nor customer data, so messages print it.

use ferry_core::{AccountId, AccountSettings, ConnectorError, Sink, Source};
use url::Url;

use crate::config::ConnectorTable;
use crate::connectors;

/// The flag that lets a run copy records within one account.
pub const ALLOW_FLAG: &str = "--allow-same-account";

/// Where `connector`'s settings say which account it reaches, from its spec in the registry.
fn account_keys(connector: &str) -> Option<AccountSettings> {
    connectors::by_name(connector).map(|spec| spec.account)
}

/// A URL as the account it names: scheme and host lower-cased, the scheme's default port
/// dropped, the path without trailing slashes; user info, query and fragment ignored. `None`
/// when it is not an absolute URL with a host.
pub fn normalise_url(raw: &str) -> Option<String> {
    let url = Url::parse(raw.trim()).ok()?;
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    let port = url
        .port_or_known_default()
        .filter(|p| Some(*p) != default_port(url.scheme()))
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let path = url.path().trim_end_matches('/');
    Some(format!("{}://{host}{port}{path}", url.scheme()))
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// The account URL a connector table names, normalised, with the key it came from (or
/// "default" when the key is unset).
fn account_url(table: &ConnectorTable, keys: &AccountSettings) -> Option<(String, String)> {
    let set = table
        .settings
        .get(keys.url_key)
        .and_then(toml::Value::as_str);
    let raw = match set {
        Some(url) => url.to_owned(),
        None => (keys.default_url)(&table.settings_json().ok()?)?,
    };
    let described = match set {
        Some(_) => format!("`{}.{}`", table.role, keys.url_key),
        None => format!("`{}.{}` (default)", table.role, keys.url_key),
    };
    Some((normalise_url(&raw)?, described))
}

/// A credential setting as a comparable reference: `${VAR}` (spaces ignored) or a command's
/// argv. `None` when unset or of another shape (the connector refuses those itself).
fn credential_ref(table: &ConnectorTable, key: &str) -> Option<String> {
    match table.settings.get(key)? {
        toml::Value::String(s) => Some(s.trim().to_owned()),
        toml::Value::Table(t) => {
            let argv: Vec<&str> = t
                .get("command")?
                .as_array()?
                .iter()
                .map(|a| a.as_str())
                .collect::<Option<_>>()?;
            Some(format!("command {argv:?}"))
        }
        _ => None,
    }
}

/// Whether `[source]` and `[sink]` name the same account by their settings alone: the same
/// connector, the same normalised account URL and the same reference in every credential key.
/// Returns the refusal message (naming the matching keys and the override), `None` otherwise.
/// Connectors or values it does not know never match: their own validation reports them.
pub fn static_match(source: &ConnectorTable, sink: &ConnectorTable) -> Option<String> {
    if source.connector != sink.connector {
        return None;
    }
    let keys = account_keys(&source.connector)?;
    let (source_url, source_key) = account_url(source, &keys)?;
    let (sink_url, sink_key) = account_url(sink, &keys)?;
    if source_url != sink_url {
        return None;
    }
    let mut same = Vec::new();
    for key in keys.credentials {
        let a = credential_ref(source, key)?;
        let b = credential_ref(sink, key)?;
        if a != b {
            return None;
        }
        same.push(format!("`{key}`"));
    }
    Some(format!(
        "[source] and [sink] are the same {connector} account: {source_key} and {sink_key} are \
         both {source_url}, and both tables give the same credential references in {creds}. \
         A migration \
         would write copies of the records into the account it reads, and every rerun would \
         copy the copies. Point [sink] at another account, or pass {ALLOW_FLAG} to copy \
         records within this one on purpose",
        connector = source.connector,
        creds = same.join(", "),
    ))
}

/// What the vendors said about the accounts behind the source's and the sink's credentials.
pub struct Identities {
    /// The vendor (the same for both, or the comparison is not made).
    pub vendor: &'static str,
    /// The source's account, or why it could not be read.
    pub source: Result<Option<AccountId>, ConnectorError>,
    /// The sink's account, or why it could not be read.
    pub sink: Result<Option<AccountId>, ConnectorError>,
}

impl Identities {
    /// The account both report, if they report the same one.
    pub fn same(&self) -> Option<&AccountId> {
        match (&self.source, &self.sink) {
            (Ok(Some(a)), Ok(Some(b))) if a.id == b.id => Some(a),
            _ => None,
        }
    }

    /// The refusal when both report the same account, naming the vendor and the id.
    pub fn refusal(&self) -> Option<String> {
        let id = self.same()?;
        Some(format!(
            "source and sink are the same {vendor} account: both credentials reach {kind} {id}. \
             A migration would write copies of the records into the account it reads, and every \
             rerun would copy the copies. Point [sink] at another account, or pass {ALLOW_FLAG} \
             to copy records within this one on purpose",
            vendor = self.vendor,
            kind = id.kind,
            id = id.id,
        ))
    }

    /// One line for `ferry check` (and the log): what was compared and what came of it.
    pub fn summary(&self) -> String {
        let read = |r: &Result<Option<AccountId>, ConnectorError>| match r {
            Ok(Some(a)) => Ok(format!("{} {}", a.kind, a.id)),
            Ok(None) => Err("the connector cannot say".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        match (read(&self.source), read(&self.sink)) {
            (Ok(a), Ok(_)) if self.same().is_some() => {
                format!("source and sink are the same {} account ({a})", self.vendor)
            }
            (Ok(a), Ok(b)) => format!(
                "source and sink are different {} accounts ({a}; {b})",
                self.vendor
            ),
            (a, b) => {
                let mut unread = Vec::new();
                if let Err(e) = a {
                    unread.push(format!("source: {e}"));
                }
                if let Err(e) = b {
                    unread.push(format!("sink: {e}"));
                }
                format!(
                    "cannot tell whether source and sink are the same {} account, which is not \
                     a refusal by itself ({})",
                    self.vendor,
                    unread.join("; ")
                )
            }
        }
    }
}

/// Asks both vendors which account their credentials reach, when source and sink are the same
/// vendor (accounts of two vendors are never the same). `None` for two vendors: no request.
pub async fn compare_identities(source: &dyn Source, sink: &dyn Sink) -> Option<Identities> {
    if source.vendor() != sink.vendor() {
        return None;
    }
    let (a, b) = tokio::join!(source.account_id(), sink.account_id());
    Some(Identities {
        vendor: source.vendor(),
        source: a,
        sink: b,
    })
}

/// The guard `migrate`, `verify` and `plan` run before anything else reaches the vendors:
/// an error (exit 2) when both credentials reach the same account (by the vendors' account
/// ids, or by the settings: `same_by_config`) and `allow` is not set. An account id that cannot
/// be read is a warning, not a refusal.
///
/// With `allow`, a copy within one account asks the source to leave out ferry's copies (the
/// records carrying the source-id field), so that a rerun updates them instead of copying the
/// copies; a connector that cannot is refused all the same.
pub async fn guard(
    source: &dyn Source,
    sink: &dyn Sink,
    same_by_config: Option<String>,
    allow: bool,
) -> anyhow::Result<()> {
    let identities = compare_identities(source, sink).await;
    if let Some(identities) = &identities {
        let summary = identities.summary();
        if identities.source.is_err() || identities.sink.is_err() {
            tracing::warn!(vendor = identities.vendor, "{summary}");
        } else {
            tracing::info!(vendor = identities.vendor, "{summary}");
        }
    }
    let refusal = same_by_config.or_else(|| identities.as_ref().and_then(Identities::refusal));
    match refusal {
        None => Ok(()),
        Some(refusal) if !allow => Err(anyhow::anyhow!(refusal)),
        Some(_) if source.leave_out_copies() => {
            tracing::warn!(
                vendor = source.vendor(),
                "source and sink are the same account: copying within it, as {ALLOW_FLAG} asks; \
                 records carrying the source-id field (ferry's copies) are not read"
            );
            Ok(())
        }
        Some(_) => Err(anyhow::anyhow!(
            "source and sink are the same {vendor} account, and the {vendor} source cannot leave \
             out the copies ferry writes (records carrying the source-id field): a copy within \
             one account would copy the copies on every rerun, so it is refused even with \
             {ALLOW_FLAG}",
            vendor = source.vendor()
        )),
    }
}

/// For a copy within one account: the sink's source-id setting, copied into the source's table
/// when that does not set it, so that the source knows which records are ferry's copies. Only
/// connectors whose source can leave out copies have one.
pub fn share_source_id_setting(source: &mut ConnectorTable, sink: &ConnectorTable) {
    let Some(key) = account_keys(&source.connector).and_then(|a| a.copies_marker_key) else {
        return;
    };
    if source.connector != sink.connector || source.settings.contains_key(key) {
        return;
    }
    if let Some(value) = sink.settings.get(key) {
        source.settings.insert(key.to_owned(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn tables(source: &str, sink: &str) -> (ConnectorTable, ConnectorTable) {
        let text = format!("[source]\n{source}\n[sink]\n{sink}\n");
        let config = Config::parse(&text).expect("test config parses");
        (config.source, config.sink)
    }

    #[test]
    fn urls_normalise_to_the_account_they_name() {
        let same = [
            "https://api.hubapi.com",
            "https://api.hubapi.com/",
            "HTTPS://API.HubAPI.com:443/",
            "https://api.hubapi.com.//",
            "https://user@api.hubapi.com/?x=1#f",
        ];
        for url in same {
            assert_eq!(
                normalise_url(url).as_deref(),
                Some("https://api.hubapi.com"),
                "{url}"
            );
        }
        assert_eq!(
            normalise_url("http://127.0.0.1:80/api/").as_deref(),
            Some("http://127.0.0.1/api")
        );
        assert_eq!(
            normalise_url("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        // Another port, scheme or path is another account.
        for other in [
            "https://api.hubapi.com:8443",
            "http://api.hubapi.com",
            "https://api.hubapi.com/eu",
        ] {
            assert_ne!(
                normalise_url(other).as_deref(),
                Some("https://api.hubapi.com")
            );
        }
        assert_eq!(normalise_url("not a url"), None);
    }

    const HUB: &str = "connector = \"hubspot\"\ntoken = \"${HUBSPOT_TOKEN}\"\n";

    #[test]
    fn same_connector_url_and_credential_reference_is_refused() {
        let (a, b) = tables(
            &format!("{HUB}base_url = \"http://127.0.0.1:8081\""),
            "connector = \"hubspot\"\nbase_url = \"HTTP://127.0.0.1:8081/\"\ntoken = \" ${HUBSPOT_TOKEN} \"",
        );
        let refusal = static_match(&a, &b).expect("same account");
        for part in [
            "source.base_url",
            "sink.base_url",
            "`token`",
            ALLOW_FLAG,
            "http://127.0.0.1:8081",
        ] {
            assert!(refusal.contains(part), "{part} missing: {refusal}");
        }
        // Both at the default URL.
        let (a, b) = tables(HUB, HUB);
        let refusal = static_match(&a, &b).expect("same account at the default URL");
        assert!(refusal.contains("(default)"), "{refusal}");
        assert!(refusal.contains("https://api.hubapi.com"), "{refusal}");
    }

    #[test]
    fn another_url_credential_or_connector_is_allowed() {
        let (a, b) = tables(
            &format!("{HUB}base_url = \"http://127.0.0.1:8081\""),
            &format!("{HUB}base_url = \"http://127.0.0.1:8082\""),
        );
        assert_eq!(static_match(&a, &b), None);
        let (a, b) = tables(HUB, "connector = \"hubspot\"\ntoken = \"${OTHER_TOKEN}\"");
        assert_eq!(static_match(&a, &b), None);
        let (a, b) = tables(
            HUB,
            "connector = \"pipedrive\"\napi_token = \"${HUBSPOT_TOKEN}\"",
        );
        assert_eq!(static_match(&a, &b), None);
    }

    #[test]
    fn every_credential_key_must_match() {
        let sf = |secret: &str| {
            format!(
                "connector = \"salesforce\"\nclient_id = \"${{SF_ID}}\"\nclient_secret = \"${{{secret}}}\""
            )
        };
        let (a, b) = tables(&sf("SF_SECRET"), &sf("SF_SECRET"));
        let refusal = static_match(&a, &b).expect("same org");
        assert!(
            refusal.contains("`client_id`, `client_secret`"),
            "{refusal}"
        );
        let (a, b) = tables(&sf("SF_SECRET"), &sf("SF_OTHER_SECRET"));
        assert_eq!(static_match(&a, &b), None);
    }

    #[test]
    fn secret_commands_compare_by_argv() {
        let pd = |entry: &str| {
            format!(
                "connector = \"pipedrive\"\napi_token = {{ command = [\"pass\", \"show\", \"{entry}\"] }}"
            )
        };
        let (a, b) = tables(&pd("crm/pd"), &pd("crm/pd"));
        assert!(static_match(&a, &b).is_some());
        let (a, b) = tables(&pd("crm/pd"), &pd("crm/pd-other"));
        assert_eq!(static_match(&a, &b), None);
    }

    #[test]
    fn zoho_compares_the_data_centres_api_domain() {
        let zoho = |extra: &str| {
            format!(
                "connector = \"zoho\"\nclient_id = \"${{Z_ID}}\"\nclient_secret = \"${{Z_SECRET}}\"\nrefresh_token = \"${{Z_REFRESH}}\"\n{extra}"
            )
        };
        let (a, b) = tables(&zoho(""), &zoho("api_url = \"https://www.zohoapis.com/\""));
        assert!(static_match(&a, &b).is_some());
        let (a, b) = tables(&zoho(""), &zoho("data_centre = \"eu\""));
        assert_eq!(static_match(&a, &b), None);
    }

    #[test]
    fn identities_compare_by_id() {
        let id = |id: &str| {
            Ok(Some(AccountId {
                kind: "portal id",
                id: id.into(),
            }))
        };
        let same = Identities {
            vendor: "hubspot",
            source: id("123"),
            sink: id("123"),
        };
        let refusal = same.refusal().expect("same account");
        assert!(refusal.contains("hubspot") && refusal.contains("portal id 123"));
        assert!(refusal.contains(ALLOW_FLAG));
        let different = Identities {
            vendor: "hubspot",
            source: id("123"),
            sink: id("456"),
        };
        assert_eq!(different.refusal(), None);
        assert!(different.summary().contains("different hubspot accounts"));
        let unread = Identities {
            vendor: "hubspot",
            source: id("123"),
            sink: Ok(None),
        };
        assert_eq!(unread.refusal(), None);
        assert!(unread.summary().contains("not a refusal by itself"));
    }
}

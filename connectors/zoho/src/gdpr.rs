//! Zoho's GDPR consent record: where an org has GDPR compliance on (`privacy_settings` of `GET
//! /crm/v8/org`) for Contacts, each contact holds `Data_Processing_Basis_Details`, a nested
//! object whose `Data_Processing_Basis` is the one legal basis Zoho keeps and whose
//! `Consent_Date` is the day consent was given. ferry carries them as `legal_basis` and
//! `consent_date` (consent records: never refused, never cleared).
//!
//! - **Read** by `GET /crm/v8/Contacts?ids=…&fields=Data_Processing_Basis_Details`, up to 100
//!   contacts a call: whether COQL selects the field is not documented, so neither a COQL page
//!   nor a read-back by COQL asks for it.
//! - **Bases** map to the model's names ([`BASES`]); `Obtained` is consent. The other consent
//!   stages (`Pending`, `Awaiting`, `Not Responded`, `Denied`: [`STAGES`]) are no legal basis:
//!   they travel under Zoho's own name, an option outside the model's names, so a Zoho sink
//!   keeps them and any other sink leaves them out with `NAMES_NOT_HELD` naming the record by
//!   source id (never the stage).
//! - **Written** only when the record holds a legal basis or a consent date (else left out:
//!   Zoho keeps its own). Zoho holds one basis: the sink declares
//!   [`ferry_core::FieldLimit::one_of`] in the order of [`BASES`] then [`STAGES`], so the
//!   engine keeps the first a record holds and names the ones left out.

use std::collections::HashMap;

use ferry_core::model::{FieldType, format_date};
use ferry_core::{ConnectorError, ConnectorResult, Record, RecordRejection, Value, field};
use reqwest::Method;
use serde_json::{Map, Value as Json, json};

use crate::VENDOR;
use crate::client::Client;

/// The consent record's API name on Contacts.
pub const FIELD: &str = "Data_Processing_Basis_Details";

/// `Data_Processing_Basis` values that are legal bases, with the model's name for each, in
/// the precedence a sink holding one basis writes them: consent first (the basis a controller
/// must be able to prove, GDPR Art. 7(1), and the only one Zoho dates), then Art. 6(1) (b)–(f)
/// in the Article's order, then `Not Applicable` (GDPR does not apply), which any other
/// basis contradicts.
pub const BASES: &[(&str, &str)] = &[
    ("Obtained", "consent"),
    ("Contract", "contract"),
    ("Legal Obligation", "legal_obligation"),
    ("Vital Interests", "vital_interests"),
    ("Public Interest", "public_interest"),
    ("Legitimate Interests", "legitimate_interests"),
    ("Not Applicable", "not_applicable"),
];

/// `Data_Processing_Basis` values that are consent stages short of consent given: no legal
/// basis, carried under Zoho's own name (see the module's documentation).
pub const STAGES: &[&str] = &["Pending", "Awaiting", "Not Responded", "Denied"];

/// The canonical field a key of the consent record carries, for messages (Zoho names the key,
/// not the record, when it refuses one).
pub(crate) fn canonical_of(key: &str) -> Option<&'static str> {
    match key {
        "Data_Processing_Basis" => Some(field::LEGAL_BASIS),
        "Consent_Date" => Some(field::CONSENT_DATE),
        _ => None,
    }
}

/// The names a Zoho sink holds in `legal_basis`, in its precedence.
pub fn held_names() -> Vec<String> {
    BASES
        .iter()
        .map(|(_, name)| (*name).to_owned())
        .chain(STAGES.iter().map(|s| (*s).to_owned()))
        .collect()
}

/// Whether the org keeps the consent record on Contacts: `privacy_settings` of `GET
/// /crm/v8/org` (no call when the run asked it already, for the org id or the clock), and the
/// field listed by `GET /crm/v8/settings/fields?module=Contacts` (GDPR is switched on per
/// module). At most two calls, once per run.
pub(crate) async fn enabled(client: &Client) -> ConnectorResult<bool> {
    let answer = client.org().await?;
    if answer["org"][0]["privacy_settings"].as_bool() != Some(true) {
        return Ok(false);
    }
    const FIELDS: &str = "/crm/v8/settings/fields";
    let answer: Json = client
        .send_ok(Method::GET, FIELDS, &[("module", "Contacts")], None)
        .await?
        .json(VENDOR, &format!("GET {FIELDS}"))?;
    Ok(answer["fields"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f["api_name"] == FIELD)))
}

/// The consent records of the contacts `ids` (Zoho ids), by id: one `GET ?ids=` per 100, the
/// calls in flight together (the client's permits bound them).
pub(crate) async fn fetch(
    client: &Client,
    ids: &[&str],
) -> ConnectorResult<HashMap<String, Map<String, Json>>> {
    const PATH: &str = "/crm/v8/Contacts";
    let chunks: Vec<String> = ids
        .iter()
        .filter(|id| crate::source::is_id(id))
        .copied()
        .collect::<Vec<_>>()
        .chunks(100)
        .map(|c| c.join(","))
        .collect();
    let answers = crate::sink::join_all(
        chunks
            .iter()
            .map(|ids| async move {
                let query = [("ids", ids.as_str()), ("fields", FIELD)];
                client.send_ok(Method::GET, PATH, &query, None).await
            })
            .collect(),
    )
    .await;
    let mut out = HashMap::new();
    for answer in answers {
        let response = answer?;
        if response.status.as_u16() == 204 {
            continue;
        }
        let body: Json = response.json(VENDOR, &format!("GET {PATH}"))?;
        let Some(rows) = body["data"].as_array() else {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: format!("GET {PATH}"),
                detail: "the answer has no data array".into(),
            });
        };
        for row in rows {
            if let (Some(id), Some(Json::Object(consent))) = (row["id"].as_str(), row.get(FIELD)) {
                out.insert(id.to_owned(), consent.clone());
            }
        }
    }
    Ok(out)
}

/// Sets `record`'s `legal_basis` and `consent_date` from its consent record. A consent stage
/// short of consent is carried under its own name and logged by source id. A date that is not
/// one makes the record unreadable, as any value that does not fit its field does
/// (`UNREADABLE_VALUE`, naming the field, never the value): a consent record is not dropped
/// quietly.
pub(crate) fn apply(
    record: &mut Record,
    consent: &Map<String, Json>,
) -> Result<(), RecordRejection> {
    if let Some(basis) = consent
        .get("Data_Processing_Basis")
        .and_then(Json::as_str)
        .map(str::trim)
        .filter(|b| !b.is_empty())
    {
        let name = BASES
            .iter()
            .find(|(zoho, _)| zoho.eq_ignore_ascii_case(basis))
            .map(|(_, name)| *name);
        if name.is_none() {
            tracing::info!(
                vendor = VENDOR,
                source_id = record.source_id.as_str(),
                "the GDPR consent record is at a consent stage, not a legal basis: carried under Zoho's name"
            );
        }
        if let Some(value) = ferry_core::model::names_value([name.unwrap_or(basis)]) {
            record.set(field::LEGAL_BASIS, value);
        }
    }
    if let Some(date) = consent.get("Consent_Date").and_then(Json::as_str) {
        match Value::parse(FieldType::Date, date) {
            Ok(Some(value)) => record.set(field::CONSENT_DATE, value),
            Ok(None) => {}
            Err(e) => {
                return Err(RecordRejection {
                    source_id: record.source_id.clone(),
                    code: "UNREADABLE_VALUE".into(),
                    reason: format!(
                        "{} ({FIELD}.Consent_Date) is not {}",
                        field::CONSENT_DATE,
                        e.expected
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The consent record to write for `record`, or `None` when it holds neither a legal basis nor
/// a consent date (the field is then left out, so Zoho keeps its own). Of several names the
/// first by [`held_names`] is written (the engine has narrowed them to one already); a name
/// Zoho has no value for is not written. A consent date that is not a date refuses the record,
/// naming the field, never the value.
pub(crate) fn to_write(record: &Record) -> Result<Option<Json>, RecordRejection> {
    let mut out = Map::new();
    if let Some(text) = record.text(field::LEGAL_BASIS) {
        let names: Vec<&str> = ferry_core::model::names(text).collect();
        let basis = BASES
            .iter()
            .find(|(_, name)| names.contains(name))
            .map(|(zoho, _)| *zoho)
            .or_else(|| STAGES.iter().find(|s| names.contains(s)).copied());
        if let Some(basis) = basis {
            out.insert("Data_Processing_Basis".into(), json!(basis));
        }
    }
    match record.get(field::CONSENT_DATE) {
        None => {}
        Some(Value::Date(days)) => {
            out.insert("Consent_Date".into(), json!(format_date(*days)));
        }
        Some(_) => {
            return Err(RecordRejection {
                source_id: record.source_id.clone(),
                code: "INVALID_VALUE".into(),
                reason: format!("{} is not a date", field::CONSENT_DATE),
            });
        }
    }
    Ok((!out.is_empty()).then_some(Json::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::ObjectType;

    fn consent(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_consent_record_reads_as_the_models_names_and_a_stage_under_zohos() {
        let mut r = Record::new(ObjectType::CONTACTS, "5");
        apply(
            &mut r,
            &consent(json!({"Data_Processing_Basis": "Obtained", "Consent_Date": "2024-02-29"})),
        )
        .unwrap();
        assert_eq!(r.text(field::LEGAL_BASIS), Some("consent"));
        assert_eq!(r.get(field::CONSENT_DATE), Some(&Value::Date(19_782)));
        assert_eq!(
            to_write(&r).unwrap(),
            Some(json!({"Data_Processing_Basis": "Obtained", "Consent_Date": "2024-02-29"}))
        );

        let mut stage = Record::new(ObjectType::CONTACTS, "6");
        apply(
            &mut stage,
            &consent(json!({"Data_Processing_Basis": "Awaiting"})),
        )
        .unwrap();
        assert_eq!(stage.text(field::LEGAL_BASIS), Some("Awaiting"));
        assert_eq!(stage.get(field::CONSENT_DATE), None);
        assert_eq!(
            to_write(&stage).unwrap(),
            Some(json!({"Data_Processing_Basis": "Awaiting"}))
        );

        let mut bad = Record::new(ObjectType::CONTACTS, "7");
        let unreadable = apply(&mut bad, &consent(json!({"Consent_Date": "someday"}))).unwrap_err();
        assert_eq!(unreadable.code, "UNREADABLE_VALUE");
        assert!(
            unreadable.reason.contains(field::CONSENT_DATE)
                && !unreadable.reason.contains("someday"),
            "{}",
            unreadable.reason
        );
    }

    #[test]
    fn nothing_is_written_without_a_basis_or_a_date_and_several_write_the_first_by_precedence() {
        let mut r = Record::new(ObjectType::CONTACTS, "c-1");
        assert_eq!(to_write(&r).unwrap(), None, "left out: never cleared");
        r.set(
            field::LEGAL_BASIS,
            Value::Text("legitimate_interests; contract".into()),
        );
        assert_eq!(
            to_write(&r).unwrap(),
            Some(json!({"Data_Processing_Basis": "Contract"}))
        );
        r.set(
            field::LEGAL_BASIS,
            Value::Text("a basis of another vendor's own".into()),
        );
        assert_eq!(to_write(&r).unwrap(), None);
        r.set(field::CONSENT_DATE, Value::Text("2024-01-01".into()));
        let refused = to_write(&r).unwrap_err();
        assert!(refused.reason.contains(field::CONSENT_DATE) && !refused.reason.contains("2024"));
        assert_eq!(held_names()[0], "consent");
        for (_, name) in BASES {
            assert!(ferry_core::model::legal_basis(name).is_some(), "{name}");
        }
    }
}

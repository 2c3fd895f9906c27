//! Environment variables over real HTTP: a definition (unique schema name, type, default
//! value) and its value record, read by a filter on the schema name, replaced under `If-Match`
//! (412 once the record changed), deleted under `If-Match`, 2,000 characters at most.

use super::*;

#[tokio::test]
async fn environment_variables_are_created_read_by_schema_name_and_replaced_only_at_their_version()
{
    let env = env(Options::default()).await;
    let representation = [("Prefer", "return=representation")];
    let definition = json!({
        "schemaname": "ferry_state_0123456789abcdef",
        "displayname": "ferry sync state",
        "type": 100_000_003,
    });
    let (status, _, created) = env
        .send(
            reqwest::Method::POST,
            &env.url("environmentvariabledefinitions"),
            &representation,
            Some(definition.clone()),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let definition_id = created["environmentvariabledefinitionid"]
        .as_str()
        .expect("id")
        .to_owned();
    // Schema names are unique: a second definition of the same name is refused.
    let (status, _, body) = env
        .send(
            reqwest::Method::POST,
            &env.url("environmentvariabledefinitions"),
            &[],
            Some(definition),
        )
        .await;
    assert_eq!(status, 412, "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");

    let (status, _, value) = env
        .send(
            reqwest::Method::POST,
            &env.url("environmentvariablevalues"),
            &representation,
            Some(json!({
                "schemaname": "ferry_state_0123456789abcdef",
                "value": "{\"v\":1}",
                "EnvironmentVariableDefinitionId@odata.bind":
                    format!("/environmentvariabledefinitions({definition_id})"),
            })),
        )
        .await;
    assert_eq!(status, 201, "{value}");
    let value_id = value["environmentvariablevalueid"]
        .as_str()
        .expect("id")
        .to_owned();
    let first_etag = value["@odata.etag"].as_str().expect("etag").to_owned();
    assert_eq!(
        value["_environmentvariabledefinitionid_value"],
        definition_id.as_str()
    );

    let (status, _, page) = env
        .get(
            "environmentvariablevalues?$select=value&$filter=schemaname eq 'ferry_state_0123456789abcdef'",
            &[],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["value"][0]["value"], "{\"v\":1}");
    assert_eq!(page["value"][0]["@odata.etag"], first_etag.as_str());

    // Or read with its definition expanded, in one request.
    let (status, _, page) = env
        .get(
            "environmentvariablevalues?$select=value&$expand=EnvironmentVariableDefinitionId($select=schemaname,type)",
            &[],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let definition = &page["value"][0]["EnvironmentVariableDefinitionId"];
    assert_eq!(
        definition["schemaname"], "ferry_state_0123456789abcdef",
        "{page}"
    );
    assert_eq!(definition["type"], 100_000_003, "{page}");

    // Replaced at its version: a new ETag. Replaced again at the old one: 412, unchanged.
    let record = format!("environmentvariablevalues({value_id})");
    let (status, _, replaced) = env
        .patch(
            &record,
            &[("If-Match", &first_etag), representation[0]],
            json!({"value": "{\"v\":2}"}),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    let second_etag = replaced["@odata.etag"].as_str().expect("etag").to_owned();
    assert_ne!(second_etag, first_etag);
    let (status, _, body) = env
        .patch(
            &record,
            &[("If-Match", &first_etag)],
            json!({"value": "{\"v\":3}"}),
        )
        .await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["error"]["code"], "0x80060882");
    let (_, _, now) = env.get(&format!("{record}?$select=value"), &[]).await;
    assert_eq!(now["value"], "{\"v\":2}");

    // A value longer than the column holds is refused.
    let (status, _, body) = env
        .patch(
            &record,
            &[("If-Match", &second_etag)],
            json!({"value": "x".repeat(records::ENVIRONMENT_VALUE_MAX + 1)}),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // A delete under a stale ETag is refused; under the current one it goes.
    let (status, _, _) = env
        .send(
            reqwest::Method::DELETE,
            &env.url(&record),
            &[("If-Match", &first_etag)],
            None,
        )
        .await;
    assert_eq!(status, 412);
    let (status, _, _) = env
        .send(
            reqwest::Method::DELETE,
            &env.url(&record),
            &[("If-Match", &second_etag)],
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, _, page) = env
        .get(
            "environmentvariablevalues?$filter=schemaname eq 'ferry_state_0123456789abcdef'",
            &[],
        )
        .await;
    assert_eq!(page["value"].as_array().map(Vec::len), Some(0), "{page}");
}

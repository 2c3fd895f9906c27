//! A deal's contacts as contact roles (`/crm/v8/Deals/{deal}/Contact_Roles`): Zoho holds any
//! number of contacts on a deal this way, each with one role, and has no read or write of
//! several deals' roles at once, so each deal is one read (paged) and each contact one write.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::VENDOR;
use crate::client::Client;
use crate::policy::clean_code;
use crate::source::is_id;
use ferry_core::http::HttpResponse;
use ferry_core::{ConnectorError, ConnectorResult};

/// Contacts a roles page asks for (Zoho's most a page).
const ROLES_PER_PAGE: usize = 200;

#[derive(Deserialize, Default)]
struct Info {
    #[serde(default)]
    more_records: bool,
}

#[derive(Deserialize, Default)]
struct RolesBody {
    #[serde(default)]
    data: Vec<Map<String, Json>>,
    #[serde(default)]
    info: Info,
}

/// A JSON scalar as text.
pub(crate) fn text(z: &Map<String, Json>, name: &str) -> Option<String> {
    match z.get(name)? {
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The contacts that hold a role on deal `deal` (`GET /crm/v8/Deals/{deal}/Contact_Roles`),
/// each with `id` and the contact fields named in `fields`; every page.
pub(crate) async fn contacts_of(
    client: &Client,
    deal: &str,
    fields: &str,
) -> ConnectorResult<Vec<Map<String, Json>>> {
    let endpoint = "GET /crm/v8/Deals/{id}/Contact_Roles";
    if !is_id(deal) {
        return Err(ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: endpoint.into(),
            detail: "a deal id that is not a number".into(),
        });
    }
    let path = format!("/crm/v8/Deals/{deal}/Contact_Roles");
    let per_page = ROLES_PER_PAGE.to_string();
    let mut out = Vec::new();
    for page in 1.. {
        let page = page.to_string();
        let query = [
            ("fields", fields),
            ("per_page", per_page.as_str()),
            ("page", page.as_str()),
        ];
        let response = client.send_ok(Method::GET, &path, &query, None).await?;
        if response.status.as_u16() == 204 {
            break;
        }
        let body: RolesBody = response.json(VENDOR, endpoint)?;
        let more = body.info.more_records && !body.data.is_empty();
        out.extend(body.data);
        if !more {
            break;
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
struct RoleDefs {
    #[serde(default)]
    contact_roles: Vec<RoleDef>,
}

#[derive(Deserialize)]
struct RoleDef {
    #[serde(default)]
    id: Json,
    #[serde(default)]
    sequence_number: Option<i64>,
}

/// The id of the role ferry gives the contacts it adds to a deal: the org's first contact role
/// (`GET /crm/v8/Contacts/roles`, by sequence number). Zoho requires a role; ferry's model has
/// none, and a contact that already holds a role keeps it.
pub(crate) async fn default_role(client: &Client) -> ConnectorResult<String> {
    let endpoint = "GET /crm/v8/Contacts/roles";
    let response = client
        .send_ok(Method::GET, "/crm/v8/Contacts/roles", &[], None)
        .await?;
    let body: RoleDefs = response.json(VENDOR, endpoint)?;
    body.contact_roles
        .iter()
        .min_by_key(|r| r.sequence_number.unwrap_or(i64::MAX))
        .and_then(|r| match &r.id {
            Json::String(s) if !s.is_empty() => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .ok_or_else(|| ConnectorError::Setup {
            vendor: VENDOR,
            detail: "the org defines no contact roles (Setup → Customization → Modules and \
                     Fields → Contacts → Contact Roles): ferry gives each contact it adds to a \
                     deal a role, as Zoho requires"
                .into(),
        })
}

/// Gives contact `contact` the role `role` on deal `deal`
/// (`PUT /crm/v8/Deals/{deal}/Contact_Roles/{contact}`). `Some(code)` when Zoho refuses it
/// for this deal or contact (a contact deleted meanwhile: `INVALID_DATA`), which refuses that
/// deal only; a refusal of the role itself (the same for every deal), a spent credit budget or
/// exhausted retries of a transient failure stop the run.
pub(crate) async fn put(
    client: &Client,
    deal: &str,
    contact: &str,
    role: &str,
) -> ConnectorResult<Option<String>> {
    let path = format!("/crm/v8/Deals/{deal}/Contact_Roles/{contact}");
    let body = json!({"data": [{"Contact_Role": {"id": role}}]});
    let response = client.send(Method::PUT, &path, &[], Some(&body)).await?;
    if let Some(code) = refused(&response) {
        return Ok(Some(code));
    }
    if response.is_success() {
        Ok(None)
    } else {
        Err(client.error_for(&format!("PUT {path}"), &response))
    }
}

/// The code of a role write Zoho refused for its deal or contact: a 4xx (not 429, which is a
/// spent budget once retries are done) or an item with status `error`, whose error does not
/// name the `Contact_Role` (a role refused is refused for every deal: a whole-run error).
fn refused(response: &HttpResponse) -> Option<String> {
    let status = response.status.as_u16();
    let body: Json = serde_json::from_slice(&response.body).ok()?;
    let error = match body
        .get("data")
        .and_then(Json::as_array)
        .and_then(|d| d.first())
    {
        Some(item) if item.get("status").and_then(Json::as_str) == Some("error") => item,
        Some(_) => return None,
        None if (400..500).contains(&status) && status != 429 => &body,
        None => return None,
    };
    let names_role = error
        .get("details")
        .and_then(|d| d.get("api_name"))
        .and_then(Json::as_str)
        == Some("Contact_Role");
    let code = clean_code(error.get("code").and_then(Json::as_str).unwrap_or_default());
    (!names_role && !code.is_empty()).then_some(code)
}

/// Removes the roles of `contacts` on deal `deal` (`DELETE …/Contact_Roles?ids=`, 100 a call).
pub(crate) async fn remove(
    client: &Client,
    deal: &str,
    contacts: &[String],
) -> ConnectorResult<()> {
    let path = format!("/crm/v8/Deals/{deal}/Contact_Roles");
    for chunk in contacts.chunks(100) {
        let ids = chunk.join(",");
        client
            .send_ok(Method::DELETE, &path, &[("ids", ids.as_str())], None)
            .await?;
    }
    Ok(())
}

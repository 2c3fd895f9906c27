//! Dataverse's error body, `{"error": {"code": "0x…", "message": "…"}}`, and the errors the
//! emulator answers with. Codes and messages follow the documentation where it gives them;
//! `docs/connectors/dynamics.md` lists the ones that are the emulator's own choice.

use axum::http::StatusCode;
use serde_json::{Value as Json, json};

use super::store::{Table, Target, guid};

/// A table as error messages and URLs name it: the older store's [`Table`]s and the tables on
/// the shared engine alike.
pub trait Entity {
    /// The logical name (`account`).
    fn logical(&self) -> &'static str;
    /// The entity set name (`accounts`).
    fn set(&self) -> &'static str;
    /// The primary key column (`accountid`).
    fn id_column(&self) -> &'static str;
}

impl Entity for Table {
    fn logical(&self) -> &'static str {
        Table::logical(*self)
    }
    fn set(&self) -> &'static str {
        Table::set(*self)
    }
    fn id_column(&self) -> &'static str {
        Table::id_column(*self)
    }
}

/// An error answer: status, Dataverse error code, message.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The SDK error code (`0x80044331`), sometimes empty.
    pub code: &'static str,
    /// The message, as Dataverse words it (it may quote values).
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Json {
        json!({"error": {"code": self.code, "message": self.message}})
    }

    /// 404 for a record that does not exist.
    pub fn not_found(table: impl Entity + Copy, target: &Target) -> ApiError {
        let message = match target {
            Target::Id(id) => format!("{} With Id = {} Does Not Exist", table.logical(), guid(*id)),
            _ => format!(
                "A record with the specified key values does not exist in {} entity",
                table.logical()
            ),
        };
        ApiError::new(StatusCode::NOT_FOUND, "0x80040217", message)
    }

    /// 412 for `If-None-Match: *` on an existing record (documented body, empty code).
    pub fn exists() -> ApiError {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "",
            "A record with matching key values already exists.",
        )
    }

    /// 412 for an `If-Match` ETag that is not the record's version.
    pub fn precondition_failed() -> ApiError {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "0x80060882",
            "The version of the existing record doesn't match the RowVersion property provided.",
        )
    }

    /// 400 for a key that is not a defined alternate key (documented message).
    pub fn invalid_key(table: impl Entity + Copy) -> ApiError {
        let t = table.logical();
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80060888",
            format!(
                "The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.{t}'. Ensure that the \
                 names and number of key properties match the declared or alternate key properties for the resource \
                 'Microsoft.Dynamics.CRM.{t}'."
            ),
        )
    }

    /// 400 for a key value with a character alternate keys do not support.
    pub fn unsupported_key_chars() -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80060888",
            "Bad Request - Invalid URL: an alternate key value contains a character that keys do not support \
             (/ < > * % & : \\ ? +).",
        )
    }

    /// 412 for a second record with the same alternate-key value.
    pub fn duplicate_key() -> ApiError {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "0x80060892",
            format!(
                "A record that has the attribute values Ferry Source Id already exists. The entity key {} requires \
                 that this set of attributes contains unique values. Select unique values and try again.",
                super::store::KEY_NAME
            ),
        )
    }

    /// 400 for a property the entity type does not have.
    pub fn unknown_property(table: impl Entity + Copy, name: &str) -> ApiError {
        ApiError::payload(
            table,
            &format!(
                "Microsoft.OData.ODataException: The property '{name}' does not exist on type \
                 'Microsoft.Dynamics.CRM.{}'. Make sure to only use property names that are defined by the type or \
                 mark the type as open type.",
                table.logical()
            ),
        )
    }

    /// 400 for a payload the OData layer cannot read.
    pub fn payload(table: impl Entity + Copy, inner: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80048d19",
            format!(
                "Error identified in Payload provided by the user for Entity :'{}', For more information on this error \
                 please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293  ---->  InnerException : {inner}",
                table.set()
            ),
        )
    }

    /// 400 for a value of the wrong JSON type (the message quotes the value, as Dataverse's does).
    pub fn literal_mismatch(table: impl Entity + Copy, value: &Json, edm: &str) -> ApiError {
        ApiError::payload(
            table,
            &format!(
                "Microsoft.OData.ODataException: Cannot convert the literal '{}' to the expected type '{edm}'.",
                value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned)
            ),
        )
    }

    /// 400 for text longer than the column allows (documented message).
    pub fn too_long(table: impl Entity + Copy, column: &str, max: usize) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80044331",
            format!(
                "A validation error occurred.  The length of the '{column}' attribute of the '{}' entity exceeded the \
                 maximum allowed length of '{max}'.",
                table.logical()
            ),
        )
    }

    /// 400 for a number outside the column's range (the message quotes the value).
    pub fn out_of_range(
        table: impl Entity + Copy,
        column: &str,
        value: &Json,
        min: &str,
        max: &str,
    ) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80044331",
            format!(
                "A validation error occurred. The value {value} of '{column}' on record of type '{}' is outside the \
                 valid range. Accepted range: {min} to {max}",
                table.logical()
            ),
        )
    }

    /// 400 for a choice value the option set does not have.
    pub fn bad_choice(table: impl Entity + Copy, column: &str, value: i64) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x8004431a",
            format!(
                "A validation error occurred. The value {value} of '{column}' on record of type '{}' is outside the \
                 valid range.",
                table.logical()
            ),
        )
    }

    /// 400 for a missing required column (only when the emulator is told to enforce it).
    pub fn required(table: impl Entity + Copy, column: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80040200",
            format!(
                "A validation error occurred. The '{column}' attribute of the '{}' entity is required.",
                table.logical()
            ),
        )
    }

    /// 400 for an `@odata.bind` value that is not a record URL.
    pub fn bad_bind(reference: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80060888",
            format!("The @odata.bind value '{reference}' is not a valid entity reference."),
        )
    }

    /// 400 for a query the emulator (or Dataverse) does not support.
    pub fn query(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "0x80060888", message)
    }

    /// 404 for a resource that does not exist.
    pub fn no_resource(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "0x80060888",
            format!("Resource not found for the segment '{path}'."),
        )
    }

    /// 404 for a column definition the table does not have.
    pub fn no_attribute(table: impl Entity + Copy, key: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "0x80040217",
            format!(
                "Could not find attribute with key {key} on entity {}.",
                table.logical()
            ),
        )
    }

    /// 400 for a column definition that cannot be created as sent.
    pub fn metadata(message: &str) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "0x80044363", message)
    }

    /// 400 for a column whose name the table already has.
    pub fn duplicate_attribute(table: Table, logical: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80044363",
            format!(
                "An attribute with the specified name {logical} already exists on entity {}.",
                table.logical()
            ),
        )
    }

    /// 405 for a method the resource does not take.
    pub fn method() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "0x80060888",
            "The requested resource does not support http method.",
        )
    }
}

impl ApiError {
    /// 404 for a record of `logical` that does not exist (Dataverse's "Does Not Exist").
    pub fn does_not_exist(logical: &str, id: u128) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "0x80040217",
            format!("{logical} With Id = {} Does Not Exist", guid(id)),
        )
    }

    /// 400 for a disabled user as a record's owner. The documentation gives no code for this;
    /// the emulator answers Dataverse's generic invalid-argument code with a message naming the
    /// user (see `docs/connectors/dynamics.md`).
    pub fn disabled_user(id: u128) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80040203",
            format!(
                "The user with SystemUserId = {} is disabled. A disabled user cannot own records; assign the \
                 record to an enabled user.",
                guid(id)
            ),
        )
    }

    /// 400 for a change to a won or lost opportunity: closed opportunities are read-only until
    /// reopened (documented behaviour; the code and wording are the emulator's).
    pub fn closed_opportunity(id: u128) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80040203",
            format!(
                "The opportunity with Id = {} is closed (won or lost) and is read-only. Reopen it (statecode 0) before \
                 changing it.",
                guid(id)
            ),
        )
    }

    /// 400 for `statecode` written to close an opportunity: closing takes `WinOpportunity` or
    /// `LoseOpportunity`.
    pub fn close_with_action() -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80040203",
            "An opportunity is closed as won or lost with the WinOpportunity or LoseOpportunity action, not by \
             setting statecode or statuscode.",
        )
    }

    /// 400 for an action's `Status` that is not a status of the state the action sets.
    pub fn bad_status(action: &str, status: i64) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80040203",
            format!("{status} is not a valid status code for {action}."),
        )
    }

    /// 400 for an action body without a required parameter.
    pub fn missing_parameter(action: &str, name: &str) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "0x80040203",
            format!("Required parameter '{name}' of the {action} action is missing or not valid."),
        )
    }
}

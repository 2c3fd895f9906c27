//! The emulated org's metadata: the Account and Contact fields ferry maps, their types and
//! lengths as Salesforce's standard object reference documents them, record ids, and the
//! value rules Salesforce applies on save (trimming, empty-is-null, length, email shape).

use serde_json::{Value as Json, json};

use crate::timestamp::Iso8601;

/// The external-id field ferry asks operators to create on Account and Contact.
pub const EXTERNAL_ID_FIELD: &str = "Ferry_Source_Id__c";

/// A Salesforce field type, as `describe` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Id,
    String,
    Textarea,
    Email,
    Phone,
    Url,
    Picklist,
    Int,
    /// A custom Number field (`double`, with its precision and scale).
    Double,
    Currency,
    Boolean,
    Reference,
    Date,
    Datetime,
}

impl Kind {
    fn api_name(self) -> &'static str {
        match self {
            Kind::Id => "id",
            Kind::String => "string",
            Kind::Textarea => "textarea",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Url => "url",
            Kind::Picklist => "picklist",
            Kind::Int => "int",
            Kind::Double => "double",
            Kind::Currency => "currency",
            Kind::Boolean => "boolean",
            Kind::Reference => "reference",
            Kind::Date => "date",
            Kind::Datetime => "datetime",
        }
    }

    fn soap_type(self) -> &'static str {
        match self {
            Kind::Id | Kind::Reference => "tns:ID",
            Kind::Int => "xsd:int",
            Kind::Currency | Kind::Double => "xsd:double",
            Kind::Boolean => "xsd:boolean",
            Kind::Date => "xsd:date",
            Kind::Datetime => "xsd:dateTime",
            _ => "xsd:string",
        }
    }

    /// Whether values are strings that Salesforce trims and length-checks.
    pub(crate) fn is_text(self) -> bool {
        matches!(
            self,
            Kind::String | Kind::Textarea | Kind::Email | Kind::Phone | Kind::Url | Kind::Picklist
        )
    }
}

/// Where a field's value lives in a stored row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Derived from the row's position.
    Id,
    CreatedDate,
    LastModifiedDate,
    /// When a user or an automated process last changed the record: what incremental reads
    /// filter on.
    SystemModstamp,
    /// An index into the row's values.
    Data(usize),
}

/// One value of a picklist: what the API reads and writes, and what people see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PicklistValue {
    pub value: Box<str>,
    pub label: Box<str>,
}

/// One field of an sObject.
#[derive(Clone, Debug)]
pub(crate) struct FieldDef {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: Kind,
    pub length: usize,
    /// A number's total digits and the digits after the point (`Number(18,0)`).
    pub precision: u8,
    pub scale: u8,
    /// A picklist's values, in order.
    pub picklist: Vec<PicklistValue>,
    /// Whether a value outside [`FieldDef::picklist`] is refused
    /// (`INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`); otherwise it is kept as given.
    pub restricted: bool,
    /// Whether the user may see the field (field-level security). A field created through the
    /// Tooling API is invisible to describe, SOQL and DML until `FieldPermissions` grant it.
    pub readable: bool,
    /// Not nillable on create (Salesforce's "required").
    pub required: bool,
    pub writable: bool,
    pub external_id: bool,
    /// For references: the parent object and the relationship name used in SOQL and bodies.
    pub reference: Option<(ObjectKind, &'static str)>,
    /// For a polymorphic reference (Note's `ParentId`): the objects it may point at, told
    /// apart by the id's key prefix. `reference` is then `None`.
    pub poly: &'static [ObjectKind],
    /// Writable on create only (`updateable: false`), as OpportunityContactRole's
    /// `OpportunityId` and Note's `ParentId`.
    pub create_only: bool,
    pub slot: Slot,
}

/// The objects the emulator holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ObjectKind {
    Account,
    Contact,
    Opportunity,
    OpportunityContactRole,
    Note,
    /// The org's users: read with SOQL and pointed at by `OwnerId`, never written.
    User,
    /// The `StageName` picklist's values with their meaning: query and describe only.
    OpportunityStage,
    /// The org itself, one row: its corporate currency (`DefaultCurrencyIsoCode`), which is
    /// every amount's currency in a single-currency org. Query and describe only.
    Organization,
}

impl ObjectKind {
    pub(crate) const ALL: [ObjectKind; 8] = [
        ObjectKind::Account,
        ObjectKind::Contact,
        ObjectKind::Opportunity,
        ObjectKind::OpportunityContactRole,
        ObjectKind::Note,
        ObjectKind::User,
        ObjectKind::OpportunityStage,
        ObjectKind::Organization,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            ObjectKind::Account => "Account",
            ObjectKind::Contact => "Contact",
            ObjectKind::Opportunity => "Opportunity",
            ObjectKind::OpportunityContactRole => "OpportunityContactRole",
            ObjectKind::Note => "Note",
            ObjectKind::User => "User",
            ObjectKind::OpportunityStage => "OpportunityStage",
            ObjectKind::Organization => "Organization",
        }
    }

    /// Object names are case-insensitive in URLs, bodies and SOQL.
    pub(crate) fn parse(name: &str) -> Option<ObjectKind> {
        ObjectKind::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(name))
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Whether clients may create and update its records (User and OpportunityStage are set
    /// up in the org, not written through the API the sandbox serves).
    pub(crate) fn writable(self) -> bool {
        !matches!(
            self,
            ObjectKind::User | ObjectKind::OpportunityStage | ObjectKind::Organization
        )
    }

    /// The object whose ids start with `id`'s key prefix.
    pub(crate) fn of_id(id: &str) -> Option<ObjectKind> {
        let prefix = id.get(..3)?;
        ObjectKind::ALL
            .into_iter()
            .find(|o| o.key_prefix() == prefix)
    }

    fn key_prefix(self) -> &'static str {
        match self {
            ObjectKind::Account => "001",
            ObjectKind::Contact => "003",
            ObjectKind::Opportunity => "006",
            ObjectKind::OpportunityContactRole => "00K",
            ObjectKind::Note => "002",
            ObjectKind::User => "005",
            ObjectKind::OpportunityStage => "01J",
            ObjectKind::Organization => "00D",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            ObjectKind::OpportunityContactRole => "Opportunity Contact Role",
            ObjectKind::OpportunityStage => "Opportunity Stage",
            other => other.name(),
        }
    }
}

/// What a `ParentId` of a Note may point at (Salesforce allows more; these are what the
/// emulator holds).
pub(crate) const NOTE_PARENTS: &[ObjectKind] = &[
    ObjectKind::Account,
    ObjectKind::Contact,
    ObjectKind::Opportunity,
];

/// The currencies of the emulated multi-currency org; the corporate currency first (what a
/// record gets when a write names none).
pub(crate) const CURRENCIES: &[&str] = &["USD", "EUR", "GBP", "CAD", "JPY"];

/// The values of OpportunityContactRole's `Role` picklist in a new org (unrestricted).
pub(crate) const CONTACT_ROLES: &[&str] = &[
    "Business User",
    "Decision Maker",
    "Economic Buyer",
    "Economic Decision Maker",
    "Evaluator",
    "Executive Sponsor",
    "Influencer",
    "Technical Buyer",
    "Other",
];

/// One value of the `StageName` picklist and what it means (an `OpportunityStage` row).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Stage {
    pub label: &'static str,
    pub closed: bool,
    pub won: bool,
    pub probability: f64,
    pub forecast: &'static str,
}

/// The org's stages: the one "pipeline" of [`super::DEAL_STAGES`], in order, closed and won as
/// the seed stages kept in them are, with a new org's default probabilities.
pub(crate) fn stages() -> &'static [Stage] {
    static STAGES: std::sync::OnceLock<Vec<Stage>> = std::sync::OnceLock::new();
    STAGES.get_or_init(build_stages)
}

fn build_stages() -> Vec<Stage> {
    use crate::accounts::{Outcome, PIPELINES, account_pipelines};
    let outcome = |label: &str| {
        super::DEAL_STAGES
            .iter()
            .filter(|l| l.stage == label)
            .find_map(|l| {
                PIPELINES
                    .iter()
                    .find(|p| p.key == l.seed_pipeline)?
                    .stages
                    .iter()
                    .find(|s| s.key == l.seed_stage)
                    .map(|s| s.outcome)
            })
            .unwrap_or(Outcome::Open)
    };
    account_pipelines(super::DEAL_STAGES)
        .into_iter()
        .flat_map(|(_, stages)| stages)
        .map(|label| {
            let outcome = outcome(label);
            let probability = match (outcome, label) {
                (Outcome::Won, _) => 100.0,
                (Outcome::Lost, _) => 0.0,
                (_, "Prospecting" | "Qualification") => 10.0,
                (_, "Needs Analysis") => 20.0,
                (_, "Value Proposition") => 50.0,
                (_, "Proposal/Price Quote") => 75.0,
                (_, "Negotiation/Review") => 90.0,
                _ => 50.0,
            };
            Stage {
                label,
                closed: outcome != Outcome::Open,
                won: outcome == Outcome::Won,
                probability,
                forecast: match outcome {
                    Outcome::Won => "Closed",
                    Outcome::Lost => "Omitted",
                    Outcome::Open => "Pipeline",
                },
            }
        })
        .collect()
}

/// The label of an object's `Id` field (`Account ID`).
fn id_label(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Account => "Account ID",
        ObjectKind::Contact => "Contact ID",
        ObjectKind::Opportunity => "Opportunity ID",
        ObjectKind::OpportunityContactRole => "Opportunity Contact Role ID",
        ObjectKind::Note => "Note ID",
        ObjectKind::User => "User ID",
        ObjectKind::OpportunityStage => "Opportunity Stage ID",
        ObjectKind::Organization => "Organization ID",
    }
}

/// The industries of Account's standard Industry picklist (unrestricted: other values are kept).
const INDUSTRIES: &[&str] = &[
    "Agriculture",
    "Apparel",
    "Banking",
    "Biotechnology",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Entertainment",
    "Environmental",
    "Finance",
    "Food & Beverage",
    "Government",
    "Healthcare",
    "Hospitality",
    "Insurance",
    "Machinery",
    "Manufacturing",
    "Media",
    "Not For Profit",
    "Other",
    "Recreation",
    "Retail",
    "Shipping",
    "Technology",
    "Telecommunications",
    "Transportation",
    "Utilities",
];

/// An sObject's fields, looked up case-insensitively as Salesforce does.
#[derive(Clone, Debug)]
pub(crate) struct SObject {
    pub kind: ObjectKind,
    pub fields: Vec<FieldDef>,
    /// The number of data slots a row holds.
    pub data_slots: usize,
    /// The field index of the external-id field, if the org has it.
    pub external_id: Option<usize>,
}

struct Spec(&'static str, &'static str, Kind, usize);

/// The custom fields every emulated org has (the sandbox's seeded custom fields), with the API
/// names Salesforce derives from their labels.
pub(crate) const SEEDED_CUSTOM: &[(ObjectKind, &str, &str, Kind)] = &[
    (ObjectKind::Account, "Region__c", "Region", Kind::String),
    (ObjectKind::Account, "Seats__c", "Seats", Kind::Double),
    (ObjectKind::Account, "Tier__c", "Tier", Kind::Picklist),
    (
        ObjectKind::Contact,
        "Favourite_Colour__c",
        "Favourite Colour",
        Kind::String,
    ),
    (
        ObjectKind::Contact,
        "Loyalty_Points__c",
        "Loyalty Points",
        Kind::Double,
    ),
];

/// The most custom fields one object may have (Enterprise Edition's 500); the Tooling API
/// refuses more with `LIMIT_EXCEEDED`.
pub(crate) const MAX_CUSTOM_FIELDS: usize = 500;

impl FieldDef {
    /// A visible, writable, optional data field.
    pub(crate) fn data(
        name: &'static str,
        label: &'static str,
        kind: Kind,
        length: usize,
        slot: usize,
    ) -> FieldDef {
        FieldDef {
            name,
            label,
            kind,
            length,
            precision: 0,
            scale: 0,
            picklist: Vec::new(),
            restricted: false,
            readable: true,
            required: false,
            writable: true,
            external_id: false,
            reference: None,
            poly: &[],
            create_only: false,
            slot: Slot::Data(slot),
        }
    }

    /// Whether the field is a custom one (its API name ends in `__c`).
    pub(crate) fn custom(&self) -> bool {
        self.name.ends_with("__c")
    }
}

impl SObject {
    /// `kind` as the org declares it: with ferry's external-id field if the operator created
    /// it, and with `CurrencyIsoCode` on records only in a multi-currency org.
    pub(crate) fn new(kind: ObjectKind, with_external_id: bool, multi_currency: bool) -> SObject {
        let mut data: Vec<Spec> = match kind {
            ObjectKind::Account => vec![
                Spec("Name", "Account Name", Kind::String, 255),
                Spec("Website", "Website", Kind::Url, 255),
                Spec("Phone", "Account Phone", Kind::Phone, 40),
                Spec("Industry", "Industry", Kind::Picklist, 255),
                Spec("NumberOfEmployees", "Employees", Kind::Int, 0),
                Spec("AnnualRevenue", "Annual Revenue", Kind::Currency, 0),
                Spec("BillingStreet", "Billing Street", Kind::Textarea, 255),
                Spec("BillingCity", "Billing City", Kind::String, 40),
                Spec("BillingState", "Billing State/Province", Kind::String, 80),
                Spec(
                    "BillingPostalCode",
                    "Billing Zip/Postal Code",
                    Kind::String,
                    20,
                ),
                Spec("BillingCountry", "Billing Country", Kind::String, 80),
                Spec("OwnerId", "Owner ID", Kind::Reference, 18),
            ],
            ObjectKind::Contact => vec![
                Spec("FirstName", "First Name", Kind::String, 40),
                Spec("LastName", "Last Name", Kind::String, 80),
                Spec("Email", "Email", Kind::Email, 80),
                Spec("Phone", "Business Phone", Kind::Phone, 40),
                Spec("MobilePhone", "Mobile Phone", Kind::Phone, 40),
                Spec("Title", "Title", Kind::String, 128),
                Spec("MailingStreet", "Mailing Street", Kind::Textarea, 255),
                Spec("MailingCity", "Mailing City", Kind::String, 40),
                Spec("MailingState", "Mailing State/Province", Kind::String, 80),
                Spec(
                    "MailingPostalCode",
                    "Mailing Zip/Postal Code",
                    Kind::String,
                    20,
                ),
                Spec("MailingCountry", "Mailing Country", Kind::String, 80),
                Spec("HasOptedOutOfEmail", "Email Opt Out", Kind::Boolean, 0),
                Spec("DoNotCall", "Do Not Call", Kind::Boolean, 0),
                Spec("HasOptedOutOfFax", "Fax Opt Out", Kind::Boolean, 0),
                Spec("AccountId", "Account ID", Kind::Reference, 18),
                Spec("OwnerId", "Owner ID", Kind::Reference, 18),
            ],
            ObjectKind::Opportunity => vec![
                Spec("Name", "Name", Kind::String, 120),
                Spec("StageName", "Stage", Kind::Picklist, 255),
                Spec("CloseDate", "Close Date", Kind::Date, 0),
                Spec("Amount", "Amount", Kind::Currency, 0),
                Spec("CurrencyIsoCode", "Opportunity Currency", Kind::Picklist, 3),
                Spec("Probability", "Probability (%)", Kind::Double, 0),
                Spec("Description", "Description", Kind::Textarea, 32_000),
                Spec("AccountId", "Account ID", Kind::Reference, 18),
                Spec("OwnerId", "Owner ID", Kind::Reference, 18),
                Spec("IsClosed", "Closed", Kind::Boolean, 0),
                Spec("IsWon", "Won", Kind::Boolean, 0),
                Spec(
                    "ForecastCategoryName",
                    "Forecast Category",
                    Kind::Picklist,
                    40,
                ),
            ],
            ObjectKind::OpportunityContactRole => vec![
                Spec("OpportunityId", "Opportunity ID", Kind::Reference, 18),
                Spec("ContactId", "Contact ID", Kind::Reference, 18),
                Spec("Role", "Role", Kind::Picklist, 40),
                Spec("IsPrimary", "Primary", Kind::Boolean, 0),
            ],
            ObjectKind::Note => vec![
                Spec("Title", "Title", Kind::String, 80),
                Spec("Body", "Body", Kind::Textarea, 32_000),
                Spec("ParentId", "Parent ID", Kind::Reference, 18),
                Spec("OwnerId", "Owner ID", Kind::Reference, 18),
                Spec("IsPrivate", "Private", Kind::Boolean, 0),
            ],
            ObjectKind::User => vec![
                Spec("Username", "Username", Kind::String, 80),
                Spec("Email", "Email", Kind::Email, 128),
                Spec("FirstName", "First Name", Kind::String, 40),
                Spec("LastName", "Last Name", Kind::String, 80),
                Spec("Name", "Full Name", Kind::String, 121),
                Spec("IsActive", "Active", Kind::Boolean, 0),
                Spec("ProfileId", "Profile ID", Kind::String, 18),
            ],
            ObjectKind::Organization => vec![
                Spec("Name", "Name", Kind::String, 80),
                Spec(
                    "DefaultCurrencyIsoCode",
                    "Locale Currency",
                    Kind::Picklist,
                    255,
                ),
                Spec("IsSandbox", "Is Sandbox", Kind::Boolean, 0),
            ],
            ObjectKind::OpportunityStage => vec![
                Spec("MasterLabel", "Master Label", Kind::String, 255),
                Spec("ApiName", "Api Name", Kind::String, 255),
                Spec("IsActive", "Active", Kind::Boolean, 0),
                Spec("IsClosed", "Closed", Kind::Boolean, 0),
                Spec("IsWon", "Won", Kind::Boolean, 0),
                Spec("SortOrder", "Sort Order", Kind::Int, 0),
                Spec("DefaultProbability", "Probability (%)", Kind::Double, 0),
                Spec(
                    "ForecastCategoryName",
                    "Forecast Category",
                    Kind::Picklist,
                    40,
                ),
            ],
        };
        if !multi_currency {
            // A single-currency org has no currency field on its records.
            data.retain(|spec| spec.0 != "CurrencyIsoCode");
        }
        let required = |name: &str| {
            matches!(
                (kind, name),
                (ObjectKind::Account, "Name")
                    | (ObjectKind::Contact, "LastName")
                    | (ObjectKind::Opportunity, "Name" | "StageName" | "CloseDate")
                    | (
                        ObjectKind::OpportunityContactRole,
                        "OpportunityId" | "ContactId"
                    )
                    | (ObjectKind::Note, "Title" | "ParentId")
            )
        };
        let reference = |name: &str| match name {
            "AccountId" => Some((ObjectKind::Account, "Account")),
            "OwnerId" => Some((ObjectKind::User, "Owner")),
            "OpportunityId" => Some((ObjectKind::Opportunity, "Opportunity")),
            "ContactId" => Some((ObjectKind::Contact, "Contact")),
            _ => None,
        };
        let picklist = |name: &str| -> (Vec<&str>, bool) {
            match (kind, name) {
                (ObjectKind::Opportunity, "StageName") => {
                    (stages().iter().map(|s| s.label).collect(), true)
                }
                (ObjectKind::Opportunity, "CurrencyIsoCode") => (CURRENCIES.to_vec(), true),
                (_, "ForecastCategoryName") => (
                    vec!["Omitted", "Pipeline", "Best Case", "Commit", "Closed"],
                    true,
                ),
                (ObjectKind::OpportunityContactRole, "Role") => (CONTACT_ROLES.to_vec(), false),
                _ => (Vec::new(), false),
            }
        };
        // Derived or set up in the org: never written by clients.
        let read_only = |name: &str| {
            !kind.writable()
                || matches!(
                    (kind, name),
                    (
                        ObjectKind::Opportunity,
                        "IsClosed" | "IsWon" | "ForecastCategoryName"
                    )
                )
        };
        let system = |name, label, kind, slot| FieldDef {
            length: if kind == Kind::Id { 18 } else { 0 },
            writable: false,
            slot,
            ..FieldDef::data(name, label, kind, 0, 0)
        };
        let mut fields = vec![system("Id", id_label(kind), Kind::Id, Slot::Id)];
        for (i, Spec(name, label, k, length)) in data.into_iter().enumerate() {
            let (values, restricted) = picklist(name);
            fields.push(FieldDef {
                required: required(name),
                reference: (k == Kind::Reference).then(|| reference(name)).flatten(),
                poly: if (kind, name) == (ObjectKind::Note, "ParentId") {
                    NOTE_PARENTS
                } else {
                    &[]
                },
                create_only: matches!(
                    (kind, name),
                    (ObjectKind::OpportunityContactRole, "OpportunityId")
                        | (ObjectKind::Note, "ParentId")
                ),
                writable: !read_only(name),
                precision: if k == Kind::Double { 3 } else { 0 },
                picklist: values
                    .into_iter()
                    .map(|v| PicklistValue {
                        value: v.into(),
                        label: v.into(),
                    })
                    .collect(),
                restricted,
                ..FieldDef::data(name, label, k, length, i)
            });
        }
        for &(_, name, label, k) in SEEDED_CUSTOM.iter().filter(|(o, ..)| *o == kind) {
            let slot = fields.len() - 1;
            fields.push(custom_field(name, label, k, slot));
        }
        let mut data_slots = fields.len() - 1;
        let mut external_id = None;
        let has_external_id = matches!(
            kind,
            ObjectKind::Account | ObjectKind::Contact | ObjectKind::Opportunity
        );
        if with_external_id && has_external_id {
            external_id = Some(fields.len());
            fields.push(FieldDef {
                external_id: true,
                ..FieldDef::data(
                    EXTERNAL_ID_FIELD,
                    "Ferry Source Id",
                    Kind::String,
                    255,
                    data_slots,
                )
            });
            data_slots += 1;
        }
        // "Set Audit Fields upon Record Creation" is granted to the integration user, and the
        // sandbox honours it on the objects whose history ferry carries: a deal's and a
        // note's original creation time can be written on create (never on update).
        let audit = matches!(kind, ObjectKind::Opportunity | ObjectKind::Note);
        fields.push(FieldDef {
            writable: audit,
            create_only: audit,
            ..system(
                "CreatedDate",
                "Created Date",
                Kind::Datetime,
                Slot::CreatedDate,
            )
        });
        fields.push(system(
            "LastModifiedDate",
            "Last Modified Date",
            Kind::Datetime,
            Slot::LastModifiedDate,
        ));
        fields.push(system(
            "SystemModstamp",
            "System Modstamp",
            Kind::Datetime,
            Slot::SystemModstamp,
        ));
        SObject {
            kind,
            fields,
            data_slots,
            external_id,
        }
    }

    /// The field called `name` (case-insensitive). A scan of a score of names is cheaper than
    /// lower-casing and hashing the name, and every field of every written record is looked up.
    pub(crate) fn field(&self, name: &str) -> Option<usize> {
        self.fields
            .iter()
            .position(|f| f.readable && f.name.eq_ignore_ascii_case(name))
    }

    /// The field called `name` (case-insensitive) whether or not the user may see it: the
    /// Tooling API and `FieldPermissions` name fields the user cannot see yet.
    pub(crate) fn any_field(&self, name: &str) -> Option<usize> {
        self.fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The reference field whose relationship is called `name` (e.g. Contact's `Account`).
    pub(crate) fn relationship(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| {
            f.reference
                .is_some_and(|(_, rel)| rel.eq_ignore_ascii_case(name))
        })
    }

    /// The `describe` body.
    pub(crate) fn describe(&self, version: &str) -> Json {
        let name = self.kind.name();
        let fields: Vec<Json> = self
            .fields
            .iter()
            .filter(|f| f.readable)
            .map(|f| describe_field(self.kind, f))
            .collect();
        json!({
            "name": name,
            "label": self.kind.label(),
            "labelPlural": match self.kind {
                ObjectKind::Opportunity => "Opportunities".to_owned(),
                other => format!("{}s", other.label()),
            },
            "keyPrefix": self.kind.key_prefix(),
            "custom": false,
            "createable": self.kind.writable(),
            "updateable": self.kind.writable(),
            "deletable": self.kind.writable(),
            "queryable": true,
            "fields": fields,
            "urls": {
                "sobject": format!("/services/data/{version}/sobjects/{name}"),
                "describe": format!("/services/data/{version}/sobjects/{name}/describe"),
                "rowTemplate": format!("/services/data/{version}/sobjects/{name}/{{ID}}"),
            },
        })
    }
}

/// A seeded custom field as an operator would have added it in Setup: Text(255),
/// Number(18, 0), or a restricted picklist of the sandbox's tiers (value = label).
fn custom_field(name: &'static str, label: &'static str, kind: Kind, slot: usize) -> FieldDef {
    match kind {
        Kind::Double => FieldDef {
            precision: 18,
            ..FieldDef::data(name, label, kind, 0, slot)
        },
        Kind::Picklist => FieldDef {
            picklist: crate::seed::TIERS
                .iter()
                .map(|t| PicklistValue {
                    value: (*t).into(),
                    label: (*t).into(),
                })
                .collect(),
            restricted: true,
            ..FieldDef::data(name, label, kind, 255, slot)
        },
        _ => FieldDef::data(name, label, kind, 255, slot),
    }
}

fn describe_field(object: ObjectKind, f: &FieldDef) -> Json {
    let picklist: Vec<Json> = if object == ObjectKind::Account && f.name == "Industry" {
        INDUSTRIES
            .iter()
            .map(|v| json!({"active": true, "defaultValue": false, "label": v, "validFor": null, "value": v}))
            .collect()
    } else {
        f.picklist
            .iter()
            .map(|v| json!({"active": true, "defaultValue": false, "label": v.label, "validFor": null, "value": v.value}))
            .collect()
    };
    let (precision, scale, digits) = match f.kind {
        Kind::Currency => (18, 0, 0),
        Kind::Double => (f.precision, f.scale, 0),
        Kind::Int => (0, 0, 8),
        _ => (0, 0, 0),
    };
    json!({
        "name": f.name,
        "label": f.label,
        "type": f.kind.api_name(),
        "soapType": f.kind.soap_type(),
        "length": f.length,
        "precision": precision,
        "scale": scale,
        "digits": digits,
        "nillable": !f.required && f.kind != Kind::Boolean && f.kind != Kind::Id && f.writable,
        "createable": f.writable,
        "updateable": f.writable && !f.create_only,
        "defaultedOnCreate": !f.writable
            || f.kind == Kind::Boolean
            || matches!(f.name, "OwnerId" | "CurrencyIsoCode"),
        "externalId": f.external_id,
        "unique": f.external_id,
        "caseSensitive": f.external_id,
        "idLookup": f.external_id || f.kind == Kind::Id,
        "custom": f.custom(),
        "filterable": true,
        "sortable": true,
        "referenceTo": match f.reference {
            Some((o, _)) => vec![o.name()],
            None => f.poly.iter().map(|o| o.name()).collect(),
        },
        "relationshipName": match f.reference {
            Some((_, r)) => Some(r),
            None => (!f.poly.is_empty()).then_some("Parent"),
        },
        "polymorphicForeignKey": !f.poly.is_empty(),
        "picklistValues": picklist,
        "restrictedPicklist": f.restricted,
    })
}

// ---- record ids --------------------------------------------------------------------------

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
/// Pod and reserved characters of every id this org hands out.
const POD: &str = "8d0";

/// The 18-character id of row `index` of `object`: key prefix, pod, a base-62 serial, and the
/// case-checksum suffix real ids carry.
pub(crate) fn record_id(object: ObjectKind, index: u32) -> String {
    RecordId(object, index).to_string()
}

/// The id of row `.1` of `.0` (see [`record_id`]), `Display`ed without allocating, for
/// responses that write ids straight into their body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordId(pub ObjectKind, pub u32);

impl RecordId {
    fn bytes(self) -> [u8; 18] {
        let mut id = [b'0'; 18];
        id[..3].copy_from_slice(self.0.key_prefix().as_bytes());
        id[3..6].copy_from_slice(POD.as_bytes());
        let mut n = u64::from(self.1) + 1;
        for c in id[6..15].iter_mut().rev() {
            *c = BASE62[(n % 62) as usize];
            n /= 62;
        }
        let suffix = checksum_suffix(&id[..15]);
        id[15..].copy_from_slice(&suffix);
        id
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every byte is ASCII (prefix, pod, base 62, suffix), so this never falls back.
        f.write_str(std::str::from_utf8(&self.bytes()).unwrap_or_default())
    }
}

impl serde::Serialize for RecordId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(std::str::from_utf8(&self.bytes()).unwrap_or_default())
    }
}

fn checksum_suffix(id15: &[u8]) -> [u8; 3] {
    let mut out = [b'A'; 3];
    for (chunk, o) in id15.chunks(5).zip(out.iter_mut()) {
        let flags = chunk
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_ascii_uppercase())
            .fold(0, |acc, (i, _)| acc | (1 << i));
        *o = SUFFIX[flags];
    }
    out
}

/// Why an id string does not name a row.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum IdError {
    /// Not a well-formed id of this object (Salesforce: `MALFORMED_ID`).
    Malformed,
}

/// The row index named by a 15- or 18-character id of `object`.
pub(crate) fn parse_record_id(object: ObjectKind, id: &str) -> Result<u32, IdError> {
    let b = id.as_bytes();
    if !(b.len() == 15 || b.len() == 18)
        || !id.starts_with(object.key_prefix())
        || &b[3..6] != POD.as_bytes()
    {
        return Err(IdError::Malformed);
    }
    if b.len() == 18 && checksum_suffix(&b[..15]) != b[15..18] {
        return Err(IdError::Malformed);
    }
    let mut n: u64 = 0;
    for c in &b[6..15] {
        let digit = BASE62
            .iter()
            .position(|x| x == c)
            .ok_or(IdError::Malformed)?;
        n = n * 62 + digit as u64;
    }
    n.checked_sub(1)
        .and_then(|i| u32::try_from(i).ok())
        .ok_or(IdError::Malformed)
}

// ---- values ------------------------------------------------------------------------------

/// A stored field value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    Str(Box<str>),
    Bool(bool),
    Int(i64),
    Num(f64),
    /// A lookup: the parent's row index.
    Ref(u32),
    /// A polymorphic lookup (Note's `ParentId`): the parent's object and row.
    Poly(ObjectKind, u32),
}

/// Formats epoch milliseconds as Salesforce does: `2021-11-06T17:38:40.000+0000`.
pub(crate) fn format_datetime(ms: i64) -> String {
    datetime(ms).to_string()
}

/// Epoch milliseconds as Salesforce shows them, for writing straight into a response.
pub(crate) fn datetime(ms: i64) -> Iso8601 {
    Iso8601 { ms, zone: "+0000" }
}

/// Whether an email field accepts `email`: exactly one `@`, a non-empty local part (at most 64
/// characters) with no whitespace, quotes, commas, brackets or semicolons, and a dotted domain
/// whose labels are letters (internationalised too), digits and hyphens. Deliberately no
/// stricter than that: the emulator refuses what is plainly malformed, not what is unusual.
pub(crate) fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.chars().count() <= 64
        && !local.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(
                    c,
                    '"' | '(' | ')' | ',' | ':' | ';' | '<' | '>' | '@' | '[' | '\\' | ']'
                )
        });
    // Every written email passes here: the labels are checked as they are split, not collected.
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    let domain_ok = domain.contains('.') && domain.split('.').all(label_ok);
    local_ok && domain_ok
}

/// Salesforce's own whitespace rule for string fields: leading and trailing whitespace is
/// removed on save, and an empty string is stored as null. (Non-breaking spaces survive.)
pub(crate) fn normalise_text(raw: &str) -> Option<&str> {
    let trimmed = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    (!trimmed.is_empty()).then_some(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_carry_a_checksum() {
        for i in [0u32, 1, 61, 62, 1_000_000, u32::MAX - 1] {
            let id = record_id(ObjectKind::Contact, i);
            assert_eq!(id.len(), 18);
            assert!(id.starts_with("003"));
            assert_eq!(parse_record_id(ObjectKind::Contact, &id), Ok(i), "{id}");
            assert_eq!(parse_record_id(ObjectKind::Contact, &id[..15]), Ok(i));
            assert!(parse_record_id(ObjectKind::Account, &id).is_err());
        }
        assert!(
            parse_record_id(ObjectKind::Contact, "003é0000000000").is_err(),
            "no panic on non-ASCII"
        );
        let id = record_id(ObjectKind::Account, 5);
        let tampered = format!("{}{}", &id[..15], "ZZZ");
        assert!(parse_record_id(ObjectKind::Account, &tampered).is_err());
    }

    #[test]
    fn emails() {
        assert!(valid_email("rory.gilmore@chilton.example.org"));
        assert!(valid_email("o'brien+tag@example.co.uk"));
        assert!(
            valid_email(".gilmore5@café.example.org"),
            "unusual but not malformed"
        );
        for bad in [
            "no-at-sign.example.com",
            "two@@example.com",
            "trailing@",
            "@leading.example",
            "sp ace@example.com",
            "a@b",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn datetimes_look_like_salesforce() {
        assert_eq!(format_datetime(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(
            format_datetime(1_636_220_320_000),
            "2021-11-06T17:38:40.000+0000"
        );
    }

    #[test]
    fn whitespace_rules() {
        assert_eq!(normalise_text("  Rory \n"), Some("Rory"));
        assert_eq!(normalise_text("   "), None);
        assert_eq!(normalise_text("\u{a0}x\u{a0}"), Some("\u{a0}x\u{a0}"));
    }
}

//! Pipedrive's side of every object ferry moves, as one table: the API paths, the standard
//! fields, the compound ones (email and phone lists, the address, the marketing status), the
//! references to other objects, and what Pipedrive requires. The source, the sink and the
//! field metadata read these rows; none of them branches on the object.

use ferry_core::fields::FieldMap;
use ferry_core::{ConnectorResult, ObjectType, field};

use crate::VENDOR;
use crate::mapping::{ADDRESS_PARTS, UNSUBSCRIBED};

/// How Pipedrive holds one object ferry moves.
#[derive(Debug)]
pub struct PipedriveObject {
    /// The canonical object.
    pub object: ObjectType,
    /// The v2 API path segment (`/api/v2/{path}`, `/api/v2/{path}/search`).
    pub path: &'static str,
    /// The fields-API path segment (`/api/v2/{fields_path}`).
    pub fields_path: &'static str,
    /// One record, in words (a read-back reference to a record ferry did not write is
    /// `pipedrive-{noun}-{id}`).
    pub noun: &'static str,
    /// Where the object's fields are in Pipedrive's settings ("Settings → Data fields → …").
    pub settings_section: &'static str,
    /// The plain standard fields: canonical field ↔ top-level Pipedrive field.
    pub standard: &'static [(&'static str, &'static str)],
    /// How the body's `name` is filled when no binding wrote it.
    pub name: NameRule,
    /// The lists of `{value, label, primary}` entries (emails, phones).
    pub channels: &'static [Channels],
    /// The address subfields: canonical field ↔ `address.<part>`, the street first (read as
    /// `street_number route`). Empty: no address.
    pub address: &'static [(&'static str, &'static str)],
    /// Fields read when present and never written (canonical ↔ top-level field).
    pub read_only: &'static [(&'static str, &'static str)],
    /// Where the email opt-out lives, if this object carries one.
    pub opt_out: Option<OptOut>,
    /// Fields lists leave out unless asked for (`include_fields`).
    pub include_fields: &'static [&'static str],
    /// The references to other objects, each written as the target's Pipedrive id.
    pub references: &'static [PipedriveReference],
    /// The link fields (canonical [`ferry_core::Value::Links`]): each target object in one
    /// top-level id field, so the record holds at most one link per target.
    pub links: &'static [PipedriveLinks],
    /// Where the pipeline stage lives, if the object has one.
    pub stage: Option<StageFields>,
    /// Plain fields Pipedrive fills in when a record is written without them, with the value
    /// it holds then (a deal's `value` 0): declared to the engine
    /// ([`ferry_core::FieldLimit::unset_reads_as`]), which gives a record without one that
    /// value, so a 0 read back is the record's own 0 and reads as 0.
    pub unset_reads_as: &'static [(&'static str, &'static str)],
    /// The top-level fields a v2 `POST`/`PATCH` accepts (everything else a fields list shows
    /// is read-only, apart from custom fields).
    pub writable: &'static [&'static str],
    /// The top-level body keys that can appear in a validation error, with the canonical
    /// fields behind them, for rejection reasons (names only, never values).
    pub body_fields: &'static [(&'static str, &'static str)],
    /// The canonical fields Pipedrive refuses a record without, for the engine's
    /// `missing_required` rule.
    pub required: &'static [&'static str],
    /// Whether the object holds ferry's source id in a custom field. Notes have no custom
    /// fields: the sink finds them by their natural key instead (`crate::notes`).
    pub source_id_field: bool,
    /// Whether its v2 list takes `status=deleted` (records deleted in the last 30 days, before
    /// Pipedrive purges them): only deals document it; the others' deletions are found by
    /// comparing id sets.
    pub lists_deleted: bool,
    /// The most characters Pipedrive takes in a text field: canonical field and limit.
    pub max_chars: &'static [(&'static str, usize)],
    /// Timestamp fields written and read back to the whole second (`YYYY-MM-DD HH:MM:SS`): a
    /// note's original time.
    pub to_the_second: &'static [&'static str],
}

/// How a body's `name` is filled when no binding wrote it.
#[derive(Debug)]
pub enum NameRule {
    /// Joined from these top-level fields, space-separated, when `name` is absent (a person's
    /// name is its first and last names).
    Joined(&'static [&'static str]),
    /// Sent as `""` when absent or null: the field is required, and Pipedrive's refusal then
    /// names it.
    Required,
    /// Written by a binding of the standard table like any other field (a deal's `title`).
    Given,
}

/// A list of `{value, label, primary}` entries holding one canonical field (and, for phones,
/// a second one: the entry labelled [`crate::mapping::MOBILE_LABEL`]).
#[derive(Debug)]
pub struct Channels {
    /// The list's top-level field (`emails`, `phones`).
    pub vendor: &'static str,
    /// The canonical field of the primary entry (among those not labelled mobile).
    pub main: &'static str,
    /// The canonical field of the entry labelled mobile, if the list holds one apart.
    pub mobile: Option<&'static str>,
}

/// A link field: the top-level id field holding the link to each target object (one per
/// target), in the priority order of the canonical field's targets.
#[derive(Debug)]
pub struct PipedriveLinks {
    /// The canonical link field (`contacts` of a deal).
    pub canonical: &'static str,
    /// Each target object and the top-level field holding its Pipedrive id.
    pub targets: &'static [(ObjectType, &'static str)],
    /// Whether the record holds more links to its (single) target as participants
    /// (`/v1/{path}/{id}/participants`): the source reads them after the id field's one, the
    /// sink writes the first link in the id field and makes the participants the links.
    pub participants: bool,
}

impl PipedriveLinks {
    /// The field holding links to `target`, if this link field may point at it.
    pub fn vendor_of(&self, target: ObjectType) -> Option<&'static str> {
        self.targets
            .iter()
            .find(|(t, _)| *t == target)
            .map(|(_, v)| *v)
    }
}

/// Where a record's pipeline stage lives: the stage id (which sets the pipeline on writes) and
/// the pipeline id (read only).
#[derive(Debug)]
pub struct StageFields {
    /// The canonical stage field.
    pub canonical: &'static str,
    /// The top-level field holding the pipeline id.
    pub pipeline: &'static str,
    /// The top-level field holding the stage id.
    pub stage: &'static str,
}

/// Where an object's email opt-out lives.
#[derive(Debug)]
pub struct OptOut {
    /// The canonical flag.
    pub canonical: &'static str,
    /// The top-level field holding the status.
    pub vendor: &'static str,
    /// The status that means "opted out"; the only one ever written.
    pub opted_out: &'static str,
    /// Whether Pipedrive keeps the status only while the record has a valid email address
    /// (then an opt-out without one is refused before writing).
    pub needs_email: bool,
}

/// A reference from one object to another: Pipedrive holds the target's own id, so the sink
/// resolves the source id the canonical record carries through its id cache.
#[derive(Debug)]
pub struct PipedriveReference {
    /// The canonical field holding the target's source id.
    pub canonical: &'static str,
    /// The top-level field holding the target's Pipedrive id.
    pub vendor: &'static str,
    /// The object referred to.
    pub target: ObjectType,
    /// The refusal code of a record whose target is not in Pipedrive.
    pub missing_code: &'static str,
    /// The refusal reason of that record (names the field, never a value).
    pub missing_reason: &'static str,
}

/// Pipedrive's side of every object ferry moves: read top to bottom to see what maps where.
pub static OBJECTS: &[PipedriveObject] = &[
    PipedriveObject {
        object: ObjectType::COMPANIES,
        path: "organizations",
        fields_path: "organizationFields",
        noun: "organization",
        settings_section: "Organization",
        standard: &[(field::NAME, "name"), (field::OWNER, "owner_id")],
        name: NameRule::Required,
        channels: &[],
        address: ADDRESS_PARTS,
        read_only: &[],
        opt_out: None,
        include_fields: &[],
        references: &[],
        links: &[],
        stage: None,
        unset_reads_as: &[],
        writable: &[
            "name",
            "owner_id",
            "add_time",
            "visible_to",
            "label_ids",
            "address",
        ],
        body_fields: &[
            ("name", "name"),
            ("address", "street, city, state, postal_code, country"),
            ("owner_id", "owner"),
            ("custom_fields", "source id"),
        ],
        // Pipedrive refuses a nameless organization itself, naming `name`.
        required: &[],
        source_id_field: true,
        lists_deleted: false,
        max_chars: &[],
        to_the_second: &[],
    },
    PipedriveObject {
        object: ObjectType::CONTACTS,
        path: "persons",
        fields_path: "personFields",
        noun: "person",
        settings_section: "Person",
        standard: &[
            (field::FIRST_NAME, "first_name"),
            (field::LAST_NAME, "last_name"),
            (field::OWNER, "owner_id"),
        ],
        name: NameRule::Joined(&["first_name", "last_name"]),
        channels: &[
            Channels {
                vendor: "emails",
                main: field::EMAIL,
                mobile: None,
            },
            Channels {
                vendor: "phones",
                main: field::PHONE,
                mobile: Some(field::MOBILE_PHONE),
            },
        ],
        address: &[],
        // Present only with contact sync (setting it otherwise is a 403).
        read_only: &[(field::JOB_TITLE, "job_title")],
        opt_out: Some(OptOut {
            canonical: field::EMAIL_OPT_OUT,
            vendor: "marketing_status",
            opted_out: UNSUBSCRIBED,
            needs_email: true,
        }),
        include_fields: &["marketing_status"],
        references: &[PipedriveReference {
            canonical: field::COMPANY,
            vendor: "org_id",
            target: ObjectType::COMPANIES,
            missing_code: "COMPANY_NOT_FOUND",
            missing_reason: "the company reference: no Pipedrive organization carries the contact's company as its \
                             source id (the company was not migrated, or was rejected)",
        }],
        links: &[],
        stage: None,
        unset_reads_as: &[],
        writable: &[
            "name",
            "first_name",
            "last_name",
            "owner_id",
            "org_id",
            "add_time",
            "emails",
            "phones",
            "visible_to",
            "label_ids",
            "marketing_status",
        ],
        body_fields: &[
            ("name", "first_name, last_name"),
            ("first_name", "first_name"),
            ("last_name", "last_name"),
            ("emails", "email"),
            ("phones", "phone, mobile_phone"),
            ("org_id", "company"),
            ("marketing_status", "email_opt_out"),
            ("owner_id", "owner"),
            ("custom_fields", "source id"),
        ],
        required: &[],
        source_id_field: true,
        lists_deleted: false,
        max_chars: &[],
        to_the_second: &[],
    },
    PipedriveObject {
        object: ObjectType::DEALS,
        path: "deals",
        fields_path: "dealFields",
        noun: "deal",
        settings_section: "Deal",
        standard: &[
            (field::NAME, "title"),
            (field::AMOUNT, "value"),
            (field::CURRENCY, "currency"),
            (field::CLOSE_DATE, "expected_close_date"),
            // Pipedrive keeps won and lost in the status, beside the stage.
            (field::STATUS, "status"),
            (field::OWNER, "owner_id"),
        ],
        name: NameRule::Given,
        channels: &[],
        address: &[],
        read_only: &[],
        opt_out: None,
        include_fields: &[],
        references: &[PipedriveReference {
            canonical: field::COMPANY,
            vendor: "org_id",
            target: ObjectType::COMPANIES,
            missing_code: "COMPANY_NOT_FOUND",
            missing_reason: "the company reference: no Pipedrive organization carries the deal's company as its \
                             source id (the company was not migrated, or was rejected)",
        }],
        // One person per deal in `person_id`, all of them as participants: the source reads
        // them all (the person first), the sink writes them all.
        links: &[PipedriveLinks {
            canonical: field::CONTACTS,
            targets: &[(ObjectType::CONTACTS, "person_id")],
            participants: true,
        }],
        stage: Some(StageFields {
            canonical: field::STAGE,
            pipeline: "pipeline_id",
            stage: "stage_id",
        }),
        unset_reads_as: &[(field::AMOUNT, "0")],
        writable: &[
            "title",
            "owner_id",
            "person_id",
            "org_id",
            "pipeline_id",
            "stage_id",
            "value",
            "currency",
            "status",
            "probability",
            "lost_reason",
            "visible_to",
            "close_time",
            "won_time",
            "lost_time",
            "expected_close_date",
            "label_ids",
        ],
        body_fields: &[
            ("title", "name"),
            ("value", "amount"),
            ("currency", "currency"),
            ("expected_close_date", "close_date"),
            ("stage_id", "stage"),
            ("pipeline_id", "stage"),
            ("status", "status"),
            ("owner_id", "owner"),
            ("org_id", "company"),
            ("person_id", "contacts"),
            ("custom_fields", "source id"),
        ],
        required: &[],
        source_id_field: true,
        lists_deleted: true,
        max_chars: &[],
        to_the_second: &[],
    },
    // v1 only. No custom fields, so no source id: found by parent and original time
    // (`crate::notes`). One parent of each kind at once.
    PipedriveObject {
        object: ObjectType::NOTES,
        path: "notes",
        fields_path: "",
        noun: "note",
        settings_section: "",
        standard: &[(field::BODY, "content"), (field::OWNER, "user_id")],
        name: NameRule::Given,
        channels: &[],
        address: &[],
        read_only: &[],
        opt_out: None,
        include_fields: &[],
        references: &[],
        links: &[PipedriveLinks {
            canonical: field::PARENTS,
            targets: &crate::notes::PARENT_FIELDS,
            participants: false,
        }],
        stage: None,
        unset_reads_as: &[],
        writable: &[
            "content",
            "user_id",
            "deal_id",
            "person_id",
            "org_id",
            "add_time",
            "pinned_to_deal_flag",
            "pinned_to_person_flag",
            "pinned_to_organization_flag",
        ],
        body_fields: &[
            ("content", "body"),
            ("user_id", "owner"),
            ("deal_id", "parents"),
            ("person_id", "parents"),
            ("org_id", "parents"),
            ("add_time", "timestamp"),
        ],
        // Pipedrive refuses a note without content.
        required: &[field::BODY],
        source_id_field: false,
        lists_deleted: false,
        max_chars: &[(field::BODY, crate::notes::BODY_MAX_CHARS)],
        to_the_second: &[field::TIMESTAMP],
    },
];

/// Canonical timestamp ↔ top-level field, on every object: read by the source, not written.
pub const TIMESTAMPS: &[(&str, &str)] = &[
    (field::CREATED_AT, "add_time"),
    (field::UPDATED_AT, "update_time"),
];

/// The row of `object`, or the refusal of an object this connector does not move.
pub fn binding(object: ObjectType) -> ConnectorResult<&'static PipedriveObject> {
    ferry_core::kit::row_of(VENDOR, OBJECTS, object)
}

impl ferry_core::kit::ObjectRow for PipedriveObject {
    fn object(&self) -> ObjectType {
        self.object
    }
}

/// The objects of the table, in its order (the registry's list).
pub fn object_types() -> &'static [ObjectType] {
    static TYPES: std::sync::LazyLock<Vec<ObjectType>> =
        std::sync::LazyLock::new(|| OBJECTS.iter().map(|row| row.object).collect());
    &TYPES
}

impl PipedriveObject {
    /// The standard field map.
    pub fn standard_map(&self) -> FieldMap {
        FieldMap::standard(self.object, self.standard)
    }

    /// The canonical field a compound or system field `code` holds, for `describe` (`None`
    /// for the address, which holds several).
    pub fn compound_canonical(&self, code: &str) -> Option<&'static str> {
        let channel = self
            .channels
            .iter()
            .find(|c| c.vendor == code)
            .map(|c| c.main);
        let reference = self.references.iter().find(|r| r.vendor == code);
        let opt_out = self.opt_out.as_ref().filter(|o| o.vendor == code);
        let timestamp = TIMESTAMPS.iter().find(|(_, v)| *v == code).map(|(c, _)| *c);
        let link = self
            .links
            .iter()
            .find(|l| l.targets.iter().any(|(_, v)| *v == code))
            .map(|l| l.canonical);
        let stage = self
            .stage
            .as_ref()
            .filter(|s| s.stage == code)
            .map(|s| s.canonical);
        channel
            .or(reference.map(|r| r.canonical))
            .or(link)
            .or(stage)
            .or(opt_out.map(|o| o.canonical))
            .or(timestamp)
    }

    /// The canonical fields the sink writes and reads back exactly: the compound ones (lists,
    /// address, opt-out, references) and those of `map` (the standard table and the mapped
    /// fields).
    pub fn stored_fields(&self, map: &FieldMap) -> Vec<String> {
        let channels = self
            .channels
            .iter()
            .flat_map(|c| std::iter::once(c.main).chain(c.mobile));
        let mut fields: Vec<String> = channels
            .chain(self.opt_out.as_ref().map(|o| o.canonical))
            .chain(self.references.iter().map(|r| r.canonical))
            .chain(self.links.iter().map(|l| l.canonical))
            .chain(self.stage.as_ref().map(|s| s.canonical))
            .chain(self.address.iter().map(|(c, _)| *c))
            .chain(self.to_the_second.iter().copied())
            .map(str::to_owned)
            .collect();
        fields.extend(map.canonical_names());
        fields.sort();
        fields.dedup();
        fields
    }

    /// What Pipedrive cannot hold of this object's fields: a link field holds one link per
    /// target object (a note's one deal, one person, one organisation), unless participants
    /// hold more (a deal's persons); some text fields have a most characters (a note's body).
    pub fn limits(&self) -> Vec<ferry_core::FieldLimit> {
        self.links
            .iter()
            .filter(|l| !l.participants)
            .map(|l| ferry_core::FieldLimit::max_links_per_target(l.canonical, 1))
            .chain(
                self.max_chars
                    .iter()
                    .map(|(f, max)| ferry_core::FieldLimit::max_chars(*f, *max)),
            )
            .chain(
                self.to_the_second
                    .iter()
                    .map(|f| ferry_core::FieldLimit::to_the_second(*f)),
            )
            .chain(
                self.unset_reads_as
                    .iter()
                    .map(|(f, value)| ferry_core::FieldLimit::unset_reads_as(*f, *value)),
            )
            .collect()
    }

    /// The objects this one's records point at (references and links): their source-id
    /// fields must exist for the sink to resolve the targets.
    pub fn targets(&self) -> Vec<ObjectType> {
        let mut out: Vec<ObjectType> = self.references.iter().map(|r| r.target).collect();
        for link in self.links {
            out.extend(link.targets.iter().map(|(t, _)| *t));
        }
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_object_has_one_row_and_every_reference_target_has_one() {
        let bound = ObjectType::ALL;
        for object in bound {
            let row = binding(object).unwrap();
            assert_eq!(row.object, object);
            assert_eq!(
                OBJECTS.iter().filter(|r| r.object == object).count(),
                1,
                "{object} has more than one row"
            );
        }
        let mut seen = HashSet::new();
        for row in OBJECTS {
            assert!(seen.insert(row.object), "two rows for {}", row.object);
            for reference in row.references {
                assert!(binding(reference.target).is_ok(), "{}", reference.canonical);
                assert!(row.writable.contains(&reference.vendor));
            }
        }
        assert_eq!(object_types(), &bound[..]);
    }

    #[test]
    fn an_object_without_a_row_is_refused_as_unsupported() {
        // A table without the contacts row stands in for an object ferry cannot name yet.
        let companies_only = &OBJECTS[..1];
        assert_eq!(companies_only[0].object, ObjectType::COMPANIES);
        for table in [companies_only, &[]] {
            match ferry_core::kit::row_of(VENDOR, table, ObjectType::CONTACTS) {
                Err(ferry_core::ConnectorError::Unsupported { vendor, detail }) => {
                    assert_eq!(vendor, VENDOR);
                    assert!(detail.contains("contacts"), "{detail}");
                }
                other => panic!("not refused: {other:?}"),
            }
        }
        assert!(ferry_core::kit::row_of(VENDOR, companies_only, ObjectType::COMPANIES).is_ok());
    }

    #[test]
    fn stored_fields_are_the_compound_and_the_standard_ones() {
        let contacts = binding(ObjectType::CONTACTS).unwrap();
        assert_eq!(
            contacts.stored_fields(&contacts.standard_map()),
            [
                "company",
                "email",
                "email_opt_out",
                "first_name",
                "last_name",
                "mobile_phone",
                "owner",
                "phone"
            ]
        );
        let companies = binding(ObjectType::COMPANIES).unwrap();
        assert_eq!(
            companies.stored_fields(&companies.standard_map()),
            [
                "city",
                "country",
                "name",
                "owner",
                "postal_code",
                "state",
                "street"
            ]
        );
        let deals = binding(ObjectType::DEALS).unwrap();
        assert_eq!(
            deals.stored_fields(&deals.standard_map()),
            [
                "amount",
                "close_date",
                "company",
                "contacts",
                "currency",
                "name",
                "owner",
                "stage",
                "status"
            ]
        );
        // A deal holds many persons, as participants; Pipedrive gives one without a value 0.
        assert_eq!(
            deals.limits(),
            [ferry_core::FieldLimit::unset_reads_as("amount", "0")]
        );
        // A note: its body, author, parents and original time (which also keys it, see
        // `notes`), to the second.
        let notes = binding(ObjectType::NOTES).unwrap();
        assert_eq!(
            notes.stored_fields(&notes.standard_map()),
            ["body", "owner", "parents", "timestamp"]
        );
        // One parent of each kind; the body as Pipedrive's limit.
        assert_eq!(
            notes.limits(),
            [
                ferry_core::FieldLimit::max_links_per_target("parents", 1),
                ferry_core::FieldLimit::max_chars("body", 100_000),
                ferry_core::FieldLimit::to_the_second("timestamp")
            ]
        );
    }

    #[test]
    fn describe_names_the_compound_fields() {
        let contacts = binding(ObjectType::CONTACTS).unwrap();
        let companies = binding(ObjectType::COMPANIES).unwrap();
        let canonical = |row: &PipedriveObject, code| row.compound_canonical(code);
        assert_eq!(canonical(contacts, "emails"), Some(field::EMAIL));
        assert_eq!(canonical(contacts, "phones"), Some(field::PHONE));
        assert_eq!(canonical(contacts, "org_id"), Some(field::COMPANY));
        assert_eq!(
            canonical(contacts, "marketing_status"),
            Some(field::EMAIL_OPT_OUT)
        );
        assert_eq!(canonical(companies, "update_time"), Some(field::UPDATED_AT));
        assert_eq!(canonical(contacts, "add_time"), Some(field::CREATED_AT));
        assert_eq!(canonical(companies, "emails"), None);
        assert_eq!(canonical(companies, "address"), None);
        assert_eq!(canonical(contacts, "job_title"), None);
    }
}

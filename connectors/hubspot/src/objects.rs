//! HubSpot's side of every object ferry moves, as one table: read [`OBJECTS`] top to bottom to
//! see which HubSpot object type, properties, associations and subscription calls each object
//! uses. The source, the sink and the field code read these rows; none of them names an object.

use ferry_core::{ConnectorResult, ObjectType, field};

use crate::VENDOR;
use crate::mapping::{COMPANY_PROPERTIES, CONTACT_PROPERTIES, DEAL_PROPERTIES, NOTE_PROPERTIES};

/// One object ferry moves, as HubSpot holds it.
#[derive(Debug)]
pub struct HubspotBinding {
    /// The canonical object.
    pub object: ObjectType,
    /// HubSpot's object type in its API paths (`/crm/v3/objects/{path}`,
    /// `/crm/v3/properties/{path}`, `/crm/v4/associations/{path}/…`) and scope names
    /// (`crm.schemas.{path}.write`).
    pub path: &'static str,
    /// One record of it, in messages and in the source-id property's description (`contact`).
    pub noun: &'static str,
    /// The property group of the properties ferry creates on it: the source-id property and
    /// the operator's created custom properties.
    pub property_group: &'static str,
    /// Where HubSpot's UI manages its properties, for setup advice.
    pub settings: &'static str,
    /// Canonical field ↔ HubSpot property: the standard field table.
    pub properties: &'static [(&'static str, &'static str)],
    /// The references its records hold. Each is a HubSpot association, written after the
    /// upsert (a batch upsert takes none) and read back through the v4 associations API.
    pub references: &'static [HubspotReference],
    /// Canonical fields HubSpot refuses a record without: a deal's `dealname` and `dealstage`,
    /// a note's `hs_timestamp` (contacts and companies need none).
    pub required: &'static [&'static str],
    /// Canonical text fields HubSpot holds at most so many characters of (a note's body): the
    /// engine refuses a longer one before writing (`TOO_LONG`), never truncating it.
    pub max_chars: &'static [(&'static str, usize)],
    /// How its records' opt-outs kept by HubSpot's communication preferences are read and
    /// recorded, one per channel (empty: the object has none).
    pub subscriptions: &'static [Subscription],
    /// The canonical field of its records' email opt-outs per subscription type (a
    /// `FieldType::Names`), shown on a read-only flag property per type and written through
    /// the status calls (`None`: the object has none).
    pub email_types: Option<&'static str>,
    /// The property every change of a record's properties moves, what incremental reads
    /// filter on: `lastmodifieddate` on contacts, `hs_lastmodifieddate` on the others.
    pub modified_property: &'static str,
    /// Its multiple-checkbox properties whose options the model names (a contact's
    /// `hs_legal_basis`): each option travels under the model's name, and a name without an
    /// option is left out before writing (`NAMES_NOT_HELD`).
    pub named_options: &'static [NamedOptions],
}

/// A multiple-checkbox property of a standard field of type `FieldType::Names`, with the
/// model's name of each of its options.
#[derive(Debug)]
pub struct NamedOptions {
    /// The canonical field (`legal_basis`).
    pub canonical: &'static str,
    /// `(the model's name, HubSpot's internal value)` of each option, in HubSpot's order.
    pub options: &'static [(&'static str, &'static str)],
}

/// One reference as a HubSpot association, from the record of its row to its `target`. A link
/// field with several target objects (a note's `parents`) has one reference per target, each
/// holding the links to that object.
#[derive(Debug)]
pub struct HubspotReference {
    /// The canonical field holding the target's source id (`company`), or the links to it
    /// (`contacts`, `parents`).
    pub canonical: &'static str,
    /// The object it refers to.
    pub target: ObjectType,
    /// The `HUBSPOT_DEFINED` v4 association type written for it: 1 is a contact's primary
    /// company, 5 a deal's. HubSpot moves that label to the company written; a former primary
    /// company stays associated, unlabelled.
    pub association_type_id: i64,
    /// Whether the field holds every associated record of the target (a `Value::Links` field:
    /// a deal's contacts, a note's parents), kept equal to the source's set, rather than the
    /// one record of the association type (the primary company).
    pub many: bool,
    /// The same type's label in v3 list answers, which tells it apart from the record's other
    /// associations with the target (`contact_to_company`).
    pub list_label: &'static str,
    /// The association in messages (`primary company`).
    pub title: &'static str,
    /// The refusal code of a record written while its target is not in HubSpot.
    pub not_found_code: &'static str,
}

/// An opt-out HubSpot keeps per subscriber (an email address, a phone number) in its
/// communication-preferences API, not on the record: it is recorded by unsubscribing the
/// subscriber from all of the channel before the record is written, and read from the
/// record's property where HubSpot shows one (`hs_email_optout`, read-only), else from the
/// API itself (v4 batch read of the channel's wide statuses).
#[derive(Debug)]
pub struct Subscription {
    /// The canonical opt-out field (true: unsubscribe the subscriber from all of the channel).
    pub opt_out: &'static str,
    /// The canonical field holding the subscriber: an email address, or a phone number that
    /// is sent in E.164 form (read in the region of the record's country when it is national).
    pub address: &'static str,
    /// The read-only property HubSpot shows the opt-out in on the record, if it has one.
    pub opt_out_property: Option<&'static str>,
    /// The property holding the subscriber on the record.
    pub address_property: &'static str,
    /// The subscription channel (`channel=` of the calls): `EMAIL`, `SMS`.
    pub channel: &'static str,
}

/// The contact's subscriptions: all email, by address; all text messages, by mobile number.
pub static CONTACT_SUBSCRIPTIONS: &[Subscription] = &[
    Subscription {
        opt_out: field::EMAIL_OPT_OUT,
        address: field::EMAIL,
        opt_out_property: Some("hs_email_optout"),
        address_property: "email",
        channel: "EMAIL",
    },
    Subscription {
        opt_out: field::SMS_OPT_OUT,
        address: field::MOBILE_PHONE,
        opt_out_property: None,
        address_property: "mobilephone",
        channel: "SMS",
    },
];

/// Every object the HubSpot connector moves, in the order of its registry entry.
pub static OBJECTS: &[HubspotBinding] = &[
    HubspotBinding {
        object: ObjectType::COMPANIES,
        path: "companies",
        noun: "company",
        property_group: "companyinformation",
        settings: "Settings → Properties → Company properties",
        properties: COMPANY_PROPERTIES,
        references: &[],
        required: &[],
        max_chars: &[],
        subscriptions: &[],
        email_types: None,
        modified_property: "hs_lastmodifieddate",
        named_options: &[],
    },
    HubspotBinding {
        object: ObjectType::CONTACTS,
        path: "contacts",
        noun: "contact",
        property_group: "contactinformation",
        settings: "Settings → Properties → Contact properties",
        properties: CONTACT_PROPERTIES,
        references: &[HubspotReference {
            canonical: field::COMPANY,
            target: ObjectType::COMPANIES,
            association_type_id: 1,
            list_label: "contact_to_company",
            title: "primary company",
            not_found_code: "COMPANY_NOT_FOUND",
            many: false,
        }],
        required: &[],
        max_chars: &[],
        subscriptions: CONTACT_SUBSCRIPTIONS,
        email_types: Some(field::EMAIL_UNSUBSCRIBED_TYPES),
        modified_property: "lastmodifieddate",
        named_options: &[NamedOptions {
            canonical: field::LEGAL_BASIS,
            options: crate::mapping::LEGAL_BASIS_OPTIONS,
        }],
    },
    HubspotBinding {
        object: ObjectType::DEALS,
        path: "deals",
        noun: "deal",
        property_group: "dealinformation",
        settings: "Settings → Properties → Deal properties",
        properties: DEAL_PROPERTIES,
        references: &[
            HubspotReference {
                canonical: field::COMPANY,
                target: ObjectType::COMPANIES,
                association_type_id: 5,
                list_label: "deal_to_company",
                title: "primary company",
                not_found_code: "COMPANY_NOT_FOUND",
                many: false,
            },
            HubspotReference {
                canonical: field::CONTACTS,
                target: ObjectType::CONTACTS,
                association_type_id: 3,
                list_label: "deal_to_contact",
                title: "contact",
                not_found_code: "CONTACT_NOT_FOUND",
                many: true,
            },
        ],
        // HubSpot's deals guide: "send dealname and dealstage" on create.
        required: &[field::NAME, field::STAGE],
        max_chars: &[],
        subscriptions: &[],
        email_types: None,
        modified_property: "hs_lastmodifieddate",
        named_options: &[],
    },
    HubspotBinding {
        object: ObjectType::NOTES,
        path: "notes",
        noun: "note",
        property_group: "engagement",
        settings: "Settings → Properties → Note properties",
        properties: NOTE_PROPERTIES,
        // A note holds every parent it is given, of each object.
        references: &[
            HubspotReference {
                canonical: field::PARENTS,
                target: ObjectType::DEALS,
                association_type_id: 214,
                list_label: "note_to_deal",
                title: "deal",
                not_found_code: "DEAL_NOT_FOUND",
                many: true,
            },
            HubspotReference {
                canonical: field::PARENTS,
                target: ObjectType::CONTACTS,
                association_type_id: 202,
                list_label: "note_to_contact",
                title: "contact",
                not_found_code: "CONTACT_NOT_FOUND",
                many: true,
            },
            HubspotReference {
                canonical: field::PARENTS,
                target: ObjectType::COMPANIES,
                association_type_id: 190,
                list_label: "note_to_company",
                title: "company",
                not_found_code: "COMPANY_NOT_FOUND",
                many: true,
            },
        ],
        // HubSpot's notes guide: `hs_timestamp` is required.
        required: &[field::TIMESTAMP],
        // "hs_note_body … ≤65,536 chars" (HubSpot's notes guide), HTML as written.
        max_chars: &[(field::BODY, 65_536)],
        subscriptions: &[],
        email_types: None,
        modified_property: "hs_lastmodifieddate",
        named_options: &[],
    },
];

/// The objects of [`OBJECTS`], in its order, for the connector's registry entry.
pub const OBJECT_TYPES: [ObjectType; OBJECTS.len()] = {
    let mut out = [OBJECTS[0].object; OBJECTS.len()];
    let mut i = 1;
    while i < OBJECTS.len() {
        out[i] = OBJECTS[i].object;
        i += 1;
    }
    out
};

/// The row of `object`, or the refusal of an object this connector does not move.
pub fn binding(object: ObjectType) -> ConnectorResult<&'static HubspotBinding> {
    ferry_core::kit::row_of(VENDOR, OBJECTS, object)
}

impl HubspotBinding {
    /// Whether the source reads the row's references through v4 association batch reads (one
    /// request per reference and page of records, 500 associations a record with paging)
    /// rather than the list's `associations` parameter: a row with a link field, whose every
    /// association counts, reads them all so. A contact's primary company is read from the
    /// list.
    pub fn reads_links_in_batches(&self) -> bool {
        self.references.iter().any(|r| r.many)
    }
}

impl HubspotBinding {
    /// The subscriptions HubSpot shows on no property of the record, read through the
    /// communication-preferences API after each page (SMS).
    pub fn read_through_preferences(&self) -> impl Iterator<Item = &Subscription> {
        self.subscriptions
            .iter()
            .filter(|s| s.opt_out_property.is_none())
    }
}

impl ferry_core::kit::ObjectRow for HubspotBinding {
    fn object(&self) -> ObjectType {
        self.object
    }
}

/// Whether some row's reference targets `object`: the sink then remembers the HubSpot ids of
/// the `object` records it writes, so that the records referring to them find them without a
/// lookup.
pub fn is_target(object: ObjectType) -> bool {
    OBJECTS
        .iter()
        .flat_map(|row| row.references)
        .any(|reference| reference.target == object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_has_exactly_one_row() {
        for object in ObjectType::ALL {
            let rows = OBJECTS.iter().filter(|row| row.object == object).count();
            assert_eq!(rows, 1, "{object}");
            assert_eq!(binding(object).expect("a row").object, object);
        }
        assert_eq!(OBJECT_TYPES.len(), OBJECTS.len());
        for (row, object) in OBJECTS.iter().zip(OBJECT_TYPES) {
            assert_eq!(row.object, object);
        }
    }

    #[test]
    fn references_target_objects_with_rows() {
        for row in OBJECTS {
            for reference in row.references {
                assert!(binding(reference.target).is_ok(), "{}", reference.canonical);
                assert!(is_target(reference.target));
                let Some(spec) = row.object.field(reference.canonical) else {
                    panic!("{}.{} is no field", row.object, reference.canonical);
                };
                // A link field's references keep every association; a bare reference one.
                let ferry_core::FieldType::Reference(to) = spec.ty else {
                    panic!("{}.{} is no reference", row.object, reference.canonical);
                };
                assert_eq!(reference.many, to.is_links(), "{}", reference.canonical);
                assert!(to.targets.contains(&reference.target));
            }
        }
    }
}

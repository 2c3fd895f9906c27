//! The consent guard: an opted-out person never arrives in the sink reachable on that channel.
//!
//! The opt-outs are schema ([`crate::model::OPT_OUTS`]). Four rules hold for every channel:
//! - A run whose sink cannot hold an opt-out that some source record holds is refused before
//!   anything is written ([`unheld`], [`refusal`]), unless the operator maps the opt-out to a
//!   sink field (`[fields.<object>]`) or accepts the loss by name (`[consent] accept_loss`).
//! - A record holding an opt-out the sink cannot hold is refused, never written reachable
//!   ([`check`]): the guard before the run counted; this one holds if a record changed since.
//! - An opt-out is only ever written as `true` ([`strip_opt_ins`]): "not opted out" is the
//!   absence of a fact, and writing it would undo an opt-out the sink holds (a sync never
//!   turns a sink's opt-out back on).
//! - Verification reads a sink that is opted out where the source is not as kept, not as a
//!   difference ([`keep_sink_opt_outs`]): the sink's opt-out stands.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::checksum::Projection;
use crate::model::{CONSENT_RECORDS, ObjectType, OptOut, OptOutKind, Record, Value};
use crate::quality::{Action, Finding};

/// A record refused because it holds an opt-out the sink cannot hold.
pub const CONSENT_NOT_HELD: &str = "CONSENT_NOT_HELD";
/// A record written without an opt-out the sink cannot hold, as `[consent] accept_loss` allows.
pub const CONSENT_LOST: &str = "CONSENT_LOST";

/// The operator's consent settings (`[consent]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsentPolicy {
    /// Opt-out fields (`do_not_call`) the operator accepts to lose where the sink cannot hold
    /// them: such records are written without it, each listed as a [`CONSENT_LOST`] warning.
    pub accept_loss: Vec<String>,
}

impl ConsentPolicy {
    /// Whether the operator accepts losing `opt_out` where the sink cannot hold it.
    pub fn accepts_loss(&self, opt_out: &OptOut) -> bool {
        self.accept_loss.iter().any(|f| f == opt_out.field)
    }
}

/// One channel's consent counts for an object, in the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChannelCounts {
    /// Records read opted out of the channel.
    pub opted_out: u64,
    /// Of those, read back from the sink opted out (verified).
    pub kept: u64,
    /// Of those, not written: refused by ferry or by the sink (listed among the failures).
    pub refused: u64,
    /// Of those, written without the opt-out because `[consent] accept_loss` names it.
    pub lost: u64,
    /// Records the source does not hold opted out but the sink does: left opted out.
    pub kept_in_sink: u64,
}

/// Consent counts per channel (`email`, `phone`, ...), for the channels the object has.
pub type ConsentCounts = BTreeMap<&'static str, ChannelCounts>;

/// The channels `record` is opted out of.
pub fn opted_out(record: &Record) -> impl Iterator<Item = &'static OptOut> + '_ {
    record
        .object
        .opt_outs()
        .filter(|o| o.holds(record.get(o.field)))
}

/// Drops every opt-out that is not one (`false`, no names): only an opt-out is a fact to
/// write. A sink then never receives "opted in" from ferry, so it keeps whatever opt-out it
/// holds.
pub fn strip_opt_ins(record: &mut Record) {
    for o in record.object.opt_outs() {
        if record.get(o.field).is_some() && !o.holds(record.get(o.field)) {
            record.fields.remove(o.field);
        }
    }
}

/// Whether a sink leaves `field` of `record` out of its write: an opt-out field whose value
/// holds no opt-out (`false`, no names, absent), or a consent record the record lacks. Only an
/// opt-out is ever written, so ferry never clears one the sink holds; and a source without a
/// legal basis has not withdrawn the one the sink keeps.
pub fn leave_out(record: &Record, field: &str) -> bool {
    match crate::model::opt_out(field) {
        Some(o) => !o.holds(record.get(field)),
        None => {
            CONSENT_RECORDS.contains(&field)
                && record.get(field).is_none_or(crate::checksum::is_blank)
        }
    }
}

/// The opt-outs of `object` that a sink storing `stored` cannot hold and the operator has not
/// accepted to lose: a run must not write a record holding one.
pub fn unheld(
    object: ObjectType,
    stored: &Projection,
    policy: &ConsentPolicy,
) -> Vec<&'static OptOut> {
    object
        .opt_outs()
        .filter(|o| !stored.contains(o.field) && !policy.accepts_loss(o))
        .collect()
}

/// The guard on one record: a refusal for each opt-out it holds that the sink cannot hold (a
/// warning instead where the operator accepted the loss). Counts what it sees in `counts`.
pub fn check(
    record: &Record,
    stored: &Projection,
    policy: &ConsentPolicy,
    sink: &str,
    counts: &mut ConsentCounts,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for o in opted_out(record) {
        counts.entry(o.channel).or_default().opted_out += 1;
        if stored.contains(o.field) {
            continue;
        }
        if policy.accepts_loss(o) {
            counts.entry(o.channel).or_default().lost += 1;
            findings.push(Finding {
                code: CONSENT_LOST,
                reason: format!(
                    "opted out of {} (`{}`), which {sink} cannot hold: written without it, as \
                     [consent] accept_loss allows",
                    o.channel, o.field
                ),
                action: Action::Write,
            });
        } else {
            findings.push(Finding {
                code: CONSENT_NOT_HELD,
                reason: format!(
                    "opted out of {} (`{}`), which {sink} cannot hold: not written, so that it \
                     does not arrive reachable; map the field to a sink field or accept the loss \
                     in [consent] accept_loss",
                    o.channel, o.field
                ),
                action: Action::Reject,
            });
        }
    }
    findings
}

/// Books a record that was opted out and was not written (refused by a check or the sink).
pub fn count_refused(record: &Record, counts: &mut ConsentCounts) {
    for o in opted_out(record) {
        counts.entry(o.channel).or_default().refused += 1;
    }
}

/// Compares a record read back with the one sent, channel by channel: an opt-out the sink
/// holds and the source does not is the sink's and stands, so the record to hash is returned
/// with the sent value in its place (`None`: hash `stored` as it is); an opt-out sent and read
/// back is counted kept. For an opt-out kept per type, the sink's types beyond those sent are
/// its own and stand the same way; a type sent and not read back is a difference. A consent
/// record (a legal basis) the sink holds where none was sent stands too (it was not written).
pub fn keep_sink_opt_outs(
    sent: &Record,
    stored: &Record,
    projection: &Projection,
    counts: &mut ConsentCounts,
) -> Option<Record> {
    let mut standing: Vec<&'static str> = CONSENT_RECORDS
        .iter()
        .copied()
        .filter(|f| projection.contains(f))
        .filter(|f| leave_out(sent, f) && stored.get(f).is_some())
        .collect();
    for o in sent
        .object
        .opt_outs()
        .filter(|o| projection.contains(o.field))
    {
        let sent_out = o.holds(sent.get(o.field));
        let stored_out = o.holds(stored.get(o.field));
        match (sent_out, stored_out) {
            (true, true) => {
                counts.entry(o.channel).or_default().kept += 1;
                if o.kind == OptOutKind::Names
                    && sent.get(o.field) != stored.get(o.field)
                    && names_within(sent.get(o.field), stored.get(o.field))
                {
                    counts.entry(o.channel).or_default().kept_in_sink += 1;
                    standing.push(o.field);
                }
            }
            (false, true) => {
                counts.entry(o.channel).or_default().kept_in_sink += 1;
                standing.push(o.field);
            }
            _ => {}
        }
    }
    if standing.is_empty() {
        return None;
    }
    let mut hashed = stored.clone();
    for field in standing {
        match sent.get(field) {
            Some(v) => hashed.set(field, v.clone()),
            None => {
                hashed.fields.remove(field);
            }
        }
    }
    Some(hashed)
}

/// Whether every name of `sent` is among those of `stored`.
fn names_within(sent: Option<&Value>, stored: Option<&Value>) -> bool {
    let stored: Vec<&str> = stored
        .and_then(Value::as_text)
        .map(|t| crate::model::names(t).collect())
        .unwrap_or_default();
    sent.and_then(Value::as_text)
        .is_none_or(|t| crate::model::names(t).all(|n| stored.contains(&n)))
}

/// Adds `more` into `into`, channel by channel.
pub fn merge(into: &mut ConsentCounts, more: &ConsentCounts) {
    for (channel, c) in more {
        let to = into.entry(channel).or_default();
        to.opted_out += c.opted_out;
        to.kept += c.kept;
        to.refused += c.refused;
        to.lost += c.lost;
        to.kept_in_sink += c.kept_in_sink;
    }
}

/// An opt-out some source records hold that the sink cannot, found before writing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unheld {
    /// The object.
    pub object: ObjectType,
    /// The opt-out.
    pub opt_out: &'static OptOut,
    /// The source's field that holds it, when the source names one.
    pub source_field: Option<String>,
    /// How many source records hold it.
    pub records: u64,
}

/// The message of a run refused because its sink cannot hold opt-outs the source holds:
/// each opt-out with its count, and the two ways on. Names fields, never a value.
pub fn refusal(unheld: &[Unheld], source: &str, sink: &str) -> String {
    let mut lines = vec![format!(
        "consent: {sink} cannot hold opt-outs that {source} records hold, so opted-out people \
         would arrive reachable; nothing was written:"
    )];
    for u in unheld {
        let field = u.source_field.as_deref().unwrap_or(u.opt_out.field);
        lines.push(format!(
            "  {object}: {n} opted out of {channel} (`{canonical}`); map it to a {sink} field \
             ([fields.{object}] \"{field}\" = \"<{sink} field>\", with create_missing_fields = \
             true in [sink] to create it) or accept the loss ([consent] accept_loss = \
             [\"{canonical}\"])",
            object = u.object,
            n = u.records,
            channel = u.opt_out.channel,
            canonical = u.opt_out.field,
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::field;

    fn contact(flags: &[(&'static str, bool)]) -> Record {
        let mut r = Record::new(ObjectType::CONTACTS, "c1");
        r.set(field::EMAIL, Value::Text("a@example.org".into()));
        for (f, b) in flags {
            r.set(f, Value::Bool(*b));
        }
        r
    }

    #[test]
    fn every_channel_is_a_contact_field_and_only_contacts_have_them() {
        let contact: Vec<_> = ObjectType::CONTACTS.opt_outs().map(|o| o.channel).collect();
        assert_eq!(
            contact,
            ["email", "phone", "sms", "fax", "postal", "email_types"]
        );
        assert_eq!(ObjectType::COMPANIES.opt_outs().count(), 0);
    }

    #[test]
    fn only_a_true_opt_out_is_written() {
        let mut r = contact(&[(field::EMAIL_OPT_OUT, false), (field::DO_NOT_CALL, true)]);
        strip_opt_ins(&mut r);
        assert_eq!(r.get(field::EMAIL_OPT_OUT), None);
        assert_eq!(r.get(field::DO_NOT_CALL), Some(&Value::Bool(true)));
        assert!(r.get(field::EMAIL).is_some());
    }

    #[test]
    fn a_record_opted_out_where_the_sink_cannot_hold_it_is_refused_unless_the_loss_is_accepted() {
        let stored = Projection::new([field::EMAIL, field::EMAIL_OPT_OUT]);
        let r = contact(&[(field::EMAIL_OPT_OUT, true), (field::DO_NOT_CALL, true)]);
        let mut counts = ConsentCounts::new();
        let f = check(
            &r,
            &stored,
            &ConsentPolicy::default(),
            "pipedrive",
            &mut counts,
        );
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].code, f[0].action), (CONSENT_NOT_HELD, Action::Reject));
        assert!(f[0].reason.contains("`do_not_call`") && f[0].reason.contains("pipedrive"));
        assert_eq!(counts["email"].opted_out, 1);
        assert_eq!(counts["phone"].opted_out, 1);

        let accept = ConsentPolicy {
            accept_loss: vec![field::DO_NOT_CALL.into()],
        };
        let f = check(&r, &stored, &accept, "pipedrive", &mut counts);
        assert_eq!((f[0].code, f[0].action), (CONSENT_LOST, Action::Write));
        assert_eq!(counts["phone"].lost, 1);
        assert!(
            unheld(ObjectType::CONTACTS, &stored, &accept)
                .iter()
                .all(|o| o.field != field::DO_NOT_CALL)
        );
    }

    #[test]
    fn a_record_not_opted_out_passes_whatever_the_sink_holds() {
        let stored = Projection::new([field::EMAIL]);
        let r = contact(&[(field::DO_NOT_CALL, false)]);
        let mut counts = ConsentCounts::new();
        assert!(check(&r, &stored, &ConsentPolicy::default(), "x", &mut counts).is_empty());
        assert!(counts.is_empty());
    }

    #[test]
    fn the_sinks_own_opt_out_stands_and_a_sent_one_read_back_is_kept() {
        let projection = Projection::new([field::EMAIL, field::EMAIL_OPT_OUT, field::FAX_OPT_OUT]);
        let sent = contact(&[(field::EMAIL_OPT_OUT, true)]);
        let stored = contact(&[(field::EMAIL_OPT_OUT, true), (field::FAX_OPT_OUT, true)]);
        let mut counts = ConsentCounts::new();
        let stored = keep_sink_opt_outs(&sent, &stored, &projection, &mut counts).unwrap();
        assert_eq!(stored.get(field::FAX_OPT_OUT), None);
        assert_eq!(counts["email"].kept, 1);
        assert_eq!(counts["fax"].kept_in_sink, 1);
        let digest = |r: &Record| crate::record_digest(r, &projection);
        assert_eq!(digest(&sent), digest(&stored));
    }

    #[test]
    fn a_lost_opt_out_read_back_is_still_a_difference() {
        let projection = Projection::new([field::EMAIL, field::EMAIL_OPT_OUT]);
        let sent = contact(&[(field::EMAIL_OPT_OUT, true)]);
        let stored = contact(&[]);
        let mut counts = ConsentCounts::new();
        assert!(keep_sink_opt_outs(&sent, &stored, &projection, &mut counts).is_none());
        let digest = |r: &Record| crate::record_digest(r, &projection);
        assert_ne!(digest(&sent), digest(&stored));
        assert!(counts.get("email").is_none_or(|c| c.kept == 0));
    }

    #[test]
    fn the_refusal_names_each_channel_the_count_and_both_ways_on() {
        let message = refusal(
            &[Unheld {
                object: ObjectType::CONTACTS,
                opt_out: crate::model::opt_out(field::DO_NOT_CALL).unwrap(),
                source_field: Some("DoNotCall".into()),
                records: 3,
            }],
            "salesforce",
            "pipedrive",
        );
        assert!(message.contains("3 opted out of phone"), "{message}");
        assert!(
            message.contains("\"DoNotCall\" = \"<pipedrive field>\""),
            "{message}"
        );
        assert!(
            message.contains("accept_loss = [\"do_not_call\"]"),
            "{message}"
        );
    }

    fn types(names: &str) -> Value {
        crate::model::names_value(crate::model::names(names)).unwrap()
    }

    #[test]
    fn an_opt_out_per_type_is_held_by_any_name_and_an_empty_set_is_no_fact() {
        let mut r = contact(&[]);
        r.set(field::EMAIL_UNSUBSCRIBED_TYPES, Value::Text(" ; ".into()));
        assert_eq!(opted_out(&r).count(), 0);
        strip_opt_ins(&mut r);
        assert_eq!(r.get(field::EMAIL_UNSUBSCRIBED_TYPES), None);
        r.set(field::EMAIL_UNSUBSCRIBED_TYPES, types("One to One"));
        let out: Vec<_> = opted_out(&r).map(|o| o.channel).collect();
        assert_eq!(out, ["email_types"]);
    }

    #[test]
    fn names_are_one_canonical_set_whatever_their_order_and_a_merge_joins_them() {
        assert_eq!(
            types("Sales ;Marketing Information; Sales"),
            Value::Text("Marketing Information; Sales".into())
        );
        assert_eq!(
            Value::parse(crate::FieldType::Names, " ; ").unwrap(),
            None,
            "no names is no value"
        );
        let o = crate::model::opt_out(field::EMAIL_UNSUBSCRIBED_TYPES).unwrap();
        let (a, b) = (types("B; A"), types("C"));
        assert_eq!(o.join([Some(&a), None, Some(&b)]), Some(types("A; B; C")));
        assert_eq!(o.join([None, None]), None);
    }

    #[test]
    fn the_sinks_own_types_stand_and_a_type_sent_but_not_read_back_is_a_difference() {
        let projection = Projection::new([field::EMAIL, field::EMAIL_UNSUBSCRIBED_TYPES]);
        let mut sent = contact(&[]);
        sent.set(field::EMAIL_UNSUBSCRIBED_TYPES, types("One to One"));
        let mut stored = contact(&[]);
        stored.set(field::EMAIL_UNSUBSCRIBED_TYPES, types("One to One; Sales"));
        let mut counts = ConsentCounts::new();
        let hashed = keep_sink_opt_outs(&sent, &stored, &projection, &mut counts).unwrap();
        let digest = |r: &Record| crate::record_digest(r, &projection);
        assert_eq!(digest(&sent), digest(&hashed));
        assert_eq!(
            (
                counts["email_types"].kept,
                counts["email_types"].kept_in_sink
            ),
            (1, 1)
        );

        stored.set(field::EMAIL_UNSUBSCRIBED_TYPES, types("Sales"));
        let mut counts = ConsentCounts::new();
        assert!(keep_sink_opt_outs(&sent, &stored, &projection, &mut counts).is_none());
        assert_ne!(digest(&sent), digest(&stored));
    }

    #[test]
    fn a_legal_basis_is_never_cleared_and_a_sinks_own_stands() {
        use crate::model::field;
        let mut sent = Record::new(ObjectType::CONTACTS, "c-1");
        sent.set(field::LAST_NAME, Value::Text("Ode".into()));
        assert!(
            leave_out(&sent, field::LEGAL_BASIS),
            "none to write: the sink's stays"
        );
        assert!(
            !leave_out(&sent, field::LAST_NAME),
            "any other field is written, empty too"
        );
        let mut stored = sent.clone();
        stored.set(field::LEGAL_BASIS, Value::Text("not_applicable".into()));
        let projection = Projection::new([field::LAST_NAME, field::LEGAL_BASIS]);
        let mut counts = ConsentCounts::new();
        let hashed = keep_sink_opt_outs(&sent, &stored, &projection, &mut counts)
            .expect("the sink's own legal basis stands");
        assert_eq!(hashed.get(field::LEGAL_BASIS), None);
        assert!(counts.is_empty(), "not an opt-out: no channel counted");
        // One sent is written, and compared like any field.
        sent.set(field::LEGAL_BASIS, Value::Text("consent".into()));
        assert!(!leave_out(&sent, field::LEGAL_BASIS));
        assert!(keep_sink_opt_outs(&sent, &stored, &projection, &mut counts).is_none());
    }
}

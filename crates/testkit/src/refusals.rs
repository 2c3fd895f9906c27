//! Ready-made contacts that vendors refuse on write, for [`crate::Target::refused_contact`].
//!
//! Each is otherwise valid (a well-formed email, no company reference), so the only reason to
//! refuse it is the one its name says. Malformed emails are deliberately absent: ferry's
//! quality checks filter them before any sink sees them, so they test nothing about a sink.
//! The values are distinctive words, so the refused-record check can tell whether a rejection
//! reason quotes them.
//!
//! | function | refused by |
//! |---|---|
//! | [`missing_last_name`] | Salesforce (`REQUIRED_FIELD_MISSING`), Zoho (`MANDATORY_NOT_FOUND`) |
//! | [`missing_name`] | the above, and Pipedrive (a person needs a `name`) |
//! | [`overlong_job_title`] | Salesforce (Title: 128), Zoho and Dataverse (100) |
//! | [`overlong_value`] | every vendor, HubSpot included (property values: at most 65,536 characters) |
//!
//! A vendor whose refusals none of these triggers passes its own `fn() -> Record`.

use ferry_core::{ObjectType, Record, Value, field};

fn contact(source_id: &str) -> Record {
    let mut r = Record::new(ObjectType::CONTACTS, source_id);
    r.set(
        field::EMAIL,
        Value::Text("quillon.refusalsson@refused.example.org".into()),
    );
    r.set(field::CITY, Value::Text("Xanthoville".into()));
    r
}

/// A contact with a first name and an email but no last name, which vendors that require a
/// last name refuse.
pub fn missing_last_name() -> Record {
    let mut r = contact("tk-refused-missing-last-name");
    r.set(field::FIRST_NAME, Value::Text("Quillon".into()));
    r
}

/// A contact with an email but neither first nor last name, which vendors that require a
/// person's name refuse.
pub fn missing_name() -> Record {
    contact("tk-refused-missing-name")
}

/// A contact whose job title is 300 characters, longer than Salesforce's 128 and Zoho's and
/// Dataverse's 100.
pub fn overlong_job_title() -> Record {
    let mut r = contact("tk-refused-overlong-title");
    r.set(field::FIRST_NAME, Value::Text("Quillon".into()));
    r.set(field::LAST_NAME, Value::Text("Refusalsson".into()));
    r.set(field::JOB_TITLE, Value::Text(long_text(300)));
    r
}

/// A contact whose job title is 70,000 characters, longer than any vendor stores in a text
/// field (HubSpot's limit for any property value is 65,536).
pub fn overlong_value() -> Record {
    let mut r = contact("tk-refused-overlong-value");
    r.set(field::FIRST_NAME, Value::Text("Quillon".into()));
    r.set(field::LAST_NAME, Value::Text("Refusalsson".into()));
    r.set(field::JOB_TITLE, Value::Text(long_text(70_000)));
    r
}

fn long_text(chars: usize) -> String {
    "Quartermaster of Zygomorphic Xylophones, "
        .chars()
        .cycle()
        .take(chars)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_contacts_without_company_with_the_promised_flaw() {
        for make in [
            missing_last_name,
            missing_name,
            overlong_job_title,
            overlong_value,
        ] {
            let r = make();
            assert_eq!(r.object, ObjectType::CONTACTS);
            assert!(r.get(field::COMPANY).is_none());
            assert!(r.text(field::EMAIL).is_some());
        }
        assert!(missing_last_name().get(field::LAST_NAME).is_none());
        assert!(missing_name().get(field::FIRST_NAME).is_none());
        let title = |r: Record| r.text(field::JOB_TITLE).map(|t| t.chars().count());
        assert_eq!(title(overlong_job_title()), Some(300));
        assert_eq!(title(overlong_value()), Some(70_000));
    }
}

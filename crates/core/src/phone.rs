//! Phone numbers: parsed with libphonenumber's metadata (the `phonenumber` crate), checked
//! against the numbering plan of their country, and written as E.164 (`+4930123456`) when
//! the operator asks for it.
//!
//! A number written with its country code (`+49 …`, `0049 …`) needs no region. One written
//! in national form (`030 123456`) is read in the region of the record's country field, else
//! the run's default region; with neither, it cannot be checked and is left alone.

use phonenumber::country::Id;

/// How one number reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reading {
    /// A valid number: its E.164 form, and whether it carries an extension (which E.164 has no
    /// room for, so such a number is kept as written).
    Valid {
        /// The number as `+` and digits.
        e164: String,
        /// Whether the text held an extension (`x 99`, `ext. 12`).
        extension: bool,
    },
    /// Not a number of any plan, or not one of its region's.
    Invalid,
    /// In national form with no region to read it in.
    NoRegion,
}

/// A region (ISO 3166-1 alpha-2) that libphonenumber has a numbering plan for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region(Id);

impl Region {
    /// The region a country names: an ISO 3166-1 alpha-2 or alpha-3 code or an English short
    /// name (`DE`, `DEU`, `Germany`; `UK` and `USA` too), ignoring case and surrounding
    /// spaces. `None` for anything else.
    pub fn of_country(country: &str) -> Option<Region> {
        // celes keys its names without spaces or punctuation ("unitedstates", "usa").
        let key: String = country.chars().filter(|c| c.is_alphanumeric()).collect();
        if key.is_empty() || key.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let alpha2 = if key.eq_ignore_ascii_case("uk") {
            "GB"
        } else {
            key.parse::<celes::Country>().ok()?.alpha2
        };
        alpha2.parse::<Id>().ok().map(Region)
    }

    /// The region's ISO 3166-1 alpha-2 code.
    pub fn code(&self) -> &str {
        self.0.as_ref()
    }
}

/// Reads `text` as a phone number, in `region` when it has no country code.
pub fn read(text: &str, region: Option<Region>) -> Reading {
    let text = text.trim();
    // An RFC 3966 URI, as some apps store numbers.
    let text = text.strip_prefix("tel:").unwrap_or(text);
    let international = text.starts_with('+') || text.starts_with("00");
    if !international && region.is_none() {
        return Reading::NoRegion;
    }
    // `00` is the international prefix of most plans; without a region to say so, read it as `+`.
    let text = match (region, text.strip_prefix("00")) {
        (None, Some(rest)) => format!("+{rest}"),
        _ => text.to_owned(),
    };
    // A number with its `+` needs no region, and giving one can misread it: the parser strips
    // the region's national prefix after the country code (`+49 151 …` in the US lost its `1`).
    let region = if text.starts_with('+') { None } else { region };
    match parse_valid(region, &text) {
        Some(reading) => reading,
        // `00` is not the international prefix everywhere (NANP dials `011`, Japan `010`),
        // but where it is not, no national number starts with it either: read it as `+`.
        None => match text.strip_prefix("00") {
            Some(rest) if region.is_some() => {
                parse_valid(None, &format!("+{rest}")).unwrap_or(Reading::Invalid)
            }
            _ => Reading::Invalid,
        },
    }
}

/// `text` parsed in `region`, if it is a valid number there.
fn parse_valid(region: Option<Region>, text: &str) -> Option<Reading> {
    let number = phonenumber::parse(region.map(|r| r.0), text).ok()?;
    phonenumber::is_valid(&number).then(|| Reading::Valid {
        e164: number.format().mode(phonenumber::Mode::E164).to_string(),
        extension: number.extension().is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(code: &str) -> Option<Region> {
        Some(Region::of_country(code).expect("a region"))
    }

    fn e164(text: &str, region: Option<Region>) -> Option<String> {
        match read(text, region) {
            Reading::Valid { e164, .. } => Some(e164),
            _ => None,
        }
    }

    #[test]
    fn countries_name_regions_by_code_or_name() {
        for (country, code) in [
            ("DE", "DE"),
            ("de", "DE"),
            (" DEU ", "DE"),
            ("Germany", "DE"),
            ("germany", "DE"),
            ("United States", "US"),
            ("USA", "US"),
            ("UK", "GB"),
            ("United Kingdom", "GB"),
            ("Japan", "JP"),
            ("Poland", "PL"),
        ] {
            assert_eq!(
                Region::of_country(country).as_ref().map(Region::code),
                Some(code),
                "{country}"
            );
        }
        for nothing in ["", "  ", "Atlantis", "XX", "Deutschland and more"] {
            assert_eq!(Region::of_country(nothing), None, "{nothing}");
        }
    }

    #[test]
    fn national_and_international_forms_of_several_regions() {
        for (text, region_code, expected) in [
            ("+49 30 123456", None, "+4930123456"),
            ("0049 30 123456", Some("DE"), "+4930123456"),
            ("030 123456", Some("DE"), "+4930123456"),
            ("+49 (0)30 1234567", None, "+49301234567"),
            ("(415) 555-0123", Some("US"), "+14155550123"),
            ("415.555.0123", Some("US"), "+14155550123"),
            ("1-800-FLOWERS", Some("US"), "+18003569377"),
            ("020 7946 0018", Some("GB"), "+442079460018"),
            ("+44 20 7946 0018", Some("DE"), "+442079460018"),
            ("01 23 45 67 89", Some("FR"), "+33123456789"),
            ("03-1234-5678", Some("JP"), "+81312345678"),
            ("+48 601 234 567", None, "+48601234567"),
            ("tel:+14155550123", None, "+14155550123"),
            // With its country code, a number is read the same in any region.
            ("+49 151 10220802", None, "+4915110220802"),
            ("+49 151 10220802", Some("US"), "+4915110220802"),
            ("+49 151 10220802", Some("CA"), "+4915110220802"),
            ("+49 151 10220802", Some("DE"), "+4915110220802"),
            ("0049 151 10220802", Some("DE"), "+4915110220802"),
            // `00` where the international prefix is another (`011` in NANP, `010` in Japan).
            ("0049 151 10220802", Some("US"), "+4915110220802"),
            ("0044 20 7946 0018", Some("CA"), "+442079460018"),
            ("0049 30 123456", Some("JP"), "+4930123456"),
            ("011 49 30 123456", Some("US"), "+4930123456"),
            ("+1 415 555 0123", Some("US"), "+14155550123"),
            ("+1 415 555 0123", Some("GB"), "+14155550123"),
        ] {
            let region = region_code.and_then(region);
            assert_eq!(
                e164(text, region).as_deref(),
                Some(expected),
                "{text} in {region_code:?}"
            );
        }
    }

    #[test]
    fn invalid_numbers_and_numbers_without_a_region() {
        for (text, region_code) in [
            ("+1 555 123 4567", None),
            ("12", Some("US")),
            ("not a phone", Some("US")),
            ("555-1234", Some("US")),
            ("+49 1", None),
            ("", Some("DE")),
        ] {
            assert_eq!(
                read(text, region_code.and_then(region)),
                Reading::Invalid,
                "{text}"
            );
        }
        assert_eq!(read("030 123456", None), Reading::NoRegion);
        assert_eq!(
            read("+1 415 555 0123 x 99", None),
            Reading::Valid {
                e164: "+14155550123".into(),
                extension: true
            }
        );
    }
}

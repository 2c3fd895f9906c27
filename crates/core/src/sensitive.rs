//! Payment card numbers and bank account numbers (IBANs) pasted into free text: a customer's
//! card read out on a call and typed into a note, an IBAN in a description. They must not be
//! carried silently into another system, nor ever shown: the engine reports where one is (by
//! record, object and field, never the number) and, per the run's policy, flags the record,
//! refuses it, or writes the text with the number masked.
//!
//! What counts, to keep false alarms rare:
//! - a card number is 13 to 19 digits, in one run or in groups split by single spaces or
//!   hyphens, starting as card networks' numbers do (2 to 6), passing the Luhn check, and not
//!   part of a longer run of digits, letters or a `+`-prefixed phone number;
//! - an IBAN is a country code, two check digits and the country's documented length of
//!   letters and digits (in one run or in groups of four), whose ISO 7064 mod 97-10 check
//!   holds.

/// What kind of number was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A payment card number (PAN).
    PaymentCard,
    /// An International Bank Account Number.
    Iban,
}

impl Kind {
    /// The kind in words, for reasons ("a payment card number").
    pub fn describe(self) -> &'static str {
        match self {
            Kind::PaymentCard => "a payment card number",
            Kind::Iban => "a bank account number (IBAN)",
        }
    }
}

/// One number found in a text: its kind and where it is (byte offsets, end exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// What it is.
    pub kind: Kind,
    /// Its first byte in the text.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
}

/// Every card number and IBAN in `text`, in order, not overlapping.
pub fn find(text: &str) -> Vec<Found> {
    // Most texts hold neither: not enough digits for either means nothing to look at.
    if text.bytes().filter(u8::is_ascii_digit).count() < 12 {
        return Vec::new();
    }
    let mut found = find_ibans(text);
    for card in find_cards(text) {
        if !found
            .iter()
            .any(|f| f.start < card.end && card.start < f.end)
        {
            found.push(card);
        }
    }
    found.sort_by_key(|f| f.start);
    found
}

/// `text` with every number in `found` masked: each digit or letter but the last four becomes
/// `*`, separators stay (`**** **** **** 1111`), so a reader sees that a number was there and
/// which one it was to its owner, never the number.
pub fn mask(text: &str, found: &[Found]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in found {
        out.push_str(&text[at..f.start]);
        let span = &text[f.start..f.end];
        let total = span.chars().filter(char::is_ascii_alphanumeric).count();
        let mut seen = 0;
        for c in span.chars() {
            if c.is_ascii_alphanumeric() {
                seen += 1;
                out.push(if seen + 4 > total { c } else { '*' });
            } else {
                out.push(c);
            }
        }
        at = f.end;
    }
    out.push_str(&text[at..]);
    out
}

/// A run of digits split at most by single spaces or hyphens, with where it starts and ends.
struct DigitRun {
    start: usize,
    end: usize,
    digits: Vec<u8>,
}

/// The runs of digits in `text` a card number could be: groups joined by one space or hyphen.
fn digit_runs(text: &str) -> Vec<DigitRun> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = Vec::new();
        let mut end = i;
        while i < bytes.len() {
            if bytes[i].is_ascii_digit() {
                digits.push(bytes[i] - b'0');
                i += 1;
                end = i;
            } else if matches!(bytes[i], b' ' | b'-')
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
            {
                i += 1;
            } else {
                break;
            }
        }
        runs.push(DigitRun { start, end, digits });
    }
    runs
}

fn find_cards(text: &str) -> Vec<Found> {
    let bytes = text.as_bytes();
    digit_runs(text)
        .into_iter()
        .filter(|run| (13..=19).contains(&run.digits.len()))
        .filter(|run| (2..=6).contains(&run.digits[0]))
        // Part of a word, a longer code or a phone number (`+49 151 …`): not a card.
        .filter(|run| {
            let before = run.start.checked_sub(1).map(|i| bytes[i]);
            let after = bytes.get(run.end).copied();
            !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'+')
                && !after.is_some_and(|b| b.is_ascii_alphanumeric())
        })
        .filter(|run| luhn(&run.digits))
        .map(|run| Found {
            kind: Kind::PaymentCard,
            start: run.start,
            end: run.end,
        })
        .collect()
}

/// The Luhn check every payment card number passes.
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// IBAN lengths by country (the SWIFT IBAN registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

fn find_ibans(text: &str) -> Vec<Found> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i + 4 <= bytes.len() {
        let starts_word = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let country = &bytes[i..i + 2];
        let head = starts_word
            && country.iter().all(u8::is_ascii_uppercase)
            && bytes[i + 2].is_ascii_digit()
            && bytes[i + 3].is_ascii_digit();
        let length = head
            .then(|| {
                IBAN_LENGTHS
                    .iter()
                    .find(|(code, _)| code.as_bytes() == country)
                    .map(|(_, n)| *n)
            })
            .flatten();
        let Some(length) = length else {
            i += 1;
            continue;
        };
        // Letters and digits, in one run or in groups of four split by single spaces.
        let mut chars = Vec::with_capacity(length);
        let mut j = i;
        while j < bytes.len() && chars.len() < length {
            let b = bytes[j];
            if b.is_ascii_alphanumeric() {
                chars.push(b.to_ascii_uppercase());
                j += 1;
            } else if b == b' '
                && chars.len() % 4 == 0
                && bytes.get(j + 1).is_some_and(u8::is_ascii_alphanumeric)
            {
                j += 1;
            } else {
                break;
            }
        }
        let ends_word = !bytes.get(j).is_some_and(u8::is_ascii_alphanumeric);
        if chars.len() == length && ends_word && iban_checks(&chars) {
            found.push(Found {
                kind: Kind::Iban,
                start: i,
                end: j,
            });
            i = j;
        } else {
            i += 1;
        }
    }
    found
}

/// ISO 7064 mod 97-10: the first four characters moved to the end, letters as 10 to 35, the
/// number modulo 97 is 1.
fn iban_checks(chars: &[u8]) -> bool {
    let mut rest: u32 = 0;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        let value = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rest = if value >= 10 {
            (rest * 100 + value) % 97
        } else {
            (rest * 10 + value) % 97
        };
    }
    rest == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, &str)> {
        find(text)
            .into_iter()
            .map(|f| (f.kind, &text[f.start..f.end]))
            .collect()
    }

    #[test]
    fn card_numbers_are_found_in_runs_and_groups() {
        // Test numbers the card networks publish, and one with a wrong check digit.
        assert_eq!(
            kinds("Card 4111 1111 1111 1111 exp 12/27"),
            [(Kind::PaymentCard, "4111 1111 1111 1111")]
        );
        assert_eq!(
            kinds("amex 378282246310005."),
            [(Kind::PaymentCard, "378282246310005")]
        );
        assert_eq!(
            kinds("mc:5555-5555-5555-4444"),
            [(Kind::PaymentCard, "5555-5555-5555-4444")]
        );
        assert!(kinds("4111 1111 1111 1112").is_empty(), "Luhn fails");
    }

    #[test]
    fn phone_numbers_order_numbers_and_long_codes_are_not_cards() {
        // A German mobile number passes Luhn, but it is a phone number.
        assert!(luhn(&[4, 9, 1, 5, 1, 1, 2, 3, 4, 5, 6, 7, 8]));
        assert!(kinds("call +49 151 12345678 today").is_empty());
        // Glued to letters, or inside a longer run of digits.
        assert!(kinds("ref INV4111111111111111").is_empty());
        assert!(kinds("41111111111111110000000").is_empty());
        // Too short, or a network no card starts with.
        assert!(kinds("order 123456789012").is_empty());
        assert!(kinds("id 9111111111111111").is_empty());
        // Dates and amounts.
        assert!(kinds("2024-05-01 12:00, 1 250,50 EUR, 2024 2025 2026 2027").is_empty());
    }

    #[test]
    fn ibans_are_found_by_country_length_and_check_digits() {
        assert_eq!(
            kinds("Pay to DE89 3704 0044 0532 0130 00 please"),
            [(Kind::Iban, "DE89 3704 0044 0532 0130 00")]
        );
        assert_eq!(
            kinds("GB82WEST12345698765432"),
            [(Kind::Iban, "GB82WEST12345698765432")]
        );
        // A wrong check digit, a wrong length, and an unknown country.
        assert!(kinds("DE88 3704 0044 0532 0130 00").is_empty());
        assert!(kinds("DE89 3704 0044 0532 0130").is_empty());
        assert!(kinds("ZZ89 3704 0044 0532 0130 00").is_empty());
    }

    #[test]
    fn masking_keeps_separators_and_the_last_four() {
        let text = "Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00.";
        let found = find(text);
        assert_eq!(found.len(), 2);
        assert_eq!(
            mask(text, &found),
            "Card **** **** **** 1111, IBAN **** **** **** **** **30 00."
        );
        assert_eq!(mask("nothing here", &[]), "nothing here");
    }

    #[test]
    fn a_text_without_enough_digits_is_not_scanned() {
        assert!(find("Met Jane at the café; follow up in May.").is_empty());
    }
}

//! Dates and texts the emulators write into their answers: the civil-date arithmetic they
//! share, and ISO-8601 timestamps and ids formatted on the stack and serialised straight into a
//! response body, instead of a `String` per value (lists carry several per record).

use std::fmt;

/// The (year, month, day) of `days` since 1970-01-01 (Howard Hinnant's civil-from-days), for
/// every emulator that prints dates.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a (year, month, day), the inverse of [`civil_from_days`].
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses ISO 8601 with a zone, `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`, into epoch
/// milliseconds; `None` for anything else.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| num_in(s, r);
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        let digits: String = frac[..n].chars().chain("000".chars()).take(3).collect();
        millis = digits.parse().ok()?;
        rest = &frac[n..];
    }
    let offset = match rest.as_bytes() {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let minutes = num_in(rest, 1..3)? * 60 + num_in(rest, 4..6)?;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + se - offset * 60) * 1000 + millis)
}

fn num_in(s: &str, r: std::ops::Range<usize>) -> Option<i64> {
    let t = s.get(r)?;
    t.bytes()
        .all(|c| c.is_ascii_digit())
        .then(|| t.parse().ok())?
}

/// Epoch milliseconds as an HTTP date (RFC 9110's IMF-fixdate, whole seconds):
/// `Sun, 06 Dec 2026 16:47:33 GMT`, what a `Date` header holds.
pub(crate) fn http_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[(days + 4).rem_euclid(7) as usize];
    let month = MONTHS[(m - 1).clamp(0, 11) as usize];
    format!(
        "{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Epoch milliseconds shown as `2021-11-06T17:38:40.000` followed by a zone suffix.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Iso8601 {
    /// Milliseconds since the Unix epoch.
    pub ms: i64,
    /// What follows the milliseconds: `Z` (HubSpot) or `+0000` (Salesforce).
    pub zone: &'static str,
}

impl fmt::Display for Iso8601 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.ms.div_euclid(1000);
        let millis = self.ms.rem_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
        if !(0..=9999).contains(&y) {
            return write!(
                f,
                "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{millis:03}{}",
                self.zone
            );
        }
        // Digits by hand: `write!` with padded fields costs several times the arithmetic, and
        // responses carry up to four timestamps per record.
        let mut out = *b"0000-00-00T00:00:00.000";
        let mut put = |at: usize, width: usize, mut n: i64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, y);
        put(5, 2, m);
        put(8, 2, d);
        put(11, 2, hh);
        put(14, 2, mm);
        put(17, 2, ss);
        put(20, 3, millis);
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)?;
        f.write_str(self.zone)
    }
}

impl serde::Serialize for Iso8601 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_display(s, self)
    }
}

/// A value serialised as the JSON string of its `Display` form (ids the vendors send as text),
/// written without an intermediate `String`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AsText<T>(pub T);

impl<T: fmt::Display> serde::Serialize for AsText<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_display(s, &self.0)
    }
}

/// Serialises `value`'s `Display` form as one JSON string, formatted in a stack buffer.
/// (serde_json's `collect_str` escapes every fragment `fmt` writes on its own, which costs
/// more than the formatting; values too long for the buffer still go that way.)
pub(crate) fn serialize_display<S: serde::Serializer>(
    s: S,
    value: &impl fmt::Display,
) -> Result<S::Ok, S::Error> {
    let mut buf = StackText {
        bytes: [0; 128],
        len: 0,
    };
    match fmt::write(&mut buf, format_args!("{value}")) {
        Ok(()) => s.serialize_str(buf.as_str()),
        Err(_) => s.collect_str(value),
    }
}

/// A fixed-size text buffer; writing past its end fails.
struct StackText {
    bytes: [u8; 128],
    len: usize,
}

impl StackText {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in, so the bytes are valid UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dest = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        dest.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_offsets_parses_and_round_trips_days() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2022-06-01T14:35:08+00:00"),
            Some(1_654_094_108_000)
        );
        assert_eq!(
            parse_rfc3339("2022-06-01T20:05:08.469+05:30"),
            Some(1_654_094_108_469)
        );
        assert_eq!(
            parse_rfc3339("2022-06-01T14:35:08"),
            None,
            "a zone is required"
        );
        assert_eq!(parse_rfc3339("2022-06-01 14:35:08+00:00"), None);
        assert_eq!(parse_rfc3339("2022-13-01T14:35:08Z"), None);
        for days in [-1000, 0, 19_000, 40_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}

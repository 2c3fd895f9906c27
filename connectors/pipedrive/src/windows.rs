//! A full read split into `update_time` windows read side by side (`read_windows`): where
//! each window stands, carried in the read's cursor, and the set of ids a read has returned.
//!
//! Pipedrive's v2 lists page by an opaque cursor and have no id range, but filter on
//! `update_time`: `updated_since` (at or after) and `updated_until` (before), and sort by it.
//! The read's first call reads the 500 records changed first and the 500 changed last; the
//! closed windows split the time between them (up to the read's start) into ranges, each read
//! by its own cursor in id order; the open window, from the read's start on, is read after all
//! of them. A record
//! changed while the read runs leaves its closed window (its `update_time` is now past the
//! read's start) for the open one, which is read last, so none is missed; one its closed
//! window had returned already is met again there and skipped by id ([`IdSet`]).

use serde::{Deserialize, Serialize};

/// The prefix of a windowed read's cursor; a Pipedrive cursor (base64) never holds a `:`.
pub(crate) const PREFIX: &str = "windows:";

/// Closed windows planned per slot (`read_windows`). A slot whose window ends goes on with the
/// next one not started, so more windows than slots keep slots busy when windows are unequal;
/// but each window ends with a page that is rarely full, a request more: with two per slot,
/// 30,000 persons took 76 requests and 2.98 s at 150 ms, with one, 71 and 2.69 s; again with
/// each window's next page in flight, 75 requests and 11,986 records/s, against 70 and
/// 12,116 to 13,175.
const PLANNED_PER_SLOT: usize = 1;

/// The `update_time`s a page sorted by it spans, and how many records it holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    /// The earliest `update_time` on the page, ms since the epoch.
    pub earliest: i64,
    /// The latest.
    pub latest: i64,
    /// The records on the page.
    pub records: usize,
}

/// One `update_time` window: at or after `since` (no bound when `None`) and before `until`
/// (the open window when `None`), with its list cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Window {
    /// `updated_since`, ms since the epoch in whole seconds.
    #[serde(rename = "s")]
    pub since: Option<i64>,
    /// `updated_until`, ms since the epoch in whole seconds; `None`: the open window.
    #[serde(rename = "u")]
    pub until: Option<i64>,
    /// The window's next page; `None`: not started. A window read to its end is dropped.
    #[serde(rename = "c")]
    pub cursor: Option<String>,
}

/// The windows of a read not read to their end, the closed ones first (oldest first), the
/// open one last. The cursor holds times and Pipedrive's cursors: no customer data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Windows(pub Vec<Window>);

impl Windows {
    /// The windows of a read whose first call read every record changed before `from` and
    /// every record changed after `to` (the last `update_time`s of the list's first page
    /// sorted by it either way), begun when Pipedrive's clock read `open_from` (less an
    /// overlap): `slots` × [`PLANNED_PER_SLOT`] closed windows of equal span (at most one a
    /// second) from `from`'s second up to the second after `to`'s (the records of those two
    /// seconds may be on either side), none past `open_from`, and the open window from
    /// `open_from` on. A record changed since that call is in the open window, which is read
    /// after the closed ones.
    pub(crate) fn plan(from: i64, to: i64, open_from: i64, slots: usize) -> Windows {
        let second = |ms: i64| ms - ms.rem_euclid(1000);
        let open_from = second(open_from);
        let first = second(from).min(open_from);
        let end = (second(to) + 1000).min(open_from);
        let mut windows = Vec::new();
        if end > first {
            let seconds = (end - first) / 1000;
            let count = (slots.max(1) * PLANNED_PER_SLOT)
                .min(seconds as usize)
                .max(1) as i64;
            let mut since = first;
            for k in 1..=count {
                let until = if k == count {
                    end
                } else {
                    first + seconds * k / count * 1000
                };
                windows.push(Window {
                    since: Some(since),
                    until: Some(until),
                    cursor: None,
                });
                since = until;
            }
        }
        windows.push(Window {
            since: Some(open_from),
            until: None,
            cursor: None,
        });
        Windows(windows)
    }

    /// How many pages of records the time between a read's first two pages likely holds:
    /// that time at the denser page's pace (records per millisecond between its first and
    /// last `update_time`), twice over: times are uneven, and a window of more than a page
    /// costs a request more (with a quarter more, 5,000 persons took 18 requests, not 16). Planning windows for pages that
    /// are not there costs a request each: an object of 1,000 records spread over a year,
    /// read whole by the first call, was planned twelve windows around the one second
    /// between its two pages, and read them all to find two records it had already.
    pub(crate) fn pages_between(oldest: Span, newest: Span, page_size: u32) -> usize {
        let gap = newest.earliest - oldest.latest;
        if gap <= 0 {
            return 0;
        }
        let pace = |page: Span| page.records as f64 / (page.latest - page.earliest).max(1) as f64;
        let expected = gap as f64 * pace(oldest).max(pace(newest)) * 2.0;
        // `as` saturates: an object whose times are all one millisecond gets every slot.
        (expected / f64::from(page_size.max(1))).ceil() as usize
    }

    /// The windows `cursor` names; `None` for a cursor that is not a windowed read's.
    pub(crate) fn parse(cursor: &str) -> Option<Result<Windows, serde_json::Error>> {
        let json = cursor.strip_prefix(PREFIX)?;
        Some(serde_json::from_str(json).map(Windows))
    }

    /// The cursor that resumes the read here; `None` when every window is read.
    pub(crate) fn cursor(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        // Serializing numbers, options and strings cannot fail.
        let json = serde_json::to_string(&self.0).unwrap_or_default();
        Some(format!("{PREFIX}{json}"))
    }

    /// The windows that may be read now, in the order to start them: the closed ones; the
    /// open one only once every closed one is read.
    pub(crate) fn readable(&self) -> std::ops::Range<usize> {
        match self.0.iter().filter(|w| w.until.is_some()).count() {
            0 => 0..self.0.len().min(1),
            closed => 0..closed,
        }
    }
}

/// The ids a read has returned, as bits over the span of ids seen: Pipedrive's ids are
/// integers handed out in order, so a company's records sit in a narrow span (30,000 persons
/// over 30,000 ids take 3.75 KiB; a span of 10 million ids, 1.25 MiB).
#[derive(Debug, Default)]
pub(crate) struct IdSet {
    /// The id of the first bit (a multiple of 64).
    base: u64,
    words: Vec<u64>,
}

impl IdSet {
    /// Adds `id`; `false` when it was in the set already.
    pub(crate) fn insert(&mut self, id: u64) -> bool {
        let start = id - id % 64;
        if self.words.is_empty() {
            self.base = start;
        } else if start < self.base {
            let more = ((self.base - start) / 64) as usize;
            self.words.splice(0..0, std::iter::repeat_n(0, more));
            self.base = start;
        }
        let at = ((id - self.base) / 64) as usize;
        if at >= self.words.len() {
            self.words.resize(at + 1, 0);
        }
        let bit = 1u64 << (id % 64);
        let new = self.words[at] & bit == 0;
        self.words[at] |= bit;
        new
    }

    /// The bytes the set's bits take.
    pub(crate) fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    #[test]
    fn windows_cover_every_time_once_and_round_trip() {
        let w = Windows::plan(100 * S + 300, 200 * S + 10, 1_000 * S + 999, 4);
        assert_eq!(w.0.len(), 5, "{w:?}");
        assert_eq!(
            w.0[0].since,
            Some(100 * S),
            "from the second of the oldest page's last"
        );
        for pair in w.0[..4].windows(2) {
            assert_eq!(pair[0].until, pair[1].since, "{w:?}");
        }
        assert_eq!(w.0[1].since, Some(125 * S), "equal spans over [100, 201)");
        assert_eq!(
            w.0[3].until,
            Some(201 * S),
            "to the second after the newest page's last"
        );
        assert_eq!(w.0[4].since, Some(1_000 * S));
        assert_eq!(w.0[4].until, None);
        assert_eq!(w.readable(), 0..4);
        let cursor = w.cursor().expect("cursor");
        assert_eq!(Windows::parse(&cursor).expect("ours").expect("parses"), w);
        assert!(Windows::parse("eyJwIjoxfQ==").is_none());
        assert!(Windows::parse("windows:[{").expect("ours").is_err());
    }

    #[test]
    fn recent_records_only_make_one_open_window() {
        let w = Windows::plan(500 * S, 600 * S, 400 * S, 8);
        let open = Window {
            since: Some(400 * S),
            until: None,
            cursor: None,
        };
        assert_eq!(w.0, vec![open.clone()]);
        assert_eq!(w.readable(), 0..1);
        assert_eq!(Windows(Vec::new()).cursor(), None);
        // The two pages met: nothing between them.
        assert_eq!(Windows::plan(300 * S, 200 * S, 400 * S, 8).0, vec![open]);
    }

    #[test]
    fn a_short_span_gets_one_window_a_second() {
        let w = Windows::plan(10 * S, 12 * S, 100 * S, 8);
        let closed: Vec<_> = w.0.iter().map(|w| (w.since, w.until)).collect();
        assert_eq!(
            closed,
            vec![
                (Some(10 * S), Some(11 * S)),
                (Some(11 * S), Some(12 * S)),
                (Some(12 * S), Some(13 * S)),
                (Some(100 * S), None)
            ]
        );
    }

    #[test]
    fn windows_are_planned_for_the_pages_between_the_first_two() {
        let page = |earliest: i64, latest: i64| Span {
            earliest: earliest * S,
            latest: latest * S,
            records: 500,
        };
        // 1,000 records, one every 10 s: the pages end 10 s apart, about one record between.
        let (oldest, newest) = (page(0, 4_990), page(5_000, 9_990));
        assert_eq!(Windows::pages_between(oldest, newest, 500), 1);
        // 5,000 records at that pace: 4,000 between, twice over: 8,018 in pages of 500.
        let (oldest, newest) = (page(0, 4_990), page(45_000, 49_990));
        assert_eq!(Windows::pages_between(oldest, newest, 500), 17);
        // The denser page sets the pace: recent records changed ten times as often.
        let newest = Span {
            earliest: 45_000 * S,
            latest: 45_499 * S,
            records: 500,
        };
        assert_eq!(Windows::pages_between(oldest, newest, 500), 161);
        // Pages that met hold everything; one millisecond for all: every slot.
        assert_eq!(Windows::pages_between(page(0, 10), page(5, 20), 500), 0);
        let instant = page(7, 7);
        assert!(Windows::pages_between(instant, page(8, 8), 500) > 1_000);
    }

    #[test]
    fn the_id_set_grows_both_ways() {
        let mut set = IdSet::default();
        assert!(set.insert(1_000));
        assert!(!set.insert(1_000));
        assert!(set.insert(3));
        assert!(set.insert(70_000));
        assert!(!set.insert(3));
        assert!(!set.insert(70_000));
        assert!(set.insert(1_001));
        assert_eq!(set.bytes(), (70_000 / 64 + 1) * 8);
    }
}

//! A vendor account's daily request quota: what its response headers say is left, and the
//! guard that stops a run once it has used its configured share of what was left when it
//! started.
//!
//! Readings come from headers only (HubSpot's `X-HubSpot-RateLimit-Daily` pair, Salesforce's
//! `Sforce-Limit-Info`), through [`crate::http::VendorPolicy::daily_quota`]. A vendor account
//! whose answers carry none (HubSpot under OAuth, vendors without a daily quota) has no reading:
//! its quota is unknown, never guessed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// One reading of a vendor account's daily request quota, as its headers state it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DailyQuota {
    /// Requests the account may make per day (Salesforce: per rolling 24 hours).
    pub limit: u64,
    /// Requests left of it when the answer was sent.
    pub remaining: u64,
}

impl DailyQuota {
    /// Requests used of the day's quota, by every integration of the account.
    pub fn used(&self) -> u64 {
        self.limit.saturating_sub(self.remaining)
    }
}

/// Salesforce's `Sforce-Limit-Info` value, `api-usage=USED/MAX` (optionally followed by
/// `; api-bursts=…`), as a reading. `None` when it holds no readable `api-usage`.
pub fn parse_api_usage(value: &str) -> Option<DailyQuota> {
    let usage = value
        .split([';', ','])
        .map(str::trim)
        .find_map(|part| part.strip_prefix("api-usage="))?;
    let (used, max) = usage.split_once('/')?;
    let used: u64 = used.trim().parse().ok()?;
    let limit: u64 = max.trim().parse().ok()?;
    (limit > 0).then(|| DailyQuota {
        limit,
        remaining: limit.saturating_sub(used),
    })
}

/// The latest daily-quota reading of one HTTP client, and whether the vendor refused a request
/// because the quota was used up.
#[derive(Debug, Default)]
pub struct QuotaCell {
    reading: Mutex<Option<DailyQuota>>,
    exhausted: AtomicBool,
}

impl QuotaCell {
    /// Keeps `reading`, the latest answer's (a quota that was reset at midnight rises again).
    pub fn note(&self, reading: DailyQuota) {
        if let Ok(mut current) = self.reading.lock() {
            *current = Some(reading);
        }
    }

    /// Records that the vendor refused a request for the daily quota: nothing is left.
    pub fn note_exhausted(&self) {
        self.exhausted.store(true, Ordering::Relaxed);
        if let Ok(mut current) = self.reading.lock()
            && let Some(reading) = current.as_mut()
        {
            reading.remaining = 0;
        }
    }

    /// The latest reading, if any answer carried one.
    pub fn get(&self) -> Option<DailyQuota> {
        self.reading.lock().ok().and_then(|r| *r)
    }

    /// Whether the vendor refused a request for the daily quota.
    pub fn exhausted(&self) -> bool {
        self.exhausted.load(Ordering::Relaxed)
    }

    /// Adds `other`'s reading to this one: clients of one vendor account share its quota, so
    /// the lower remaining count is the later reading.
    pub fn absorb(&self, other: &QuotaCell) {
        if other.exhausted() {
            self.exhausted.store(true, Ordering::Relaxed);
        }
        let Some(theirs) = other.get() else { return };
        if let Ok(mut current) = self.reading.lock() {
            *current = Some(match *current {
                Some(mine) if mine.remaining <= theirs.remaining => mine,
                _ => theirs,
            });
        }
    }
}

/// Why a run stopped at the daily quota, for the report: ids and counts only.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuotaStop {
    /// `"source"` or `"sink"`.
    pub role: &'static str,
    /// The vendor whose quota it is.
    pub vendor: &'static str,
    /// The account's daily quota.
    pub limit: u64,
    /// Requests left when the run started.
    pub remaining_at_start: u64,
    /// Requests left at the stop (the vendor's count: other integrations' calls included).
    pub remaining: u64,
    /// Requests used since the run started (`remaining_at_start - remaining`).
    pub used: u64,
    /// The share of `remaining_at_start` the run may use (`[migration] daily_quota_share`);
    /// `null` when the vendor itself refused a request for the quota (then `remaining_at_start`
    /// is the last count its answers gave, 0 when they gave none).
    pub share: Option<f64>,
}

/// Watches one vendor account's readings during a run and says when the run has used its
/// share of the quota left at its start, or when the vendor refused a request for it.
#[derive(Clone, Debug)]
pub struct QuotaGuard {
    role: &'static str,
    vendor: &'static str,
    share: f64,
    start: Option<DailyQuota>,
}

impl QuotaGuard {
    /// A guard for `role`'s `vendor` allowing `share` (0 < share ≤ 1) of the quota left at the
    /// first reading it sees.
    pub fn new(role: &'static str, vendor: &'static str, share: f64) -> QuotaGuard {
        QuotaGuard {
            role,
            vendor,
            share,
            start: None,
        }
    }

    /// Checks the latest reading (`None`: none yet); `Some` when the run must stop.
    pub fn check(&mut self, reading: Option<DailyQuota>) -> Option<QuotaStop> {
        let start = self.start.or(reading)?;
        self.start = Some(start);
        let now = reading.unwrap_or(start);
        let used = start.remaining.saturating_sub(now.remaining);
        (used >= allowed_share(start.remaining, self.share)).then_some(QuotaStop {
            role: self.role,
            vendor: self.vendor,
            limit: now.limit,
            remaining_at_start: start.remaining,
            remaining: now.remaining,
            used,
            share: Some(self.share),
        })
    }
}

/// Why a run stopped when the vendor itself refused a request for the daily quota (`reading`:
/// its latest, if its answers carry one).
pub fn refused(role: &'static str, vendor: &'static str, reading: Option<DailyQuota>) -> QuotaStop {
    let reading = reading.unwrap_or(DailyQuota {
        limit: 0,
        remaining: 0,
    });
    QuotaStop {
        role,
        vendor,
        limit: reading.limit,
        remaining_at_start: reading.remaining,
        remaining: 0,
        used: reading.remaining,
        share: None,
    }
}

/// The requests a run may use of `remaining` at `share`, rounded down.
pub fn allowed_share(remaining: u64, share: f64) -> u64 {
    (remaining as f64 * share).floor() as u64
}

/// The requests a run will spend on one vendor: per object, its record count times the
/// connector's requests per record, rounded up, and one more (a count, a last page, a
/// survey). `None` when a count or a figure is unknown.
pub fn estimate_requests(objects: &[(Option<u64>, Option<f64>)]) -> Option<u64> {
    objects.iter().try_fold(0u64, |total, (count, per_record)| {
        let requests = ((*count)? as f64 * (*per_record)?).ceil() as u64;
        Some(total + requests + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sforce_limit_info_is_read_with_or_without_bursts() {
        assert_eq!(
            parse_api_usage("api-usage=18/5000"),
            Some(DailyQuota {
                limit: 5000,
                remaining: 4982
            })
        );
        assert_eq!(
            parse_api_usage("api-usage=10018/100000; api-bursts=1/750"),
            Some(DailyQuota {
                limit: 100_000,
                remaining: 89_982
            })
        );
        assert_eq!(
            parse_api_usage("api-bursts=1/750;api-usage=7/10"),
            Some(DailyQuota {
                limit: 10,
                remaining: 3
            })
        );
        assert_eq!(
            parse_api_usage("api-usage=105/100").map(|q| q.remaining),
            Some(0),
            "over the allocation: nothing left"
        );
        for broken in [
            "",
            "api-usage=",
            "api-usage=5",
            "api-usage=x/10",
            "api-usage=1/0",
        ] {
            assert_eq!(parse_api_usage(broken), None, "{broken:?}");
        }
    }

    #[test]
    fn the_guard_stops_at_its_share_of_what_was_left_at_the_start() {
        let q = |remaining| {
            Some(DailyQuota {
                limit: 1000,
                remaining,
            })
        };
        let mut guard = QuotaGuard::new("sink", "salesforce", 0.5);
        assert_eq!(guard.check(None), None, "no reading yet: unknown");
        assert_eq!(guard.check(q(400)), None);
        assert_eq!(guard.check(None), None);
        assert_eq!(guard.check(q(201)), None, "199 used of 200 allowed");
        let stop = guard.check(q(200)).expect("200 used of 200 allowed");
        assert_eq!(
            (
                stop.remaining_at_start,
                stop.remaining,
                stop.used,
                stop.share
            ),
            (400, 200, 200, Some(0.5))
        );
        let mut guard = QuotaGuard::new("source", "hubspot", 1.0);
        assert_eq!(guard.check(q(1)), None);
        assert!(guard.check(q(0)).is_some(), "all of it used");
    }

    #[test]
    fn the_estimate_is_unknown_when_any_part_is() {
        assert_eq!(
            estimate_requests(&[(Some(1000), Some(0.01)), (Some(150), Some(0.01))]),
            Some(10 + 1 + 2 + 1)
        );
        assert_eq!(estimate_requests(&[(Some(0), Some(0.5))]), Some(1));
        assert_eq!(estimate_requests(&[(None, Some(0.01))]), None);
        assert_eq!(estimate_requests(&[(Some(5), None)]), None);
        assert_eq!(estimate_requests(&[]), Some(0));
    }

    #[test]
    fn clients_of_one_account_report_the_lowest_remaining() {
        let total = QuotaCell::default();
        let (a, b) = (QuotaCell::default(), QuotaCell::default());
        a.note(DailyQuota {
            limit: 10,
            remaining: 7,
        });
        b.note(DailyQuota {
            limit: 10,
            remaining: 5,
        });
        total.absorb(&a);
        total.absorb(&b);
        total.absorb(&QuotaCell::default());
        assert_eq!(total.get().map(|q| q.remaining), Some(5));
        assert!(!total.exhausted());
        b.note_exhausted();
        total.absorb(&b);
        assert!(total.exhausted());
        assert_eq!(total.get().map(|q| q.remaining), Some(0));
    }
}

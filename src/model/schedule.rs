//! Schedules: when a pair's scheduled runs are due. Kinds: every N minutes, a 5-field cron
//! expression (croner; names like MON, JAN), daily / weekly / monthly at a time of day, each
//! in a time zone (default local). Pure: the time comes in as a parameter; nothing here
//! sleeps, reads the clock or touches the state store.
//!
//! Rules: a local time that does not exist (spring forward) runs at the first valid minute
//! after it; one that exists twice (fall back) runs once, at the first. A monthly day past
//! the month's end runs on its last day. After downtime a missed run is caught up once:
//! the caller runs when the stored next time has passed, then asks for the next time after
//! *now*, not after the missed slot.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// What a schedule runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Job {
    /// A full sync of the pair.
    Sync,
    /// A full reconciliation (the same scan, recorded as one).
    Reconcile,
}

#[derive(Clone, Debug)]
pub enum When {
    Every(Duration),
    Cron(Box<croner::Cron>),
    Daily(NaiveTime),
    Weekly(Weekday, NaiveTime),
    /// Day of month (1-31; past the month's end: its last day).
    Monthly(u32, NaiveTime),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Zone {
    Local,
    Tz(chrono_tz::Tz),
}

/// One parsed schedule of a pair.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub name: String,
    pub when: When,
    pub zone: Zone,
    pub job: Job,
}

/// As written in the config (kept for display and to notice a changed schedule).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    pub name: String,
    /// "every 15m", "cron 0 2 * * MON-FRI", "daily 02:00", "weekly MON 02:00", "monthly 31 02:00".
    pub when: String,
    /// IANA zone name; None: local time.
    pub tz: Option<String>,
    pub job: Job,
}

/// Which part of a schedule is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleField {
    /// The `every` / `cron` / `daily` / `weekly` / `monthly` value.
    When,
    /// The time zone.
    Tz,
}

/// A schedule that does not parse: which part, and what was expected there, phrased to
/// follow "expected" (the config error reads "KEY: expected EXPECTED, found VALUE").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}")]
pub struct ScheduleError {
    pub field: ScheduleField,
    pub expected: String,
}

impl ScheduleSpec {
    /// What identifies a schedule's timing in the state store (a change of `when`, `tz` or
    /// `run` re-plans its next time).
    pub fn key(&self) -> String {
        format!("{} | tz {} | {:?}", self.when, self.tz.as_deref().unwrap_or("local"), self.job)
    }

    /// Parse `when` and `tz`; the error says which and what was expected.
    pub fn compile(&self) -> Result<Schedule, ScheduleError> {
        let zone = match &self.tz {
            None => Zone::Local,
            Some(name) => Zone::Tz(chrono_tz::Tz::from_str(name).map_err(|_| ScheduleError {
                field: ScheduleField::Tz,
                expected: "a time zone name like \"Europe/Berlin\"".into(),
            })?),
        };
        let when = self.when().map_err(|expected| ScheduleError {
            field: ScheduleField::When,
            expected,
        })?;
        Ok(Schedule {
            name: self.name.clone(),
            when,
            zone,
            job: self.job,
        })
    }

    fn when(&self) -> Result<When, String> {
        let (kind, rest) = self.when.trim().split_once(' ').unwrap_or((self.when.trim(), ""));
        let rest = rest.trim();
        let time = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| "a time of day like \"02:00\" (24-hour HH:MM)".to_string());
        let when = match kind {
            "every" => {
                let ms = crate::model::units::parse_duration_ms(rest).ok_or_else(|| "a duration like \"15m\" or \"6h\"".to_string())?;
                if ms < 60_000 {
                    return Err("an interval of at least 1 minute".into());
                }
                When::Every(Duration::milliseconds(ms as i64))
            }
            "cron" => {
                if rest.split_whitespace().count() != 5 {
                    return Err("a cron expression with 5 fields (minute hour day month weekday)".into());
                }
                When::Cron(Box::new(croner::Cron::from_str(rest).map_err(|e| {
                    format!("a cron expression with 5 fields (minute hour day month weekday), which {rest:?} is not: {e}")
                })?))
            }
            "daily" => When::Daily(time(rest)?),
            "weekly" => {
                let (d, t) = rest.split_once(' ').ok_or("a weekday and a time like \"MON 02:00\"")?;
                let day = Weekday::from_str(d.trim()).map_err(|_| "a weekday (MON..SUN) and a time like \"MON 02:00\"".to_string())?;
                When::Weekly(day, time(t.trim())?)
            }
            "monthly" => {
                let (d, t) = rest.split_once(' ').ok_or("a day of month and a time like \"1 02:00\"")?;
                let day: u32 = d
                    .trim()
                    .parse()
                    .ok()
                    .filter(|d| (1..=31).contains(d))
                    .ok_or("a day of month (1-31) and a time like \"1 02:00\"")?;
                When::Monthly(day, time(t.trim())?)
            }
            _ => return Err("every, cron, daily, weekly or monthly".into()),
        };
        Ok(when)
    }
}

fn days_in_month(y: i32, m: u32) -> u32 {
    let first_next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    first_next.and_then(|d| d.pred_opt()).map_or(28, |d| d.day())
}

/// A local wall-clock time in `tz` as an instant: a time in a DST gap moves to the first
/// valid minute after it; a repeated time takes its first occurrence.
fn resolve<T: TimeZone>(tz: &T, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    for shift in 0..=180 {
        match tz.from_local_datetime(&(local + Duration::minutes(shift))) {
            LocalResult::Single(d) => return Some(d.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => return Some(a.with_timezone(&Utc).min(b.with_timezone(&Utc))),
            LocalResult::None => continue,
        }
    }
    None
}

impl Schedule {
    /// The first run strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.zone {
            Zone::Local => self.next_in(&chrono::Local, after),
            Zone::Tz(tz) => self.next_in(&tz, after),
        }
    }

    fn next_in<T: TimeZone>(&self, tz: &T, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local_date = after.with_timezone(tz).date_naive();
        let at = |d: NaiveDate, t: NaiveTime| resolve(tz, d.and_time(t)).filter(|x| *x > after);
        match &self.when {
            When::Every(d) => Some(after + *d),
            When::Cron(c) => c
                .find_next_occurrence(&after.with_timezone(tz), false)
                .ok()
                .map(|d| d.with_timezone(&Utc)),
            When::Daily(t) => (-1..=2).find_map(|i| at(local_date + Duration::days(i), *t)),
            When::Weekly(w, t) => (-1..=8)
                .map(|i| local_date + Duration::days(i))
                .filter(|d| d.weekday() == *w)
                .find_map(|d| at(d, *t)),
            When::Monthly(day, t) => {
                let (mut y, mut m) = (local_date.year(), local_date.month());
                // This month (or the one before, near a zone boundary), then the next ones.
                if m == 1 {
                    y -= 1;
                    m = 12;
                } else {
                    m -= 1;
                }
                for _ in 0..15 {
                    let d = NaiveDate::from_ymd_opt(y, m, (*day).min(days_in_month(y, m)))?;
                    if let Some(x) = at(d, *t) {
                        return Some(x);
                    }
                    if m == 12 {
                        y += 1;
                        m = 1;
                    } else {
                        m += 1;
                    }
                }
                None
            }
        }
    }
}

/// Whether a schedule whose stored next time is `next` runs at `now`, and the next time to
/// store after deciding. A schedule never planned gets its first time and does not run; a
/// run missed during downtime or sleep runs once (the next time is computed from `now`).
pub fn tick(s: &Schedule, next: Option<DateTime<Utc>>, now: DateTime<Utc>) -> (bool, Option<DateTime<Utc>>) {
    match next {
        None => (false, s.next_after(now)),
        Some(n) if n <= now => (true, s.next_after(now)),
        Some(n) => (false, Some(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(when: &str, tz: Option<&str>) -> ScheduleSpec {
        ScheduleSpec {
            name: "t".into(),
            when: when.into(),
            tz: tz.map(String::from),
            job: Job::Sync,
        }
    }

    fn sched(when: &str, tz: Option<&str>) -> Schedule {
        spec(when, tz).compile().unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn next_run_table() {
        let berlin = Some("Europe/Berlin");
        let cases: &[(&str, Option<&str>, &str, &str)] = &[
            // (schedule, zone, after, expected next) -- instants in UTC
            ("every 15m", None, "2026-11-22T10:00:00Z", "2026-11-22T10:15:00Z"),
            ("daily 02:00", Some("UTC"), "2026-11-22T01:59:00Z", "2026-11-22T02:00:00Z"),
            ("daily 02:00", Some("UTC"), "2026-11-22T02:00:00Z", "2026-11-23T02:00:00Z"),
            // Berlin is UTC+1 in winter, UTC+2 in summer.
            ("daily 02:00", berlin, "2026-11-22T12:00:00Z", "2026-11-23T01:00:00Z"),
            ("daily 02:00", berlin, "2026-07-01T12:00:00Z", "2026-07-02T00:00:00Z"),
            // Spring forward (29 March 2026, 02:00 -> 03:00 local): 02:30 does not exist; it
            // runs at 03:00 local (01:00 UTC), once.
            ("daily 02:30", berlin, "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"),
            ("daily 02:30", berlin, "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"),
            // Fall back (25 October 2026, 03:00 -> 02:00): 02:30 exists twice; it runs once,
            // at the first (00:30 UTC), and next on the 26th.
            ("daily 02:30", berlin, "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"),
            ("daily 02:30", berlin, "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"),
            // Weekly: Sunday 22 November 2026 -> next Monday; a Monday after its time -> a week on.
            ("weekly MON 02:00", Some("UTC"), "2026-11-22T12:00:00Z", "2026-11-23T02:00:00Z"),
            ("weekly MON 02:00", Some("UTC"), "2026-11-23T02:00:00Z", "2026-11-30T02:00:00Z"),
            // Monthly at month ends: day 31 runs on the last day of shorter months.
            ("monthly 31 02:00", Some("UTC"), "2026-11-22T00:00:00Z", "2026-11-30T02:00:00Z"),
            ("monthly 31 02:00", Some("UTC"), "2026-11-30T02:00:00Z", "2026-12-31T02:00:00Z"),
            ("monthly 31 02:00", Some("UTC"), "2027-01-31T02:00:00Z", "2027-02-28T02:00:00Z"),
            ("monthly 29 02:00", Some("UTC"), "2028-02-01T00:00:00Z", "2028-02-29T02:00:00Z"),
            ("monthly 1 00:00", Some("UTC"), "2026-12-31T23:59:00Z", "2027-01-01T00:00:00Z"),
            // Cron with names, in a zone.
            ("cron 0 2 * * MON-FRI", Some("UTC"), "2026-11-20T02:00:00Z", "2026-11-23T02:00:00Z"),
            ("cron 30 6 1 JAN *", Some("UTC"), "2026-11-22T00:00:00Z", "2027-01-01T06:30:00Z"),
            ("cron */10 * * * *", berlin, "2026-11-22T10:03:00Z", "2026-11-22T10:10:00Z"),
            ("cron 0 2 * * *", berlin, "2026-11-22T12:00:00Z", "2026-11-23T01:00:00Z"),
        ];
        for (when, tz, after, want) in cases {
            let got = sched(when, *tz).next_after(utc(after));
            assert_eq!(got, Some(utc(want)), "{when} in {tz:?} after {after}");
        }
    }

    #[test]
    fn catch_up_after_downtime_runs_once() {
        let s = sched("daily 02:00", Some("UTC"));
        // Never planned: plan, do not run.
        let (run, next) = tick(&s, None, utc("2026-11-22T10:00:00Z"));
        assert!(!run);
        assert_eq!(next, Some(utc("2026-11-23T02:00:00Z")));
        // Down for three days: the missed runs are caught up once, then back on schedule.
        let (run, next) = tick(&s, next, utc("2026-11-26T09:00:00Z"));
        assert!(run);
        assert_eq!(next, Some(utc("2026-11-27T02:00:00Z")));
        let (run, next2) = tick(&s, next, utc("2026-11-26T09:00:30Z"));
        assert!(!run);
        assert_eq!(next2, next);
        // An interval after a sleep: once, then counted from now.
        let e = sched("every 15m", None);
        let (run, next) = tick(&e, Some(utc("2026-11-22T10:15:00Z")), utc("2026-11-22T13:02:00Z"));
        assert!(run);
        assert_eq!(next, Some(utc("2026-11-22T13:17:00Z")));
    }

    /// Regression (issue 19): the settings page showed `expected "25:99" is not a time of
    /// day like "02:00", found the string "25:99"`; each message is an "expected" phrase.
    #[test]
    fn bad_schedules_say_what_was_expected() {
        let check = |when: &str, tz: Option<&str>, expect: &str| {
            assert_eq!(spec(when, tz).compile().unwrap_err().to_string(), expect, "{when} {tz:?}");
        };
        check("every 10s", None, "expected an interval of at least 1 minute");
        check("every soon", None, "expected a duration like \"15m\" or \"6h\"");
        check(
            "cron 0 2 * *",
            None,
            "expected a cron expression with 5 fields (minute hour day month weekday)",
        );
        check(
            "weekly FUNDAY 02:00",
            None,
            "expected a weekday (MON..SUN) and a time like \"MON 02:00\"",
        );
        check("weekly MON", None, "expected a weekday and a time like \"MON 02:00\"");
        check(
            "monthly 32 02:00",
            None,
            "expected a day of month (1-31) and a time like \"1 02:00\"",
        );
        check("daily 25:99", None, "expected a time of day like \"02:00\" (24-hour HH:MM)");
        check("hourly", None, "expected every, cron, daily, weekly or monthly");
        check(
            "daily 02:00",
            Some("Mars/Olympus"),
            "expected a time zone name like \"Europe/Berlin\"",
        );
        let cron = spec("cron 0 25 * * *", None).compile().unwrap_err().to_string();
        assert!(
            cron.starts_with("expected a cron expression") && cron.contains("\"0 25 * * *\""),
            "{cron}"
        );
        assert_eq!(
            spec("daily 02:00", Some("Mars/Olympus")).compile().unwrap_err().field,
            ScheduleField::Tz
        );
        assert_eq!(
            spec("daily 2am", Some("Europe/Berlin")).compile().unwrap_err().field,
            ScheduleField::When
        );
    }
}

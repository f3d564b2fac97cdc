//! Five-field cron schedules (`minute hour day-of-month month day-of-week`,
//! UTC) for maintenance windows, as pure functions over whole minutes since
//! the Unix epoch.
//!
//! The dialect is Vixie cron's, which is what Kubernetes CronJobs and most
//! users know: `*`, lists (`1,15`), ranges (`1-5`), steps (`*/15`, `0-30/10`,
//! `5/20`), month and weekday names (`JAN`, `MON`), Sunday as 0 or 7, and
//! when both day fields are restricted a day matches either of them.
//! Written here rather than taken from a crate because the operator needs
//! only matching and searching, and both must be bounded and clock-free.

use std::fmt;

/// Minutes in a day.
const DAY: i64 = 1440;
/// How far the searches look. Any schedule that matches at all matches
/// within every 9 years: the longest gap is February 29 across a century
/// that skips its leap year (2096 → 2104).
pub const HORIZON_DAYS: i64 = 9 * 366;

/// A parsed schedule: the allowed values of each field as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
    /// Whether the day-of-month field starts with `*`, and likewise for the
    /// day of week: cron ANDs the two day fields when either does, and ORs
    /// them when both are restricted.
    dom_star: bool,
    dow_star: bool,
}

/// Why a schedule does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError(String);

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 0,
    // 7 is Sunday again; folded onto 0 after parsing.
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

impl Field {
    fn value(&self, s: &str) -> Result<u32, CronError> {
        let upper = s.to_ascii_uppercase();
        let value = match self.names.iter().position(|n| *n == upper) {
            Some(i) => u32::try_from(i).unwrap_or(u32::MAX) + self.min,
            None => s
                .parse::<u32>()
                .map_err(|_| CronError(format!("{} field: {s:?} is not a number", self.name)))?,
        };
        if value < self.min || value > self.max {
            return Err(CronError(format!(
                "{} field: {value} is outside {}-{}",
                self.name, self.min, self.max
            )));
        }
        Ok(value)
    }

    /// The values one field allows, bit `v` set for value `v`.
    fn parse(&self, text: &str) -> Result<u64, CronError> {
        let mut bits = 0u64;
        for item in text.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s.parse().map_err(|_| {
                        CronError(format!("{} field: step {s:?} is not a number", self.name))
                    })?;
                    if step == 0 {
                        return Err(CronError(format!(
                            "{} field: a step must be at least 1",
                            self.name
                        )));
                    }
                    (r, Some(step))
                }
                None => (item, None),
            };
            let (low, high) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                (self.value(a)?, self.value(b)?)
            } else {
                let v = self.value(range)?;
                // `5/20` means from 5 to the end, every 20.
                (v, if step.is_some() { self.max } else { v })
            };
            if low > high {
                return Err(CronError(format!(
                    "{} field: range {range:?} runs backwards",
                    self.name
                )));
            }
            let step = step.unwrap_or(1);
            let mut v = low;
            while v <= high {
                bits |= 1u64 << v;
                v = v.saturating_add(step);
            }
        }
        Ok(bits)
    }
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, CronError> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields.as_slice() else {
            return Err(CronError(format!(
                "needs five fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        };
        let mut days_of_week = DAY_OF_WEEK.parse(dow)?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week | 1) & 0x7f;
        }
        let narrow = |bits: u64| u32::try_from(bits).unwrap_or(u32::MAX);
        Ok(Schedule {
            minutes: MINUTE.parse(minute)?,
            hours: narrow(HOUR.parse(hour)?),
            days_of_month: narrow(DAY_OF_MONTH.parse(dom)?),
            months: u16::try_from(MONTH.parse(month)?).unwrap_or(u16::MAX),
            days_of_week: u8::try_from(days_of_week).unwrap_or(u8::MAX),
            dom_star: dom.starts_with('*'),
            dow_star: dow.starts_with('*'),
        })
    }

    /// Whether the schedule fires on the day `day` days after 1970-01-01.
    fn day_matches(&self, day: i64) -> bool {
        let (_, month, dom) = civil_from_days(day);
        // 1970-01-01 was a Thursday (4).
        let dow = (day + 4).rem_euclid(7);
        let dom_ok = self.days_of_month & (1 << dom) != 0;
        let dow_ok = self.days_of_week & (1 << dow) != 0;
        let day_ok = if self.dom_star || self.dow_star {
            dom_ok && dow_ok
        } else {
            dom_ok || dow_ok
        };
        self.months & (1 << month) != 0 && day_ok
    }

    fn time_matches(&self, minute_of_day: i64) -> bool {
        let (hour, minute) = (minute_of_day / 60, minute_of_day % 60);
        self.hours & (1 << hour) != 0 && self.minutes & (1 << minute) != 0
    }

    /// Whether the schedule fires at `minute` (minutes since the epoch).
    pub fn matches(&self, minute: i64) -> bool {
        self.day_matches(minute.div_euclid(DAY)) && self.time_matches(minute.rem_euclid(DAY))
    }

    /// The first minute at or after `from` the schedule fires at, looking
    /// at most [`HORIZON_DAYS`] ahead.
    pub fn next_at_or_after(&self, from: i64) -> Option<i64> {
        let first_day = from.div_euclid(DAY);
        for day in first_day..=first_day + HORIZON_DAYS {
            if !self.day_matches(day) {
                continue;
            }
            let start = if day == first_day {
                from.rem_euclid(DAY)
            } else {
                0
            };
            if let Some(m) = (start..DAY).find(|m| self.time_matches(*m)) {
                return Some(day * DAY + m);
            }
        }
        None
    }

    /// The last minute in `not_before..=until` the schedule fired at.
    pub fn last_in(&self, not_before: i64, until: i64) -> Option<i64> {
        let last_day = until.div_euclid(DAY);
        let first_day = not_before.div_euclid(DAY).max(last_day - HORIZON_DAYS);
        for day in (first_day..=last_day).rev() {
            if !self.day_matches(day) {
                continue;
            }
            let end = if day == last_day {
                until.rem_euclid(DAY)
            } else {
                DAY - 1
            };
            if let Some(m) = (0..=end).rev().find(|m| self.time_matches(*m)) {
                let minute = day * DAY + m;
                return (minute >= not_before).then_some(minute);
            }
        }
        None
    }
}

/// Year, month (1-12) and day (1-31) of the day `days` after 1970-01-01,
/// proleptic Gregorian (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Minutes since the epoch of a UTC date and time.
    fn at(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> i64 {
        let t = k8s_openapi::jiff::civil::date(y, mo, d)
            .at(h, mi, 0, 0)
            .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
            .expect("valid time")
            .timestamp();
        t.as_second() / 60
    }

    #[test]
    fn civil_days_agree_with_jiff() {
        for days in (-800_000..800_000).step_by(997) {
            let t = k8s_openapi::jiff::Timestamp::from_second(days * 86_400).expect("in range");
            let date = t.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC).date();
            assert_eq!(
                civil_from_days(days),
                (
                    i64::from(date.year()),
                    u32::try_from(date.month()).expect("month"),
                    u32::try_from(date.day()).expect("day")
                ),
                "{days}"
            );
        }
    }

    #[test]
    fn fields_names_steps_and_sunday_as_seven() {
        let s = Schedule::parse("*/15 2-4 * * sat,7").expect("parses");
        // 2026-11-28 is a Saturday, 2026-11-29 a Sunday, 2026-11-30 a Monday.
        assert!(s.matches(at(2026, 11, 28, 2, 45)));
        assert!(s.matches(at(2026, 11, 29, 4, 0)));
        assert!(!s.matches(at(2026, 11, 29, 4, 10)));
        assert!(!s.matches(at(2026, 11, 29, 5, 0)));
        assert!(!s.matches(at(2026, 11, 30, 2, 0)));
        let s = Schedule::parse("5/20 0 1 JAN-mar *").expect("parses");
        assert!(s.matches(at(2027, 3, 1, 0, 45)));
        assert!(!s.matches(at(2027, 4, 1, 0, 45)));
        assert!(!s.matches(at(2027, 3, 1, 0, 0)));
    }

    #[test]
    fn both_day_fields_restricted_means_either() {
        // The 13th, or any Friday.
        let s = Schedule::parse("0 0 13 * 5").expect("parses");
        assert!(s.matches(at(2026, 11, 13, 0, 0))); // a Friday the 13th
        assert!(s.matches(at(2026, 11, 20, 0, 0))); // a Friday
        assert!(s.matches(at(2026, 12, 13, 0, 0))); // a Sunday the 13th
        assert!(!s.matches(at(2026, 12, 14, 0, 0)));
        // A star-led day field makes it "both".
        let s = Schedule::parse("0 0 */2 * 5").expect("parses");
        assert!(!s.matches(at(2026, 11, 20, 0, 0))); // Friday, but the 20th
        assert!(s.matches(at(2026, 11, 27, 0, 0))); // Friday the 27th
    }

    #[test]
    fn bad_schedules_say_which_field() {
        for (text, says) in [
            ("0 2 * *", "five fields"),
            ("60 2 * * *", "minute field: 60 is outside 0-59"),
            ("0 24 * * *", "hour field"),
            ("0 0 0 * *", "day-of-month field"),
            ("0 0 * 13 *", "month field"),
            ("0 0 * * 8", "day-of-week field"),
            ("0 0 * * FUN", "day-of-week field: \"FUN\" is not a number"),
            ("*/0 * * * *", "step must be at least 1"),
            ("0 5-2 * * *", "runs backwards"),
        ] {
            let e = Schedule::parse(text).expect_err(text).to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn leap_days_are_found_across_a_skipped_leap_year() {
        let s = Schedule::parse("0 0 29 2 *").expect("parses");
        assert_eq!(
            s.next_at_or_after(at(2096, 3, 1, 0, 0)),
            Some(at(2104, 2, 29, 0, 0))
        );
        assert_eq!(
            s.last_in(at(2096, 1, 1, 0, 0), at(2104, 2, 28, 0, 0)),
            Some(at(2096, 2, 29, 0, 0))
        );
        let never = Schedule::parse("0 0 30 2 *").expect("parses");
        assert_eq!(never.next_at_or_after(0), None);
    }

    fn schedule() -> impl Strategy<Value = String> {
        let field = |max: u32| {
            prop_oneof![
                Just("*".to_string()),
                (0..=max).prop_map(|v| v.to_string()),
                (1..=max.max(1)).prop_map(|s| format!("*/{s}")),
                (0..=max, 0..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            ]
        };
        (field(59), field(23), field(30), field(11), field(6)).prop_map(|(mi, h, d, mo, w)| {
            // Day and month fields start at 1: shift plain numbers into range.
            let shift = |f: String| {
                f.split(['-', '/'])
                    .map(|p| {
                        p.parse::<u32>()
                            .map_or(p.to_string(), |n| (n + 1).to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(if f.contains('/') { "/" } else { "-" })
            };
            let shift_range = |f: String| if f.starts_with('*') { f } else { shift(f) };
            format!("{mi} {h} {} {} {w}", shift_range(d), shift_range(mo))
        })
    }

    proptest! {
        #[test]
        fn searches_agree_with_minute_by_minute_matching(
            text in schedule(),
            from in 0i64..60_000_000,
            span in 0i64..20_000,
        ) {
            let s = Schedule::parse(&text).expect("generated schedules parse");
            let brute_next = (from..=from + span).find(|m| s.matches(*m));
            let next = s.next_at_or_after(from);
            match brute_next {
                Some(m) => prop_assert_eq!(next, Some(m)),
                None => prop_assert!(next.is_none_or(|n| n > from + span)),
            }
            let brute_last = (from..=from + span).rev().find(|m| s.matches(*m));
            prop_assert_eq!(s.last_in(from, from + span), brute_last);
        }
    }
}

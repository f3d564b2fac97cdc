//! `weir group reset-offsets`: moves a group's committed offsets, as
//! `kafka-consumer-groups.sh --reset-offsets` does. The plan is printed
//! (a dry run) unless `--execute` is given, and only an inactive group's
//! offsets can be moved: a running consumer would overwrite them.

use std::collections::BTreeMap;

use anyhow::{Context, bail, ensure};

/// Where the offsets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    Earliest,
    Latest,
    /// The first offset at or after this time (ms since the epoch).
    Datetime(i64),
    /// The current committed offset moved by N (negative: back).
    ShiftBy(i64),
    Offset(i64),
}

/// What the brokers know of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionFacts {
    pub committed: Option<i64>,
    pub earliest: i64,
    pub latest: i64,
    /// The offset `Datetime` finds (-1 when no record is that new).
    pub at_time: Option<i64>,
}

/// The new offset of every partition. Offsets outside the log are clamped
/// to its ends, as Kafka's tool does; shifting a partition with no committed
/// offset is an error naming it, since there is nothing to shift.
pub fn plan(
    to: ResetTo,
    facts: &BTreeMap<(String, i32), PartitionFacts>,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut out = BTreeMap::new();
    for ((topic, partition), f) in facts {
        let target = match to {
            ResetTo::Earliest => f.earliest,
            ResetTo::Latest => f.latest,
            // No record at or after the time: the end, as Kafka resets.
            ResetTo::Datetime(_) => match f.at_time {
                Some(o) if o >= 0 => o,
                _ => f.latest,
            },
            ResetTo::ShiftBy(n) => {
                let Some(current) = f.committed else {
                    bail!("{topic}-{partition} has no committed offset to shift by {n}");
                };
                current.saturating_add(n)
            }
            ResetTo::Offset(o) => o,
        };
        out.insert(
            (topic.clone(), *partition),
            target.clamp(f.earliest, f.latest),
        );
    }
    Ok(out)
}

/// Kafka's `--to-datetime` format, `YYYY-MM-DDTHH:mm:SS[.sss]`, with an
/// optional zone (`Z` or `±HH:MM`; none means UTC here, where Kafka's tool
/// takes the local zone), to ms since the epoch.
pub fn parse_datetime(text: &str) -> anyhow::Result<i64> {
    let bad = || format!("--to-datetime {text:?} is not YYYY-MM-DDTHH:mm:SS[.sss][Z|±HH:MM]");
    let (date, rest) = text.split_once('T').with_context(bad)?;
    let (time, offset_minutes) = split_zone(rest).with_context(bad)?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day))) = (d.next(), d.next(), d.next()) else {
        bail!(bad());
    };
    let (hms, millis) = match time.split_once('.') {
        Some((hms, frac)) => {
            ensure!(
                frac.len() <= 3 && frac.bytes().all(|b| b.is_ascii_digit()),
                bad()
            );
            (hms, format!("{frac:0<3}").parse::<i64>().with_context(bad)?)
        }
        None => (time, 0),
    };
    let mut t = hms.splitn(3, ':').map(str::parse::<i64>);
    let (Some(Ok(h)), Some(Ok(m)), Some(Ok(s))) = (t.next(), t.next(), t.next()) else {
        bail!(bad());
    };
    ensure!(
        (1..=12).contains(&month) && (1..=31).contains(&day) && h < 24 && m < 60 && s < 60,
        bad()
    );
    let days = days_from_civil(year, month, day);
    Ok((((days * 24 + h) * 60 + m) * 60 + s - offset_minutes * 60) * 1000 + millis)
}

/// The time part and the zone's offset from UTC in minutes.
fn split_zone(rest: &str) -> Option<(&str, i64)> {
    if let Some(time) = rest.strip_suffix('Z') {
        return Some((time, 0));
    }
    match rest.rfind(['+', '-']) {
        Some(i) => {
            let (time, zone) = rest.split_at(i);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':')?;
            Some((
                time,
                sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?),
            ))
        }
        None => Some((rest, 0)),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(committed: Option<i64>) -> BTreeMap<(String, i32), PartitionFacts> {
        BTreeMap::from([(
            ("t".to_string(), 0),
            PartitionFacts {
                committed,
                earliest: 10,
                latest: 100,
                at_time: Some(42),
            },
        )])
    }

    fn one(to: ResetTo, committed: Option<i64>) -> anyhow::Result<i64> {
        Ok(plan(to, &facts(committed))?[&("t".to_string(), 0)])
    }

    #[test]
    fn each_reset_lands_where_kafkas_tool_would() {
        assert_eq!(one(ResetTo::Earliest, Some(50)).unwrap(), 10);
        assert_eq!(one(ResetTo::Latest, Some(50)).unwrap(), 100);
        assert_eq!(one(ResetTo::Datetime(0), Some(50)).unwrap(), 42);
        assert_eq!(one(ResetTo::ShiftBy(-5), Some(50)).unwrap(), 45);
        assert_eq!(
            one(ResetTo::ShiftBy(-500), Some(50)).unwrap(),
            10,
            "clamped to the start"
        );
        assert_eq!(
            one(ResetTo::ShiftBy(500), Some(50)).unwrap(),
            100,
            "clamped to the end"
        );
        assert_eq!(one(ResetTo::Offset(7), None).unwrap(), 10);
        let err = one(ResetTo::ShiftBy(1), None).unwrap_err().to_string();
        assert!(err.contains("t-0"), "{err}");
    }

    #[test]
    fn a_time_past_every_record_resets_to_the_end() {
        let mut f = facts(Some(50));
        f.get_mut(&("t".to_string(), 0)).unwrap().at_time = Some(-1);
        assert_eq!(
            plan(ResetTo::Datetime(0), &f).unwrap()[&("t".to_string(), 0)],
            100
        );
    }

    #[test]
    fn datetimes_parse_as_kafkas_tool_writes_them() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000").unwrap(), 0);
        assert_eq!(
            parse_datetime("2026-12-05T21:30:00Z").unwrap(),
            1_796_506_200_000
        );
        assert_eq!(
            parse_datetime("2026-12-05T22:30:00.5+01:00").unwrap(),
            1_796_506_200_500
        );
        assert_eq!(
            parse_datetime("2000-02-29T12:00:00-02:30").unwrap(),
            951_834_600_000
        );
        for bad in [
            "2026-12-05",
            "2026-13-01T00:00:00",
            "2026-12-05T25:00:00",
            "x",
        ] {
            let err = parse_datetime(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}

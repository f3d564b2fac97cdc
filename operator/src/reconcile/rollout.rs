//! When a rolling restart may restart its next broker, from the Cluster's
//! `spec.rollout`, as pure functions of the time passed in (never read
//! here, so tests can move it).
//!
//! - Maintenance windows gate the start of each broker restart: outside
//!   every window none starts, even in the middle of a roll (the broker
//!   already restarting comes back as usual). Like Strimzi's maintenance
//!   time windows, they hold back restarts the operator chooses to do, not
//!   pods Kubernetes recreates on its own. No windows: any time.
//! - `pauseBetweenBrokers` runs from when the last restarted broker was
//!   back (ready and in every ISR). When that was is kept in the status
//!   ([`BrokerRestart`]), so the pause survives an operator restart.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::cron::Schedule;
use crate::crd::cluster::{BrokerRestart, Rollout};
use crate::validate::FieldError;

/// Longest duration taken, in seconds (8760h, a year): longer is surely a
/// typo, and the bound keeps time arithmetic far from overflow.
const MAX_DURATION_SECS: i64 = 8760 * 3600;

/// One maintenance window: opens at each time the schedule fires, stays
/// open `duration_secs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub schedule: Schedule,
    pub duration_secs: i64,
}

/// A Cluster's `spec.rollout`, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutPolicy {
    pub windows: Vec<Window>,
    pub pause_secs: Option<i64>,
}

impl RolloutPolicy {
    /// Parses `spec.rollout`; every error names its field.
    pub fn from_spec(rollout: Option<&Rollout>) -> Result<Self, Vec<FieldError>> {
        let Some(rollout) = rollout else {
            return Ok(RolloutPolicy::default());
        };
        let mut errors = Vec::new();
        let pause_secs = match rollout.pause_between_brokers.as_deref().map(parse_duration) {
            None => None,
            Some(Ok(secs)) => Some(secs),
            Some(Err(rule)) => {
                errors.push(FieldError::new("spec.rollout.pauseBetweenBrokers", rule));
                None
            }
        };
        let mut windows = Vec::new();
        for (i, w) in rollout.maintenance_windows.iter().enumerate() {
            let path = |field: &str| format!("spec.rollout.maintenanceWindows[{i}].{field}");
            let schedule = match Schedule::parse(&w.schedule) {
                // A schedule that matches no day (February 30) would hold
                // every roll forever; say so now rather than at the roll.
                Ok(s) if s.next_at_or_after(0).is_none() => {
                    errors.push(FieldError::new(
                        path("schedule"),
                        format!("{:?} never fires (no such day)", w.schedule),
                    ));
                    None
                }
                Ok(s) => Some(s),
                Err(e) => {
                    errors.push(FieldError::new(
                        path("schedule"),
                        format!(
                            "{:?} is not a five-field cron expression (e.g. `0 2 * * 6`): {e}",
                            w.schedule
                        ),
                    ));
                    None
                }
            };
            let duration = match parse_duration(&w.duration) {
                Ok(0) => {
                    errors.push(FieldError::new(path("duration"), "must be longer than 0"));
                    None
                }
                Ok(secs) => Some(secs),
                Err(rule) => {
                    errors.push(FieldError::new(path("duration"), rule));
                    None
                }
            };
            if let (Some(schedule), Some(duration_secs)) = (schedule, duration) {
                windows.push(Window {
                    schedule,
                    duration_secs,
                });
            }
        }
        if errors.is_empty() {
            Ok(RolloutPolicy {
                windows,
                pause_secs,
            })
        } else {
            Err(errors)
        }
    }
}

/// Seconds in `30s`, `5m` or `2h`; the error is the rule broken.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let rule = || format!("{text:?} must be a whole number followed by s, m or h, e.g. 30s");
    let unit = match text.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        _ => return Err(rule()),
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(rule());
    }
    digits
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|secs| *secs <= MAX_DURATION_SECS)
        .ok_or_else(|| format!("{text:?} is longer than the most allowed, 8760h"))
}

fn minute_of(t: Timestamp) -> i64 {
    t.as_second().div_euclid(60)
}

fn at_minute(minute: i64) -> Option<Timestamp> {
    Timestamp::from_second(minute.checked_mul(60)?).ok()
}

/// Whether a window is open at `now`; with no windows, always.
pub fn in_window(now: Timestamp, windows: &[Window]) -> bool {
    windows.is_empty()
        || windows.iter().any(|w| {
            // Open when it last opened less than `duration` ago: the latest
            // start in (now - duration, now].
            let now_secs = now.as_second();
            let earliest = (now_secs - w.duration_secs).div_euclid(60) + 1;
            w.schedule.last_in(earliest, minute_of(now)).is_some()
        })
}

/// When the next window opens after `now`; `None` with no windows (or
/// none that ever opens).
pub fn next_window_start(now: Timestamp, windows: &[Window]) -> Option<Timestamp> {
    windows
        .iter()
        .filter_map(|w| w.schedule.next_at_or_after(minute_of(now) + 1))
        .min()
        .and_then(at_minute)
}

/// Why no broker restart may start now, though one may be needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    OutsideWindows { next_opens: Option<Timestamp> },
    Pausing { until: Timestamp },
}

impl Hold {
    /// When to look again.
    pub fn until(&self) -> Option<Timestamp> {
        match self {
            Hold::OutsideWindows { next_opens } => *next_opens,
            Hold::Pausing { until } => Some(*until),
        }
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::OutsideWindows {
                next_opens: Some(t),
            } => write!(f, "outside maintenance windows; next opens at {t}"),
            Hold::OutsideWindows { next_opens: None } => {
                f.write_str("outside maintenance windows; none opens again")
            }
            Hold::Pausing { until } => write!(f, "pausing between brokers until {until}"),
        }
    }
}

/// What holds back the next broker restart at `now`, if anything.
pub fn hold(
    now: Timestamp,
    policy: &RolloutPolicy,
    last_restart: Option<&BrokerRestart>,
) -> Option<Hold> {
    if !in_window(now, &policy.windows) {
        return Some(Hold::OutsideWindows {
            next_opens: next_window_start(now, &policy.windows),
        });
    }
    let finished = last_restart.and_then(|r| r.finished_at.as_ref())?.0;
    let until = finished
        .as_second()
        .checked_add(policy.pause_secs?)
        .and_then(|s| Timestamp::from_second(s).ok())?;
    (now < until).then_some(Hold::Pausing { until })
}

/// The record of a restart the operator starts at `now`.
pub fn restart_started(node_id: i32, pod: &str, now: Timestamp) -> BrokerRestart {
    BrokerRestart {
        node_id,
        pod: pod.into(),
        started_at: Time(whole_seconds(now)),
        finished_at: None,
    }
}

/// The restart record after a reconcile that saw every broker ready and
/// in every ISR (`back`) or not: the first time it is back is when the
/// restart finished.
pub fn restart_progress(
    last: Option<BrokerRestart>,
    back: bool,
    now: Timestamp,
) -> Option<BrokerRestart> {
    last.map(|r| match r.finished_at {
        None if back => BrokerRestart {
            finished_at: Some(Time(whole_seconds(now))),
            ..r
        },
        _ => r,
    })
}

/// Status times are written to the second; recording them so keeps what
/// is read back equal to what was decided.
fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::crd::cluster::MaintenanceWindow;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("RFC 3339 time")
    }

    fn window(schedule: &str, duration: &str) -> Window {
        Window {
            schedule: Schedule::parse(schedule).expect("schedule"),
            duration_secs: parse_duration(duration).expect("duration"),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("0s"), Ok(0));
        for bad in ["", "s", "5", "5d", "-5m", "1.5h", "5 m", "５m"] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(
                e.contains("whole number followed by s, m or h"),
                "{bad}: {e}"
            );
        }
        assert!(parse_duration("8761h").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn policy_errors_name_their_fields() {
        let rollout = Rollout {
            maintenance_windows: vec![
                MaintenanceWindow {
                    schedule: "0 2 * * 6".into(),
                    duration: "4h".into(),
                },
                MaintenanceWindow {
                    schedule: "0 2 30 2 *".into(),
                    duration: "0m".into(),
                },
                MaintenanceWindow {
                    schedule: "61 * * * *".into(),
                    duration: "4d".into(),
                },
            ],
            pause_between_brokers: Some("5x".into()),
        };
        let errors = RolloutPolicy::from_spec(Some(&rollout)).expect_err("invalid");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.rollout.pauseBetweenBrokers",
                "spec.rollout.maintenanceWindows[1].schedule",
                "spec.rollout.maintenanceWindows[1].duration",
                "spec.rollout.maintenanceWindows[2].schedule",
                "spec.rollout.maintenanceWindows[2].duration",
            ]
        );
        assert!(errors[3].rule.contains("minute field: 61"), "{}", errors[3]);
        let ok = RolloutPolicy::from_spec(Some(&Rollout {
            maintenance_windows: rollout.maintenance_windows[..1].to_vec(),
            pause_between_brokers: Some("5m".into()),
        }))
        .expect("valid");
        assert_eq!(ok.pause_secs, Some(300));
        assert_eq!(ok.windows.len(), 1);
        assert_eq!(RolloutPolicy::from_spec(None), Ok(RolloutPolicy::default()));
    }

    #[test]
    fn windows_open_for_their_duration_and_say_when_they_open_next() {
        // Saturdays 02:00-06:00, and the 1st of each month 22:00-23:30
        // (2026-11-28 is a Saturday).
        let windows = [window("0 2 * * 6", "4h"), window("0 22 1 * *", "90m")];
        for (now, open) in [
            ("2026-11-28T01:59:59Z", false),
            ("2026-11-28T02:00:00Z", true),
            ("2026-11-28T05:59:59Z", true),
            ("2026-11-28T06:00:00Z", false),
            ("2026-12-01T23:29:00Z", true),
            ("2026-12-01T23:30:00Z", false),
        ] {
            assert_eq!(in_window(ts(now), &windows), open, "{now}");
        }
        assert_eq!(
            next_window_start(ts("2026-11-28T06:00:00Z"), &windows),
            Some(ts("2026-12-01T22:00:00Z"))
        );
        assert_eq!(
            next_window_start(ts("2026-12-01T22:00:00Z"), &windows),
            Some(ts("2026-12-05T02:00:00Z"))
        );
        assert!(in_window(ts("2026-11-25T12:00:00Z"), &[]));
        assert_eq!(next_window_start(ts("2026-11-25T12:00:00Z"), &[]), None);
    }

    #[test]
    fn a_window_longer_than_its_period_is_always_open() {
        let windows = [window("0 * * * *", "2h")];
        assert!(in_window(ts("2026-11-25T12:34:56Z"), &windows));
    }

    #[test]
    fn holds_outside_windows_and_while_pausing() {
        let policy = RolloutPolicy {
            windows: vec![window("0 2 * * *", "1h")],
            pause_secs: Some(300),
        };
        assert_eq!(
            hold(ts("2026-11-25T12:00:00Z"), &policy, None),
            Some(Hold::OutsideWindows {
                next_opens: Some(ts("2026-11-26T02:00:00Z"))
            })
        );
        assert_eq!(
            hold(ts("2026-11-25T12:00:00Z"), &policy, None)
                .expect("held")
                .to_string(),
            "outside maintenance windows; next opens at 2026-11-26T02:00:00Z"
        );
        let started = restart_started(1, "demo-main-1", ts("2026-11-26T02:10:00.5Z"));
        assert_eq!(started.started_at, Time(ts("2026-11-26T02:10:00Z")));
        // Not back yet: nothing to pause for (the plan waits for readiness).
        let running = restart_progress(Some(started), false, ts("2026-11-26T02:11:00Z"));
        assert_eq!(
            hold(ts("2026-11-26T02:11:00Z"), &policy, running.as_ref()),
            None
        );
        let back = restart_progress(running, true, ts("2026-11-26T02:12:00Z"));
        // Once finished, a later observation does not move the time.
        let back = restart_progress(back, true, ts("2026-11-26T02:13:00Z"));
        assert_eq!(
            back.as_ref().and_then(|r| r.finished_at.clone()),
            Some(Time(ts("2026-11-26T02:12:00Z")))
        );
        let pausing = hold(ts("2026-11-26T02:16:59Z"), &policy, back.as_ref());
        assert_eq!(
            pausing.as_ref().map(ToString::to_string).as_deref(),
            Some("pausing between brokers until 2026-11-26T02:17:00Z")
        );
        assert_eq!(
            hold(ts("2026-11-26T02:17:00Z"), &policy, back.as_ref()),
            None
        );
        let no_pause = RolloutPolicy {
            pause_secs: None,
            ..policy
        };
        assert_eq!(
            hold(ts("2026-11-26T02:13:00Z"), &no_pause, back.as_ref()),
            None
        );
    }

    proptest! {
        /// `in_window` is "some start in (now - duration, now]", checked
        /// minute by minute; `next_window_start` is the first start after
        /// `now`, at which a window is open, with none open in between
        /// unless one already was.
        #[test]
        fn windows_agree_with_brute_force(
            minute in 0u32..60,
            hour in 0u32..24,
            weekday in 0u32..7,
            duration_minutes in 1i64..3000,
            now in 1_700_000_000i64..1_900_000_000,
        ) {
            let windows = [Window {
                schedule: Schedule::parse(&format!("{minute} {hour} * * {weekday}")).expect("schedule"),
                duration_secs: duration_minutes * 60,
            }];
            let t = Timestamp::from_second(now).expect("time");
            let brute_open = (0..=duration_minutes)
                .map(|back| now.div_euclid(60) - back)
                .any(|m| m * 60 <= now && now < m * 60 + duration_minutes * 60 && windows[0].schedule.matches(m));
            prop_assert_eq!(in_window(t, &windows), brute_open);
            let next = next_window_start(t, &windows).expect("weekly windows open again");
            prop_assert!(next > t);
            prop_assert!(next.as_second() - now <= 7 * 86_400);
            prop_assert!(in_window(next, &windows));
            let mut probe = now.div_euclid(60) + 1;
            while probe * 60 < next.as_second() {
                prop_assert!(!windows[0].schedule.matches(probe));
                probe += 1;
            }
        }
    }
}

//! Status conditions, Kubernetes style: one entry per type, and
//! `lastTransitionTime` moves only when the status flips, so "Ready since"
//! means what it says and an unchanged status writes nothing new.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A condition as a reconciler decides it, before times and generations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub type_: String,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Wanted {
    pub fn new(
        type_: &str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Wanted {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

fn status_str(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// The conditions after `wanted`, keeping each type's transition time
/// from `old` when its status did not change. Types not in `wanted` are dropped.
pub fn merge(
    old: &[Condition],
    wanted: &[Wanted],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    wanted
        .iter()
        .map(|w| {
            let status = status_str(w.status);
            let previous = old.iter().find(|c| c.type_ == w.type_);
            let since = match previous {
                Some(c) if c.status == status => c.last_transition_time.clone(),
                _ => Time(now),
            };
            Condition {
                type_: w.type_.clone(),
                status: status.into(),
                // The API requires a reason matching `^[A-Za-z]…`; never empty.
                reason: if w.reason.is_empty() {
                    "Unknown".into()
                } else {
                    w.reason.clone()
                },
                message: w.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// `old` with one condition set to `wanted` and the others carried as they are.
pub fn set_one(
    old: &[Condition],
    wanted: Wanted,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut all: Vec<Wanted> = old
        .iter()
        .filter(|c| c.type_ != wanted.type_)
        .map(|c| {
            Wanted::new(
                &c.type_,
                c.status == "True",
                c.reason.clone(),
                c.message.clone(),
            )
        })
        .collect();
    all.push(wanted);
    merge(old, &all, generation, now)
}

/// The types whose status differs between `old` and `new` (new types count),
/// with their new status: what Events are published for.
pub fn flips<'a>(old: &[Condition], new: &'a [Condition]) -> Vec<&'a Condition> {
    new.iter()
        .filter(|n| {
            old.iter()
                .find(|o| o.type_ == n.type_)
                .is_none_or(|o| o.status != n.status || o.reason != n.reason)
        })
        .collect()
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid time")
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let first = merge(
            &[],
            &[Wanted::new("Ready", false, "Starting", "0/3 ready")],
            Some(1),
            at(100),
        );
        let same = merge(
            &first,
            &[Wanted::new("Ready", false, "Starting", "1/3 ready")],
            Some(2),
            at(200),
        );
        assert_eq!(same[0].last_transition_time, Time(at(100)));
        assert_eq!(same[0].message, "1/3 ready");
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(
            &same,
            &[Wanted::new("Ready", true, "Ready", "3/3 ready")],
            Some(2),
            at(300),
        );
        assert_eq!(flipped[0].last_transition_time, Time(at(300)));
        assert_eq!(flips(&same, &flipped).len(), 1);
        assert!(flips(&flipped, &flipped).is_empty());
        assert!(is_true(&flipped, "Ready"));
    }

    #[test]
    fn empty_reason_is_replaced_and_dropped_types_go() {
        let old = merge(
            &[],
            &[
                Wanted::new("Ready", true, "", ""),
                Wanted::new("Degraded", true, "X", ""),
            ],
            None,
            at(1),
        );
        assert_eq!(old[0].reason, "Unknown");
        let new = merge(&old, &[Wanted::new("Ready", true, "Ok", "")], None, at(2));
        assert_eq!(new.len(), 1);
    }
}

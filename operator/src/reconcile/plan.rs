//! Which broker may restart next in a rolling restart, and if none, why.
//!
//! Rules, in order:
//! 1. Nothing to do when every broker runs the desired config and image.
//! 2. Wait while any broker is not ready, or any partition is missing a
//!    replica from its ISR: the last restarted broker must be back in every
//!    ISR before the next goes down.
//! 3. Pick the lowest node id that needs it and whose restart leaves
//!    every partition it is in-sync for with at least `min.insync.replicas`
//!    in-sync replicas; the active controller goes last, so leadership of the
//!    quorum moves once.
//! 4. Restart it, unless the rollout policy holds restarts back: outside
//!    the maintenance windows, or pausing after the last restarted broker
//!    came back ([`super::rollout`]). The hold comes last so that the status
//!    names it only when it is all that stands in the way: a roll blocked by
//!    `min.insync.replicas` says so now, not once a window opens.

use std::fmt;

use super::rollout::Hold;

/// A broker pod as the reconciler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerPod {
    pub node_id: i32,
    pub pod: String,
    pub ready: bool,
    pub config_hash: String,
    pub image: String,
    pub active_controller: bool,
}

/// One partition's replicas and in-sync replicas, from the brokers' metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub min_insync_replicas: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollInput<'a> {
    pub brokers: &'a [BrokerPod],
    pub partitions: &'a [PartitionState],
    pub desired_config_hash: &'a str,
    pub desired_image: &'a str,
    /// What the rollout policy holds restarts back for now, if anything.
    pub hold: Option<Hold>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollDecision {
    /// Every broker runs what the spec asks for.
    Done,
    /// Delete this pod; the StatefulSet recreates it with the new template.
    Restart {
        node_id: i32,
        pod: String,
        reason: RestartReason,
    },
    /// A restart is needed but not safe now; shown in status as the blocking reason.
    Wait(String),
    /// A restart is needed and safe, but the rollout policy says not yet;
    /// the reconciler looks again when the hold ends.
    Held(Hold),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    ConfigChanged,
    ImageChanged,
}

impl fmt::Display for RestartReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RestartReason::ConfigChanged => "broker config changed",
            RestartReason::ImageChanged => "image changed",
        })
    }
}

/// Why `broker` must restart, if it must.
pub fn restart_reason(broker: &BrokerPod, input: &RollInput<'_>) -> Option<RestartReason> {
    if broker.image != input.desired_image {
        Some(RestartReason::ImageChanged)
    } else if broker.config_hash != input.desired_config_hash {
        Some(RestartReason::ConfigChanged)
    } else {
        None
    }
}

/// The first partition that would drop below `min.insync.replicas` if
/// `node_id` went down now.
pub fn partition_blocking(node_id: i32, partitions: &[PartitionState]) -> Option<&PartitionState> {
    partitions.iter().find(|p| {
        p.isr.contains(&node_id) && (p.isr.len() as i64) <= i64::from(p.min_insync_replicas)
    })
}

/// Whether every broker is ready and every partition fully in sync: a
/// restarted broker is back once this holds.
pub fn all_back(brokers: &[BrokerPod], partitions: &[PartitionState]) -> bool {
    brokers.iter().all(|b| b.ready) && partitions.iter().all(|p| p.isr.len() >= p.replicas.len())
}

pub fn next_restart(input: &RollInput<'_>) -> RollDecision {
    let mut candidates: Vec<(&BrokerPod, RestartReason)> = input
        .brokers
        .iter()
        .filter_map(|b| restart_reason(b, input).map(|r| (b, r)))
        .collect();
    if candidates.is_empty() {
        return RollDecision::Done;
    }
    if let Some(b) = input
        .brokers
        .iter()
        .filter(|b| !b.ready)
        .min_by_key(|b| b.node_id)
    {
        return RollDecision::Wait(format!(
            "waiting for broker {} ({}) to be ready",
            b.node_id, b.pod
        ));
    }
    if let Some(p) = input
        .partitions
        .iter()
        .find(|p| p.isr.len() < p.replicas.len())
    {
        return RollDecision::Wait(format!(
            "waiting for partition {}-{} to be fully in sync (ISR {:?} of replicas {:?})",
            p.topic, p.partition, p.isr, p.replicas
        ));
    }
    candidates.sort_by_key(|(b, _)| (b.active_controller, b.node_id));
    let mut first_block = None;
    for (broker, reason) in &candidates {
        match partition_blocking(broker.node_id, input.partitions) {
            None => {
                if let Some(hold) = &input.hold {
                    return RollDecision::Held(hold.clone());
                }
                return RollDecision::Restart {
                    node_id: broker.node_id,
                    pod: broker.pod.clone(),
                    reason: *reason,
                };
            }
            Some(p) if first_block.is_none() => {
                first_block = Some(format!(
                    "restarting broker {} would drop partition {}-{} below min.insync.replicas ({} in sync, {} required)",
                    broker.node_id,
                    p.topic,
                    p.partition,
                    p.isr.len(),
                    p.min_insync_replicas
                ));
            }
            Some(_) => {}
        }
    }
    RollDecision::Wait(first_block.unwrap_or_else(|| "no broker can restart safely".into()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn broker(id: i32, hash: &str) -> BrokerPod {
        BrokerPod {
            node_id: id,
            pod: format!("demo-main-{id}"),
            ready: true,
            config_hash: hash.into(),
            image: "weir:1".into(),
            active_controller: false,
        }
    }

    fn partition(p: i32, replicas: &[i32], isr: &[i32], min: i32) -> PartitionState {
        PartitionState {
            topic: "orders".into(),
            partition: p,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            min_insync_replicas: min,
        }
    }

    fn input<'a>(brokers: &'a [BrokerPod], partitions: &'a [PartitionState]) -> RollInput<'a> {
        RollInput {
            brokers,
            partitions,
            desired_config_hash: "new",
            desired_image: "weir:1",
            hold: None,
        }
    }

    fn outside() -> Hold {
        Hold::OutsideWindows {
            next_opens: Some("2026-11-26T02:00:00Z".parse().expect("time")),
        }
    }

    #[test]
    fn a_hold_stops_a_safe_restart_but_not_the_reason_it_would_be_unsafe() {
        let brokers = [broker(0, "old"), broker(1, "old"), broker(2, "old")];
        let parts = [partition(0, &[0, 1, 2], &[0, 1, 2], 2)];
        let mut roll = input(&brokers, &parts);
        roll.hold = Some(outside());
        assert_eq!(next_restart(&roll), RollDecision::Held(outside()));
        assert!(all_back(&brokers, &parts));
        let tight = [partition(0, &[0, 1, 2], &[0, 1, 2], 3)];
        roll.partitions = &tight;
        assert!(
            matches!(next_restart(&roll), RollDecision::Wait(r) if r.contains("min.insync.replicas"))
        );
        let short = [partition(0, &[0, 1, 2], &[0, 1], 1)];
        assert!(!all_back(&brokers, &short));
    }

    #[test]
    fn controller_goes_last_and_done_when_all_current() {
        let mut brokers = vec![broker(0, "old"), broker(1, "old"), broker(2, "old")];
        brokers[0].active_controller = true;
        let parts = [partition(0, &[0, 1, 2], &[0, 1, 2], 2)];
        assert!(matches!(
            next_restart(&input(&brokers, &parts)),
            RollDecision::Restart { node_id: 1, .. }
        ));
        brokers[1].config_hash = "new".into();
        brokers[2].config_hash = "new".into();
        assert!(matches!(
            next_restart(&input(&brokers, &parts)),
            RollDecision::Restart { node_id: 0, .. }
        ));
        brokers[0].config_hash = "new".into();
        assert_eq!(next_restart(&input(&brokers, &parts)), RollDecision::Done);
    }

    #[test]
    fn blocked_roll_names_the_partition() {
        let brokers = [broker(0, "old"), broker(1, "new")];
        let parts = [partition(3, &[0, 1], &[0, 1], 2)];
        match next_restart(&input(&brokers, &parts)) {
            RollDecision::Wait(reason) => assert!(
                reason.contains("partition orders-3 below min.insync.replicas"),
                "{reason}"
            ),
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn waits_for_the_restarted_broker_to_rejoin_every_isr() {
        let brokers = [broker(0, "new"), broker(1, "old"), broker(2, "old")];
        let parts = [partition(0, &[0, 1, 2], &[1, 2], 1)];
        assert!(
            matches!(next_restart(&input(&brokers, &parts)), RollDecision::Wait(r) if r.contains("fully in sync"))
        );
    }

    prop_compose! {
        fn cluster()(n in 1usize..6)(
            hashes in proptest::collection::vec(prop_oneof!["old", "new"], n),
            ready in proptest::collection::vec(proptest::bool::weighted(0.8), n),
            controller in 0..n,
            parts in proptest::collection::vec(
                (proptest::collection::vec(any::<bool>(), n), proptest::collection::vec(any::<bool>(), n), 1i32..4),
                0..6,
            ),
            window in proptest::bool::weighted(0.8),
        ) -> (Vec<BrokerPod>, Vec<PartitionState>, bool) {
            let n = hashes.len();
            let brokers: Vec<BrokerPod> = (0..n).map(|i| BrokerPod {
                ready: ready[i],
                active_controller: i == controller,
                ..broker(i as i32, &hashes[i])
            }).collect();
            let partitions = parts.iter().enumerate().map(|(p, (in_replicas, in_isr, min))| {
                let replicas: Vec<i32> = (0..n as i32).filter(|&i| in_replicas[i as usize]).collect();
                let isr: Vec<i32> = replicas.iter().copied().filter(|&i| in_isr[i as usize]).collect();
                partition(p as i32, &replicas, &isr, *min)
            }).collect();
            (brokers, partitions, window)
        }
    }

    proptest! {
        #[test]
        fn a_restart_is_always_safe((brokers, partitions, window) in cluster()) {
            let mut roll = input(&brokers, &partitions);
            roll.hold = (!window).then(outside);
            let needing: Vec<&BrokerPod> = brokers.iter().filter(|b| b.config_hash != "new").collect();
            match next_restart(&roll) {
                RollDecision::Done => prop_assert!(needing.is_empty()),
                RollDecision::Wait(reason) => {
                    prop_assert!(!needing.is_empty());
                    prop_assert!(!reason.is_empty());
                }
                RollDecision::Held(hold) => {
                    // Held only where a restart would otherwise have happened.
                    prop_assert!(!window);
                    prop_assert_eq!(hold, outside());
                    prop_assert!(all_back(&brokers, &partitions));
                    prop_assert!(needing.iter().any(|b| partition_blocking(b.node_id, &partitions).is_none()));
                }
                RollDecision::Restart { node_id, .. } => {
                    prop_assert!(window);
                    prop_assert!(brokers.iter().all(|b| b.ready));
                    prop_assert!(partitions.iter().all(|p| p.isr.len() == p.replicas.len()));
                    let chosen = brokers.iter().find(|b| b.node_id == node_id).expect("chosen broker exists");
                    prop_assert_ne!(chosen.config_hash.as_str(), "new");
                    for p in partitions.iter().filter(|p| p.isr.contains(&node_id)) {
                        prop_assert!(p.isr.len() as i32 > p.min_insync_replicas, "{p:?}");
                    }
                    if chosen.active_controller {
                        // Only when no other broker needing a restart could go.
                        for other in needing.iter().filter(|b| !b.active_controller) {
                            prop_assert!(partition_blocking(other.node_id, &partitions).is_some());
                        }
                    }
                }
            }
        }
    }
}

//! A group's topology as its members declare it, and what it comes to
//! against today's topics: the tasks of each subtopology, the internal
//! topics to create, and why tasks cannot be assigned yet.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::TaskId;
use super::assignor::{AssignorConfig, TaskSpec};

/// A topic the app owns: created by the coordinator when missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InternalTopic {
    pub name: String,
    /// 0: derived (a repartition topic takes its writers' partition count,
    /// a changelog its subtopology's task count).
    pub partitions: i32,
    /// -1: the broker's default.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Subtopology {
    pub id: String,
    /// User topics it reads.
    pub source_topics: Vec<String>,
    /// Internal repartition topics it reads.
    pub repartition_sources: Vec<InternalTopic>,
    /// Repartition topics it writes (read by other subtopologies).
    pub repartition_sinks: Vec<String>,
    /// Its state stores' changelogs; none = stateless.
    pub changelogs: Vec<InternalTopic>,
    /// Topics that must have the same partition count (joins).
    pub copartition_groups: Vec<Vec<String>>,
    /// Tasks of a subtopology without source topics: a connector's
    /// `tasks.max`.
    pub task_count: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Topology {
    /// Raised by the app when its topology changes.
    pub epoch: i32,
    pub subtopologies: Vec<Subtopology>,
    /// The app's own `num.standby.replicas`, `acceptable.recovery.lag`
    /// and `max.warmup.replicas`; unset ones are the broker's.
    pub num_standby_replicas: Option<u32>,
    pub acceptable_recovery_lag: Option<i64>,
    pub max_warmup_replicas: Option<u32>,
}

impl Topology {
    /// The assignment settings: the app's over the broker's defaults.
    pub fn assignor_config(&self, defaults: &AssignorConfig) -> AssignorConfig {
        AssignorConfig {
            num_standby_replicas: self
                .num_standby_replicas
                .unwrap_or(defaults.num_standby_replicas),
            acceptable_recovery_lag: self
                .acceptable_recovery_lag
                .unwrap_or(defaults.acceptable_recovery_lag),
            max_warmup_replicas: self
                .max_warmup_replicas
                .unwrap_or(defaults.max_warmup_replicas),
        }
    }
}

/// KIP-1071's status codes, reported to members in every heartbeat until
/// resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StatusCode {
    StaleTopology = 0,
    MissingSourceTopics = 1,
    IncorrectlyPartitionedTopics = 2,
    MissingInternalTopics = 3,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Status {
    pub code: StatusCode,
    pub detail: String,
}

/// A topology against today's topics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Configured {
    /// Task count per subtopology, when every topic it needs is there.
    pub tasks: BTreeMap<String, i32>,
    pub stateful: BTreeSet<String>,
    /// Internal topics to create, with their partition counts settled.
    pub missing_internal: Vec<InternalTopic>,
    pub statuses: Vec<Status>,
}

impl Configured {
    /// Tasks are assigned only once nothing stands in the way.
    pub fn is_ready(&self) -> bool {
        self.statuses.is_empty()
    }

    pub fn task_specs(&self) -> Vec<TaskSpec> {
        if !self.is_ready() {
            return Vec::new();
        }
        self.tasks
            .iter()
            .flat_map(|(s, &n)| {
                let stateful = self.stateful.contains(s);
                (0..n).map(move |p| TaskSpec {
                    id: TaskId::new(s.clone(), p),
                    stateful,
                })
            })
            .collect()
    }
}

/// What a topology comes to, `partitions` giving each existing topic's
/// partition count.
pub fn configure(topology: &Topology, partitions: &dyn Fn(&str) -> Option<i32>) -> Configured {
    let mut out = Configured::default();
    let mut missing_sources = BTreeSet::new();
    // Repartition topics' counts: existing, declared, or derived from the
    // subtopologies that write them, to a fixed point.
    let mut counts: BTreeMap<String, i32> = BTreeMap::new();
    for s in &topology.subtopologies {
        for t in &s.source_topics {
            match partitions(t) {
                Some(n) => {
                    counts.insert(t.clone(), n);
                }
                None => {
                    missing_sources.insert(t.clone());
                }
            }
        }
        for r in &s.repartition_sources {
            if let Some(n) = partitions(&r.name).or((r.partitions > 0).then_some(r.partitions)) {
                counts.insert(r.name.clone(), n);
            }
        }
    }
    let source_count = |s: &Subtopology, counts: &BTreeMap<String, i32>| {
        s.source_topics
            .iter()
            .chain(s.repartition_sources.iter().map(|r| &r.name))
            .filter_map(|t| counts.get(t).copied())
            .max()
    };
    for _ in 0..=topology.subtopologies.len() {
        let mut changed = false;
        for writer in &topology.subtopologies {
            let Some(n) = source_count(writer, &counts) else {
                continue;
            };
            for sink in &writer.repartition_sinks {
                let declared = topology
                    .subtopologies
                    .iter()
                    .flat_map(|s| &s.repartition_sources)
                    .any(|r| &r.name == sink);
                if declared && counts.get(sink).is_none_or(|&c| c < n) && partitions(sink).is_none()
                {
                    counts.insert(sink.clone(), n);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut wrong = BTreeSet::new();
    for s in &topology.subtopologies {
        let count = if s.source_topics.is_empty() && s.repartition_sources.is_empty() {
            Some(s.task_count.max(0))
        } else {
            source_count(s, &counts)
        };
        let Some(count) = count else { continue };
        out.tasks.insert(s.id.clone(), count);
        for group in &s.copartition_groups {
            let sizes: BTreeSet<i32> = group
                .iter()
                .filter_map(|t| counts.get(t).copied())
                .collect();
            if sizes.len() > 1 {
                wrong.extend(group.iter().cloned());
            }
        }
        for r in &s.repartition_sources {
            if partitions(&r.name).is_none() {
                let n = counts.get(&r.name).copied().unwrap_or(count);
                out.missing_internal.push(InternalTopic {
                    partitions: n,
                    ..r.clone()
                });
            }
        }
        if !s.changelogs.is_empty() {
            out.stateful.insert(s.id.clone());
        }
        for c in &s.changelogs {
            match partitions(&c.name) {
                Some(n) if n < count => {
                    wrong.insert(c.name.clone());
                }
                Some(_) => {}
                None => {
                    let mut configs = c.configs.clone();
                    configs
                        .entry("cleanup.policy".into())
                        .or_insert_with(|| "compact".into());
                    out.missing_internal.push(InternalTopic {
                        partitions: count,
                        configs,
                        ..c.clone()
                    });
                }
            }
        }
    }
    if !missing_sources.is_empty() {
        out.statuses.push(Status {
            code: StatusCode::MissingSourceTopics,
            detail: format!(
                "Source topics {} are missing.",
                missing_sources.into_iter().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    if !wrong.is_empty() {
        out.statuses.push(Status {
            code: StatusCode::IncorrectlyPartitionedTopics,
            detail: format!(
                "Topics {} must have the same number of partitions (co-partitioned), and changelogs one per task.",
                wrong.into_iter().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    if !out.missing_internal.is_empty() {
        out.statuses.push(Status {
            code: StatusCode::MissingInternalTopics,
            detail: format!(
                "Internal topics {} are missing; the coordinator is creating them.",
                out.missing_internal
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    out
}

/// Checks a topology a member sent: the error message for a malformed one.
pub fn validate(topology: &Topology) -> Result<(), String> {
    // Bounds that keep one member from making the coordinator hold an
    // absurd group (tasks are counted from partitions otherwise).
    const MAX_SUBTOPOLOGIES: usize = 10_000;
    const MAX_FIXED_TASKS: i64 = 1_000_000;
    if topology.subtopologies.len() > MAX_SUBTOPOLOGIES {
        return Err(format!(
            "The topology has {} subtopologies; at most {MAX_SUBTOPOLOGIES}.",
            topology.subtopologies.len()
        ));
    }
    let fixed: i64 = topology
        .subtopologies
        .iter()
        .map(|s| i64::from(s.task_count.max(0)))
        .sum();
    if fixed > MAX_FIXED_TASKS {
        return Err(format!(
            "The topology asks for {fixed} tasks in all; at most {MAX_FIXED_TASKS}."
        ));
    }
    let mut ids = BTreeSet::new();
    for s in &topology.subtopologies {
        if s.id.is_empty() {
            return Err("A subtopology id can't be empty.".into());
        }
        if !ids.insert(&s.id) {
            return Err(format!("Subtopology {} is declared twice.", s.id));
        }
        if s.task_count > 100_000 {
            return Err(format!(
                "Subtopology {} asks for {} tasks; at most 100000.",
                s.id, s.task_count
            ));
        }
        if s.task_count < 0 {
            return Err(format!("Subtopology {} has a negative task count.", s.id));
        }
        for t in s
            .repartition_sources
            .iter()
            .chain(&s.changelogs)
            .map(|t| &t.name)
            .chain(&s.source_topics)
        {
            if t.is_empty() {
                return Err(format!("Subtopology {} names an empty topic.", s.id));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: i32) -> InternalTopic {
        InternalTopic {
            name: name.into(),
            partitions,
            replication_factor: -1,
            configs: BTreeMap::new(),
        }
    }

    /// Two subtopologies: the first reads `orders` (6 partitions) and
    /// repartitions by key; the second counts per key with a store.
    fn counting() -> Topology {
        Topology {
            epoch: 1,
            subtopologies: vec![
                Subtopology {
                    id: "0".into(),
                    source_topics: vec!["orders".into()],
                    repartition_sinks: vec!["app-rekey-repartition".into()],
                    ..Subtopology::default()
                },
                Subtopology {
                    id: "1".into(),
                    repartition_sources: vec![topic("app-rekey-repartition", 0)],
                    changelogs: vec![topic("app-counts-changelog", 0)],
                    ..Subtopology::default()
                },
            ],
            ..Topology::default()
        }
    }

    #[test]
    fn internal_topics_take_their_partition_counts_from_upstream() {
        let existing = |t: &str| (t == "orders").then_some(6);
        let c = configure(&counting(), &existing);
        assert_eq!(c.tasks, BTreeMap::from([("0".into(), 6), ("1".into(), 6)]));
        assert_eq!(c.stateful, BTreeSet::from(["1".to_string()]));
        let missing: Vec<(&str, i32, Option<&str>)> = c
            .missing_internal
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.partitions,
                    t.configs.get("cleanup.policy").map(String::as_str),
                )
            })
            .collect();
        assert_eq!(
            missing,
            [
                ("app-rekey-repartition", 6, None),
                ("app-counts-changelog", 6, Some("compact"))
            ]
        );
        assert_eq!(c.statuses[0].code, StatusCode::MissingInternalTopics);
        assert!(c.task_specs().is_empty(), "no tasks until the topics exist");
        let all = |t: &str| {
            matches!(
                t,
                "orders" | "app-rekey-repartition" | "app-counts-changelog"
            )
            .then_some(6)
        };
        let ready = configure(&counting(), &all);
        assert!(ready.is_ready(), "{:?}", ready.statuses);
        assert_eq!(ready.task_specs().len(), 12);
        assert_eq!(ready.task_specs().iter().filter(|t| t.stateful).count(), 6);
    }

    #[test]
    fn missing_sources_and_mismatched_joins_are_reported() {
        let none = |_: &str| None;
        let c = configure(&counting(), &none);
        assert_eq!(c.statuses[0].code, StatusCode::MissingSourceTopics);
        assert!(
            c.statuses[0].detail.contains("orders"),
            "{}",
            c.statuses[0].detail
        );
        let join = Topology {
            epoch: 1,
            subtopologies: vec![Subtopology {
                id: "0".into(),
                source_topics: vec!["left".into(), "right".into()],
                copartition_groups: vec![vec!["left".into(), "right".into()]],
                ..Subtopology::default()
            }],
            ..Topology::default()
        };
        let uneven = |t: &str| Some(if t == "left" { 4 } else { 3 });
        let c = configure(&join, &uneven);
        assert_eq!(c.statuses.len(), 1);
        assert_eq!(c.statuses[0].code, StatusCode::IncorrectlyPartitionedTopics);
        let even = |_: &str| Some(4);
        assert!(configure(&join, &even).is_ready());
    }

    #[test]
    fn connectors_have_a_fixed_task_count() {
        let connect = Topology {
            epoch: 1,
            subtopologies: vec![
                Subtopology {
                    id: "jdbc-source".into(),
                    task_count: 3,
                    ..Subtopology::default()
                },
                Subtopology {
                    id: "file-sink".into(),
                    task_count: 1,
                    ..Subtopology::default()
                },
            ],
            ..Topology::default()
        };
        let c = configure(&connect, &|_| None);
        assert!(c.is_ready());
        assert_eq!(c.task_specs().len(), 4);
        assert!(c.task_specs().iter().all(|t| !t.stateful));
    }

    #[test]
    fn malformed_topologies_are_refused_with_the_reason() {
        let mut t = counting();
        t.subtopologies[1].id = "0".into();
        assert_eq!(
            validate(&t).unwrap_err(),
            "Subtopology 0 is declared twice."
        );
        let mut t = counting();
        t.subtopologies[0].source_topics.push(String::new());
        assert!(validate(&t).unwrap_err().contains("empty topic"));
        assert!(validate(&counting()).is_ok());
        let mut huge = counting();
        huge.subtopologies = (0..20)
            .map(|i| Subtopology {
                id: i.to_string(),
                task_count: 100_000,
                ..Subtopology::default()
            })
            .collect();
        assert!(validate(&huge).unwrap_err().contains("2000000 tasks"));
    }
}

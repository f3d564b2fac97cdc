//! The config topic's contents as Kafka Connect writes them, and the state
//! they add up to. Keys and values follow Kafka's `KafkaConfigBackingStore`:
//!
//! | key | value |
//! |---|---|
//! | `connector-<name>` | `{"properties": {...}}`, null when deleted |
//! | `task-<name>-<n>` | `{"properties": {...}}` |
//! | `commit-<name>` | `{"tasks": N}`: tasks 0..N are the connector's now |
//! | `target-state-<name>` | `{"state": "STARTED" \| "PAUSED" \| "STOPPED"}` |
//! | `restart-connector-<name>` | `{"include-tasks": b, "only-failed": b}` |
//!
//! Task configs count only once their commit record is read, so a worker
//! never runs half of a new set.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

pub type Props = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetState {
    #[default]
    Started,
    Paused,
    Stopped,
}

impl TargetState {
    pub fn name(self) -> &'static str {
        match self {
            TargetState::Started => "STARTED",
            TargetState::Paused => "PAUSED",
            TargetState::Stopped => "STOPPED",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "STARTED" => Some(TargetState::Started),
            "PAUSED" => Some(TargetState::Paused),
            "STOPPED" => Some(TargetState::Stopped),
            _ => None,
        }
    }
}

/// A restart asked for through the REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartRequest {
    pub connector: String,
    /// `None`: the connector (and its tasks if `include_tasks`); `Some(n)`:
    /// task n alone.
    pub task: Option<i32>,
    pub include_tasks: bool,
    pub only_failed: bool,
}

/// One connector as the config topic describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectorState {
    pub config: Props,
    pub target: TargetState,
    /// Committed task configs, by index.
    pub tasks: Vec<Props>,
    /// Bumped on every change of the connector's config or tasks: running
    /// instances restart when theirs is older.
    pub generation: u64,
}

/// Everything the config topic says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigState {
    pub connectors: BTreeMap<String, ConnectorState>,
    /// Task configs written but not yet committed.
    pending: BTreeMap<String, BTreeMap<i32, Props>>,
    /// Target states of connectors not (yet) configured.
    targets: BTreeMap<String, TargetState>,
    /// The offset after the last record applied: the topology epoch all
    /// workers agree on (offsets, unlike record counts, survive compaction).
    pub applied: i64,
}

/// What one record changed, for the worker to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Connector(String),
    Restart(RestartRequest),
    /// KIP-976: a log level for every worker (logger, level).
    Logger(String, String),
    None,
}

impl ConfigState {
    /// Applies one record of the config topic (`value` `None`: a tombstone).
    pub fn apply(&mut self, offset: i64, key: &str, value: Option<&[u8]>) -> Change {
        self.applied = offset + 1;
        let json: Option<Json> = value.and_then(|v| serde_json::from_slice(v).ok());
        if let Some(logger) = key.strip_prefix("logger-cluster-") {
            return match json.as_ref().and_then(|j| j.get("level")?.as_str()) {
                Some(level) => Change::Logger(logger.to_string(), level.to_string()),
                None => Change::None,
            };
        }
        if let Some(name) = key.strip_prefix("connector-") {
            return match json.as_ref().and_then(|j| props(j.get("properties"))) {
                Some(config) => {
                    let target = self.targets.get(name).copied();
                    let c = self.connectors.entry(name.to_string()).or_default();
                    c.config = config;
                    if let Some(t) = target {
                        c.target = t;
                    }
                    c.generation += 1;
                    Change::Connector(name.to_string())
                }
                None => {
                    self.connectors.remove(name);
                    self.pending.remove(name);
                    self.targets.remove(name);
                    Change::Connector(name.to_string())
                }
            };
        }
        if let Some(rest) = key.strip_prefix("task-") {
            if let Some((name, index)) = rest.rsplit_once('-')
                && let Ok(index) = index.parse::<i32>()
                && let Some(config) = json.as_ref().and_then(|j| props(j.get("properties")))
            {
                self.pending
                    .entry(name.to_string())
                    .or_default()
                    .insert(index, config);
            }
            return Change::None;
        }
        if let Some(name) = key.strip_prefix("commit-") {
            let Some(count) = json.as_ref().and_then(|j| j.get("tasks")?.as_i64()) else {
                return Change::None;
            };
            let mut pending = self.pending.remove(name).unwrap_or_default();
            let Some(c) = self.connectors.get_mut(name) else {
                return Change::None;
            };
            let count = usize::try_from(count).unwrap_or(0);
            // A commit covers tasks 0..count: new ones from pending, the
            // rest as they were (Kafka writes them all; this is lenient).
            let tasks: Vec<Props> = (0..count)
                .map(|i| {
                    pending
                        .remove(&(i as i32))
                        .or_else(|| c.tasks.get(i).cloned())
                        .unwrap_or_default()
                })
                .collect();
            c.tasks = tasks;
            c.generation += 1;
            return Change::Connector(name.to_string());
        }
        if let Some(name) = key.strip_prefix("target-state-") {
            let state = json.as_ref().and_then(|j| {
                j.get("state.v2")
                    .or_else(|| j.get("state"))
                    .and_then(Json::as_str)
                    .and_then(TargetState::parse)
            });
            let Some(state) = state else {
                self.targets.remove(name);
                return Change::None;
            };
            self.targets.insert(name.to_string(), state);
            if let Some(c) = self.connectors.get_mut(name) {
                c.target = state;
                return Change::Connector(name.to_string());
            }
            return Change::None;
        }
        if let Some(name) = key.strip_prefix("restart-connector-") {
            let flag = |k: &str| {
                json.as_ref()
                    .and_then(|j| j.get(k)?.as_bool())
                    .unwrap_or(false)
            };
            return Change::Restart(RestartRequest {
                connector: name.to_string(),
                task: None,
                include_tasks: flag("include-tasks"),
                only_failed: flag("only-failed"),
            });
        }
        if let Some(rest) = key.strip_prefix("restart-task-")
            && let Some((name, index)) = rest.rsplit_once('-')
            && let Ok(index) = index.parse::<i32>()
        {
            return Change::Restart(RestartRequest {
                connector: name.to_string(),
                task: Some(index),
                include_tasks: false,
                only_failed: false,
            });
        }
        Change::None
    }
}

fn props(v: Option<&Json>) -> Option<Props> {
    let obj = v?.as_object()?;
    Some(
        obj.iter()
            .map(|(k, v)| {
                let s = match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect(),
    )
}

/// The records the REST API and connectors write.
pub mod records {
    use super::*;

    pub fn connector(name: &str, config: &Props) -> (String, Option<Vec<u8>>) {
        (
            format!("connector-{name}"),
            Some(json!({ "properties": config }).to_string().into_bytes()),
        )
    }

    pub fn logger_level(logger: &str, level: &str) -> (String, Option<Vec<u8>>) {
        (
            format!("logger-cluster-{logger}"),
            Some(json!({ "level": level }).to_string().into_bytes()),
        )
    }

    pub fn connector_deleted(name: &str) -> (String, Option<Vec<u8>>) {
        (format!("connector-{name}"), None)
    }

    pub fn task(name: &str, index: usize, config: &Props) -> (String, Option<Vec<u8>>) {
        (
            format!("task-{name}-{index}"),
            Some(json!({ "properties": config }).to_string().into_bytes()),
        )
    }

    pub fn commit(name: &str, tasks: usize) -> (String, Option<Vec<u8>>) {
        (
            format!("commit-{name}"),
            Some(json!({ "tasks": tasks }).to_string().into_bytes()),
        )
    }

    pub fn target_state(name: &str, state: TargetState) -> (String, Option<Vec<u8>>) {
        // Kafka 3.5+ writes both: older workers read "state", which cannot
        // say STOPPED.
        let legacy = if state == TargetState::Paused {
            "PAUSED"
        } else {
            "STARTED"
        };
        (
            format!("target-state-{name}"),
            Some(
                json!({ "state": legacy, "state.v2": state.name() })
                    .to_string()
                    .into_bytes(),
            ),
        )
    }

    pub fn restart(req: &RestartRequest) -> (String, Option<Vec<u8>>) {
        let key = match req.task {
            Some(t) => format!("restart-task-{}-{t}", req.connector),
            None => format!("restart-connector-{}", req.connector),
        };
        (
            key,
            Some(
                json!({ "include-tasks": req.include_tasks, "only-failed": req.only_failed })
                    .to_string()
                    .into_bytes(),
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_props as p;

    fn apply(s: &mut ConfigState, (k, v): (String, Option<Vec<u8>>)) -> Change {
        s.apply(s.applied, &k, v.as_deref())
    }

    #[test]
    fn cluster_log_levels_are_changes_not_state() {
        let mut s = ConfigState::default();
        assert_eq!(
            apply(&mut s, records::logger_level("weir_connect", "DEBUG")),
            Change::Logger("weir_connect".into(), "DEBUG".into())
        );
        assert!(s.connectors.is_empty());
    }

    #[test]
    fn tasks_count_only_once_committed() {
        let mut s = ConfigState::default();
        apply(&mut s, records::connector("c", &p(&[("file", "/a")])));
        apply(&mut s, records::task("c", 0, &p(&[("t", "0")])));
        apply(&mut s, records::task("c", 1, &p(&[("t", "1")])));
        assert!(s.connectors["c"].tasks.is_empty());
        let g = s.connectors["c"].generation;
        assert_eq!(
            apply(&mut s, records::commit("c", 2)),
            Change::Connector("c".into())
        );
        assert_eq!(
            s.connectors["c"].tasks,
            vec![p(&[("t", "0")]), p(&[("t", "1")])]
        );
        assert!(s.connectors["c"].generation > g);
        apply(&mut s, records::commit("c", 1));
        assert_eq!(s.connectors["c"].tasks.len(), 1);
        assert_eq!(s.applied, 5);
    }

    #[test]
    fn target_state_before_or_after_the_connector_and_deletion() {
        let mut s = ConfigState::default();
        apply(&mut s, records::target_state("c", TargetState::Paused));
        apply(&mut s, records::connector("c", &p(&[])));
        assert_eq!(s.connectors["c"].target, TargetState::Paused);
        apply(&mut s, records::target_state("c", TargetState::Stopped));
        assert_eq!(s.connectors["c"].target, TargetState::Stopped);
        // Kafka's own workers write only "state".
        s.apply(s.applied, "target-state-c", Some(br#"{"state":"STARTED"}"#));
        assert_eq!(s.connectors["c"].target, TargetState::Started);
        apply(&mut s, records::connector_deleted("c"));
        assert!(s.connectors.is_empty());
    }

    #[test]
    fn restarts_and_names_with_dashes() {
        let mut s = ConfigState::default();
        let req = RestartRequest {
            connector: "my-conn".into(),
            task: Some(3),
            include_tasks: false,
            only_failed: false,
        };
        assert_eq!(apply(&mut s, records::restart(&req)), Change::Restart(req));
        apply(&mut s, records::connector("my-conn", &p(&[])));
        apply(&mut s, records::task("my-conn", 0, &p(&[("x", "y")])));
        apply(&mut s, records::commit("my-conn", 1));
        assert_eq!(s.connectors["my-conn"].tasks, vec![p(&[("x", "y")])]);
    }
}

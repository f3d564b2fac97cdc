//! The status topic, as Kafka's `KafkaStatusBackingStore` writes it: keys
//! `status-connector-<name>` and `status-task-<name>-<n>`, values
//! `{"state", "trace", "worker_id", "generation"}`. Each worker writes the
//! statuses of what it runs; every worker reads them all, so any worker
//! answers `/status`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Unassigned,
    Running,
    Paused,
    Failed,
    Restarting,
    Stopped,
    Destroyed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Unassigned => "UNASSIGNED",
            State::Running => "RUNNING",
            State::Paused => "PAUSED",
            State::Failed => "FAILED",
            State::Restarting => "RESTARTING",
            State::Stopped => "STOPPED",
            State::Destroyed => "DESTROYED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub state: State,
    pub trace: Option<String>,
    pub worker_id: String,
    /// The config generation the status is about: an older one does not
    /// replace a newer one written by another worker.
    pub generation: i64,
}

/// What a status is of.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    Connector(String),
    Task(String, i32),
}

impl Subject {
    pub fn key(&self) -> String {
        match self {
            Subject::Connector(n) => format!("status-connector-{n}"),
            Subject::Task(n, i) => format!("status-task-{n}-{i}"),
        }
    }

    pub fn parse(key: &str) -> Option<Subject> {
        if let Some(n) = key.strip_prefix("status-connector-") {
            return Some(Subject::Connector(n.to_string()));
        }
        let rest = key.strip_prefix("status-task-")?;
        let (n, i) = rest.rsplit_once('-')?;
        Some(Subject::Task(n.to_string(), i.parse().ok()?))
    }

    pub fn connector(&self) -> &str {
        match self {
            Subject::Connector(n) | Subject::Task(n, _) => n,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct StatusState {
    pub statuses: BTreeMap<Subject, Status>,
}

impl StatusState {
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>) {
        let Some(subject) = Subject::parse(key) else {
            return;
        };
        match value.and_then(|v| serde_json::from_slice::<Status>(v).ok()) {
            Some(status) => {
                self.statuses.insert(subject, status);
            }
            None => {
                self.statuses.remove(&subject);
            }
        }
    }

    pub fn get(&self, subject: &Subject) -> Option<&Status> {
        self.statuses.get(subject)
    }

    /// A connector's task statuses, by index.
    pub fn tasks_of(&self, connector: &str) -> Vec<(i32, &Status)> {
        self.statuses
            .iter()
            .filter_map(|(s, st)| match s {
                Subject::Task(n, i) if n == connector => Some((*i, st)),
                _ => None,
            })
            .collect()
    }
}

pub fn encode(status: &Status) -> Vec<u8> {
    serde_json::to_vec(status).expect("a status serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_kafkas_json_reads() {
        for s in [
            Subject::Connector("a-b".into()),
            Subject::Task("a-b".into(), 12),
        ] {
            assert_eq!(Subject::parse(&s.key()), Some(s));
        }
        let mut st = StatusState::default();
        st.apply(
            "status-task-c-0",
            Some(br#"{"state":"FAILED","trace":"boom","worker_id":"w:8083","generation":3}"#),
        );
        let got = st.get(&Subject::Task("c".into(), 0)).unwrap();
        assert_eq!(got.state, State::Failed);
        assert_eq!(got.trace.as_deref(), Some("boom"));
        st.apply("status-task-c-0", None);
        assert!(st.tasks_of("c").is_empty());
    }
}

//! The status topic, as Kafka's `KafkaStatusBackingStore` writes it: keys
//! `status-connector-<name>` and `status-task-<name>-<n>`, values
//! `{"state", "trace", "worker_id", "generation"}`, and the topics each
//! connector used (KIP-558) under `status-topic-<topic>:connector-<name>`,
//! values `{"topic": {"name", "connector", "task", "discoverTimestamp"}}`.
//! Each worker writes the
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

    /// A task's index; -1 for the connector instance.
    pub fn task_index(&self) -> i32 {
        match self {
            Subject::Task(_, i) => *i,
            Subject::Connector(_) => -1,
        }
    }

    pub fn connector(&self) -> &str {
        match self {
            Subject::Connector(n) | Subject::Task(n, _) => n,
        }
    }
}

/// A topic a connector's task produced to or consumed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicStatus {
    pub name: String,
    pub connector: String,
    pub task: i32,
    #[serde(rename = "discoverTimestamp")]
    pub discover_timestamp: i64,
}

#[derive(Serialize, Deserialize)]
struct TopicStatusRecord {
    topic: TopicStatus,
}

const TOPIC_PREFIX: &str = "status-topic-";
const TOPIC_CONNECTOR_SEPARATOR: &str = ":connector-";

pub fn topic_key(topic: &str, connector: &str) -> String {
    format!("{TOPIC_PREFIX}{topic}{TOPIC_CONNECTOR_SEPARATOR}{connector}")
}

pub fn encode_topic(status: &TopicStatus) -> Vec<u8> {
    serde_json::to_vec(&TopicStatusRecord {
        topic: status.clone(),
    })
    .expect("a topic status serializes")
}

/// (topic, connector) of a topic status key. Topic names cannot hold a
/// `:`, so the first separator ends the topic.
fn parse_topic_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(TOPIC_PREFIX)?
        .split_once(TOPIC_CONNECTOR_SEPARATOR)
}

#[derive(Debug, Clone, Default)]
pub struct StatusState {
    pub statuses: BTreeMap<Subject, Status>,
    /// Per connector, the topics it used.
    pub topics: BTreeMap<String, BTreeMap<String, TopicStatus>>,
}

impl StatusState {
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>) {
        if let Some((topic, connector)) = parse_topic_key(key) {
            let status = value.and_then(|v| serde_json::from_slice::<TopicStatusRecord>(v).ok());
            let of = self.topics.entry(connector.to_string()).or_default();
            match status {
                Some(r) => {
                    of.insert(topic.to_string(), r.topic);
                }
                None => {
                    of.remove(topic);
                }
            }
            return;
        }
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

    /// The topics a connector used, by name.
    pub fn topics_of(&self, connector: &str) -> Vec<String> {
        self.topics
            .get(connector)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
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

    #[test]
    fn topic_statuses_as_kafka_writes_them() {
        let mut st = StatusState::default();
        let key = topic_key("orders.v1", "my-sink");
        assert_eq!(key, "status-topic-orders.v1:connector-my-sink");
        st.apply(
            &key,
            Some(br#"{"topic":{"name":"orders.v1","connector":"my-sink","task":2,"discoverTimestamp":1700000000000}}"#),
        );
        assert_eq!(st.topics_of("my-sink"), vec!["orders.v1".to_string()]);
        assert!(st.topics_of("other").is_empty());
        // Not a task status, even though the connector's name ends in a digit.
        assert!(st.statuses.is_empty());
        let status = TopicStatus {
            name: "t".into(),
            connector: "c-1".into(),
            task: 0,
            discover_timestamp: 5,
        };
        st.apply(&topic_key("t", "c-1"), Some(&encode_topic(&status)));
        assert_eq!(st.topics_of("c-1"), vec!["t".to_string()]);
        st.apply(&key, None);
        assert!(st.topics_of("my-sink").is_empty());
    }
}

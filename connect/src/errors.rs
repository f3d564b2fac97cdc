//! Kafka Connect's error handling (KIP-298): what happens when a record
//! cannot be converted or transformed. `errors.tolerance=none` fails the
//! task, with the cause in its `/status` trace; `all` skips the record —
//! logged when `errors.log.enable`, and for a sink also written, as it was
//! consumed, to `errors.deadletterqueue.topic.name` with headers saying why
//! when `errors.deadletterqueue.context.headers.enable`. Retriable
//! operations (a sink task's `put`) are retried with growing delays for
//! `errors.retry.timeout`.

use std::time::Duration;

use bytes::Bytes;

use crate::connector::{ConnectorType, Props};
use crate::validate::common_def;

/// Where in the pipeline a record failed, named as Kafka's `Stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    KeyConverter,
    ValueConverter,
    HeaderConverter,
    Transformation,
    TaskPut,
    TaskPoll,
    KafkaProduce,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::HeaderConverter => "HEADER_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::TaskPut => "TASK_PUT",
            Stage::TaskPoll => "TASK_POLL",
            Stage::KafkaProduce => "KAFKA_PRODUCE",
        }
    }
}

/// One record's failure.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub stage: Stage,
    /// The plugin class running the stage (converter or transform).
    pub class: String,
    pub message: String,
}

impl Failure {
    pub fn new(stage: Stage, class: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            stage,
            class: class.into(),
            message: message.into(),
        }
    }

    /// The exception Kafka would have thrown for it.
    fn exception_class(&self) -> &'static str {
        match self.stage {
            Stage::TaskPut | Stage::TaskPoll | Stage::KafkaProduce => {
                "org.apache.kafka.connect.errors.ConnectException"
            }
            _ => "org.apache.kafka.connect.errors.DataException",
        }
    }

    /// The task's trace when the failure is not tolerated, shaped as
    /// Kafka's (tools look for the "Caused by" line).
    pub fn trace(&self) -> String {
        format!(
            "org.apache.kafka.connect.errors.ConnectException: Tolerance exceeded in error handler\n\
             \tat stage {} ({})\n\
             Caused by: {}: {}",
            self.stage.name(),
            self.class,
            self.exception_class(),
            self.message
        )
    }
}

/// Where a sink record came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterQueue {
    pub topic: String,
    pub replication_factor: i16,
    pub context_headers: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ErrorPolicy {
    pub tolerate_all: bool,
    /// None: retry for ever (`errors.retry.timeout=-1`).
    pub retry_timeout: Option<Duration>,
    pub retry_delay_max: Duration,
    pub log: bool,
    pub log_messages: bool,
    pub dlq: Option<DeadLetterQueue>,
}

/// Kafka's first wait between retries; each next one doubles it.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(300);

impl ErrorPolicy {
    /// From a connector's config (already validated, so a parse error
    /// here names the key in Kafka's words).
    pub fn from_config(kind: ConnectorType, config: &Props) -> Result<ErrorPolicy, String> {
        let parsed = common_def(kind).parse(config)?;
        let retry = parsed.int("errors.retry.timeout").unwrap_or(0);
        let dlq = match kind {
            ConnectorType::Sink => parsed
                .string("errors.deadletterqueue.topic.name")
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|topic| DeadLetterQueue {
                    topic: topic.to_string(),
                    replication_factor: parsed
                        .int("errors.deadletterqueue.topic.replication.factor")
                        .and_then(|n| i16::try_from(n).ok())
                        .unwrap_or(-1),
                    context_headers: parsed
                        .boolean("errors.deadletterqueue.context.headers.enable")
                        .unwrap_or(false),
                }),
            ConnectorType::Source => None,
        };
        Ok(ErrorPolicy {
            tolerate_all: parsed
                .string("errors.tolerance")
                .is_some_and(|t| t.eq_ignore_ascii_case("all")),
            retry_timeout: (retry >= 0).then(|| Duration::from_millis(retry as u64)),
            retry_delay_max: Duration::from_millis(
                parsed
                    .int("errors.retry.delay.max.ms")
                    .unwrap_or(60_000)
                    .max(0) as u64,
            ),
            log: parsed.boolean("errors.log.enable").unwrap_or(false),
            log_messages: parsed.boolean("errors.log.include.messages").unwrap_or(false),
            dlq,
        })
    }

    /// The wait before retry number `attempt` (0-based).
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        FIRST_RETRY_DELAY
            .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.retry_delay_max)
    }

    /// May an operation failing since `elapsed` be tried again?
    pub fn may_retry(&self, elapsed: Duration) -> bool {
        self.retry_timeout.is_none_or(|t| elapsed < t)
    }
}

/// The headers Kafka's dead letter queue reporter adds, all text.
pub fn context_headers(
    failure: &Failure,
    origin: &Origin,
    connector: &str,
    task: i32,
) -> Vec<(String, Option<Bytes>)> {
    let h = |k: &str, v: String| (format!("__connect.errors.{k}"), Some(Bytes::from(v)));
    vec![
        h("topic", origin.topic.clone()),
        h("partition", origin.partition.to_string()),
        h("offset", origin.offset.to_string()),
        h("connector.name", connector.to_string()),
        h("task.id", task.to_string()),
        h("stage", failure.stage.name().to_string()),
        h("class.name", failure.class.clone()),
        h("exception.class.name", failure.exception_class().to_string()),
        h("exception.message", failure.message.clone()),
        h("exception.stacktrace", failure.trace()),
    ]
}

/// The log line `errors.log.enable` writes, as Kafka's LogReporter words it.
pub fn log_line(failure: &Failure, connector: &str, task: i32, origin: Option<&Origin>) -> String {
    let mut line = format!(
        "Error encountered in task {connector}-{task}. Executing stage '{}' with class '{}'",
        failure.stage.name(),
        failure.class
    );
    if let Some(o) = origin {
        line.push_str(&format!(
            ", where consumed record is {{topic='{}', partition={}, offset={}}}",
            o.topic, o.partition, o.offset
        ));
    }
    line.push_str(&format!(": {}", failure.message));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connector config: the keys every one has, and these.
    fn props(kv: &[(&str, &str)]) -> Props {
        let mut c = crate::test_props(&[("name", "c"), ("connector.class", "FileStreamSink")]);
        c.extend(crate::test_props(kv));
        c
    }

    #[test]
    fn kafkas_defaults_fail_on_the_first_error() {
        let p = ErrorPolicy::from_config(ConnectorType::Sink, &props(&[])).unwrap();
        assert!(!p.tolerate_all);
        assert_eq!(p.retry_timeout, Some(Duration::ZERO));
        assert!(!p.may_retry(Duration::ZERO));
        assert_eq!(p.dlq, None);
        assert!(!p.log);
    }

    #[test]
    fn tolerance_dlq_and_retries_from_the_config() {
        let p = ErrorPolicy::from_config(
            ConnectorType::Sink,
            &props(&[
                ("errors.tolerance", "ALL"),
                ("errors.deadletterqueue.topic.name", " dlq "),
                ("errors.deadletterqueue.context.headers.enable", "true"),
                ("errors.retry.timeout", "-1"),
                ("errors.retry.delay.max.ms", "1000"),
            ]),
        )
        .unwrap();
        assert!(p.tolerate_all);
        let dlq = p.dlq.clone().unwrap();
        assert_eq!(dlq.topic, "dlq");
        assert!(dlq.context_headers);
        assert_eq!(dlq.replication_factor, -1);
        assert!(p.may_retry(Duration::from_secs(3600)));
        assert_eq!(p.retry_delay(0), Duration::from_millis(300));
        assert_eq!(p.retry_delay(1), Duration::from_millis(600));
        assert_eq!(p.retry_delay(2), Duration::from_millis(1000));
        assert_eq!(p.retry_delay(40), Duration::from_millis(1000));
        // A source has no dead letter queue.
        let s = ErrorPolicy::from_config(
            ConnectorType::Source,
            &props(&[("errors.tolerance", "all")]),
        )
        .unwrap();
        assert!(s.tolerate_all && s.dlq.is_none());
        let e = ErrorPolicy::from_config(ConnectorType::Sink, &props(&[("errors.retry.timeout", "soon")]))
            .unwrap_err();
        assert!(e.contains("errors.retry.timeout"), "{e}");
    }

    #[test]
    fn context_headers_and_trace_say_where_and_why() {
        let f = Failure::new(
            Stage::ValueConverter,
            "org.apache.kafka.connect.json.JsonConverter",
            "Converting byte[] to Kafka Connect data failed due to serialization error",
        );
        let o = Origin {
            topic: "orders".into(),
            partition: 2,
            offset: 41,
        };
        let headers = context_headers(&f, &o, "sink", 1);
        let get = |k: &str| {
            headers
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.clone())
                .map(|b| String::from_utf8(b.to_vec()).unwrap())
        };
        assert_eq!(get("__connect.errors.topic").as_deref(), Some("orders"));
        assert_eq!(get("__connect.errors.partition").as_deref(), Some("2"));
        assert_eq!(get("__connect.errors.offset").as_deref(), Some("41"));
        assert_eq!(get("__connect.errors.task.id").as_deref(), Some("1"));
        assert_eq!(get("__connect.errors.stage").as_deref(), Some("VALUE_CONVERTER"));
        assert_eq!(
            get("__connect.errors.exception.class.name").as_deref(),
            Some("org.apache.kafka.connect.errors.DataException")
        );
        assert!(f.trace().starts_with(
            "org.apache.kafka.connect.errors.ConnectException: Tolerance exceeded in error handler"
        ));
        assert!(f.trace().contains("Caused by: org.apache.kafka.connect.errors.DataException: Converting byte[]"));
        let line = log_line(&f, "sink", 1, Some(&o));
        assert!(line.contains("task sink-1") && line.contains("offset=41"), "{line}");
    }
}

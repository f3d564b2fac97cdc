use kafka_protocol::error::ResponseError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("cannot reach {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("connection to {addr} lost: {reason}")]
    Disconnected { addr: String, reason: String },
    #[error("{api} request to {addr} timed out after {millis} ms")]
    Timeout {
        api: String,
        addr: String,
        millis: u128,
    },
    #[error("{context}: {name}{}", message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka {
        /// Kafka's numeric error code.
        code: i16,
        /// Kafka's name for the code, e.g. `TOPIC_ALREADY_EXISTS`.
        name: String,
        /// The broker's own message, when it sent one.
        message: Option<String>,
        /// What we were doing, e.g. `create topic "orders"`.
        context: String,
    },
    #[error("broker {addr} does not support {api} in versions {ours_min}..={ours_max} (it offers {}) ", broker.map(|(a, b)| format!("{a}..={b}")).unwrap_or_else(|| "none".into()))]
    UnsupportedVersion {
        api: String,
        addr: String,
        ours_min: i16,
        ours_max: i16,
        broker: Option<(i16, i16)>,
    },
    #[error("protocol error talking to {addr}: {reason}")]
    Protocol { addr: String, reason: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("partition {partition} of topic {topic:?} does not exist")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("no leader for {topic}-{partition} right now")]
    NoLeader { topic: String, partition: i32 },
    #[error("could not find the coordinator of group {0:?}")]
    NoCoordinator(String),
    #[error("{0} is closed")]
    Closed(&'static str),
    /// Another producer with the same `transactional.id` took over, or the
    /// coordinator aborted this one's transaction past its timeout: this
    /// producer must stop (create a new one to go on).
    #[error("producer fenced: {0}")]
    Fenced(String),
    /// A transaction that can no longer commit (a send in it failed): abort it.
    #[error("transaction must be aborted: {0}")]
    AbortableTransaction(String),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn kafka(code: i16, message: Option<String>, context: impl Into<String>) -> Self {
        let name = match ResponseError::try_from_code(code) {
            Some(ResponseError::Unknown(_)) | None => format!("UNKNOWN_ERROR_CODE_{code}"),
            Some(e) => upper_snake(&e.to_string()),
        };
        Error::Kafka {
            code,
            name,
            message: message.filter(|m| !m.is_empty()),
            context: context.into(),
        }
    }

    /// The broker refused the login (wrong user or password, or a
    /// mechanism it does not offer): retrying will not help.
    pub fn is_authentication_failure(&self) -> bool {
        matches!(
            self.kafka_error(),
            Some(ResponseError::SaslAuthenticationFailed | ResponseError::UnsupportedSaslMechanism)
        )
    }

    /// Kafka's error, when the broker returned one.
    pub fn kafka_error(&self) -> Option<ResponseError> {
        match self {
            Error::Kafka { code, .. } => ResponseError::try_from_code(*code),
            _ => None,
        }
    }

    /// Worth retrying the same request later (maybe after refreshing metadata).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Connect { .. }
            | Error::Disconnected { .. }
            | Error::Timeout { .. }
            | Error::NoLeader { .. } => true,
            Error::Kafka { .. } => self.kafka_error().is_some_and(|e| e.is_retriable()),
            _ => false,
        }
    }
}

/// Turns `ResponseError`'s `TopicAlreadyExists` into Kafka's documented
/// spelling `TOPIC_ALREADY_EXISTS`, which users can search for.
fn upper_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Maps a non-zero error code to [`Error::Kafka`]; zero is success.
pub(crate) fn check(
    code: i16,
    message: Option<&kafka_protocol::protocol::StrBytes>,
    context: impl FnOnce() -> String,
) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(Error::kafka(
            code,
            message.map(|m| m.to_string()),
            context(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_error_names_code_and_message() {
        let e = Error::kafka(
            36,
            Some("Topic 'orders' already exists.".into()),
            "create topic \"orders\"",
        );
        assert_eq!(
            e.to_string(),
            "create topic \"orders\": TOPIC_ALREADY_EXISTS (Topic 'orders' already exists.)"
        );
        assert_eq!(e.kafka_error(), Some(ResponseError::TopicAlreadyExists));
        assert!(!e.is_retriable());
        assert!(Error::kafka(6, None, "x").is_retriable());
        assert_eq!(
            Error::kafka(6, None, "x").to_string(),
            "x: NOT_LEADER_OR_FOLLOWER"
        );
    }
}

use std::io;

/// Everything the log can refuse or fail with; each maps to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Bad framing, magic or CRC in a batch the client sent.
    #[error("corrupt message: {0}")]
    CorruptMessage(String),
    #[error("message too large: {0}")]
    MessageTooLarge(String),
    /// Well-formed bytes that break a rule (record count, null key on a compacted topic, ...).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("offset out of range: {0}")]
    OffsetOutOfRange(String),
    #[error("out of order sequence number: {0}")]
    OutOfOrderSequence(String),
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    #[error("unknown producer id: {0}")]
    UnknownProducerId(String),
    #[error("storage I/O failed: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// Stored data that cannot be made sense of (a decode failure in a stored batch).
    #[error("corrupt log storage: {0}")]
    CorruptStorage(String),
    /// Replicated batches that start below this log's end: the replica has diverged
    /// from the leader (or fetched from the wrong offset) and must truncate first.
    #[error(
        "unexpected append offset: the first replicated batch starts at {base_offset}, below the log end offset {log_end_offset}"
    )]
    UnexpectedAppendOffset {
        base_offset: i64,
        log_end_offset: i64,
    },
    /// Leadership for an epoch older than one the log already holds.
    #[error("fenced leader epoch: epoch {epoch} is older than the log's latest epoch {latest}")]
    FencedLeaderEpoch { epoch: i32, latest: i32 },
}

impl LogError {
    /// The Kafka protocol error code to answer with.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            LogError::CorruptMessage(_) => 2,
            LogError::MessageTooLarge(_) => 10,
            LogError::InvalidRecord(_) => 87,
            LogError::OffsetOutOfRange(_) => 1,
            LogError::OutOfOrderSequence(_) => 45,
            LogError::InvalidProducerEpoch(_) => 47,
            LogError::UnknownProducerId(_) => 59,
            LogError::Io { .. } | LogError::CorruptStorage(_) => 56,
            // Only ever seen by the replica fetcher, which handles it; no client gets it.
            LogError::UnexpectedAppendOffset { .. } => -1,
            LogError::FencedLeaderEpoch { .. } => 74,
        }
    }
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// Attaches what we were doing (and to which file) to an I/O error.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| LogError::Io {
            context: context(),
            source,
        })
    }
}

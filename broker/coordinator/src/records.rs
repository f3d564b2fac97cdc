//! The `__consumer_offsets` record formats, laid out exactly as Kafka's
//! `OffsetCommitKey`/`GroupMetadataKey`/`OffsetCommitValue`/`GroupMetadataValue`
//! schemas (group-coordinator module) so Kafka's tooling can read our topic.
//!
//! Every key and value starts with an int16 version. Keys: version 0/1 is an
//! offset commit, 2 is group metadata, 3 and 5–8 are KIP-848 consumer
//! group records ([`consumer`]). Values are written at version 3, the
//! last non-flexible version (v4 adds only tagged-field support); strings
//! carry an int16 length (-1 = null), bytes an int32 length, arrays an int32
//! count — the classic non-flexible encoding.

use bytes::{BufMut, Bytes, BytesMut};

pub mod consumer;
pub mod tasks;

/// Why a stored record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record truncated while reading {0}")]
    Truncated(&'static str),
    #[error("{0} has unsupported version {1}")]
    UnsupportedVersion(&'static str, i16),
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    #[error("{0} is malformed: {1}")]
    Malformed(&'static str, String),
    #[error("{0} has invalid length {1}")]
    InvalidLength(&'static str, i64),
}

pub type Result<T, E = RecordError> = std::result::Result<T, E>;

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const VALUE_VERSION: i16 = 3;

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
    /// `ConsumerGroupMetadataKey` (3): the group epoch.
    ConsumerGroup {
        group: String,
    },
    /// `ConsumerGroupMemberMetadataKey` (5).
    ConsumerMember {
        group: String,
        member: String,
    },
    /// `ConsumerGroupTargetAssignmentMetadataKey` (6): the assignment epoch.
    TargetMetadata {
        group: String,
    },
    /// `ConsumerGroupTargetAssignmentMemberKey` (7).
    TargetMember {
        group: String,
        member: String,
    },
    /// `ConsumerGroupCurrentMemberAssignmentKey` (8).
    CurrentAssignment {
        group: String,
        member: String,
    },
    /// Weir's own: a task group's epochs and topology ([`tasks`]).
    TaskGroup {
        group: String,
    },
    /// Weir's own: one task-group member, its tasks and target.
    TaskMember {
        group: String,
        member: String,
    },
}

/// Key versions of Weir's own record types, far above Kafka's so the two
/// never meet ("WG", "WM").
const TASK_GROUP_KEY_VERSION: i16 = 0x5747;
const TASK_MEMBER_KEY_VERSION: i16 = 0x574D;

impl RecordKey {
    pub fn group(&self) -> &str {
        match self {
            RecordKey::Offset { group, .. }
            | RecordKey::Group { group }
            | RecordKey::ConsumerGroup { group }
            | RecordKey::ConsumerMember { group, .. }
            | RecordKey::TargetMetadata { group }
            | RecordKey::TargetMember { group, .. }
            | RecordKey::CurrentAssignment { group, .. }
            | RecordKey::TaskGroup { group }
            | RecordKey::TaskMember { group, .. } => group,
        }
    }

    /// The key's version, which names the record type.
    fn kind(&self) -> i16 {
        match self {
            RecordKey::Offset { .. } => OFFSET_KEY_VERSION,
            RecordKey::Group { .. } => GROUP_KEY_VERSION,
            RecordKey::ConsumerGroup { .. } => 3,
            RecordKey::ConsumerMember { .. } => 5,
            RecordKey::TargetMetadata { .. } => 6,
            RecordKey::TargetMember { .. } => 7,
            RecordKey::CurrentAssignment { .. } => 8,
            RecordKey::TaskGroup { .. } => TASK_GROUP_KEY_VERSION,
            RecordKey::TaskMember { .. } => TASK_MEMBER_KEY_VERSION,
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                buf.put_i16(OFFSET_KEY_VERSION);
                put_string(&mut buf, group);
                put_string(&mut buf, topic);
                buf.put_i32(*partition);
            }
            RecordKey::Group { group } => {
                buf.put_i16(GROUP_KEY_VERSION);
                put_string(&mut buf, group);
            }
            RecordKey::ConsumerGroup { group }
            | RecordKey::TargetMetadata { group }
            | RecordKey::TaskGroup { group } => {
                buf.put_i16(self.kind());
                put_string(&mut buf, group);
            }
            RecordKey::ConsumerMember { group, member }
            | RecordKey::TargetMember { group, member }
            | RecordKey::CurrentAssignment { group, member }
            | RecordKey::TaskMember { group, member } => {
                buf.put_i16(self.kind());
                put_string(&mut buf, group);
                put_string(&mut buf, member);
            }
        }
        buf.freeze()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader(bytes);
        match r.i16("key version")? {
            // Version 0 is the pre-0.10 offset key; same layout.
            0 | 1 => Ok(RecordKey::Offset {
                group: r.string("group")?,
                topic: r.string("topic")?,
                partition: r.i32("partition")?,
            }),
            2 => Ok(RecordKey::Group {
                group: r.string("group")?,
            }),
            3 => Ok(RecordKey::ConsumerGroup {
                group: r.string("group")?,
            }),
            6 => Ok(RecordKey::TargetMetadata {
                group: r.string("group")?,
            }),
            v @ (5 | 7 | 8) => {
                let group = r.string("group")?;
                let member = r.string("member")?;
                Ok(match v {
                    5 => RecordKey::ConsumerMember { group, member },
                    7 => RecordKey::TargetMember { group, member },
                    _ => RecordKey::CurrentAssignment { group, member },
                })
            }
            TASK_GROUP_KEY_VERSION => Ok(RecordKey::TaskGroup {
                group: r.string("group")?,
            }),
            TASK_MEMBER_KEY_VERSION => Ok(RecordKey::TaskMember {
                group: r.string("group")?,
                member: r.string("member")?,
            }),
            v => Err(RecordError::UnsupportedVersion("key", v)),
        }
    }
}

/// `OffsetCommitValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when unknown (versions before 3 do not carry it).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Only version 1 carries it; kept so old records replay faithfully.
    pub expire_timestamp_ms: Option<i64>,
}

impl OffsetValue {
    /// Written at version 3, or at version 1 when the commit carried its own
    /// retention (an expire timestamp), as Kafka does: only v1 has the field.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        if let Some(expire) = self.expire_timestamp_ms {
            buf.put_i16(1);
            buf.put_i64(self.offset);
            put_string(&mut buf, &self.metadata);
            buf.put_i64(self.commit_timestamp_ms);
            buf.put_i64(expire);
            return buf.freeze();
        }
        buf.put_i16(VALUE_VERSION);
        buf.put_i64(self.offset);
        buf.put_i32(self.leader_epoch);
        put_string(&mut buf, &self.metadata);
        buf.put_i64(self.commit_timestamp_ms);
        buf.freeze()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader(bytes);
        let version = r.i16("offset value version")?;
        if !(0..=3).contains(&version) {
            return Err(RecordError::UnsupportedVersion("offset value", version));
        }
        let offset = r.i64("offset")?;
        let leader_epoch = if version >= 3 {
            r.i32("leader epoch")?
        } else {
            -1
        };
        let metadata = r.string("metadata")?;
        let commit_timestamp_ms = r.i64("commit timestamp")?;
        let expire_timestamp_ms = if version == 1 {
            Some(r.i64("expire timestamp")?)
        } else {
            None
        };
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
            expire_timestamp_ms,
        })
    }
}

/// `GroupMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 when unknown (versions before 2 do not carry it).
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

/// `GroupMetadataValue.MemberMetadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

impl GroupValue {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(VALUE_VERSION);
        put_string(&mut buf, &self.protocol_type);
        buf.put_i32(self.generation);
        put_nullable_string(&mut buf, self.protocol.as_deref());
        put_nullable_string(&mut buf, self.leader.as_deref());
        buf.put_i64(self.current_state_timestamp_ms);
        put_len_i32(&mut buf, self.members.len());
        for m in &self.members {
            put_string(&mut buf, &m.member_id);
            put_nullable_string(&mut buf, m.group_instance_id.as_deref());
            put_string(&mut buf, &m.client_id);
            put_string(&mut buf, &m.client_host);
            buf.put_i32(m.rebalance_timeout_ms);
            buf.put_i32(m.session_timeout_ms);
            put_bytes(&mut buf, &m.subscription);
            put_bytes(&mut buf, &m.assignment);
        }
        buf.freeze()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader(bytes);
        let version = r.i16("group value version")?;
        if !(0..=3).contains(&version) {
            return Err(RecordError::UnsupportedVersion("group value", version));
        }
        let protocol_type = r.string("protocol type")?;
        let generation = r.i32("generation")?;
        let protocol = r.nullable_string("protocol")?;
        let leader = r.nullable_string("leader")?;
        let current_state_timestamp_ms = if version >= 2 {
            r.i64("current state timestamp")?
        } else {
            -1
        };
        let count = r.i32("member count")?;
        let count = usize::try_from(count)
            .map_err(|_| RecordError::InvalidLength("members", count.into()))?;
        // Never trust a stored count for preallocation: a corrupt record
        // must not make us allocate gigabytes.
        let mut members = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let member_id = r.string("member id")?;
            let group_instance_id = if version >= 3 {
                r.nullable_string("group instance id")?
            } else {
                None
            };
            let client_id = r.string("client id")?;
            let client_host = r.string("client host")?;
            let session_then_rebalance = version >= 1;
            let rebalance_timeout_ms = if session_then_rebalance {
                r.i32("rebalance timeout")?
            } else {
                -1
            };
            let session_timeout_ms = r.i32("session timeout")?;
            let rebalance_timeout_ms = if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            };
            let subscription = r.bytes("subscription")?;
            let assignment = r.bytes("assignment")?;
            members.push(MemberValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp_ms,
            members,
        })
    }
}

/// Key and value of one offset commit, ready for [`crate::GroupStore::append`].
pub fn offset_record(
    group: &str,
    topic: &str,
    partition: i32,
    value: Option<&OffsetValue>,
) -> (Bytes, Option<Bytes>) {
    let key = RecordKey::Offset {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
    };
    (key.encode(), value.map(OffsetValue::encode))
}

/// Key and value of a group's metadata; `None` writes a tombstone.
pub fn group_record(group: &str, value: Option<&GroupValue>) -> (Bytes, Option<Bytes>) {
    (
        RecordKey::Group {
            group: group.to_owned(),
        }
        .encode(),
        value.map(GroupValue::encode),
    )
}

fn put_len_i32(buf: &mut BytesMut, len: usize) {
    // Lengths beyond i32 cannot come from a Kafka request (frames are
    // bounded far below), so saturating is only a guard.
    buf.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
}

fn put_string(buf: &mut BytesMut, s: &str) {
    // Kafka strings are at most i16::MAX bytes; cut at a char boundary so
    // an oversized value (already rejected upstream) cannot corrupt a record.
    let mut end = s.len().min(i16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    buf.put_i16(end as i16);
    buf.put_slice(&s.as_bytes()[..end]);
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    put_len_i32(buf, b.len());
    buf.put_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(RecordError::Truncated(what));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    fn nullable_string(&mut self, what: &'static str) -> Result<Option<String>> {
        let len = self.i16(what)?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| RecordError::InvalidLength(what, len.into()))?;
        let raw = self.take(len, what)?;
        let s = std::str::from_utf8(raw).map_err(|_| RecordError::InvalidUtf8(what))?;
        Ok(Some(s.to_owned()))
    }

    fn string(&mut self, what: &'static str) -> Result<String> {
        self.nullable_string(what)?
            .ok_or(RecordError::InvalidLength(what, -1))
    }

    fn bytes(&mut self, what: &'static str) -> Result<Bytes> {
        let len = self.i32(what)?;
        // Kafka writes non-nullable bytes, but an empty/null assignment of a
        // member that never synced is best read as "no assignment".
        if len == -1 {
            return Ok(Bytes::new());
        }
        let len = usize::try_from(len).map_err(|_| RecordError::InvalidLength(what, len.into()))?;
        Ok(Bytes::copy_from_slice(self.take(len, what)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offset_key_bytes_match_kafka_schema() {
        // OffsetCommitKey: int16 version, string group, string topic, int32 partition.
        let key = RecordKey::Offset {
            group: "g".into(),
            topic: "ab".into(),
            partition: 258,
        };
        let expected: &[u8] = &[0, 1, 0, 1, b'g', 0, 2, b'a', b'b', 0, 0, 1, 2];
        assert_eq!(key.encode().as_ref(), expected);
        assert_eq!(RecordKey::decode(expected).unwrap(), key);
    }

    #[test]
    fn group_key_bytes_match_kafka_schema() {
        let key = RecordKey::Group {
            group: "grp".into(),
        };
        assert_eq!(key.encode().as_ref(), &[0, 2, 0, 3, b'g', b'r', b'p']);
    }

    #[test]
    fn offset_value_v3_layout() {
        let v = OffsetValue {
            offset: 5,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_timestamp_ms: 9,
            expire_timestamp_ms: None,
        };
        let mut expected = vec![0, 3];
        expected.extend(5i64.to_be_bytes());
        expected.extend(7i32.to_be_bytes());
        expected.extend([0, 1, b'm']);
        expected.extend(9i64.to_be_bytes());
        assert_eq!(v.encode().as_ref(), expected.as_slice());
    }

    #[test]
    fn offset_value_v1_with_expire_timestamp_decodes() {
        let mut raw = vec![0, 1];
        raw.extend(42i64.to_be_bytes());
        raw.extend([0, 0]);
        raw.extend(100i64.to_be_bytes());
        raw.extend(200i64.to_be_bytes());
        let v = OffsetValue::decode(&raw).unwrap();
        assert_eq!(
            (
                v.offset,
                v.leader_epoch,
                v.commit_timestamp_ms,
                v.expire_timestamp_ms
            ),
            (42, -1, 100, Some(200))
        );
    }

    #[test]
    fn truncated_and_unknown_records_are_errors_not_panics() {
        assert_eq!(
            RecordKey::decode(&[0]),
            Err(RecordError::Truncated("key version"))
        );
        assert!(matches!(
            RecordKey::decode(&[0, 9]),
            Err(RecordError::UnsupportedVersion(..))
        ));
        assert!(GroupValue::decode(&[0, 3, 0, 5, b'a']).is_err());
        assert!(OffsetValue::decode(&[0, 4]).is_err());
    }

    fn member() -> impl Strategy<Value = MemberValue> {
        (
            ".{0,12}",
            proptest::option::of(".{0,8}"),
            ".{0,8}",
            ".{0,8}",
            any::<i32>(),
            any::<i32>(),
            proptest::collection::vec(any::<u8>(), 0..32),
            proptest::collection::vec(any::<u8>(), 0..32),
        )
            .prop_map(
                |(member_id, group_instance_id, client_id, client_host, r, s, sub, asg)| {
                    MemberValue {
                        member_id,
                        group_instance_id,
                        client_id,
                        client_host,
                        rebalance_timeout_ms: r.max(0),
                        session_timeout_ms: s,
                        subscription: sub.into(),
                        assignment: asg.into(),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn keys_round_trip(group in ".{0,20}", topic in ".{0,20}", partition in any::<i32>()) {
            for key in [RecordKey::Offset { group: group.clone(), topic: topic.clone(), partition }, RecordKey::Group { group: group.clone() }] {
                prop_assert_eq!(RecordKey::decode(&key.encode()).unwrap(), key);
            }
        }

        #[test]
        fn offset_values_round_trip(offset in any::<i64>(), epoch in any::<i32>(), metadata in ".{0,40}", ts in any::<i64>()) {
            let v = OffsetValue { offset, leader_epoch: epoch, metadata, commit_timestamp_ms: ts, expire_timestamp_ms: None };
            prop_assert_eq!(OffsetValue::decode(&v.encode()).unwrap(), v);
        }

        #[test]
        fn group_values_round_trip(
            protocol_type in ".{0,10}", generation in any::<i32>(),
            protocol in proptest::option::of(".{0,10}"), leader in proptest::option::of(".{0,10}"),
            ts in any::<i64>(), members in proptest::collection::vec(member(), 0..4),
        ) {
            let v = GroupValue { protocol_type, generation, protocol, leader, current_state_timestamp_ms: ts, members };
            prop_assert_eq!(GroupValue::decode(&v.encode()).unwrap(), v);
        }

        #[test]
        fn garbage_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = RecordKey::decode(&raw);
            let _ = OffsetValue::decode(&raw);
            let _ = GroupValue::decode(&raw);
        }
    }
}

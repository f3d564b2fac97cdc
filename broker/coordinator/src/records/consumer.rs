//! KIP-848 consumer group records, laid out as Kafka's
//! `ConsumerGroupMetadata*`, `ConsumerGroupMemberMetadata*`,
//! `ConsumerGroupTargetAssignment*` and `ConsumerGroupCurrentMemberAssignment*`
//! schemas: keys are non-flexible (int16 version = record type, then
//! int16-length strings), values are flexible version 0 (compact strings
//! and arrays with unsigned-varint lengths, a tagged-field section after
//! every struct). Tagged fields we do not use are skipped when read.

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::{Reader, RecordError, RecordKey, Result};

/// Partitions by topic id, as the records name topics.
pub type TopicPartitions = Vec<(Uuid, Vec<i32>)>;

/// `ConsumerGroupMemberMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadataValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// `ConsumerGroupCurrentMemberAssignmentValue`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignmentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// Kafka's MemberState: 0 stable, 1 unrevoked, 2 unreleased partitions.
    pub state: i8,
    pub assigned: TopicPartitions,
    pub pending_revocation: TopicPartitions,
}

/// One consumer-group record's value, by the key it goes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerRecord {
    GroupEpoch(i32),
    Member(MemberMetadataValue),
    AssignmentEpoch(i32),
    Target(TopicPartitions),
    Current(CurrentAssignmentValue),
}

impl ConsumerRecord {
    pub fn encode(&self) -> Bytes {
        let mut w = BytesMut::new();
        w.put_i16(0);
        match self {
            ConsumerRecord::GroupEpoch(epoch) | ConsumerRecord::AssignmentEpoch(epoch) => {
                w.put_i32(*epoch)
            }
            ConsumerRecord::Member(m) => {
                put_compact_nullable(&mut w, m.instance_id.as_deref());
                put_compact_nullable(&mut w, m.rack_id.as_deref());
                put_compact(&mut w, &m.client_id);
                put_compact(&mut w, &m.client_host);
                put_uvarint(&mut w, m.subscribed_topic_names.len() as u64 + 1);
                for t in &m.subscribed_topic_names {
                    put_compact(&mut w, t);
                }
                put_compact_nullable(&mut w, m.subscribed_topic_regex.as_deref());
                w.put_i32(m.rebalance_timeout_ms);
                put_compact_nullable(&mut w, m.server_assignor.as_deref());
            }
            ConsumerRecord::Target(partitions) => put_topic_partitions(&mut w, partitions),
            ConsumerRecord::Current(c) => {
                w.put_i32(c.member_epoch);
                w.put_i32(c.previous_member_epoch);
                w.put_i8(c.state);
                put_topic_partitions(&mut w, &c.assigned);
                put_topic_partitions(&mut w, &c.pending_revocation);
            }
        }
        // The value's own (empty) tagged-field section.
        w.put_u8(0);
        w.freeze()
    }

    /// Decodes the value stored under `key` (a consumer-group key).
    pub fn decode(key: &RecordKey, bytes: &[u8]) -> Result<Self> {
        let mut r = Reader(bytes);
        let version = r.i16("consumer group value version")?;
        if version != 0 {
            return Err(RecordError::UnsupportedVersion(
                "consumer group value",
                version,
            ));
        }
        let value = match key {
            RecordKey::ConsumerGroup { .. } => ConsumerRecord::GroupEpoch(r.i32("group epoch")?),
            RecordKey::TargetMetadata { .. } => {
                ConsumerRecord::AssignmentEpoch(r.i32("assignment epoch")?)
            }
            RecordKey::ConsumerMember { .. } => {
                let instance_id = r.compact_nullable("instance id")?;
                let rack_id = r.compact_nullable("rack id")?;
                let client_id = r.compact("client id")?;
                let client_host = r.compact("client host")?;
                let n = r.compact_len("subscribed topics")?.unwrap_or(0);
                let mut subscribed_topic_names = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    subscribed_topic_names.push(r.compact("subscribed topic")?);
                }
                ConsumerRecord::Member(MemberMetadataValue {
                    instance_id,
                    rack_id,
                    client_id,
                    client_host,
                    subscribed_topic_names,
                    subscribed_topic_regex: r.compact_nullable("topic regex")?,
                    rebalance_timeout_ms: r.i32("rebalance timeout")?,
                    server_assignor: r.compact_nullable("server assignor")?,
                })
            }
            RecordKey::TargetMember { .. } => {
                ConsumerRecord::Target(r.topic_partitions("target partitions")?)
            }
            RecordKey::CurrentAssignment { .. } => {
                ConsumerRecord::Current(CurrentAssignmentValue {
                    member_epoch: r.i32("member epoch")?,
                    previous_member_epoch: r.i32("previous member epoch")?,
                    state: i8::from_be_bytes(r.array("member state")?),
                    assigned: r.topic_partitions("assigned partitions")?,
                    pending_revocation: r.topic_partitions("partitions pending revocation")?,
                })
            }
            RecordKey::Offset { .. }
            | RecordKey::Group { .. }
            | RecordKey::TaskGroup { .. }
            | RecordKey::TaskMember { .. } => {
                return Err(RecordError::UnsupportedVersion("consumer group key", -1));
            }
        };
        r.skip_tagged_fields("consumer group value")?;
        Ok(value)
    }
}

fn put_uvarint(w: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        w.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    w.put_u8(v as u8);
}

fn put_compact_nullable(w: &mut BytesMut, s: Option<&str>) {
    match s {
        None => put_uvarint(w, 0),
        Some(s) => put_compact(w, s),
    }
}

fn put_compact(w: &mut BytesMut, s: &str) {
    put_uvarint(w, s.len() as u64 + 1);
    w.put_slice(s.as_bytes());
}

fn put_topic_partitions(w: &mut BytesMut, topics: &TopicPartitions) {
    put_uvarint(w, topics.len() as u64 + 1);
    for (id, partitions) in topics {
        w.put_slice(id.as_bytes());
        put_uvarint(w, partitions.len() as u64 + 1);
        for p in partitions {
            w.put_i32(*p);
        }
        w.put_u8(0);
    }
}

impl Reader<'_> {
    fn uvarint(&mut self, what: &'static str) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let [b] = self.array::<1>(what)?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordError::InvalidLength(what, -1))
    }

    /// A compact length: `None` for null (0 on the wire).
    fn compact_len(&mut self, what: &'static str) -> Result<Option<usize>> {
        match self.uvarint(what)? {
            0 => Ok(None),
            n => usize::try_from(n - 1)
                .map(Some)
                .map_err(|_| RecordError::InvalidLength(what, n as i64)),
        }
    }

    fn compact_nullable(&mut self, what: &'static str) -> Result<Option<String>> {
        let Some(len) = self.compact_len(what)? else {
            return Ok(None);
        };
        let raw = self.take(len, what)?;
        let s = std::str::from_utf8(raw).map_err(|_| RecordError::InvalidUtf8(what))?;
        Ok(Some(s.to_owned()))
    }

    fn compact(&mut self, what: &'static str) -> Result<String> {
        self.compact_nullable(what)?
            .ok_or(RecordError::InvalidLength(what, -1))
    }

    fn skip_tagged_fields(&mut self, what: &'static str) -> Result<()> {
        for _ in 0..self.uvarint(what)? {
            self.uvarint(what)?;
            let size = self.uvarint(what)?;
            let size = usize::try_from(size).map_err(|_| RecordError::InvalidLength(what, -1))?;
            self.take(size, what)?;
        }
        Ok(())
    }

    fn topic_partitions(&mut self, what: &'static str) -> Result<TopicPartitions> {
        let n = self.compact_len(what)?.unwrap_or(0);
        let mut topics = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let id = Uuid::from_bytes(self.array(what)?);
            let count = self.compact_len(what)?.unwrap_or(0);
            let mut partitions = Vec::with_capacity(count.min(1 << 16));
            for _ in 0..count {
                partitions.push(self.i32(what)?);
            }
            // A topic entry's tagged fields (Kafka's AssignmentEpochs among them).
            self.skip_tagged_fields(what)?;
            topics.push((id, partitions));
        }
        Ok(topics)
    }
}

/// Key and value of one consumer-group record; `None` writes a tombstone.
pub fn consumer_record(key: RecordKey, value: Option<&ConsumerRecord>) -> (Bytes, Option<Bytes>) {
    (key.encode(), value.map(ConsumerRecord::encode))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn member_key() -> RecordKey {
        RecordKey::ConsumerMember {
            group: "g".into(),
            member: "m".into(),
        }
    }

    #[test]
    fn group_epoch_value_matches_kafka_layout() {
        let bytes = ConsumerRecord::GroupEpoch(7).encode();
        // version 0, Epoch int32, empty tagged fields.
        assert_eq!(&bytes[..], &[0, 0, 0, 0, 0, 7, 0]);
        let key = RecordKey::ConsumerGroup { group: "g".into() };
        assert_eq!(&key.encode()[..], &[0, 3, 0, 1, b'g']);
    }

    #[test]
    fn kafka_tagged_fields_are_skipped() {
        // A Kafka 4.1 group metadata value: Epoch 3 and MetadataHash (tag 0, 8 bytes).
        let raw = [0, 0, 0, 0, 0, 3, 1, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        let key = RecordKey::ConsumerGroup { group: "g".into() };
        assert_eq!(
            ConsumerRecord::decode(&key, &raw),
            Ok(ConsumerRecord::GroupEpoch(3))
        );
        assert!(
            ConsumerRecord::decode(&key, &raw[..8]).is_err(),
            "truncated tag"
        );
    }

    fn topic_partitions() -> impl Strategy<Value = TopicPartitions> {
        proptest::collection::vec(
            (
                any::<u128>().prop_map(Uuid::from_u128),
                proptest::collection::vec(any::<i32>(), 0..5),
            ),
            0..4,
        )
    }

    proptest! {
        #[test]
        fn member_values_round_trip(
            instance in proptest::option::of(".{0,10}"),
            client in ".{0,10}",
            topics in proptest::collection::vec(".{0,200}", 0..4),
            regex in proptest::option::of(".{0,10}"),
            timeout in any::<i32>(),
        ) {
            let value = ConsumerRecord::Member(MemberMetadataValue {
                instance_id: instance,
                rack_id: None,
                client_id: client,
                client_host: "/127.0.0.1".into(),
                subscribed_topic_names: topics,
                subscribed_topic_regex: regex,
                rebalance_timeout_ms: timeout,
                server_assignor: Some("uniform".into()),
            });
            prop_assert_eq!(ConsumerRecord::decode(&member_key(), &value.encode()), Ok(value));
        }

        #[test]
        fn assignment_values_round_trip(
            epoch in any::<i32>(), state in 0i8..3, assigned in topic_partitions(), pending in topic_partitions(),
        ) {
            let key = RecordKey::CurrentAssignment { group: "g".into(), member: "m".into() };
            let value = ConsumerRecord::Current(CurrentAssignmentValue {
                member_epoch: epoch,
                previous_member_epoch: epoch.wrapping_sub(1),
                state,
                assigned: assigned.clone(),
                pending_revocation: pending,
            });
            prop_assert_eq!(ConsumerRecord::decode(&key, &value.encode()), Ok(value));
            let key = RecordKey::TargetMember { group: "g".into(), member: "m".into() };
            let value = ConsumerRecord::Target(assigned);
            prop_assert_eq!(ConsumerRecord::decode(&key, &value.encode()), Ok(value));
        }

        #[test]
        fn garbage_values_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ConsumerRecord::decode(&member_key(), &raw);
            let key = RecordKey::CurrentAssignment { group: "g".into(), member: "m".into() };
            let _ = ConsumerRecord::decode(&key, &raw);
        }
    }
}

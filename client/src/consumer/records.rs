//! The bytes of a consumer: record batches as Fetch returns them (cut
//! tails, transactions, control records), and the consumer-protocol
//! subscription and assignment blobs of classic groups.

use std::collections::{BTreeMap, HashMap};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::records::RecordBatchDecoder;

use super::{CONSUMER_PROTOCOL_VERSION, ConsumerRecord};
use crate::error::{Error, Result};
use crate::util::sb;

/// `owned`: the partitions the member holds (cooperative rebalancing).
pub(crate) fn encode_subscription(topics: &[String], owned: &[(String, i32)]) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in owned {
        by_topic.entry(t).or_default().push(*p);
    }
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| sb(t)).collect())
        .with_owned_partitions(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    OwnedTopic::default()
                        .with_topic(TopicName(sb(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let mut b = BytesMut::new();
    b.put_i16(CONSUMER_PROTOCOL_VERSION);
    // Encoding a plain list of strings cannot fail.
    let _ = sub.encode(&mut b, CONSUMER_PROTOCOL_VERSION);
    b.freeze()
}

pub(crate) fn encode_assignment(parts: &[(String, i32)]) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(*p);
    }
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                AssignedTopic::default()
                    .with_topic(TopicName(sb(t)))
                    .with_partitions(ps)
            })
            .collect(),
    );
    let mut b = BytesMut::new();
    b.put_i16(CONSUMER_PROTOCOL_VERSION);
    let _ = a.encode(&mut b, CONSUMER_PROTOCOL_VERSION);
    b.freeze()
}

/// Decodes a Fetch answer's record batches into `out`, skipping records
/// below `position` (a batch is returned whole) and control records, and
/// returns the next position.
pub(crate) fn decode_records(
    topic: &str,
    partition: i32,
    mut data: Bytes,
    position: i64,
    read_committed: bool,
    aborted: &[(i64, i64)],
    out: &mut Vec<ConsumerRecord>,
) -> Result<i64> {
    // 8 offset + 4 length + 4 epoch + 1 magic + 4 crc + 2 attributes + 4 last offset delta.
    const HEADER: usize = 27;
    let mut next = position;
    let mut aborted: Vec<(i64, i64)> = aborted.to_vec();
    aborted.sort_by_key(|a| a.1);
    let mut aborting: HashMap<i64, ()> = HashMap::new();
    while data.len() >= 12 {
        let base_offset = (&data[0..8]).get_i64();
        let len = (&data[8..12]).get_i32();
        if len < 0 {
            return Err(Error::Other(format!(
                "negative batch length in {topic}-{partition}"
            )));
        }
        let total = 12 + len as usize;
        if data.len() < total {
            // The broker cuts the last batch at the size limit.
            break;
        }
        let mut batch = data.split_to(total);
        if total < HEADER {
            continue;
        }
        let last_offset = base_offset + (&batch[23..27]).get_i32() as i64;
        let leader_epoch = Some((&batch[12..16]).get_i32()).filter(|e| *e >= 0);
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| {
            Error::Other(format!(
                "decoding records of {topic}-{partition} at {base_offset}: {e}"
            ))
        })?;
        if read_committed {
            while aborted.first().is_some_and(|a| a.1 <= last_offset) {
                let a = aborted.remove(0);
                aborting.insert(a.0, ());
            }
        }
        for r in set.records {
            if r.control {
                if read_committed {
                    aborting.remove(&r.producer_id);
                }
                continue;
            }
            if r.offset < position {
                continue;
            }
            if read_committed && r.transactional && aborting.contains_key(&r.producer_id) {
                continue;
            }
            out.push(ConsumerRecord {
                topic: topic.to_string(),
                partition,
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                leader_epoch,
            });
        }
        next = next.max(last_offset + 1);
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{decode_assignment, decode_subscription};
    use indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn batch(base: i64, values: &[&str], compression: Compression) -> BytesMut {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                sequence: -1 + i as i32,
                timestamp: 1_700_000_000_000 + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(v.to_string())),
                headers: IndexMap::from([(
                    StrBytes::from_static_str("h"),
                    Some(Bytes::from_static(b"v")),
                )]),
            })
            .collect();
        let mut b = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut b,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        b
    }

    #[test]
    fn skips_records_below_position_and_truncated_tail() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut data = batch(10, &["a", "b", "c"], c);
            data.extend_from_slice(&batch(13, &["d", "e"], c));
            let third = batch(15, &["f"], c);
            data.extend_from_slice(&third[..third.len() - 3]);
            let mut out = Vec::new();
            let next = decode_records("t", 0, data.freeze(), 11, false, &[], &mut out).unwrap();
            let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, vec![11, 12, 13, 14], "{c:?}");
            assert_eq!(next, 15);
            assert_eq!(out[0].value.as_deref(), Some(&b"b"[..]));
            assert_eq!(out[0].key.as_deref(), Some(&b"k1"[..]));
            assert_eq!(
                out[0].headers,
                vec![("h".to_string(), Some(Bytes::from_static(b"v")))]
            );
        }
    }

    #[test]
    fn empty_fetch_keeps_position() {
        let mut out = Vec::new();
        assert_eq!(
            decode_records("t", 0, Bytes::new(), 42, false, &[], &mut out).unwrap(),
            42
        );
        assert!(out.is_empty());
    }

    #[test]
    fn consumer_protocol_blobs_round_trip() {
        let sub = encode_subscription(&["a".to_string(), "b".to_string()], &[("a".to_string(), 3)]);
        let decoded = decode_subscription(sub).unwrap();
        assert_eq!(decoded.topics, vec![sb("a"), sb("b")]);
        assert_eq!(decoded.owned_partitions[0].partitions, vec![3]);
        let parts = vec![
            ("a".to_string(), 0),
            ("a".to_string(), 2),
            ("b".to_string(), 1),
        ];
        assert_eq!(decode_assignment(encode_assignment(&parts)).unwrap(), parts);
        assert_eq!(
            decode_assignment(Bytes::new()).unwrap(),
            Vec::<(String, i32)>::new()
        );
    }
}

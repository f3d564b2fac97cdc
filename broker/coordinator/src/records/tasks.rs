//! Task groups' records: Weir's own types, so Kafka has no schema for
//! them. The value is a version (int16, 0) and the stored form as JSON,
//! which a later version can extend with fields older code ignores.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{RecordError, RecordKey};
use crate::tasks::group::{StoredTaskGroup, StoredTaskMember};

const VALUE_VERSION: i16 = 0;

fn encode<T: Serialize>(value: &T) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(VALUE_VERSION);
    // Serializing plain structs of strings, numbers and sets cannot fail.
    buf.put_slice(&serde_json::to_vec(value).expect("task group records serialize"));
    buf.freeze()
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, RecordError> {
    let Some((version, json)) = bytes.split_first_chunk::<2>() else {
        return Err(RecordError::Truncated(what));
    };
    match i16::from_be_bytes(*version) {
        VALUE_VERSION => {
            serde_json::from_slice(json).map_err(|e| RecordError::Malformed(what, e.to_string()))
        }
        v => Err(RecordError::UnsupportedVersion(what, v)),
    }
}

pub fn group_record(group: &str, value: Option<&StoredTaskGroup>) -> (Bytes, Option<Bytes>) {
    let key = RecordKey::TaskGroup {
        group: group.to_owned(),
    };
    (key.encode(), value.map(encode))
}

pub fn member_record(
    group: &str,
    member: &str,
    value: Option<&StoredTaskMember>,
) -> (Bytes, Option<Bytes>) {
    let key = RecordKey::TaskMember {
        group: group.to_owned(),
        member: member.to_owned(),
    };
    (key.encode(), value.map(encode))
}

pub fn decode_group(bytes: &[u8]) -> Result<StoredTaskGroup, RecordError> {
    decode("task group value", bytes)
}

pub fn decode_member(bytes: &[u8]) -> Result<StoredTaskMember, RecordError> {
    decode("task member value", bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::group::{MemberRecord, MemberState};
    use crate::tasks::topology::{Subtopology, Topology};
    use crate::tasks::{TaskId, Tasks};

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        let group = StoredTaskGroup {
            group_epoch: 7,
            assignment_epoch: 6,
            topology: Some(Topology {
                epoch: 2,
                subtopologies: vec![Subtopology {
                    id: "0".into(),
                    source_topics: vec!["in".into()],
                    ..Subtopology::default()
                }],
                ..Topology::default()
            }),
        };
        let (key, value) = group_record("app", Some(&group));
        assert_eq!(
            RecordKey::decode(&key).unwrap(),
            RecordKey::TaskGroup {
                group: "app".into()
            }
        );
        assert_eq!(decode_group(&value.unwrap()).unwrap(), group);
        let member = StoredTaskMember {
            member: MemberRecord {
                member_id: "m".into(),
                instance_id: None,
                rack_id: Some("r1".into()),
                process_id: "p".into(),
                endpoint: None,
                weight: 2,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 1000,
                session_timeout_ms: 2000,
                topology_epoch: 2,
                member_epoch: 6,
                previous_epoch: 5,
                state: MemberState::UnrevokedTasks,
                assigned: Tasks {
                    active: [TaskId::new("0", 1)].into(),
                    ..Tasks::default()
                },
                revoking: [TaskId::new("0", 2)].into(),
            },
            target: Tasks::default(),
        };
        let (key, value) = member_record("app", "m", Some(&member));
        assert_eq!(
            RecordKey::decode(&key).unwrap(),
            RecordKey::TaskMember {
                group: "app".into(),
                member: "m".into()
            }
        );
        assert_eq!(decode_member(&value.unwrap()).unwrap(), member);
        assert_eq!(member_record("app", "m", None).1, None);
        assert!(decode_member(b"\x00").is_err());
        assert!(decode_member(b"\x00\x01{}").is_err());
        assert!(decode_group(b"\x00\x00not json").is_err());
    }
}

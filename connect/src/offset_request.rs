//! KIP-875's offsets bodies (`GET|PATCH /connectors/{name}/offsets`):
//! `{"offsets": [{"partition": {…}, "offset": {…} | null}]}`. A source
//! connector's partitions and offsets are its own JSON maps; a sink's are
//! `{"kafka_topic", "kafka_partition"}` and `{"kafka_offset"}`, its consumer
//! group's committed offsets. A null offset forgets the partition's.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use crate::connector::ConnectorType;
use crate::store::offsets::JsonMap;

const KAFKA_TOPIC: &str = "kafka_topic";
const KAFKA_PARTITION: &str = "kafka_partition";
const KAFKA_OFFSET: &str = "kafka_offset";

/// What an alter request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum OffsetChanges {
    Source(Vec<(JsonMap, Option<JsonMap>)>),
    /// (topic, partition) → offset to commit, or none to delete.
    Sink(Vec<((String, i32), Option<i64>)>),
}

/// The request body's changes, or what is wrong with it (a 400).
pub fn parse(kind: ConnectorType, body: &Json) -> Result<OffsetChanges, String> {
    let entries = match body.get("offsets") {
        Some(Json::Array(list)) if !list.is_empty() => list,
        _ => return Err("Partitions / offsets need to be provided for an alter offsets request".into()),
    };
    let mut pairs = Vec::with_capacity(entries.len());
    for e in entries {
        let partition = match e.get("partition") {
            Some(Json::Object(p)) => p.clone(),
            _ => {
                return Err(format!(
                    "The partition for a {} connector offset cannot be null or missing",
                    kind.name()
                ));
            }
        };
        let offset = match e.get("offset") {
            None | Some(Json::Null) => None,
            Some(Json::Object(o)) => Some(o.clone()),
            Some(other) => {
                return Err(format!(
                    "The offset for a {} connector must be a JSON object or null, not {other}",
                    kind.name()
                ));
            }
        };
        pairs.push((partition, offset));
    }
    match kind {
        ConnectorType::Source => Ok(OffsetChanges::Source(pairs)),
        ConnectorType::Sink => pairs
            .into_iter()
            .map(|(p, o)| Ok((sink_partition(&p)?, o.map(|o| sink_offset(&o)).transpose()?)))
            .collect::<Result<_, String>>()
            .map(OffsetChanges::Sink),
    }
}

/// A JSON number, or a string holding one: Kafka accepts both `10` and `"10"`.
fn integer(v: &Json) -> Option<i64> {
    match v {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn sink_partition(p: &JsonMap) -> Result<(String, i32), String> {
    let (Some(topic), Some(partition)) = (p.get(KAFKA_TOPIC), p.get(KAFKA_PARTITION)) else {
        return Err(format!(
            "The partition for a sink connector offset must contain the keys '{KAFKA_TOPIC}' and '{KAFKA_PARTITION}'"
        ));
    };
    let topic = match topic {
        Json::String(t) if !t.is_empty() => t.clone(),
        _ => return Err("Kafka topic names must be valid strings and may not be null".into()),
    };
    if partition.is_null() {
        return Err("Kafka partitions must be valid numbers and may not be null".into());
    }
    let partition = integer(partition)
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            format!(
                "Failed to parse the following Kafka partition value in the provided offsets: '{}'. Partition values for sink connectors need to be integers.",
                text(partition)
            )
        })?;
    Ok((topic, partition))
}

fn sink_offset(o: &JsonMap) -> Result<i64, String> {
    let Some(offset) = o.get(KAFKA_OFFSET) else {
        return Err(format!(
            "The offset for a sink connector should either be null or contain the key '{KAFKA_OFFSET}'"
        ));
    };
    integer(offset).filter(|n| *n >= 0).ok_or_else(|| {
        format!(
            "Failed to parse the following Kafka offset value in the provided offsets: '{}'. Offset values for sink connectors need to be integers.",
            text(offset)
        )
    })
}

/// `GET …/offsets` for a sink: its group's committed offsets.
pub fn sink_json(committed: &BTreeMap<(String, i32), i64>) -> Json {
    let list: Vec<Json> = committed
        .iter()
        .map(|((t, p), o)| {
            json!({
                "partition": {KAFKA_TOPIC: t, KAFKA_PARTITION: p},
                "offset": {KAFKA_OFFSET: o},
            })
        })
        .collect();
    json!({ "offsets": list })
}

/// `GET …/offsets` for a source: what its tasks stored.
pub fn source_json(stored: &[(JsonMap, JsonMap)]) -> Json {
    let list: Vec<Json> = stored
        .iter()
        .map(|(p, o)| json!({"partition": p, "offset": o}))
        .collect();
    json!({ "offsets": list })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> Json {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn sink_bodies_take_numbers_or_numeric_strings() {
        let got = parse(
            ConnectorType::Sink,
            &body(r#"{"offsets":[
                {"partition":{"kafka_topic":"t","kafka_partition":0},"offset":{"kafka_offset":5}},
                {"partition":{"kafka_topic":"t","kafka_partition":"1"},"offset":{"kafka_offset":"7"}},
                {"partition":{"kafka_topic":"u","kafka_partition":2},"offset":null}]}"#),
        )
        .unwrap();
        assert_eq!(
            got,
            OffsetChanges::Sink(vec![
                (("t".into(), 0), Some(5)),
                (("t".into(), 1), Some(7)),
                (("u".into(), 2), None),
            ])
        );
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let cases = [
            (ConnectorType::Sink, r#"{}"#, "Partitions / offsets need to be provided"),
            (ConnectorType::Source, r#"{"offsets":[]}"#, "Partitions / offsets need to be provided"),
            (ConnectorType::Source, r#"{"offsets":[{"offset":{}}]}"#, "partition for a source connector offset cannot be null"),
            (ConnectorType::Sink, r#"{"offsets":[{"partition":{"kafka_topic":"t"},"offset":null}]}"#, "must contain the keys 'kafka_topic' and 'kafka_partition'"),
            (ConnectorType::Sink, r#"{"offsets":[{"partition":{"kafka_topic":null,"kafka_partition":0}}]}"#, "Kafka topic names must be valid strings"),
            (ConnectorType::Sink, r#"{"offsets":[{"partition":{"kafka_topic":"t","kafka_partition":null}}]}"#, "Kafka partitions must be valid numbers"),
            (ConnectorType::Sink, r#"{"offsets":[{"partition":{"kafka_topic":"t","kafka_partition":"x"}}]}"#, "Kafka partition value in the provided offsets: 'x'"),
            (ConnectorType::Sink, r#"{"offsets":[{"partition":{"kafka_topic":"t","kafka_partition":0},"offset":{"position":1}}]}"#, "should either be null or contain the key 'kafka_offset'"),
            (ConnectorType::Sink, r#"{"offsets":[{"partition":{"kafka_topic":"t","kafka_partition":0},"offset":{"kafka_offset":-3}}]}"#, "Kafka offset value in the provided offsets: '-3'"),
            (ConnectorType::Source, r#"{"offsets":[{"partition":{"f":"a"},"offset":12}]}"#, "must be a JSON object or null"),
        ];
        for (kind, b, want) in cases {
            let e = parse(kind, &body(b)).unwrap_err();
            assert!(e.contains(want), "{b}: {e}");
        }
    }

    #[test]
    fn source_changes_keep_the_connectors_own_maps() {
        let got = parse(
            ConnectorType::Source,
            &body(r#"{"offsets":[{"partition":{"filename":"/a"},"offset":{"position":3}},{"partition":{"filename":"/b"},"offset":null}]}"#),
        )
        .unwrap();
        let OffsetChanges::Source(pairs) = got else {
            panic!("a source change")
        };
        assert_eq!(pairs[0].1.as_ref().unwrap()["position"], 3);
        assert_eq!(pairs[1].1, None);
    }

    #[test]
    fn listings_in_kafkas_shape() {
        let committed = BTreeMap::from([(("t".to_string(), 3), 42)]);
        assert_eq!(
            sink_json(&committed),
            body(r#"{"offsets":[{"partition":{"kafka_topic":"t","kafka_partition":3},"offset":{"kafka_offset":42}}]}"#)
        );
    }
}

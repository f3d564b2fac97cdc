//! Source offsets, as Kafka's `OffsetStorageWriter` keys them: the key is
//! the JSON array `["<connector>", {source partition}]`, the value the
//! source offset's JSON object (null: forgotten).

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

pub type JsonMap = Map<String, Json>;

#[derive(Debug, Clone, Default)]
pub struct OffsetState {
    /// Per connector: source partition (as canonical JSON text) → offset.
    by_connector: BTreeMap<String, BTreeMap<String, (JsonMap, JsonMap)>>,
}

pub fn key(connector: &str, partition: &JsonMap) -> Vec<u8> {
    json!([connector, partition]).to_string().into_bytes()
}

pub fn value(offset: &JsonMap) -> Vec<u8> {
    Json::Object(offset.clone()).to_string().into_bytes()
}

impl OffsetState {
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Ok(Json::Array(parts)) = serde_json::from_slice::<Json>(key) else {
            return;
        };
        let [Json::String(connector), Json::Object(partition)] = parts.as_slice() else {
            return;
        };
        let id = Json::Object(partition.clone()).to_string();
        let offset = value.and_then(|v| match serde_json::from_slice::<Json>(v) {
            Ok(Json::Object(o)) => Some(o),
            _ => None,
        });
        let offsets = self.by_connector.entry(connector.clone()).or_default();
        match offset {
            Some(o) => {
                offsets.insert(id, (partition.clone(), o));
            }
            None => {
                offsets.remove(&id);
            }
        }
    }

    pub fn get(&self, connector: &str, partition: &JsonMap) -> Option<&JsonMap> {
        let id = Json::Object(partition.clone()).to_string();
        self.by_connector.get(connector)?.get(&id).map(|(_, o)| o)
    }

    /// Every (partition, offset) the connector has stored.
    pub fn of(&self, connector: &str) -> Vec<(JsonMap, JsonMap)> {
        self.by_connector
            .get(connector)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_keys_and_tombstones() {
        let mut s = OffsetState::default();
        let part: JsonMap = serde_json::from_str(r#"{"filename":"/tmp/a"}"#).unwrap();
        let off: JsonMap = serde_json::from_str(r#"{"position":42}"#).unwrap();
        let k = key("file-source", &part);
        assert_eq!(k, br#"["file-source",{"filename":"/tmp/a"}]"#);
        s.apply(&k, Some(&value(&off)));
        assert_eq!(s.get("file-source", &part), Some(&off));
        assert_eq!(s.of("file-source").len(), 1);
        s.apply(&k, None);
        assert_eq!(s.get("file-source", &part), None);
        s.apply(b"not json", Some(b"{}"));
    }
}

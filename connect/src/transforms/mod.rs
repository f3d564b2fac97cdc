//! TEMPORARY stand-in until the transforms land (helper's work replaces this file).
use std::collections::BTreeMap;

use crate::data::DataError;
use crate::plugin::PluginInfo;
use crate::record::ConnectRecord;

pub struct TransformChain;

impl TransformChain {
    pub fn from_config(
        config: &BTreeMap<String, String>,
    ) -> Result<TransformChain, Vec<(String, String)>> {
        match config.get("transforms") {
            Some(t) if !t.trim().is_empty() => Err(vec![(
                "transforms".into(),
                "transforms are not supported yet".into(),
            )]),
            _ => Ok(TransformChain),
        }
    }
    pub fn apply(&self, r: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        Ok(Some(r))
    }
    pub fn is_empty(&self) -> bool {
        true
    }
}

pub fn plugins() -> Vec<PluginInfo> {
    Vec::new()
}

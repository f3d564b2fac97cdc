//! The built-in connectors, found by Kafka's class name or an alias.

pub mod file;

use crate::connector::ConnectorPlugin;

pub fn all() -> Vec<ConnectorPlugin> {
    vec![file::SOURCE, file::SINK]
}

pub fn find(name: &str) -> Option<ConnectorPlugin> {
    all().into_iter().find(|p| p.answers_to(name))
}

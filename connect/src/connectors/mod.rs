//! The built-in connectors, found by Kafka's class name or an alias.

pub mod datagen;
pub mod file;
pub mod postgres;

use crate::connector::ConnectorPlugin;

pub fn all() -> Vec<ConnectorPlugin> {
    vec![
        file::SOURCE,
        file::SINK,
        datagen::SOURCE,
        postgres::SOURCE,
        postgres::SINK,
    ]
}

pub fn find(name: &str) -> Option<ConnectorPlugin> {
    all().into_iter().find(|p| p.answers_to(name))
}

/// Kafka's words for a connector class no plugin answers to.
pub fn unknown(name: &str) -> String {
    format!("Failed to find any class that implements Connector and which name matches {name}")
}

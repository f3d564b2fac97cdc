//! Kafka's client quota model (KIP-546): the entities a quota is set for
//! (a user, a client id, both, or an IP address — each by name or as the
//! default for all), the quota keys, and the filters
//! DescribeClientQuotas selects with. Here rather than in the broker
//! because admin clients build and read them too.

use std::fmt;

/// Kafka's entity type names on the wire.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// One part of an entity: a named user (client id, address) or the
/// default that applies to every one without its own quota.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum EntityName {
    Default,
    Named(String),
}

impl EntityName {
    /// From the wire, where the default is a null name.
    pub fn from_wire(name: Option<&str>) -> Self {
        name.map_or(EntityName::Default, |n| EntityName::Named(n.to_string()))
    }

    pub fn to_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(n) => Some(n),
        }
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityName::Default => f.write_str("<default>"),
            EntityName::Named(n) => f.write_str(n),
        }
    }
}

/// What a quota is set for. Kafka allows user, client-id, user with
/// client-id, and ip alone ([`QuotaEntity::validate`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct QuotaEntity {
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub user: Option<EntityName>,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub client_id: Option<EntityName>,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub ip: Option<EntityName>,
}

impl QuotaEntity {
    /// From the wire's (entity type, name) pairs; an unknown or repeated
    /// type is an error naming it.
    pub fn from_parts<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Self, String> {
        let mut entity = QuotaEntity::default();
        for (entity_type, name) in parts {
            let slot = match entity_type {
                USER => &mut entity.user,
                CLIENT_ID => &mut entity.client_id,
                IP => &mut entity.ip,
                other => return Err(format!("unknown client quota entity type {other:?}")),
            };
            if slot.is_some() {
                return Err(format!("entity type {entity_type} appears twice"));
            }
            *slot = Some(EntityName::from_wire(name));
        }
        Ok(entity)
    }

    /// The (entity type, name) pairs as the wire carries them.
    pub fn parts(&self) -> Vec<(&'static str, Option<&str>)> {
        [
            (USER, &self.user),
            (CLIENT_ID, &self.client_id),
            (IP, &self.ip),
        ]
        .into_iter()
        .filter_map(|(t, n)| n.as_ref().map(|n| (t, n.to_wire())))
        .collect()
    }

    /// Kafka's rules: one of user, client-id, user with client-id, or ip;
    /// no empty names. The keys such an entity may set come with it.
    pub fn validate(&self) -> Result<&'static [QuotaKey], String> {
        for (t, name) in self.parts() {
            if name == Some("") {
                return Err(format!("empty {t} name: name one, or use the default"));
            }
        }
        match (&self.user, &self.client_id, &self.ip) {
            (Some(_), _, None) | (None, Some(_), None) => Ok(QuotaKey::CLIENT_KEYS),
            (None, None, Some(ip)) => {
                if let EntityName::Named(ip) = ip
                    && ip.parse::<std::net::IpAddr>().is_err()
                {
                    return Err(format!("{ip:?} is not a valid IP address"));
                }
                Ok(&[QuotaKey::ConnectionCreationRate])
            }
            (None, None, None) => Err("empty client quota entity".into()),
            _ => Err(format!(
                "{self}: an ip quota cannot be combined with user or client-id"
            )),
        }
    }
}

impl fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (t, name) in [
            (USER, &self.user),
            (CLIENT_ID, &self.client_id),
            (IP, &self.ip),
        ] {
            if let Some(name) = name {
                if !first {
                    f.write_str(", ")?;
                }
                first = false;
                write!(f, "{t}={name}")?;
            }
        }
        if first {
            f.write_str("(no entity)")?;
        }
        Ok(())
    }
}

/// The quotas Kafka defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum QuotaKey {
    /// Bytes per second a user or client may produce.
    #[cfg_attr(feature = "serde", serde(rename = "producer_byte_rate"))]
    ProducerByteRate,
    /// Bytes per second a user or client may fetch.
    #[cfg_attr(feature = "serde", serde(rename = "consumer_byte_rate"))]
    ConsumerByteRate,
    /// Request-handling time, in percent of one thread.
    #[cfg_attr(feature = "serde", serde(rename = "request_percentage"))]
    RequestPercentage,
    /// Partitions created or deleted per second (KIP-599).
    #[cfg_attr(feature = "serde", serde(rename = "controller_mutation_rate"))]
    ControllerMutationRate,
    /// New connections per second from an address (KIP-612).
    #[cfg_attr(feature = "serde", serde(rename = "connection_creation_rate"))]
    ConnectionCreationRate,
}

impl QuotaKey {
    pub const ALL: &'static [QuotaKey] = &[
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::RequestPercentage,
        QuotaKey::ControllerMutationRate,
        QuotaKey::ConnectionCreationRate,
    ];

    /// The keys a user or client-id entity may set.
    pub const CLIENT_KEYS: &'static [QuotaKey] = &[
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::RequestPercentage,
        QuotaKey::ControllerMutationRate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
            QuotaKey::ControllerMutationRate => "controller_mutation_rate",
            QuotaKey::ConnectionCreationRate => "connection_creation_rate",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Kafka types the byte and connection rates as integers.
    fn whole(self) -> bool {
        matches!(
            self,
            QuotaKey::ProducerByteRate
                | QuotaKey::ConsumerByteRate
                | QuotaKey::ConnectionCreationRate
        )
    }

    /// A value this key may take: finite and positive (a zero rate would
    /// throttle for ever), whole for the integer-typed keys.
    pub fn check(self, value: f64) -> Result<QuotaValue, String> {
        if !value.is_finite() || value <= 0.0 {
            return Err(format!("{self} must be a positive number, not {value}"));
        }
        // Kafka's tolerance for a double that stands for a long.
        if self.whole() && (value - value.round()).abs() > 1e-6 {
            return Err(format!("{self} must be a whole number, not {value}"));
        }
        Ok(QuotaValue(value))
    }
}

impl fmt::Display for QuotaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A quota's value. Compared by bits so records and images can be `Eq`;
/// [`QuotaKey::check`] keeps NaN out.
#[derive(Debug, Clone, Copy, PartialOrd)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// How a DescribeClientQuotas component matches an entity type's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch {
    /// This name only (wire match type 0).
    Exactly(String),
    /// The default only (match type 1).
    Default,
    /// Any name or the default (match type 2).
    Any,
}

/// Wire codes of [`NameMatch`].
pub const MATCH_EXACT: i8 = 0;
pub const MATCH_DEFAULT: i8 = 1;
pub const MATCH_ANY: i8 = 2;

/// DescribeClientQuotas' filter: the entity must have each component's
/// type, named as it says; `strict` also refuses entities with other types.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuotaFilter {
    pub components: Vec<(String, NameMatch)>,
    pub strict: bool,
}

impl QuotaFilter {
    /// Refuses what Kafka refuses: unknown or repeated entity types.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = Vec::new();
        for (entity_type, _) in &self.components {
            if ![USER, CLIENT_ID, IP].contains(&entity_type.as_str()) {
                return Err(format!("unknown client quota entity type {entity_type:?}"));
            }
            if seen.contains(&entity_type) {
                return Err(format!(
                    "entity type {entity_type} appears twice in the filter"
                ));
            }
            seen.push(entity_type);
        }
        Ok(())
    }

    pub fn matches(&self, entity: &QuotaEntity) -> bool {
        let parts = entity.parts();
        let components_match = self.components.iter().all(|(wanted, how)| {
            parts
                .iter()
                .find(|(t, _)| t == wanted)
                .is_some_and(|(_, name)| match how {
                    NameMatch::Exactly(n) => *name == Some(n.as_str()),
                    NameMatch::Default => name.is_none(),
                    NameMatch::Any => true,
                })
        });
        components_match
            && (!self.strict
                || parts
                    .iter()
                    .all(|(t, _)| self.components.iter().any(|(c, _)| c == t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(&str, Option<&str>)]) -> QuotaEntity {
        QuotaEntity::from_parts(parts.iter().copied()).unwrap()
    }

    #[test]
    fn entities_allow_kafkas_combinations_only() {
        let ok = |parts: &[(&str, Option<&str>)]| entity(parts).validate().is_ok();
        assert!(ok(&[(USER, Some("alice"))]));
        assert!(ok(&[(USER, None)]));
        assert!(ok(&[(CLIENT_ID, Some("app"))]));
        assert!(ok(&[(USER, Some("alice")), (CLIENT_ID, None)]));
        assert!(ok(&[(IP, Some("10.0.0.1"))]));
        assert!(ok(&[(IP, None)]));
        assert!(!ok(&[]));
        assert!(!ok(&[(IP, Some("10.0.0.1")), (USER, Some("alice"))]));
        assert!(!ok(&[(IP, Some("not-an-address"))]));
        assert!(!ok(&[(USER, Some(""))]));
        assert!(QuotaEntity::from_parts([(USER, None), (USER, Some("a"))]).is_err());
        assert!(QuotaEntity::from_parts([("group", None)]).is_err());
    }

    #[test]
    fn keys_depend_on_the_entity_and_values_on_the_key() {
        let user = entity(&[(USER, Some("alice"))]).validate().unwrap();
        assert!(user.contains(&QuotaKey::ProducerByteRate));
        assert!(!user.contains(&QuotaKey::ConnectionCreationRate));
        let ip = entity(&[(IP, None)]).validate().unwrap();
        assert_eq!(ip, &[QuotaKey::ConnectionCreationRate]);

        assert!(QuotaKey::ProducerByteRate.check(1024.0).is_ok());
        assert!(QuotaKey::ProducerByteRate.check(1024.5).is_err());
        assert!(QuotaKey::RequestPercentage.check(12.5).is_ok());
        assert!(QuotaKey::RequestPercentage.check(0.0).is_err());
        assert!(QuotaKey::RequestPercentage.check(-1.0).is_err());
        assert!(QuotaKey::RequestPercentage.check(f64::NAN).is_err());
        assert_eq!(
            QuotaKey::parse("consumer_byte_rate"),
            Some(QuotaKey::ConsumerByteRate)
        );
        assert_eq!(QuotaKey::parse("consumer-byte-rate"), None);
    }

    #[test]
    fn filters_match_as_kafka_documents() {
        let alice = entity(&[(USER, Some("alice"))]);
        let alice_app = entity(&[(USER, Some("alice")), (CLIENT_ID, Some("app"))]);
        let default_user = entity(&[(USER, None)]);
        let filter = |components: Vec<(&str, NameMatch)>, strict| QuotaFilter {
            components: components
                .into_iter()
                .map(|(t, m)| (t.to_string(), m))
                .collect(),
            strict,
        };

        let exact = filter(vec![(USER, NameMatch::Exactly("alice".into()))], false);
        assert!(exact.matches(&alice));
        assert!(exact.matches(&alice_app), "not strict: other types allowed");
        assert!(!exact.matches(&default_user));

        let strict = filter(vec![(USER, NameMatch::Exactly("alice".into()))], true);
        assert!(strict.matches(&alice));
        assert!(!strict.matches(&alice_app));

        let default = filter(vec![(USER, NameMatch::Default)], false);
        assert!(default.matches(&default_user));
        assert!(!default.matches(&alice));

        let any = filter(vec![(USER, NameMatch::Any)], false);
        assert!(any.matches(&alice) && any.matches(&default_user));
        assert!(!any.matches(&entity(&[(CLIENT_ID, Some("app"))])));

        let everything = filter(vec![], false);
        assert!(everything.matches(&alice_app));
        assert!(
            filter(vec![("group", NameMatch::Any)], false)
                .validate()
                .is_err()
        );
        assert!(
            filter(
                vec![(USER, NameMatch::Any), (USER, NameMatch::Default)],
                false
            )
            .validate()
            .is_err()
        );
    }
}

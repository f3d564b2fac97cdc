//! Kafka's ACL model (KIP-11, with KIP-290's prefixed patterns): what an
//! ACL binds, and the filters DescribeAcls and DeleteAcls select with.
//! Here rather than in the broker because clients build and read them too,
//! as Kafka's `org.apache.kafka.common.acl` lives in kafka-clients.
//!
//! Codes are Kafka's wire codes; names are Kafka's (`TOPIC`, `LITERAL`,
//! `DESCRIBE_CONFIGS`, …) and parse case-insensitively, with `-` or `_`.

use std::fmt;

/// The one name a CLUSTER resource has.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal resource name or host matching every one.
pub const WILDCARD: &str = "*";
/// A principal matching every user.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// Defines an enum of Kafka codes with its code and name in one table, so
/// the code, the name and parsing cannot drift apart.
macro_rules! kafka_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub enum $name {
            $(#[cfg_attr(feature = "serde", serde(rename = $text))] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code,)+ }
            }

            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }

            /// Kafka's name, as its tools print it.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            /// Parses Kafka's name in any case, with `-` for `_`
            /// (`transactional-id`, `Describe_Configs`).
            pub fn parse(text: &str) -> Option<Self> {
                let wanted = text.trim().replace('-', "_").to_ascii_uppercase();
                let squashed = wanted.replace('_', "");
                Self::ALL.iter().copied().find(|v| {
                    v.name() == wanted || v.name().replace('_', "") == squashed
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

kafka_enum!(
    /// What an ACL protects.
    ResourceType {
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

kafka_enum!(
    /// How an ACL's resource name matches: exactly (`*` matching all), or
    /// as a prefix.
    PatternType {
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

kafka_enum!(
    /// What a principal may do. `All` stands for every operation.
    Operation {
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
);

kafka_enum!(
    /// Whether a matching ACL grants or refuses.
    Permission {
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// Kafka's code for "any" in filters (resource type, pattern type,
/// operation, permission).
pub const ANY_CODE: i8 = 1;
/// Kafka's code for the MATCH pattern type in filters.
pub const MATCH_CODE: i8 = 2;

impl Operation {
    /// The operations an ALLOW for `self` grants besides itself (Kafka's
    /// implied operations): Read, Write, Delete and Alter each let a
    /// principal Describe, and AlterConfigs lets it DescribeConfigs.
    pub fn implied(self) -> &'static [Operation] {
        match self {
            Operation::Read | Operation::Write | Operation::Delete | Operation::Alter => {
                &[Operation::Describe]
            }
            Operation::AlterConfigs => &[Operation::DescribeConfigs],
            _ => &[],
        }
    }

    /// The operations Kafka lets an ACL on `resource` name (others are
    /// accepted by Kafka too but never consulted; listing them keeps
    /// "authorized operations" answers exact).
    pub fn applicable_to(resource: ResourceType) -> &'static [Operation] {
        use Operation::*;
        match resource {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Delete, Describe],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
                CreateTokens,
                DescribeTokens,
            ],
            ResourceType::TransactionalId => &[Describe, Write, TwoPhaseCommit],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
        }
    }
}

/// A resource an ACL applies to: one name, all names (`*`, literal), or
/// all names with a prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
}

impl ResourcePattern {
    pub fn literal(resource_type: ResourceType, name: impl Into<String>) -> Self {
        ResourcePattern {
            resource_type,
            name: name.into(),
            pattern_type: PatternType::Literal,
        }
    }

    pub fn prefixed(resource_type: ResourceType, prefix: impl Into<String>) -> Self {
        ResourcePattern {
            resource_type,
            name: prefix.into(),
            pattern_type: PatternType::Prefixed,
        }
    }

    /// Whether this pattern covers the resource `name` of its type.
    pub fn covers(&self, name: &str) -> bool {
        match self.pattern_type {
            PatternType::Literal => self.name == name || self.name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&self.name),
        }
    }
}

/// One ACL: `principal` from `host` is allowed or denied `operation` on
/// the resources `pattern` covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    /// `Type:name`, as Kafka spells principals (`User:alice`, `User:*`).
    pub principal: String,
    /// A client address, or `*` for any.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Why Kafka would refuse to store this ACL, if it would.
    pub fn validate(&self) -> Result<(), String> {
        if self.pattern.name.is_empty() {
            return Err("Invalid empty resource name".into());
        }
        if self.pattern.resource_type == ResourceType::Cluster && self.pattern.name != CLUSTER_NAME
        {
            return Err(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        validate_principal(&self.principal)?;
        if self.host.is_empty() {
            return Err("Invalid empty host: use * for any host".into());
        }
        Ok(())
    }
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // kafka-acls.sh's shape.
        write!(
            f,
            "(principal={}, host={}, operation={}, permissionType={}) on ResourcePattern(resourceType={}, name={}, patternType={})",
            self.principal,
            self.host,
            self.operation,
            self.permission,
            self.pattern.resource_type,
            self.pattern.name,
            self.pattern.pattern_type
        )
    }
}

/// A principal must be `Type:name` with both parts non-empty.
pub fn validate_principal(principal: &str) -> Result<(), String> {
    match principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(()),
        _ => Err(format!(
            "Invalid principal {principal:?}: expected Type:name, e.g. User:alice"
        )),
    }
}

/// How a filter selects by resource pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PatternFilter {
    /// Any pattern type; the name, if given, compared as written.
    Any,
    /// The ACLs that apply to the named resource: its literal name, the
    /// literal wildcard, and every prefix of it (all of them when no name).
    Match,
    /// One pattern type; the name, if given, compared as written.
    Exactly(PatternType),
}

impl PatternFilter {
    pub fn code(self) -> i8 {
        match self {
            PatternFilter::Any => ANY_CODE,
            PatternFilter::Match => MATCH_CODE,
            PatternFilter::Exactly(p) => p.code(),
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            ANY_CODE => Some(PatternFilter::Any),
            MATCH_CODE => Some(PatternFilter::Match),
            c => PatternType::from_code(c).map(PatternFilter::Exactly),
        }
    }
}

/// What DescribeAcls and DeleteAcls select: every `None` matches anything.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// The filter every ACL matches.
    pub fn any() -> Self {
        AclFilter {
            resource_type: None,
            name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    /// The filter matching exactly `binding` (as kafka-acls.sh --remove
    /// builds one per ACL it names).
    pub fn exactly(binding: &AclBinding) -> Self {
        AclFilter {
            resource_type: Some(binding.pattern.resource_type),
            name: Some(binding.pattern.name.clone()),
            pattern: PatternFilter::Exactly(binding.pattern.pattern_type),
            principal: Some(binding.principal.clone()),
            host: Some(binding.host.clone()),
            operation: Some(binding.operation),
            permission: Some(binding.permission),
        }
    }

    pub fn matches(&self, acl: &AclBinding) -> bool {
        fn same<T: PartialEq>(wanted: &Option<T>, got: &T) -> bool {
            wanted.as_ref().is_none_or(|w| w == got)
        }
        let p = &acl.pattern;
        let pattern_matches = match self.pattern {
            PatternFilter::Any => same(&self.name, &p.name),
            PatternFilter::Exactly(t) => t == p.pattern_type && same(&self.name, &p.name),
            PatternFilter::Match => self.name.as_ref().is_none_or(|n| p.covers(n)),
        };
        same(&self.resource_type, &p.resource_type)
            && pattern_matches
            && same(&self.principal, &acl.principal)
            && same(&self.host, &acl.host)
            && same(&self.operation, &acl.operation)
            && same(&self.permission, &acl.permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(pattern: ResourcePattern, principal: &str, op: Operation) -> AclBinding {
        AclBinding {
            pattern,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn names_and_codes_are_kafkas() {
        assert_eq!(ResourceType::TransactionalId.code(), 5);
        assert_eq!(Operation::DescribeConfigs.code(), 10);
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert_eq!(Permission::Allow.code(), 3);
        assert_eq!(
            ResourceType::parse("transactional-id"),
            Some(ResourceType::TransactionalId)
        );
        assert_eq!(
            ResourceType::parse("TransactionalId"),
            Some(ResourceType::TransactionalId)
        );
        assert_eq!(
            Operation::parse("Describe_Configs"),
            Some(Operation::DescribeConfigs)
        );
        assert_eq!(
            Operation::parse("idempotentwrite"),
            Some(Operation::IdempotentWrite)
        );
        assert_eq!(Operation::parse("any"), None);
        for op in Operation::ALL {
            assert_eq!(Operation::from_code(op.code()), Some(*op));
            assert_eq!(Operation::parse(op.name()), Some(*op));
        }
        assert_eq!(PatternFilter::from_code(2), Some(PatternFilter::Match));
        assert_eq!(PatternFilter::from_code(0), None);
    }

    #[test]
    fn filters_select_as_kafkas_do() {
        use ResourceType::Topic;
        let exact = acl(
            ResourcePattern::literal(Topic, "orders"),
            "User:alice",
            Operation::Read,
        );
        let wildcard = acl(
            ResourcePattern::literal(Topic, "*"),
            "User:bob",
            Operation::Write,
        );
        let prefix = acl(
            ResourcePattern::prefixed(Topic, "ord"),
            "User:alice",
            Operation::Read,
        );
        let other = acl(
            ResourcePattern::prefixed(Topic, "pay"),
            "User:alice",
            Operation::Read,
        );
        let all = [&exact, &wildcard, &prefix, &other];
        let selected = |f: &AclFilter| {
            all.iter()
                .filter(|a| f.matches(a))
                .map(|a| (*a).clone())
                .collect::<Vec<_>>()
        };

        let mut matching = AclFilter::any();
        matching.name = Some("orders".into());
        matching.pattern = PatternFilter::Match;
        assert_eq!(
            selected(&matching),
            vec![exact.clone(), wildcard.clone(), prefix.clone()]
        );

        let mut any_named = AclFilter::any();
        any_named.name = Some("orders".into());
        assert_eq!(selected(&any_named), vec![exact.clone()]);

        let mut prefixed_only = AclFilter::any();
        prefixed_only.pattern = PatternFilter::Exactly(PatternType::Prefixed);
        prefixed_only.principal = Some("User:alice".into());
        assert_eq!(
            selected(&prefixed_only),
            vec![prefix.clone(), other.clone()]
        );

        assert_eq!(
            selected(&AclFilter::exactly(&wildcard)),
            vec![wildcard.clone()]
        );
        let mut writes = AclFilter::any();
        writes.operation = Some(Operation::Write);
        assert_eq!(selected(&writes), vec![wildcard]);
    }

    #[test]
    fn invalid_bindings_are_named() {
        let mut b = acl(
            ResourcePattern::literal(ResourceType::Cluster, "other"),
            "User:alice",
            Operation::Alter,
        );
        assert!(b.validate().unwrap_err().contains(CLUSTER_NAME));
        b.pattern.name = CLUSTER_NAME.into();
        assert_eq!(b.validate(), Ok(()));
        b.principal = "alice".into();
        assert!(b.validate().unwrap_err().contains("Invalid principal"));
        b.principal = "User:alice".into();
        b.pattern = ResourcePattern::literal(ResourceType::Topic, "");
        assert!(b.validate().unwrap_err().contains("empty resource name"));
    }
}

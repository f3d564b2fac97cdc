//! Authorization by Kafka's ACL model (KIP-11, KIP-290, KIP-679), as a pure
//! decision over an indexed ACL set ([`AclIndex`], [`decide`]) and a thin
//! per-request shell ([`Access`]) that finds the current index, logs
//! denials once and answers handlers' questions.
//!
//! The rules, as Kafka's StandardAuthorizer applies them:
//! - a super user may do anything;
//! - the ACLs that apply to a resource are those on its literal name, on the
//!   literal wildcard `*`, and on every prefix of its name, for the
//!   principal or `User:*`, from the client's host or `*`;
//! - a DENY for the operation (or ALL) wins over any ALLOW;
//! - an ALLOW for the operation or ALL grants it, and an ALLOW for Read,
//!   Write, Delete or Alter also grants Describe (AlterConfigs grants
//!   DescribeConfigs);
//! - a resource no ACL applies to at all is allowed only with
//!   `allow.everyone.if.no.acl.found`.

mod access;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use weir_client::acl::{
    AclBinding, Operation, PatternType, Permission, ResourceType, WILDCARD, WILDCARD_PRINCIPAL,
};

pub use access::{Access, Authorizer};

/// Kafka's authorizer class names; either turns ACLs on.
pub const AUTHORIZER_CLASS_NAMES: &[&str] = &[
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

/// How the broker authorizes, from its config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// Off (no `authorizer.class.name`): every request is allowed and the
    /// ACL APIs answer SECURITY_DISABLED, as Kafka does.
    pub enabled: bool,
    /// `super.users`: principals allowed everything.
    pub super_users: BTreeSet<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_if_no_acl: bool,
}

/// One ACL as the index keeps it under its resource pattern.
#[derive(Debug, Clone)]
struct Entry {
    principal: String,
    /// `None`: any host (`*`). An unparsable host matches no client.
    host: Option<Option<IpAddr>>,
    operation: Operation,
    permission: Permission,
}

impl Entry {
    fn of(acl: &AclBinding) -> Self {
        Entry {
            principal: acl.principal.clone(),
            host: (acl.host != WILDCARD).then(|| acl.host.parse().ok()),
            operation: acl.operation,
            permission: acl.permission,
        }
    }

    fn applies_to(&self, principal: &str, host: IpAddr) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && self.host.is_none_or(|h| h == Some(host))
    }
}

/// The ACLs of one resource type, keyed for lookup by name.
#[derive(Debug, Default)]
struct TypeIndex {
    /// Literal names, the wildcard `*` among them.
    literal: HashMap<String, Vec<Entry>>,
    prefixed: HashMap<String, Vec<Entry>>,
    /// The distinct prefix lengths present (bytes), so a lookup tries only
    /// those instead of every prefix of the name.
    prefix_lengths: Vec<usize>,
}

/// An ACL set indexed by resource type, pattern and name.
#[derive(Debug, Default)]
pub struct AclIndex {
    source: Arc<BTreeSet<AclBinding>>,
    types: HashMap<ResourceType, TypeIndex>,
}

impl AclIndex {
    pub fn build(acls: &Arc<BTreeSet<AclBinding>>) -> Self {
        let mut types: HashMap<ResourceType, TypeIndex> = HashMap::new();
        for acl in acls.iter() {
            let t = types.entry(acl.pattern.resource_type).or_default();
            let by_name = match acl.pattern.pattern_type {
                PatternType::Literal => &mut t.literal,
                PatternType::Prefixed => &mut t.prefixed,
            };
            by_name
                .entry(acl.pattern.name.clone())
                .or_default()
                .push(Entry::of(acl));
        }
        for t in types.values_mut() {
            let lengths: BTreeSet<usize> = t.prefixed.keys().map(String::len).collect();
            t.prefix_lengths = lengths.into_iter().collect();
        }
        AclIndex {
            source: acls.clone(),
            types,
        }
    }

    /// Whether this index was built from exactly `acls` (the same shared set).
    pub fn is_of(&self, acls: &Arc<BTreeSet<AclBinding>>) -> bool {
        Arc::ptr_eq(&self.source, acls)
    }

    /// Every ACL that applies to the resource, whoever it names.
    fn applying<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        let t = self.types.get(&resource_type);
        let literal = t.into_iter().flat_map(move |t| {
            let exact = t.literal.get(name).into_iter().flatten();
            let wildcard = (name != WILDCARD)
                .then(|| t.literal.get(WILDCARD))
                .flatten()
                .into_iter()
                .flatten();
            exact.chain(wildcard)
        });
        let prefixed = t.into_iter().flat_map(move |t| {
            t.prefix_lengths
                .iter()
                .filter_map(move |&len| name.get(..len))
                .filter_map(move |prefix| t.prefixed.get(prefix))
                .flatten()
        });
        literal.chain(prefixed)
    }
}

/// Whether `principal` from `host` may perform `operation` on the resource.
pub fn decide(
    config: &AuthorizerConfig,
    index: &AclIndex,
    principal: &str,
    host: IpAddr,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    if config.super_users.contains(principal) {
        return true;
    }
    let mut any_acl = false;
    let mut allowed = false;
    for e in index.applying(resource_type, name) {
        any_acl = true;
        if !e.applies_to(principal, host) {
            continue;
        }
        let names_it = e.operation == operation || e.operation == Operation::All;
        match e.permission {
            Permission::Deny if names_it => return false,
            Permission::Allow if names_it || e.operation.implied().contains(&operation) => {
                allowed = true
            }
            _ => {}
        }
    }
    if !any_acl {
        return config.allow_if_no_acl;
    }
    allowed
}

/// Whether `principal` from `host` may perform `operation` on at least one
/// resource of the type (KIP-679's authorizeByResourceType, which lets a
/// producer with Write on some topic be idempotent): some ALLOW names it
/// that no DENY covers entirely.
pub fn decide_any(
    config: &AuthorizerConfig,
    index: &AclIndex,
    principal: &str,
    host: IpAddr,
    operation: Operation,
    resource_type: ResourceType,
) -> bool {
    if config.super_users.contains(principal) {
        return true;
    }
    let Some(t) = index.types.get(&resource_type) else {
        return config.allow_if_no_acl;
    };
    let relevant = |e: &Entry, permission| {
        e.permission == permission
            && e.applies_to(principal, host)
            && (e.operation == operation || e.operation == Operation::All)
    };
    let patterns = |permission| {
        let literal = t
            .literal
            .iter()
            .filter(move |(_, es)| es.iter().any(|e| relevant(e, permission)))
            .map(|(n, _)| (PatternType::Literal, n.as_str()));
        let prefixed = t
            .prefixed
            .iter()
            .filter(move |(_, es)| es.iter().any(|e| relevant(e, permission)))
            .map(|(n, _)| (PatternType::Prefixed, n.as_str()));
        literal.chain(prefixed)
    };
    let denied: Vec<(PatternType, &str)> = patterns(Permission::Deny).collect();
    let covered = |(kind, name): (PatternType, &str)| {
        denied
            .iter()
            .any(|&(deny_kind, deny_name)| match deny_kind {
                PatternType::Literal => {
                    deny_name == WILDCARD || (kind == deny_kind && deny_name == name)
                }
                PatternType::Prefixed => name.starts_with(deny_name),
            })
    };
    patterns(Permission::Allow).any(|p| !covered(p))
}

/// Kafka's bit field of the operations allowed on a resource (Metadata's
/// and DescribeGroups' `authorized_operations`): bit `code` per operation.
pub fn authorized_operations(
    config: &AuthorizerConfig,
    index: &AclIndex,
    principal: &str,
    host: IpAddr,
    resource_type: ResourceType,
    name: &str,
) -> i32 {
    Operation::applicable_to(resource_type)
        .iter()
        .filter(|&&op| decide(config, index, principal, host, op, resource_type, name))
        .fold(0, |bits, op| bits | 1 << op.code())
}

/// `super.users`: principals separated by `;`.
pub fn parse_super_users(value: &str) -> Result<BTreeSet<String>, String> {
    value
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| weir_client::acl::validate_principal(p).map(|()| p.to_owned()))
        .collect()
}

/// `authorizer.class.name`: empty (off) or one of Kafka's authorizers.
pub fn parse_authorizer_class(value: &str) -> Result<bool, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(false);
    }
    if AUTHORIZER_CLASS_NAMES.contains(&value) || value == "StandardAuthorizer" {
        return Ok(true);
    }
    Err(format!(
        "unknown authorizer; expected {} (or empty for none)",
        AUTHORIZER_CLASS_NAMES.join(" or ")
    ))
}

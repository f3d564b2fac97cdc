//! ACLs, as `kafka-acls.sh` manages them: CreateAcls, DescribeAcls and
//! DeleteAcls (KIP-11, with KIP-290's prefixed patterns). The model is
//! [`crate::acl`]; this module only puts it on the wire and back.
//!
//! Versions are negotiated per connection like every other admin call
//! (`Connection::send`). kafka-protocol implements these APIs from v1 (the
//! first with a pattern type; Kafka 4.0 dropped v0), so there is no
//! literal-only v0 to fall back to: a broker offering only v0 is answered
//! with [`Error::UnsupportedVersion`] naming the API and both ranges.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{
    CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::Admin;
use crate::acl::{
    ANY_CODE, AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission,
    ResourcePattern, ResourceType,
};
use crate::error::{Error, Result, check};
use crate::util::sb;

impl Admin {
    /// Creates `bindings` with one CreateAcls; one outcome per binding, in
    /// order. A binding Kafka would refuse ([`AclBinding::validate`]) is
    /// not sent and gets [`Error::Config`]; one the broker refuses gets its
    /// error, naming the ACL.
    pub async fn create_acls(
        &self,
        bindings: &[AclBinding],
    ) -> Result<Vec<std::result::Result<(), Error>>> {
        let mut outcomes: Vec<std::result::Result<(), Error>> = bindings
            .iter()
            .map(|b| {
                b.validate()
                    .map_err(|why| Error::Config(format!("ACL {b}: {why}")))
            })
            .collect();
        let sent: Vec<usize> = (0..bindings.len())
            .filter(|&i| outcomes[i].is_ok())
            .collect();
        if sent.is_empty() {
            return Ok(outcomes);
        }
        let req = CreateAclsRequest::default()
            .with_creations(sent.iter().map(|&i| acl_creation(&bindings[i])).collect());
        let resp = self.cluster.controller().await?.send(&req).await?;
        for (n, &i) in sent.iter().enumerate() {
            outcomes[i] = creation_outcome(resp.results.get(n), &bindings[i]);
        }
        Ok(outcomes)
    }

    /// Every ACL `filter` selects, in the broker's order (grouped by
    /// resource).
    pub async fn describe_acls(&self, filter: &AclFilter) -> Result<Vec<AclBinding>> {
        let conn = self.cluster.any().await?;
        let resp = conn.send(&describe_acls_request(filter)).await?;
        check(resp.error_code, resp.error_message.as_ref(), || {
            "describe ACLs".to_string()
        })?;
        bindings_from_describe(&resp).map_err(|reason| Error::Protocol {
            addr: conn.addr().to_string(),
            reason,
        })
    }

    /// Deletes the ACLs each of `filters` selects, with one DeleteAcls; one
    /// outcome per filter, in order: the ACLs it deleted, or why not.
    pub async fn delete_acls(
        &self,
        filters: &[AclFilter],
    ) -> Result<Vec<std::result::Result<Vec<AclBinding>, Error>>> {
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        let req =
            DeleteAclsRequest::default().with_filters(filters.iter().map(delete_filter).collect());
        let conn = self.cluster.controller().await?;
        let resp = conn.send(&req).await?;
        Ok(filters
            .iter()
            .enumerate()
            .map(|(n, f)| deletion_outcome(resp.filter_results.get(n), f, conn.addr()))
            .collect())
    }
}

fn opt_sb(s: &Option<String>) -> Option<StrBytes> {
    s.as_deref().map(sb)
}

pub(crate) fn acl_creation(b: &AclBinding) -> AclCreation {
    AclCreation::default()
        .with_resource_type(b.pattern.resource_type.code())
        .with_resource_name(sb(&b.pattern.name))
        .with_resource_pattern_type(b.pattern.pattern_type.code())
        .with_principal(sb(&b.principal))
        .with_host(sb(&b.host))
        .with_operation(b.operation.code())
        .with_permission_type(b.permission.code())
}

/// A filter's wire codes: `ANY_CODE` for a `None` type, operation or
/// permission.
fn filter_codes(f: &AclFilter) -> (i8, i8, i8, i8) {
    (
        f.resource_type.map_or(ANY_CODE, ResourceType::code),
        f.pattern.code(),
        f.operation.map_or(ANY_CODE, Operation::code),
        f.permission.map_or(ANY_CODE, Permission::code),
    )
}

pub(crate) fn describe_acls_request(f: &AclFilter) -> DescribeAclsRequest {
    let (resource_type, pattern, operation, permission) = filter_codes(f);
    DescribeAclsRequest::default()
        .with_resource_type_filter(resource_type)
        .with_resource_name_filter(opt_sb(&f.name))
        .with_pattern_type_filter(pattern)
        .with_principal_filter(opt_sb(&f.principal))
        .with_host_filter(opt_sb(&f.host))
        .with_operation(operation)
        .with_permission_type(permission)
}

pub(crate) fn delete_filter(f: &AclFilter) -> DeleteAclsFilter {
    let (resource_type, pattern, operation, permission) = filter_codes(f);
    DeleteAclsFilter::default()
        .with_resource_type_filter(resource_type)
        .with_resource_name_filter(opt_sb(&f.name))
        .with_pattern_type_filter(pattern)
        .with_principal_filter(opt_sb(&f.principal))
        .with_host_filter(opt_sb(&f.host))
        .with_operation(operation)
        .with_permission_type(permission)
}

/// An ACL from a response's codes; an unknown code is named.
struct WireAcl<'a> {
    resource_type: i8,
    name: &'a StrBytes,
    pattern_type: i8,
    principal: &'a StrBytes,
    host: &'a StrBytes,
    operation: i8,
    permission: i8,
}

impl WireAcl<'_> {
    fn decode(&self) -> std::result::Result<AclBinding, String> {
        fn known<T>(what: &str, code: i8, v: Option<T>) -> std::result::Result<T, String> {
            v.ok_or_else(|| format!("unknown ACL {what} code {code}"))
        }
        Ok(AclBinding {
            pattern: ResourcePattern {
                resource_type: known(
                    "resource type",
                    self.resource_type,
                    ResourceType::from_code(self.resource_type),
                )?,
                name: self.name.to_string(),
                pattern_type: known(
                    "pattern type",
                    self.pattern_type,
                    PatternType::from_code(self.pattern_type),
                )?,
            },
            principal: self.principal.to_string(),
            host: self.host.to_string(),
            operation: known(
                "operation",
                self.operation,
                Operation::from_code(self.operation),
            )?,
            permission: known(
                "permission type",
                self.permission,
                Permission::from_code(self.permission),
            )?,
        })
    }
}

/// The ACLs of a DescribeAcls answer, resource by resource.
pub(crate) fn bindings_from_describe(
    resp: &DescribeAclsResponse,
) -> std::result::Result<Vec<AclBinding>, String> {
    let mut out = Vec::new();
    for r in &resp.resources {
        for a in &r.acls {
            out.push(
                WireAcl {
                    resource_type: r.resource_type,
                    name: &r.resource_name,
                    pattern_type: r.pattern_type,
                    principal: &a.principal,
                    host: &a.host,
                    operation: a.operation,
                    permission: a.permission_type,
                }
                .decode()
                .map_err(|e| format!("{e} in DescribeAcls response"))?,
            );
        }
    }
    Ok(out)
}

/// A filter in kafka-acls.sh's words, `ANY` for what it leaves open.
fn filter_text(f: &AclFilter) -> String {
    fn or_any<T: std::fmt::Display>(v: &Option<T>) -> String {
        v.as_ref().map_or("ANY".to_string(), T::to_string)
    }
    let pattern = match f.pattern {
        PatternFilter::Any => "ANY".to_string(),
        PatternFilter::Match => "MATCH".to_string(),
        PatternFilter::Exactly(p) => p.to_string(),
    };
    format!(
        "(resourceType={}, name={}, patternType={pattern}, principal={}, host={}, operation={}, permissionType={})",
        or_any(&f.resource_type),
        or_any(&f.name),
        or_any(&f.principal),
        or_any(&f.host),
        or_any(&f.operation),
        or_any(&f.permission),
    )
}

fn creation_outcome(
    result: Option<&AclCreationResult>,
    b: &AclBinding,
) -> std::result::Result<(), Error> {
    let r = result.ok_or_else(|| Error::Other(format!("no answer for ACL {b}")))?;
    check(r.error_code, r.error_message.as_ref(), || {
        format!("create ACL {b}")
    })
}

/// What one filter deleted; an error on the filter or on any ACL it
/// matched fails it (naming the first ACL that was not deleted and how
/// many others were).
fn deletion_outcome(
    result: Option<&DeleteAclsFilterResult>,
    filter: &AclFilter,
    addr: &str,
) -> std::result::Result<Vec<AclBinding>, Error> {
    let r = result.ok_or_else(|| {
        Error::Other(format!(
            "no answer for ACLs matching {}",
            filter_text(filter)
        ))
    })?;
    check(r.error_code, r.error_message.as_ref(), || {
        format!("delete ACLs matching {}", filter_text(filter))
    })?;
    let mut deleted = Vec::with_capacity(r.matching_acls.len());
    let mut failed = None;
    for m in &r.matching_acls {
        let b = WireAcl {
            resource_type: m.resource_type,
            name: &m.resource_name,
            pattern_type: m.pattern_type,
            principal: &m.principal,
            host: &m.host,
            operation: m.operation,
            permission: m.permission_type,
        }
        .decode()
        .map_err(|e| Error::Protocol {
            addr: addr.to_string(),
            reason: format!("{e} in DeleteAcls response"),
        })?;
        if m.error_code == 0 {
            deleted.push(b);
        } else if failed.is_none() {
            failed = Some((m, b));
        }
    }
    match failed {
        None => Ok(deleted),
        Some((m, b)) => Err(Error::kafka(
            m.error_code,
            m.error_message.as_ref().map(|s| s.to_string()),
            format!(
                "delete ACL {b} ({} other matching ACLs deleted)",
                deleted.len()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::create_acls_response::AclCreationResult;
    use kafka_protocol::messages::delete_acls_response::DeleteAclsMatchingAcl;
    use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;
    use crate::acl::MATCH_CODE;

    fn binding(pattern: ResourcePattern, principal: &str, op: Operation) -> AclBinding {
        AclBinding {
            pattern,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: Permission::Allow,
        }
    }

    /// A DescribeAcls answer holding `bindings`, one resource per pattern,
    /// as a broker groups them.
    fn describe_response(bindings: &[AclBinding]) -> DescribeAclsResponse {
        let mut resources: Vec<DescribeAclsResource> = Vec::new();
        for b in bindings {
            let acl = AclDescription::default()
                .with_principal(sb(&b.principal))
                .with_host(sb(&b.host))
                .with_operation(b.operation.code())
                .with_permission_type(b.permission.code());
            let p = &b.pattern;
            match resources.iter_mut().find(|r| {
                r.resource_type == p.resource_type.code()
                    && r.resource_name.as_str() == p.name
                    && r.pattern_type == p.pattern_type.code()
            }) {
                Some(r) => r.acls.push(acl),
                None => resources.push(
                    DescribeAclsResource::default()
                        .with_resource_type(p.resource_type.code())
                        .with_resource_name(sb(&p.name))
                        .with_pattern_type(p.pattern_type.code())
                        .with_acls(vec![acl]),
                ),
            }
        }
        DescribeAclsResponse::default().with_resources(resources)
    }

    #[test]
    fn a_binding_becomes_an_acl_creation() {
        let mut b = binding(
            ResourcePattern::prefixed(ResourceType::TransactionalId, "app-"),
            "User:alice",
            Operation::Write,
        );
        b.host = "10.0.0.1".into();
        b.permission = Permission::Deny;
        let c = acl_creation(&b);
        assert_eq!(c.resource_type, 5);
        assert_eq!(c.resource_name.as_str(), "app-");
        assert_eq!(c.resource_pattern_type, 4);
        assert_eq!(c.principal.as_str(), "User:alice");
        assert_eq!(c.host.as_str(), "10.0.0.1");
        assert_eq!(c.operation, 4);
        assert_eq!(c.permission_type, 2);
    }

    #[test]
    fn describe_response_round_trips_to_bindings() {
        let bindings = vec![
            binding(
                ResourcePattern::literal(ResourceType::Topic, "orders"),
                "User:alice",
                Operation::Read,
            ),
            binding(
                ResourcePattern::literal(ResourceType::Topic, "orders"),
                "User:bob",
                Operation::Describe,
            ),
            binding(
                ResourcePattern::prefixed(ResourceType::Group, "app"),
                "User:*",
                Operation::Read,
            ),
            AclBinding {
                host: "192.168.1.7".into(),
                permission: Permission::Deny,
                ..binding(
                    ResourcePattern::literal(ResourceType::Cluster, crate::acl::CLUSTER_NAME),
                    "User:mallory",
                    Operation::All,
                )
            },
        ];
        let resp = describe_response(&bindings);
        assert_eq!(resp.resources.len(), 3);
        // Through the wire too, at every version we speak.
        for version in 1..=3 {
            let mut buf = BytesMut::new();
            resp.encode(&mut buf, version).unwrap();
            let back = DescribeAclsResponse::decode(&mut buf.freeze(), version).unwrap();
            assert_eq!(bindings_from_describe(&back).unwrap(), bindings);
        }
    }

    #[test]
    fn unknown_codes_in_a_response_are_named() {
        let mut resp = describe_response(&[binding(
            ResourcePattern::literal(ResourceType::Topic, "t"),
            "User:a",
            Operation::Read,
        )]);
        resp.resources[0].acls[0].operation = 99;
        let e = bindings_from_describe(&resp).unwrap_err();
        assert!(e.contains("operation code 99"), "{e}");
        resp.resources[0].acls[0].operation = Operation::Read.code();
        resp.resources[0].pattern_type = MATCH_CODE;
        let e = bindings_from_describe(&resp).unwrap_err();
        assert!(e.contains("pattern type code 2"), "{e}");
    }

    #[test]
    fn a_filter_encodes_nones_as_any_and_null() {
        let any = AclFilter::any();
        let d = describe_acls_request(&any);
        assert_eq!(d.resource_type_filter, ANY_CODE);
        assert_eq!(d.pattern_type_filter, ANY_CODE);
        assert_eq!(d.operation, ANY_CODE);
        assert_eq!(d.permission_type, ANY_CODE);
        assert_eq!(d.resource_name_filter, None);
        assert_eq!(d.principal_filter, None);
        assert_eq!(d.host_filter, None);

        let mut f = AclFilter::any();
        f.resource_type = Some(ResourceType::Topic);
        f.name = Some("orders".into());
        f.pattern = PatternFilter::Match;
        f.principal = Some("User:alice".into());
        let del = delete_filter(&f);
        assert_eq!(del.resource_type_filter, 2);
        assert_eq!(del.resource_name_filter.as_deref(), Some("orders"));
        assert_eq!(del.pattern_type_filter, MATCH_CODE);
        assert_eq!(del.principal_filter.as_deref(), Some("User:alice"));
        assert_eq!(del.host_filter, None);
        assert_eq!(del.operation, ANY_CODE);
        assert_eq!(del.permission_type, ANY_CODE);

        let exact = AclFilter::exactly(&binding(
            ResourcePattern::prefixed(ResourceType::Topic, "ord"),
            "User:bob",
            Operation::Write,
        ));
        let d = describe_acls_request(&exact);
        assert_eq!(
            (
                d.resource_type_filter,
                d.pattern_type_filter,
                d.operation,
                d.permission_type
            ),
            (2, 4, 4, 3)
        );
        assert_eq!(d.host_filter.as_deref(), Some("*"));
        // A null name survives the wire (it is a nullable string).
        let mut buf = BytesMut::new();
        describe_acls_request(&any).encode(&mut buf, 3).unwrap();
        let back = DescribeAclsRequest::decode(&mut buf.freeze(), 3).unwrap();
        assert_eq!(back.resource_name_filter, None);
    }

    #[test]
    fn outcomes_name_the_acl() {
        let b = binding(
            ResourcePattern::literal(ResourceType::Topic, "orders"),
            "User:alice",
            Operation::Read,
        );
        assert!(creation_outcome(Some(&AclCreationResult::default()), &b).is_ok());
        let refused = AclCreationResult::default()
            .with_error_code(31)
            .with_error_message(Some(sb("no")));
        let e = creation_outcome(Some(&refused), &b)
            .unwrap_err()
            .to_string();
        assert!(e.contains("create ACL (principal=User:alice"), "{e}");
        assert!(e.contains("CLUSTER_AUTHORIZATION_FAILED"), "{e}");
        assert!(creation_outcome(None, &b).is_err());

        let matching = |code: i16| {
            DeleteAclsMatchingAcl::default()
                .with_error_code(code)
                .with_resource_type(2)
                .with_resource_name(sb("orders"))
                .with_pattern_type(3)
                .with_principal(sb("User:alice"))
                .with_host(sb("*"))
                .with_operation(3)
                .with_permission_type(3)
        };
        let ok = DeleteAclsFilterResult::default().with_matching_acls(vec![matching(0)]);
        let f = AclFilter::exactly(&b);
        let failed = DeleteAclsFilterResult::default().with_error_code(31);
        let e = deletion_outcome(Some(&failed), &AclFilter::any(), "b:9092")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "delete ACLs matching (resourceType=ANY, name=ANY, patternType=ANY, principal=ANY"
            ),
            "{e}"
        );
        assert_eq!(
            deletion_outcome(Some(&ok), &f, "b:9092").unwrap(),
            vec![b.clone()]
        );
        let part =
            DeleteAclsFilterResult::default().with_matching_acls(vec![matching(0), matching(31)]);
        let e = deletion_outcome(Some(&part), &f, "b:9092")
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 other matching ACLs deleted"), "{e}");
        let bad = DeleteAclsFilterResult::default()
            .with_matching_acls(vec![matching(0).with_operation(0)]);
        let e = deletion_outcome(Some(&bad), &f, "b:9092")
            .unwrap_err()
            .to_string();
        assert!(e.contains("operation code 0"), "{e}");
    }
}

//! CreateAcls, DescribeAcls and DeleteAcls, as `kafka-acls.sh` and
//! `weir acl` send them. ACLs live in the metadata log; changes go to the
//! active controller, and descriptions come from this broker's image.
//! With no authorizer configured, every one is answered SECURITY_DISABLED,
//! as in Kafka.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use weir_client::acl::{
    ANY_CODE, AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission,
    ResourcePattern, ResourceType,
};

use super::topics::{Refusal, refusal_of_controller};
use super::{RequestContext, str_bytes};
use crate::broker::BrokerState;

const DISABLED: &str = "No Authorizer is configured on the broker";

/// Why a request about ACLs is refused before it is looked at, if it is.
fn gate(state: &BrokerState, ctx: &RequestContext, op: Operation) -> Option<Refusal> {
    if !state.authorizer.enabled() {
        return Some((ResponseError::SecurityDisabled, DISABLED.into()));
    }
    if !state.access(ctx).cluster(op) {
        return Some((
            ResponseError::ClusterAuthorizationFailed,
            format!("{op} on the cluster is needed to manage ACLs"),
        ));
    }
    None
}

fn code<T>(parse: impl Fn(i8) -> Option<T>, code: i8, what: &str) -> Result<T, String> {
    parse(code).ok_or_else(|| format!("Invalid {what} code {code}"))
}

fn binding_of(c: &AclCreation) -> Result<AclBinding, String> {
    let acl = AclBinding {
        pattern: ResourcePattern {
            resource_type: code(ResourceType::from_code, c.resource_type, "resource type")?,
            name: c.resource_name.to_string(),
            pattern_type: code(
                PatternType::from_code,
                c.resource_pattern_type,
                "pattern type",
            )?,
        },
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: code(Operation::from_code, c.operation, "operation")?,
        permission: code(Permission::from_code, c.permission_type, "permission type")?,
    };
    acl.validate()?;
    Ok(acl)
}

/// A filter from DescribeAcls' or DeleteAcls' fields (the two spell the
/// same filter): ANY codes and null strings match anything.
#[allow(clippy::too_many_arguments)]
fn filter_of(
    resource_type: i8,
    name: &Option<StrBytes>,
    pattern: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    let any_or = |c: i8| c == ANY_CODE;
    Ok(AclFilter {
        resource_type: (!any_or(resource_type))
            .then(|| code(ResourceType::from_code, resource_type, "resource type"))
            .transpose()?,
        name: name.as_ref().map(|n| n.to_string()),
        pattern: code(PatternFilter::from_code, pattern, "pattern type")?,
        principal: principal.as_ref().map(|p| p.to_string()),
        host: host.as_ref().map(|h| h.to_string()),
        operation: (!any_or(operation))
            .then(|| code(Operation::from_code, operation, "operation"))
            .transpose()?,
        permission: (!any_or(permission))
            .then(|| code(Permission::from_code, permission, "permission type"))
            .transpose()?,
    })
}

fn failed(refusal: Refusal) -> (i16, Option<StrBytes>) {
    (refusal.0.code(), Some(str_bytes(refusal.1)))
}

pub async fn create_acls(
    state: &Arc<BrokerState>,
    ctx: &RequestContext,
    req: CreateAclsRequest,
) -> CreateAclsResponse {
    let mut response = CreateAclsResponse::default();
    let result = |(error_code, error_message): (i16, Option<StrBytes>)| {
        AclCreationResult::default()
            .with_error_code(error_code)
            .with_error_message(error_message)
    };
    if let Some(refusal) = gate(state, ctx, Operation::Alter) {
        let each = failed(refusal);
        response.results = req.creations.iter().map(|_| result(each.clone())).collect();
        return response;
    }
    // Invalid creations are answered here; the rest go in one request.
    let (decoded, valid) = split_valid(req.creations.iter().map(binding_of));
    let valid_count = valid.len();
    let decided = match state.cluster.create_acls(valid).await {
        Ok(results) => results
            .into_iter()
            .map(|r| r.map_err(|e| refusal_of_controller(&e)))
            .collect(),
        Err(e) => vec![Err(refusal_of_controller(&e)); valid_count],
    };
    response.results = in_request_order(&decoded, decided)
        .into_iter()
        .map(|outcome| result(outcome.map_or_else(failed, |()| (0, None))))
        .collect();
    response
}

/// The decoded items (`Ok(())` for a valid one, the reason for an invalid
/// one), and the valid ones, to be decided together.
fn split_valid<T>(
    items: impl Iterator<Item = Result<T, String>>,
) -> (Vec<Result<(), String>>, Vec<T>) {
    let mut valid = Vec::new();
    let decoded = items.map(|item| item.map(|v| valid.push(v))).collect();
    (decoded, valid)
}

/// One outcome per item in request order: an invalid item's refusal, else
/// the next of the valid ones' outcomes.
fn in_request_order<R>(
    decoded: &[Result<(), String>],
    decided: Vec<Result<R, Refusal>>,
) -> Vec<Result<R, Refusal>> {
    let mut decided = decided.into_iter();
    decoded
        .iter()
        .map(|d| match d {
            Err(why) => Err((ResponseError::InvalidRequest, why.clone())),
            Ok(()) => decided
                .next()
                .unwrap_or_else(|| Err((ResponseError::UnknownServerError, "no answer".into()))),
        })
        .collect()
}

pub fn describe_acls(
    state: &Arc<BrokerState>,
    ctx: &RequestContext,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let mut response = DescribeAclsResponse::default();
    if let Some(refusal) = gate(state, ctx, Operation::Describe) {
        (response.error_code, response.error_message) = failed(refusal);
        return response;
    }
    let filter = match filter_of(
        req.resource_type_filter,
        &req.resource_name_filter,
        req.pattern_type_filter,
        &req.principal_filter,
        &req.host_filter,
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(why) => {
            (response.error_code, response.error_message) =
                failed((ResponseError::InvalidRequest, why));
            return response;
        }
    };
    let image = state.cluster.image();
    response.resources = grouped_by_resource(image.acls().iter().filter(|a| filter.matches(a)));
    response
}

/// DescribeAcls' shape: one entry per resource pattern with its ACLs.
fn grouped_by_resource<'a>(
    acls: impl Iterator<Item = &'a AclBinding>,
) -> Vec<DescribeAclsResource> {
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    let mut last: Option<&ResourcePattern> = None;
    for acl in acls {
        if last != Some(&acl.pattern) {
            resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(acl.pattern.resource_type.code())
                    .with_resource_name(str_bytes(acl.pattern.name.clone()))
                    .with_pattern_type(acl.pattern.pattern_type.code()),
            );
            last = Some(&acl.pattern);
        }
        let description = AclDescription::default()
            .with_principal(str_bytes(acl.principal.clone()))
            .with_host(str_bytes(acl.host.clone()))
            .with_operation(acl.operation.code())
            .with_permission_type(acl.permission.code());
        if let Some(r) = resources.last_mut() {
            r.acls.push(description);
        }
    }
    resources
}

pub async fn delete_acls(
    state: &Arc<BrokerState>,
    ctx: &RequestContext,
    req: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let mut response = DeleteAclsResponse::default();
    let refused = |(error_code, error_message): (i16, Option<StrBytes>)| {
        DeleteAclsFilterResult::default()
            .with_error_code(error_code)
            .with_error_message(error_message)
    };
    if let Some(refusal) = gate(state, ctx, Operation::Alter) {
        let each = failed(refusal);
        response.filter_results = req.filters.iter().map(|_| refused(each.clone())).collect();
        return response;
    }
    let (decoded, valid) = split_valid(req.filters.iter().map(|f| {
        filter_of(
            f.resource_type_filter,
            &f.resource_name_filter,
            f.pattern_type_filter,
            &f.principal_filter,
            &f.host_filter,
            f.operation,
            f.permission_type,
        )
    }));
    let valid_count = valid.len();
    let removed = match state.cluster.delete_acls(valid).await {
        Ok(removed) => removed.into_iter().map(Ok).collect(),
        Err(e) => vec![Err(refusal_of_controller(&e)); valid_count],
    };
    response.filter_results = in_request_order(&decoded, removed)
        .into_iter()
        .map(|outcome| match outcome {
            Ok(acls) => DeleteAclsFilterResult::default()
                .with_matching_acls(acls.iter().map(matching_acl).collect()),
            Err(refusal) => refused(failed(refusal)),
        })
        .collect();
    response
}

fn matching_acl(acl: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(acl.pattern.resource_type.code())
        .with_resource_name(str_bytes(acl.pattern.name.clone()))
        .with_pattern_type(acl.pattern.pattern_type.code())
        .with_principal(str_bytes(acl.principal.clone()))
        .with_host(str_bytes(acl.host.clone()))
        .with_operation(acl.operation.code())
        .with_permission_type(acl.permission.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_decode_any_and_refuse_unknown_codes() {
        let f = filter_of(ANY_CODE, &None, ANY_CODE, &None, &None, ANY_CODE, ANY_CODE).unwrap();
        assert_eq!(f, AclFilter::any());
        let f = filter_of(2, &Some(str_bytes("t")), 2, &None, &None, 3, 3).unwrap();
        assert_eq!(f.resource_type, Some(ResourceType::Topic));
        assert_eq!(f.pattern, PatternFilter::Match);
        assert_eq!(f.operation, Some(Operation::Read));
        assert!(
            filter_of(0, &None, 1, &None, &None, 1, 1)
                .unwrap_err()
                .contains("resource type code 0")
        );
        assert!(
            filter_of(1, &None, 9, &None, &None, 1, 1)
                .unwrap_err()
                .contains("pattern type")
        );
    }

    #[test]
    fn creations_must_be_concrete_and_valid() {
        let c = AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(str_bytes("t"))
            .with_resource_pattern_type(3)
            .with_principal(str_bytes("User:alice"))
            .with_host(str_bytes("*"))
            .with_operation(3)
            .with_permission_type(3);
        assert_eq!(binding_of(&c).unwrap().operation, Operation::Read);
        assert!(
            binding_of(&c.clone().with_operation(1))
                .unwrap_err()
                .contains("operation code 1")
        );
        assert!(
            binding_of(&c.clone().with_resource_pattern_type(2)).is_err(),
            "MATCH is a filter only"
        );
        assert!(
            binding_of(&c.with_principal(str_bytes("alice")))
                .unwrap_err()
                .contains("principal")
        );
    }

    #[test]
    fn descriptions_group_acls_by_resource() {
        let acl = |name: &str, principal: &str| AclBinding {
            pattern: ResourcePattern::literal(ResourceType::Topic, name),
            principal: principal.into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        };
        let set: std::collections::BTreeSet<AclBinding> =
            [acl("a", "User:x"), acl("b", "User:x"), acl("a", "User:y")].into();
        let resources = grouped_by_resource(set.iter());
        let shape: Vec<(String, usize)> = resources
            .iter()
            .map(|r| (r.resource_name.to_string(), r.acls.len()))
            .collect();
        assert_eq!(shape, [("a".to_string(), 2), ("b".to_string(), 1)]);
    }
}

//! Classic groups on the wire: the pure `Group`'s inputs read from
//! JoinGroup/SyncGroup requests, its answers written as the responses of
//! the version asked, DescribeGroups' entries.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{GroupId, JoinGroupResponse, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::group::{GroupDescription, JoinResult, SyncInput, SyncResult};

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

pub(super) fn join_response(r: JoinResult) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(r.error_code)
        .with_generation_id(r.generation_id)
        .with_protocol_type(r.protocol_type.as_deref().map(str_bytes))
        // Nullable only from v7; older versions must get a string.
        .with_protocol_name(match (r.protocol_name, r.version >= 7) {
            (Some(p), _) => Some(StrBytes::from_string(p)),
            (None, true) => None,
            (None, false) => Some(StrBytes::default()),
        })
        .with_leader(StrBytes::from_string(r.leader))
        .with_skip_assignment(r.skip_assignment)
        .with_member_id(StrBytes::from_string(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

pub(super) fn join_error(member_id: &str, code: i16, version: i16) -> JoinGroupResponse {
    join_response(JoinResult::error(member_id, code, version))
}

pub(super) fn sync_input(req: &SyncGroupRequest) -> SyncInput {
    SyncInput {
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        generation_id: req.generation_id,
        protocol_type: req.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: req.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    }
}

/// The protocol fields exist from SyncGroup v5 on.
pub(super) fn sync_response(r: SyncResult, version: i16) -> SyncGroupResponse {
    let with_protocol = version >= 5;
    SyncGroupResponse::default()
        .with_error_code(r.error_code)
        .with_protocol_type(
            r.protocol_type
                .filter(|_| with_protocol)
                .map(StrBytes::from_string),
        )
        .with_protocol_name(
            r.protocol_name
                .filter(|_| with_protocol)
                .map(StrBytes::from_string),
        )
        .with_assignment(r.assignment)
}

pub(super) fn described_group(d: GroupDescription) -> DescribedGroup {
    DescribedGroup::default()
        .with_group_id(GroupId(StrBytes::from_string(d.group_id)))
        .with_group_state(StrBytes::from_static_str(d.state.as_str()))
        .with_protocol_type(StrBytes::from_string(d.protocol_type))
        .with_protocol_data(StrBytes::from_string(d.protocol))
        .with_members(
            d.members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
                        .with_client_id(StrBytes::from_string(m.client_id))
                        .with_client_host(StrBytes::from_string(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect(),
        )
}

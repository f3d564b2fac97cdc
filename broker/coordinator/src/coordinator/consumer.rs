//! The shell of KIP-848 consumer groups: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe turned into [`ConsumerGroup`] calls, topic ids
//! resolved through the catalog.
//!
//! A group id names one group of one type. A heartbeat to an empty classic
//! group converts it (its offsets stay); to a classic group with members it
//! is refused with GROUP_ID_NOT_FOUND, as Kafka does. A classic JoinGroup
//! to a consumer group with members gets INCONSISTENT_GROUP_PROTOCOL, and
//! converts an empty one back.
//!
//! Every durable change of a consumer group (epochs, member metadata,
//! target and current assignments) is written to `__consumer_offsets` as
//! Kafka's records before the heartbeat is answered, so a new coordinator
//! replays the group and its members carry on with their epochs.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use kafka_protocol::messages::consumer_group_describe_response::{
    self as describe, DescribedGroup as DescribedConsumer,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{self as heartbeat};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use uuid::Uuid;

use super::slot::GroupKind;
use super::{GroupCoordinator, Records, str_bytes};
use crate::assignor::Assignment;
use crate::consumer_group::{
    ConsumerGroup, GroupChange, HeartbeatInput, MemberState, STATIC_LEAVE_EPOCH, StoredGroup,
    StoredMember,
};
use crate::errors::*;
use crate::records::consumer::{
    ConsumerRecord, CurrentAssignmentValue, MemberMetadataValue, TopicPartitions, consumer_record,
};
use crate::records::{self, RecordKey};
use crate::{StoreError, TopicCatalog};

/// Member ids for v0 clients, which leave the choice to the coordinator.
fn generated_member_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}", Uuid::new_v4())
}

impl GroupCoordinator {
    /// Existing user topics and their partition counts, for subscriptions.
    fn topic_counts(&self) -> BTreeMap<String, i32> {
        self.inner.catalog.topics()
    }

    fn names_of(&self, owned: &[consumer_group_heartbeat_request::TopicPartitions]) -> Assignment {
        owned
            .iter()
            .filter_map(|t| {
                let name = self.inner.catalog.topic_name(t.topic_id)?;
                Some((name, t.partitions.iter().copied().collect()))
            })
            .collect()
    }

    fn ids_of(&self, assignment: &Assignment) -> Vec<(Uuid, String, Vec<i32>)> {
        assignment
            .iter()
            .filter_map(|(t, ps)| {
                let id = self.inner.catalog.topic_id(t)?;
                Some((id, t.clone(), ps.iter().copied().collect()))
            })
            .collect()
    }

    pub async fn consumer_group_heartbeat(
        &self,
        req: ConsumerGroupHeartbeatRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> ConsumerGroupHeartbeatResponse {
        let error = |code: i16, message: &str| {
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message)))
        };
        let group_id = req.group_id.to_string();
        if group_id.is_empty() {
            return error(INVALID_GROUP_ID, "GroupId can't be empty.");
        }
        if version >= 1 && req.member_id.is_empty() {
            return error(INVALID_REQUEST, "MemberId can't be empty.");
        }
        let slot = if req.member_epoch == 0 {
            self.get_or_create(&group_id)
        } else {
            match self.get(&group_id) {
                Some(slot) => slot,
                None => {
                    return error(
                        UNKNOWN_MEMBER_ID,
                        &format!("Group {group_id} has no member {}.", &*req.member_id),
                    );
                }
            }
        };
        let mut slot = slot.lock().await;
        if slot.consumer_group().is_none() {
            if !slot.is_empty() || slot.is_dead() {
                return error(
                    GROUP_ID_NOT_FOUND,
                    &format!("Group {group_id} is not a consumer group."),
                );
            }
            // An empty classic (or task) group becomes a consumer group;
            // its offsets stay, its other metadata goes.
            if let Err(e) = self.append(group_tombstones(&group_id)).await {
                tracing::warn!(group = %group_id, error = %e, "failed to convert a classic group");
                return error(COORDINATOR_NOT_AVAILABLE, "The group could not be written.");
            }
            slot.kind = GroupKind::Consumer(ConsumerGroup::new(
                group_id.clone(),
                self.inner.config.consumer.clone(),
            ));
        }
        let input = HeartbeatInput {
            member_id: req.member_id.to_string(),
            generated_member_id: if req.member_id.is_empty() {
                generated_member_id()
            } else {
                String::new()
            },
            member_epoch: req.member_epoch,
            instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
            rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            subscribed_topic_names: req
                .subscribed_topic_names
                .as_ref()
                .map(|ts| ts.iter().map(|t| t.to_string()).collect()),
            subscribed_topic_regex: req.subscribed_topic_regex.as_ref().map(|s| s.to_string()),
            server_assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
            owned: req.topic_partitions.as_deref().map(|o| self.names_of(o)),
            client_id: client_id.to_owned(),
            client_host: client_host.to_owned(),
        };
        let topics = self.topic_counts();
        let GroupKind::Consumer(group) = &mut slot.kind else {
            unreachable!("made a consumer group above")
        };
        let out = group.heartbeat(input, &topics, Instant::now());
        if let Err(e) = self.persist_consumer(group).await {
            // Memory is ahead of the store: the member retries and the next
            // write carries the whole group.
            tracing::warn!(group = %group_id, error = %e, "failed to persist consumer group");
            return error(COORDINATOR_NOT_AVAILABLE, "The group could not be written.");
        }
        self.schedule_assignment(group);
        let deadline = slot.next_deadline();
        slot.note_state(super::wall_clock_ms());
        drop(slot);
        self.arm_timer(&group_id, deadline);
        let assignment = out.assignment.as_ref().map(|a| {
            heartbeat::Assignment::default().with_topic_partitions(
                self.ids_of(a)
                    .into_iter()
                    .map(|(id, _, ps)| {
                        heartbeat::TopicPartitions::default()
                            .with_topic_id(id)
                            .with_partitions(ps)
                    })
                    .collect(),
            )
        });
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(out.error)
            .with_error_message(out.message.map(StrBytes::from_string))
            .with_member_id((out.error == NONE).then(|| StrBytes::from_string(out.member_id)))
            .with_member_epoch(out.member_epoch)
            .with_heartbeat_interval_ms(out.heartbeat_interval_ms)
            .with_assignment(assignment)
    }

    fn described_assignment(&self, a: &Assignment) -> describe::Assignment {
        describe::Assignment::default().with_topic_partitions(
            self.ids_of(a)
                .into_iter()
                .map(|(id, name, ps)| {
                    describe::TopicPartitions::default()
                        .with_topic_id(id)
                        .with_topic_name(TopicName(StrBytes::from_string(name)))
                        .with_partitions(ps)
                })
                .collect(),
        )
    }

    pub async fn consumer_group_describe(
        &self,
        req: ConsumerGroupDescribeRequest,
        _version: i16,
    ) -> ConsumerGroupDescribeResponse {
        let mut groups = Vec::with_capacity(req.group_ids.len());
        for group_id in req.group_ids {
            let not_found = |message: String| {
                DescribedConsumer::default()
                    .with_group_id(group_id.clone())
                    .with_group_state(StrBytes::from_static_str("Dead"))
                    .with_error_code(GROUP_ID_NOT_FOUND)
                    .with_error_message(Some(StrBytes::from_string(message)))
            };
            let Some(slot) = self.get(&group_id) else {
                groups.push(not_found(format!("Group {} not found.", &*group_id)));
                continue;
            };
            let slot = slot.lock().await;
            let Some(group) = slot.consumer_group() else {
                groups.push(not_found(format!(
                    "Group {} is not a consumer group.",
                    &*group_id
                )));
                continue;
            };
            let d = group.describe();
            let members = d
                .members
                .iter()
                .map(|m| {
                    let member = &m.member;
                    describe::Member::default()
                        .with_member_id(str_bytes(&member.member_id))
                        .with_instance_id(member.instance_id.as_deref().map(str_bytes))
                        .with_rack_id(member.rack_id.as_deref().map(str_bytes))
                        .with_member_epoch(member.member_epoch)
                        .with_client_id(str_bytes(&member.client_id))
                        .with_client_host(str_bytes(&member.client_host))
                        .with_subscribed_topic_names(
                            member
                                .topic_names
                                .iter()
                                .map(|t| TopicName(str_bytes(t)))
                                .collect(),
                        )
                        .with_subscribed_topic_regex(member.topic_regex.as_deref().map(str_bytes))
                        .with_assignment(self.described_assignment(&member.assigned))
                        .with_target_assignment(self.described_assignment(&m.target))
                })
                .collect();
            groups.push(
                DescribedConsumer::default()
                    .with_group_id(group_id.clone())
                    .with_group_state(StrBytes::from_static_str(d.state.as_str()))
                    .with_group_epoch(d.group_epoch)
                    .with_assignment_epoch(d.assignment_epoch)
                    .with_assignor_name(StrBytes::from_string(d.assignor))
                    .with_members(members)
                    .with_authorized_operations(i32::MIN),
            );
        }
        ConsumerGroupDescribeResponse::default().with_groups(groups)
    }

    /// Consumer groups' sessions and revocation deadlines, from the timer.
    pub(super) async fn expire_consumer_members(&self, group: &mut ConsumerGroup, now: Instant) {
        for member in group.on_timer(now) {
            tracing::info!(group = %group.id(), %member, "consumer group member removed: session or rebalance timeout");
        }
        if let Err(e) = self.persist_consumer(group).await {
            tracing::warn!(group = %group.id(), error = %e, "failed to persist consumer group");
        }
        self.schedule_assignment(group);
    }

    /// Computes a large group's due assignment on the blocking pool, off
    /// the heartbeat, then installs it under the group's lock; members
    /// take their new targets on their next heartbeats.
    fn schedule_assignment(&self, group: &mut ConsumerGroup) {
        let Some(job) = group.take_assignment_job() else {
            return;
        };
        // Weak: a pending job must not keep a dropped coordinator alive.
        let weak = std::sync::Arc::downgrade(&self.inner);
        let id = group.id().to_owned();
        tokio::spawn(async move {
            let computed = tokio::task::spawn_blocking(move || job.run()).await;
            if let Err(e) = &computed {
                tracing::warn!(group = %id, error = %e, "assignment job failed; retrying");
            }
            let Some(inner) = weak.upgrade() else { return };
            let coordinator = GroupCoordinator { inner };
            let Some(slot) = coordinator.get(&id) else {
                return;
            };
            let mut slot = slot.lock().await;
            let GroupKind::Consumer(group) = &mut slot.kind else {
                return;
            };
            group.install_assignment(computed.ok());
            if let Err(e) = coordinator.persist_consumer(group).await {
                tracing::warn!(group = %id, error = %e, "failed to persist consumer group");
            }
            coordinator.schedule_assignment(group);
        });
    }

    /// Writes what changed in the group since its last write.
    async fn persist_consumer(&self, group: &mut ConsumerGroup) -> Result<(), StoreError> {
        let changes = group.take_changes();
        if changes.is_empty() {
            return Ok(());
        }
        let records = change_records(self.inner.catalog.as_ref(), group.id(), changes);
        let result = self.append(records).await;
        if result.is_err() {
            group.mark_all_changed();
        }
        result
    }
}

/// Kafka's MemberState codes.
fn state_code(state: MemberState) -> i8 {
    match state {
        MemberState::Stable => 0,
        MemberState::UnrevokedPartitions => 1,
        MemberState::UnreleasedPartitions => 2,
    }
}

fn state_of(code: i8) -> MemberState {
    match code {
        1 => MemberState::UnrevokedPartitions,
        2 => MemberState::UnreleasedPartitions,
        _ => MemberState::Stable,
    }
}

/// Topic names to ids; a topic deleted meanwhile drops out.
fn by_id(catalog: &dyn TopicCatalog, a: &Assignment) -> TopicPartitions {
    a.iter()
        .filter_map(|(t, ps)| Some((catalog.topic_id(t)?, ps.iter().copied().collect())))
        .collect()
}

fn by_name(catalog: &dyn TopicCatalog, tps: TopicPartitions) -> Assignment {
    tps.into_iter()
        .filter_map(|(id, ps)| Some((catalog.topic_name(id)?, ps.into_iter().collect())))
        .collect()
}

/// The tombstones that erase a group's metadata of any type (an empty
/// group's: members' records went when they left).
pub(super) fn group_tombstones(group: &str) -> Records {
    let group = group.to_owned();
    vec![
        records::group_record(&group, None),
        records::tasks::group_record(&group, None),
        consumer_record(
            RecordKey::ConsumerGroup {
                group: group.clone(),
            },
            None,
        ),
        consumer_record(RecordKey::TargetMetadata { group }, None),
    ]
}

fn change_records(catalog: &dyn TopicCatalog, group: &str, changes: Vec<GroupChange>) -> Records {
    let g = || group.to_owned();
    let mut out = Vec::with_capacity(changes.len());
    for change in changes {
        match change {
            GroupChange::GroupEpoch(epoch) => out.push(consumer_record(
                RecordKey::ConsumerGroup { group: g() },
                Some(&ConsumerRecord::GroupEpoch(epoch)),
            )),
            GroupChange::AssignmentEpoch(epoch) => out.push(consumer_record(
                RecordKey::TargetMetadata { group: g() },
                Some(&ConsumerRecord::AssignmentEpoch(epoch)),
            )),
            GroupChange::Target { member_id, target } => out.push(consumer_record(
                RecordKey::TargetMember {
                    group: g(),
                    member: member_id,
                },
                Some(&ConsumerRecord::Target(by_id(catalog, &target))),
            )),
            GroupChange::Removed(member) => {
                for key in [
                    RecordKey::CurrentAssignment {
                        group: g(),
                        member: member.clone(),
                    },
                    RecordKey::TargetMember {
                        group: g(),
                        member: member.clone(),
                    },
                    RecordKey::ConsumerMember { group: g(), member },
                ] {
                    out.push(consumer_record(key, None));
                }
            }
            GroupChange::Member(m) => {
                let metadata = ConsumerRecord::Member(MemberMetadataValue {
                    instance_id: m.instance_id,
                    rack_id: m.rack_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    subscribed_topic_names: m.topic_names.into_iter().collect(),
                    subscribed_topic_regex: m.topic_regex,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    server_assignor: m.server_assignor,
                });
                // Kafka's mark of a static member that left: epoch -2.
                let (member_epoch, previous_member_epoch) = if m.static_left {
                    (STATIC_LEAVE_EPOCH, m.member_epoch)
                } else {
                    (m.member_epoch, m.previous_epoch)
                };
                let current = ConsumerRecord::Current(CurrentAssignmentValue {
                    member_epoch,
                    previous_member_epoch,
                    state: state_code(m.state),
                    assigned: by_id(catalog, &m.assigned),
                    pending_revocation: by_id(catalog, &m.revoking),
                });
                out.push(consumer_record(
                    RecordKey::ConsumerMember {
                        group: g(),
                        member: m.member_id.clone(),
                    },
                    Some(&metadata),
                ));
                out.push(consumer_record(
                    RecordKey::CurrentAssignment {
                        group: g(),
                        member: m.member_id,
                    },
                    Some(&current),
                ));
            }
        }
    }
    out
}

/// Consumer group records as a replay meets them, latest value per key.
#[derive(Default)]
pub(super) struct ReplayedConsumers {
    groups: HashMap<String, Replayed>,
}

#[derive(Default)]
struct Replayed {
    epoch: Option<i32>,
    assignment_epoch: i32,
    members: BTreeMap<String, MemberMetadataValue>,
    current: BTreeMap<String, CurrentAssignmentValue>,
    targets: BTreeMap<String, TopicPartitions>,
}

impl ReplayedConsumers {
    /// Takes one consumer-group record; `false` if `key` is of another kind.
    pub fn absorb(&mut self, key: &RecordKey, value: Option<&Bytes>) -> bool {
        let (group, member) = match key {
            RecordKey::ConsumerGroup { group } | RecordKey::TargetMetadata { group } => {
                (group, None)
            }
            RecordKey::ConsumerMember { group, member }
            | RecordKey::TargetMember { group, member }
            | RecordKey::CurrentAssignment { group, member } => (group, Some(member.clone())),
            RecordKey::Offset { .. }
            | RecordKey::Group { .. }
            | RecordKey::TaskGroup { .. }
            | RecordKey::TaskMember { .. } => return false,
        };
        let decoded = match value.map(|v| ConsumerRecord::decode(key, v)).transpose() {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::warn!(%group, error = %e, "skipping undecodable consumer group record");
                return true;
            }
        };
        if matches!(key, RecordKey::ConsumerGroup { .. }) && decoded.is_none() {
            self.groups.remove(group);
            return true;
        }
        let entry = self.groups.entry(group.clone()).or_default();
        let member = member.unwrap_or_default();
        match (key, decoded) {
            (RecordKey::ConsumerGroup { .. }, Some(ConsumerRecord::GroupEpoch(e))) => {
                entry.epoch = Some(e)
            }
            (RecordKey::TargetMetadata { .. }, value) => {
                entry.assignment_epoch = match value {
                    Some(ConsumerRecord::AssignmentEpoch(e)) => e,
                    _ => 0,
                }
            }
            (_, Some(ConsumerRecord::Member(m))) => {
                entry.members.insert(member, m);
            }
            (_, Some(ConsumerRecord::Current(c))) => {
                entry.current.insert(member, c);
            }
            (_, Some(ConsumerRecord::Target(t))) => {
                entry.targets.insert(member, t);
            }
            (RecordKey::ConsumerMember { .. }, None) => {
                entry.members.remove(&member);
            }
            (RecordKey::CurrentAssignment { .. }, None) => {
                entry.current.remove(&member);
            }
            (RecordKey::TargetMember { .. }, None) => {
                entry.targets.remove(&member);
            }
            _ => {}
        }
        true
    }

    /// The groups whose epoch record survives, topics named again.
    pub fn into_groups(self, catalog: &dyn TopicCatalog) -> BTreeMap<String, StoredGroup> {
        self.groups
            .into_iter()
            .filter_map(|(id, r)| {
                let group_epoch = r.epoch?;
                let mut current = r.current;
                let members = r
                    .members
                    .into_iter()
                    .map(|(member_id, m)| {
                        let mut c = current.remove(&member_id).unwrap_or_default();
                        let static_left = c.member_epoch == STATIC_LEAVE_EPOCH;
                        if static_left {
                            c.member_epoch = c.previous_member_epoch;
                        }
                        StoredMember {
                            member_id,
                            instance_id: m.instance_id,
                            rack_id: m.rack_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            rebalance_timeout_ms: m.rebalance_timeout_ms,
                            topic_names: m.subscribed_topic_names.into_iter().collect(),
                            topic_regex: m.subscribed_topic_regex,
                            server_assignor: m.server_assignor,
                            member_epoch: c.member_epoch,
                            previous_epoch: c.previous_member_epoch,
                            state: state_of(c.state),
                            assigned: by_name(catalog, c.assigned),
                            revoking: by_name(catalog, c.pending_revocation),
                            static_left,
                        }
                    })
                    .collect();
                let targets = r
                    .targets
                    .into_iter()
                    .map(|(m, t)| (m, by_name(catalog, t)))
                    .collect();
                Some((
                    id,
                    StoredGroup {
                        group_epoch,
                        assignment_epoch: r.assignment_epoch,
                        members,
                        targets,
                    },
                ))
            })
            .collect()
    }
}

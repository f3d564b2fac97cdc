//! The shell of task groups: heartbeats and describes turned into
//! [`TaskGroup`] calls under the group's lock, with the broker's topics
//! behind [`TopicView`].
//!
//! A group id names one group of one type: a task group's first
//! heartbeat converts an empty classic or consumer group (its offsets
//! stay) and is refused for one with members.
//!
//! Every durable change (epochs, topology, each member's tasks and
//! target) is written to `__consumer_offsets` before the heartbeat is
//! answered, so a new coordinator replays the group and no task gets a
//! second owner across a failover: its holder is still known.

use std::collections::BTreeMap;

use bytes::Bytes;
use tokio::time::Instant;

use super::slot::{GroupKind, Slot};
use super::{GroupCoordinator, Records};
use crate::errors::*;
use crate::records::{self, RecordKey};
use crate::tasks::group::{
    DescribedTaskGroup, HeartbeatInput, HeartbeatOutput, JOIN_EPOCH, StoredTaskGroup,
    StoredTaskMember, TaskGroup, TaskGroupChange, TaskGroupStats, TopicView,
};
use crate::tasks::topology::InternalTopic;
use crate::{StoreError, TopicCatalog};

/// The broker's topics as the task groups read them.
struct CatalogView<'a>(&'a dyn TopicCatalog);

impl TopicView for CatalogView<'_> {
    fn partitions(&self, topic: &str) -> Option<i32> {
        self.0.partitions(topic)
    }

    fn end_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0.end_offset(topic, partition)
    }
}

/// A heartbeat's answer, and the internal topics its group still lacks
/// (for the broker to create).
#[derive(Debug)]
pub struct TaskHeartbeat {
    pub output: HeartbeatOutput,
    pub missing_topics: Vec<InternalTopic>,
}

impl GroupCoordinator {
    pub async fn task_group_heartbeat(
        &self,
        group_id: &str,
        input: HeartbeatInput,
    ) -> TaskHeartbeat {
        let refuse = |code: i16, message: String| TaskHeartbeat {
            output: HeartbeatOutput {
                error: code,
                message: Some(message),
                ..HeartbeatOutput::default()
            },
            missing_topics: Vec::new(),
        };
        if group_id.is_empty() {
            return refuse(INVALID_GROUP_ID, "GroupId can't be empty.".into());
        }
        let slot = if input.member_epoch == JOIN_EPOCH {
            self.get_or_create(group_id)
        } else {
            match self.get(group_id) {
                Some(slot) => slot,
                None => {
                    return refuse(
                        UNKNOWN_MEMBER_ID,
                        format!("Group {group_id} has no member {}.", input.member_id),
                    );
                }
            }
        };
        let mut slot = slot.lock().await;
        if slot.task_group().is_none() {
            if !slot.is_empty() || slot.is_dead() {
                return refuse(
                    GROUP_ID_NOT_FOUND,
                    format!(
                        "Group {group_id} is a {} group, not a task group.",
                        slot.type_name()
                    ),
                );
            }
            if let Err(e) = self
                .append(super::consumer::group_tombstones(group_id))
                .await
            {
                tracing::warn!(group = %group_id, error = %e, "failed to convert a group to a task group");
                return refuse(
                    COORDINATOR_NOT_AVAILABLE,
                    "The group could not be written.".into(),
                );
            }
            slot.kind = GroupKind::Tasks(TaskGroup::new(group_id, self.inner.config.tasks.clone()));
        }
        let GroupKind::Tasks(group) = &mut slot.kind else {
            unreachable!("made a task group above")
        };
        let view = CatalogView(self.inner.catalog.as_ref());
        let output = group.heartbeat(input, &view, Instant::now());
        if let Err(e) = self.persist_tasks(group).await {
            // Memory is ahead of the store: the member retries and the
            // next write carries the whole group.
            tracing::warn!(group = %group_id, error = %e, "failed to persist task group");
            return refuse(
                COORDINATOR_NOT_AVAILABLE,
                "The group could not be written.".into(),
            );
        }
        let missing_topics = group.missing_internal_topics().to_vec();
        let deadline = slot.next_deadline();
        slot.note_state(super::wall_clock_ms());
        drop(slot);
        self.arm_timer(group_id, deadline);
        TaskHeartbeat {
            output,
            missing_topics,
        }
    }

    pub async fn describe_task_group(
        &self,
        group_id: &str,
    ) -> Result<DescribedTaskGroup, (i16, String)> {
        let not_found = |what: &str| (GROUP_ID_NOT_FOUND, format!("Group {group_id} {what}."));
        let slot = self
            .get(group_id)
            .ok_or_else(|| not_found("does not exist"))?;
        let slot = slot.lock().await;
        if slot.deleted {
            return Err(not_found("does not exist"));
        }
        let group = slot
            .task_group()
            .ok_or_else(|| not_found("is not a task group"))?;
        Ok(group.describe(&CatalogView(self.inner.catalog.as_ref())))
    }

    /// Every task group here, for `/metrics`.
    pub async fn task_group_stats(&self) -> Vec<TaskGroupStats> {
        let slots: Vec<_> = super::lock(&self.inner.groups).values().cloned().collect();
        let mut out = Vec::new();
        for slot in slots {
            if let Some(group) = slot.lock().await.task_group() {
                out.push(group.stats());
            }
        }
        out
    }

    /// Task groups' sessions and revocation deadlines, from the timer.
    pub(super) async fn expire_task_members(&self, group: &mut TaskGroup, now: Instant) {
        let view = CatalogView(self.inner.catalog.as_ref());
        for member in group.on_timer(now, &view) {
            tracing::info!(group = %group.id(), %member, "task group member removed: session or rebalance timeout");
        }
        if let Err(e) = self.persist_tasks(group).await {
            tracing::warn!(group = %group.id(), error = %e, "failed to persist task group");
        }
    }

    /// Writes what changed in the group since its last write.
    async fn persist_tasks(&self, group: &mut TaskGroup) -> Result<(), StoreError> {
        let changes = group.take_changes();
        if changes.is_empty() {
            return Ok(());
        }
        let id = group.id().to_owned();
        let records: Records = changes
            .into_iter()
            .map(|c| match c {
                TaskGroupChange::Group(g) => records::tasks::group_record(&id, Some(&g)),
                TaskGroupChange::Member(m) => {
                    records::tasks::member_record(&id, &m.member.member_id, Some(&m))
                }
                TaskGroupChange::Removed(member) => {
                    records::tasks::member_record(&id, &member, None)
                }
            })
            .collect();
        let result = self.append(records).await;
        if result.is_err() {
            group.mark_all_changed();
        }
        result
    }

    pub(super) fn restore_task_group(
        &self,
        id: &str,
        group: StoredTaskGroup,
        members: Vec<StoredTaskMember>,
        now: Instant,
    ) -> Slot {
        let view = CatalogView(self.inner.catalog.as_ref());
        Slot::tasks(TaskGroup::restore(
            id,
            self.inner.config.tasks.clone(),
            group,
            members,
            &view,
            now,
        ))
    }
}

/// Task-group records met while replaying `__consumer_offsets`.
#[derive(Default)]
pub(super) struct ReplayedTasks {
    groups: BTreeMap<String, StoredTaskGroup>,
    members: BTreeMap<String, BTreeMap<String, StoredTaskMember>>,
}

impl ReplayedTasks {
    /// Takes in a task-group record; false for other records.
    pub fn absorb(&mut self, key: &RecordKey, value: Option<&Bytes>) -> bool {
        match (key, value) {
            (RecordKey::TaskGroup { group }, Some(v)) => {
                match records::tasks::decode_group(v) {
                    Ok(g) => {
                        self.groups.insert(group.clone(), g);
                    }
                    Err(e) => {
                        tracing::warn!(%group, error = %e, "skipping undecodable task group record")
                    }
                }
                true
            }
            (RecordKey::TaskGroup { group }, None) => {
                self.groups.remove(group);
                self.members.remove(group);
                true
            }
            (RecordKey::TaskMember { group, member }, Some(v)) => {
                match records::tasks::decode_member(v) {
                    Ok(m) => {
                        self.members
                            .entry(group.clone())
                            .or_default()
                            .insert(member.clone(), m);
                    }
                    Err(e) => {
                        tracing::warn!(%group, %member, error = %e, "skipping undecodable task member record")
                    }
                }
                true
            }
            (RecordKey::TaskMember { group, member }, None) => {
                if let Some(ms) = self.members.get_mut(group) {
                    ms.remove(member);
                }
                true
            }
            _ => false,
        }
    }

    /// The groups with their members (members of no group are dropped).
    pub fn into_groups(mut self) -> BTreeMap<String, (StoredTaskGroup, Vec<StoredTaskMember>)> {
        self.groups
            .into_iter()
            .map(|(id, g)| {
                let members = self
                    .members
                    .remove(&id)
                    .map(|ms| ms.into_values().collect())
                    .unwrap_or_default();
                (id, (g, members))
            })
            .collect()
    }
}

//! The shell of task groups: heartbeats and describes turned into
//! [`TaskGroup`] calls under the group's lock, with the broker's topics
//! behind [`TopicView`].
//!
//! A group id names one group of one type: a task group's first
//! heartbeat converts an empty classic or consumer group (its offsets
//! stay) and is refused for one with members.
//!
//! Task groups live in the coordinator's memory: a new coordinator starts
//! them empty, and their members rejoin (UNKNOWN_MEMBER_ID), dropping
//! their tasks first.

use tokio::time::Instant;

use super::GroupCoordinator;
use super::slot::GroupKind;
use crate::TopicCatalog;
use crate::errors::*;
use crate::tasks::group::{
    DescribedTaskGroup, HeartbeatInput, HeartbeatOutput, JOIN_EPOCH, TaskGroup, TopicView,
};
use crate::tasks::topology::InternalTopic;

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
            let tombstones = match slot.kind {
                GroupKind::Classic(_) => vec![crate::records::group_record(group_id, None)],
                GroupKind::Consumer(_) => super::consumer::group_tombstones(group_id),
                GroupKind::Tasks(_) => Vec::new(),
            };
            if let Err(e) = self.append(tombstones).await {
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

    /// Task groups' sessions and revocation deadlines, from the timer.
    pub(super) fn expire_task_members(&self, group: &mut TaskGroup, now: Instant) {
        let view = CatalogView(self.inner.catalog.as_ref());
        for member in group.on_timer(now, &view) {
            tracing::info!(group = %group.id(), %member, "task group member removed: session or rebalance timeout");
        }
    }
}

//! What the coordinator keeps per group id: the group — of exactly one
//! type, as in Kafka 4.x — and the committed offsets, which outlive a
//! change of type.

use std::collections::HashMap;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::GroupConfig;
use crate::consumer_group::ConsumerGroup;
use crate::group::{Group, GroupState, JoinResult, SyncResult};
use crate::offsets::{GroupOffsets, Retention};
use crate::tasks::group::TaskGroup;

/// ListGroups v5 filters on these names.
pub(super) const CLASSIC_GROUP_TYPE: &str = "classic";
pub(super) const CONSUMER_GROUP_TYPE: &str = "consumer";
pub(super) const TASK_GROUP_TYPE: &str = "task";

/// A classic group plus the JoinGroup/SyncGroup responses held for its
/// members.
pub(super) struct Classic {
    pub group: Group,
    pub joins: HashMap<String, oneshot::Sender<JoinResult>>,
    pub syncs: HashMap<String, oneshot::Sender<SyncResult>>,
}

impl Classic {
    pub fn new(group: Group) -> Self {
        Self {
            group,
            joins: HashMap::new(),
            syncs: HashMap::new(),
        }
    }
}

/// One kind per group type.
pub(super) enum GroupKind {
    Classic(Classic),
    /// KIP-848: membership driven by ConsumerGroupHeartbeat.
    Consumer(ConsumerGroup),
    /// Stream apps and Connect workers, over the task-group gRPC service.
    Tasks(TaskGroup),
}

pub(super) struct Slot {
    pub kind: GroupKind,
    pub offsets: GroupOffsets,
    /// Wall-clock time the group was first seen without members (offsets
    /// retention counts from it); `None` while it has members.
    pub empty_since_ms: Option<i64>,
    /// Set when the group was deleted: a request that found the slot before
    /// it left the map must not bring it back to life.
    pub deleted: bool,
}

impl Slot {
    pub fn classic(group: Group) -> Self {
        Self {
            kind: GroupKind::Classic(Classic::new(group)),
            offsets: GroupOffsets::default(),
            empty_since_ms: None,
            deleted: false,
        }
    }

    pub fn consumer(group: ConsumerGroup) -> Self {
        Self {
            kind: GroupKind::Consumer(group),
            offsets: GroupOffsets::default(),
            empty_since_ms: None,
            deleted: false,
        }
    }

    pub fn tasks(group: TaskGroup) -> Self {
        Self {
            kind: GroupKind::Tasks(group),
            offsets: GroupOffsets::default(),
            empty_since_ms: None,
            deleted: false,
        }
    }

    pub fn new_classic(id: &str, config: &GroupConfig) -> Self {
        Self::classic(Group::new(id, config.clone()))
    }

    pub fn id(&self) -> &str {
        match &self.kind {
            GroupKind::Classic(c) => c.group.id(),
            GroupKind::Consumer(c) => c.id(),
            GroupKind::Tasks(t) => t.id(),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self.kind {
            GroupKind::Classic(_) => CLASSIC_GROUP_TYPE,
            GroupKind::Consumer(_) => CONSUMER_GROUP_TYPE,
            GroupKind::Tasks(_) => TASK_GROUP_TYPE,
        }
    }

    /// The classic group this slot holds, if it is one.
    pub fn classic_group(&mut self) -> Option<&mut Classic> {
        match &mut self.kind {
            GroupKind::Classic(c) => Some(c),
            GroupKind::Consumer(_) | GroupKind::Tasks(_) => None,
        }
    }

    /// The consumer group this slot holds, if it is one.
    pub fn consumer_group(&self) -> Option<&ConsumerGroup> {
        match &self.kind {
            GroupKind::Consumer(c) => Some(c),
            GroupKind::Classic(_) | GroupKind::Tasks(_) => None,
        }
    }

    /// The task group this slot holds, if it is one.
    pub fn task_group(&self) -> Option<&TaskGroup> {
        match &self.kind {
            GroupKind::Tasks(t) => Some(t),
            GroupKind::Classic(_) | GroupKind::Consumer(_) => None,
        }
    }

    /// Whether the group has no members (and so may change type, be
    /// deleted, or let its offsets expire).
    pub fn is_empty(&self) -> bool {
        match &self.kind {
            GroupKind::Classic(c) => {
                matches!(c.group.state(), GroupState::Empty | GroupState::Dead)
            }
            GroupKind::Consumer(c) => c.is_empty(),
            GroupKind::Tasks(t) => t.is_empty(),
        }
    }

    pub fn is_dead(&self) -> bool {
        self.deleted
            || matches!(&self.kind, GroupKind::Classic(c) if c.group.state() == GroupState::Dead)
    }

    /// The state as ListGroups/DescribeGroups spell it.
    pub fn state_name(&self) -> &'static str {
        if self.deleted {
            return GroupState::Dead.as_str();
        }
        match &self.kind {
            GroupKind::Classic(c) => c.group.state().as_str(),
            GroupKind::Consumer(c) => c.state().as_str(),
            GroupKind::Tasks(t) => t.state().as_str(),
        }
    }

    /// ListGroups' protocol type: the classic group's own, or "consumer".
    pub fn protocol_type(&self) -> &str {
        match &self.kind {
            GroupKind::Classic(c) => c.group.protocol_type().unwrap_or_default(),
            GroupKind::Consumer(_) => CONSUMER_GROUP_TYPE,
            GroupKind::Tasks(_) => TASK_GROUP_TYPE,
        }
    }

    /// Called after every change of the group: starts or clears the clock
    /// of its emptiness.
    pub fn note_state(&mut self, now_ms: i64) {
        if self.is_empty() {
            self.empty_since_ms.get_or_insert(now_ms);
        } else {
            self.empty_since_ms = None;
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.kind {
            GroupKind::Classic(c) => c.group.next_deadline(),
            GroupKind::Consumer(c) => c.next_deadline(),
            GroupKind::Tasks(t) => t.next_deadline(),
        }
    }

    /// Which offsets may expire now.
    pub fn retention(&self) -> Retention {
        match &self.kind {
            GroupKind::Classic(c) => c.group.retention(self.empty_since_ms),
            GroupKind::Consumer(c) if c.is_empty() => Retention::Empty {
                since: self.empty_since_ms,
            },
            GroupKind::Consumer(c) => {
                Retention::KeepSubscribed(c.subscribed_topics().into_iter().collect())
            }
            GroupKind::Tasks(t) if t.is_empty() => Retention::Empty {
                since: self.empty_since_ms,
            },
            GroupKind::Tasks(t) => {
                Retention::KeepSubscribed(t.source_topics().into_iter().collect())
            }
        }
    }

    /// Which offsets OffsetDelete may remove: `Ok(None)` = any, `Ok(Some(t))`
    /// = any outside the subscribed topics `t`, `Err` = a group-level error.
    pub fn offset_delete_guard(&self) -> Result<Option<std::collections::HashSet<String>>, i16> {
        if self.deleted {
            return Err(crate::errors::GROUP_ID_NOT_FOUND);
        }
        match &self.kind {
            GroupKind::Classic(c) => c.group.offset_delete_guard(),
            GroupKind::Consumer(c) if c.is_empty() => Ok(None),
            GroupKind::Consumer(c) => Ok(Some(c.subscribed_topics().into_iter().collect())),
            GroupKind::Tasks(t) if t.is_empty() => Ok(None),
            GroupKind::Tasks(t) => Ok(Some(t.source_topics().into_iter().collect())),
        }
    }
}

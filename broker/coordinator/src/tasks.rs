//! Task groups: the members of a stream app or a Connect worker group
//! heartbeat to the coordinator, which decides who runs which task.
//!
//! Modelled on KIP-1071 (Kafka Streams' server-side rebalance protocol),
//! with what it leaves out: warm-up tasks and a state-aware assignor.
//! A stream app's tasks are its subtopologies' partitions; a Connect
//! worker group's tasks are its connectors' task indexes (a "subtopology"
//! with a fixed task count and no source topics).
//!
//! - [`topology`]: which tasks a topology has, given today's topics, and
//!   which internal topics it still needs.
//! - [`assignor`]: the pure assignment of active, standby and warm-up tasks.
//! - [`group`]: the state machine of one group, one heartbeat at a time.

pub mod assignor;
pub mod group;
pub mod topology;

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One task: a subtopology's partition, or a connector's task index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskId {
    pub subtopology: String,
    pub partition: i32,
}

impl TaskId {
    pub fn new(subtopology: impl Into<String>, partition: i32) -> Self {
        Self {
            subtopology: subtopology.into(),
            partition,
        }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// What one member runs: each task in at most one of the three roles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tasks {
    /// Processing, the only copy that writes.
    pub active: BTreeSet<TaskId>,
    /// Keeping a replica of the state from the changelog, to take over.
    pub standby: BTreeSet<TaskId>,
    /// Restoring state before the task moves here.
    pub warmup: BTreeSet<TaskId>,
}

impl Tasks {
    pub fn is_empty(&self) -> bool {
        self.active.is_empty() && self.standby.is_empty() && self.warmup.is_empty()
    }

    pub fn len(&self) -> usize {
        self.active.len() + self.standby.len() + self.warmup.len()
    }

    /// Whether the member holds `task` in any role.
    pub fn holds(&self, task: &TaskId) -> bool {
        self.active.contains(task) || self.standby.contains(task) || self.warmup.contains(task)
    }
}

//! The task assignor: a pure function from the group's tasks and members
//! (their weights, racks, previous tasks and how far each one's local
//! state is) to every member's active, standby and warm-up tasks.
//!
//! In four passes:
//! 1. **Quotas**: each member's share of the active tasks, proportional to
//!    its weight (threads) — `floor` or `ceil` of it, summing to the total.
//! 2. **Sticky**: each member keeps its previous active tasks up to its
//!    quota, first those no other member has caught-up state for.
//! 3. **Fill**: every other task goes to a member with room, a caught-up
//!    one first (least lag), else the one with the most room.
//! 4. **State**: a stateful task that pass 3 put on a member that is not
//!    caught up goes back to a caught-up member (its previous owner if
//!    alive) and the chosen member gets a warm-up instead, up to
//!    `max_warmup_replicas` in the group; the move completes on a later
//!    assignment, once the warm-up has caught up. Then standbys: never on
//!    the active's member or process, sticky, spread across racks.
//!
//! Balance therefore holds whenever every stateful task's chosen member is
//! caught up; a warm-up is the one sanctioned, temporary imbalance.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use super::{TaskId, Tasks};

/// The group's settings the assignor follows (Kafka Streams' names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignorConfig {
    /// `num.standby.replicas`
    pub num_standby_replicas: u32,
    /// `acceptable.recovery.lag`: a member whose state is at most this many
    /// records behind the changelog end counts as caught up.
    pub acceptable_recovery_lag: i64,
    /// `max.warmup.replicas`: warm-ups in flight in the whole group.
    pub max_warmup_replicas: u32,
}

impl Default for AssignorConfig {
    fn default() -> Self {
        Self {
            num_standby_replicas: 0,
            acceptable_recovery_lag: 10_000,
            max_warmup_replicas: 2,
        }
    }
}

/// One task to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    pub id: TaskId,
    /// Has state backed by a changelog (standbys and warm-ups apply).
    pub stateful: bool,
}

/// What the assignor sees of one member.
#[derive(Debug, Clone, Default)]
pub struct MemberSpec {
    pub member_id: String,
    /// Members of one process share a state directory: a standby is never
    /// placed in the active's process.
    pub process_id: String,
    pub rack: Option<String>,
    /// Threads; its share of active tasks is proportional. 0 counts as 1.
    pub weight: u32,
    /// Its previous target, for stickiness.
    pub previous: Tasks,
    /// How many records its local state of a task is behind the task's
    /// changelog end, for the tasks it has state of. A task it was active
    /// for counts as caught up whatever it reports.
    pub lags: HashMap<TaskId, i64>,
}

/// Every member's tasks, by member id.
pub type TaskAssignment = BTreeMap<String, Tasks>;

/// The members' targets. Every task gets exactly one active owner when
/// there is at least one member.
pub fn assign(
    tasks: &[TaskSpec],
    members: &[MemberSpec],
    config: &AssignorConfig,
) -> TaskAssignment {
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| members[a].member_id.cmp(&members[b].member_id));
    let members: Vec<&MemberSpec> = order.iter().map(|&i| &members[i]).collect();
    let mut out: Vec<Tasks> = vec![Tasks::default(); members.len()];
    if !members.is_empty() && !tasks.is_empty() {
        Placement::new(tasks, &members, config).run(&mut out);
    }
    members
        .iter()
        .zip(out)
        .map(|(m, t)| (m.member_id.clone(), t))
        .collect()
}

/// The working state of one assignment, tasks and members by index.
struct Placement<'a> {
    tasks: &'a [TaskSpec],
    members: &'a [&'a MemberSpec],
    config: &'a AssignorConfig,
    index: HashMap<&'a TaskId, usize>,
    /// The alive member that was active for each task.
    previous_owner: Vec<Option<usize>>,
    /// Members that reported state of each task, with its lag.
    reported: Vec<Vec<(usize, i64)>>,
    quota: Vec<usize>,
    owner: Vec<Option<usize>>,
    load: Vec<usize>,
}

impl<'a> Placement<'a> {
    fn new(
        tasks: &'a [TaskSpec],
        members: &'a [&'a MemberSpec],
        config: &'a AssignorConfig,
    ) -> Self {
        let index: HashMap<&TaskId, usize> =
            tasks.iter().enumerate().map(|(i, t)| (&t.id, i)).collect();
        let mut previous_owner = vec![None; tasks.len()];
        let mut reported = vec![Vec::new(); tasks.len()];
        for (m, member) in members.iter().enumerate() {
            for task in &member.previous.active {
                if let Some(&t) = index.get(task) {
                    previous_owner[t].get_or_insert(m);
                }
            }
            for (task, &lag) in &member.lags {
                if let Some(&t) = index.get(task) {
                    reported[t].push((m, lag.max(0)));
                }
            }
        }
        let quota = quotas(tasks.len(), members, &previous_owner);
        Self {
            tasks,
            members,
            config,
            index,
            previous_owner,
            reported,
            quota,
            owner: vec![None; tasks.len()],
            load: vec![0; members.len()],
        }
    }

    /// The member's lag on task `t`: 0 for its previous owner, `None`
    /// when it has no state of it.
    fn lag(&self, m: usize, t: usize) -> Option<i64> {
        if self.previous_owner[t] == Some(m) {
            return Some(0);
        }
        self.reported[t]
            .iter()
            .find(|(r, _)| *r == m)
            .map(|&(_, lag)| lag)
    }

    fn caught_up(&self, m: usize, t: usize) -> bool {
        !self.tasks[t].stateful
            || self
                .lag(m, t)
                .is_some_and(|lag| lag <= self.config.acceptable_recovery_lag)
    }

    /// The caught-up member best placed to run stateful task `t` besides
    /// `except`: its previous owner, else the one with the least lag.
    fn best_caught_up(&self, t: usize, except: usize) -> Option<usize> {
        if let Some(p) = self.previous_owner[t].filter(|&p| p != except) {
            return Some(p);
        }
        self.reported[t]
            .iter()
            .filter(|&&(m, lag)| m != except && lag <= self.config.acceptable_recovery_lag)
            .min_by_key(|&&(m, lag)| (lag, self.load[m], m))
            .map(|&(m, _)| m)
    }

    fn give(&mut self, t: usize, m: usize) {
        self.owner[t] = Some(m);
        self.load[m] += 1;
    }

    fn run(mut self, out: &mut [Tasks]) {
        self.keep_previous();
        self.fill();
        let warmups = self.keep_state();
        for (t, owner) in self.owner.iter().enumerate() {
            let m = owner.expect("every task placed");
            out[m].active.insert(self.tasks[t].id.clone());
        }
        for (t, m) in warmups {
            out[m].warmup.insert(self.tasks[t].id.clone());
        }
        self.place_standbys(out);
    }

    /// Pass 2: previous owners keep their tasks up to their quotas.
    fn keep_previous(&mut self) {
        for m in 0..self.members.len() {
            let mut kept: Vec<(bool, usize)> = self.members[m]
                .previous
                .active
                .iter()
                .filter_map(|task| self.index.get(task).copied())
                .filter(|&t| self.previous_owner[t] == Some(m))
                .map(|t| {
                    // Tasks whose state lives elsewhere too are the ones to
                    // let go when over quota: they move without a warm-up.
                    let elsewhere = self.tasks[t].stateful
                        && self.reported[t]
                            .iter()
                            .any(|&(r, lag)| r != m && lag <= self.config.acceptable_recovery_lag);
                    (elsewhere, t)
                })
                .collect();
            kept.sort_unstable();
            for (_, t) in kept.into_iter().take(self.quota[m]) {
                self.give(t, m);
            }
        }
    }

    /// Pass 3: the rest to members with room.
    fn fill(&mut self) {
        let mut room: BinaryHeap<(usize, Reverse<usize>)> = (0..self.members.len())
            .filter(|&m| self.quota[m] > self.load[m])
            .map(|m| (self.quota[m] - self.load[m], Reverse(m)))
            .collect();
        for t in 0..self.tasks.len() {
            if self.owner[t].is_some() {
                continue;
            }
            let by_state = self.tasks[t]
                .stateful
                .then(|| {
                    self.reported[t]
                        .iter()
                        .filter(|&&(m, _)| self.load[m] < self.quota[m])
                        .min_by_key(|&&(m, lag)| {
                            let late = lag > self.config.acceptable_recovery_lag;
                            (late, lag, self.load[m], m)
                        })
                        .map(|&(m, _)| m)
                })
                .flatten();
            let m = match by_state {
                Some(m) => m,
                None => loop {
                    let (left, Reverse(m)) = room.pop().expect("quotas sum to the task count");
                    let now = self.quota[m] - self.load[m];
                    if now == left {
                        break m;
                    }
                    if now > 0 {
                        room.push((now, Reverse(m)));
                    }
                },
            };
            self.give(t, m);
            let left = self.quota[m] - self.load[m];
            if left > 0 && by_state.is_none() {
                room.push((left, Reverse(m)));
            }
        }
    }

    /// Pass 4a: stateful tasks headed for a member without their state
    /// stay where the state is; the newcomer warms up. Returns the
    /// warm-ups (task, member).
    fn keep_state(&mut self) -> Vec<(usize, usize)> {
        let mut warmups = Vec::new();
        let budget = self.config.max_warmup_replicas as usize;
        for t in 0..self.tasks.len() {
            let m = self.owner[t].expect("every task placed");
            if self.caught_up(m, t) {
                continue;
            }
            let Some(source) = self.best_caught_up(t, m) else {
                // Nobody has the state: restoring it here is as good as
                // anywhere.
                continue;
            };
            self.load[m] -= 1;
            self.give(t, source);
            if warmups.len() < budget {
                warmups.push((t, m));
            }
        }
        warmups
    }

    /// Pass 4b: standbys for stateful tasks.
    fn place_standbys(&self, out: &mut [Tasks]) {
        let wanted = self.config.num_standby_replicas as usize;
        if wanted == 0 {
            return;
        }
        let n = self.members.len();
        let mut previous_standbys: Vec<Vec<usize>> = vec![Vec::new(); self.tasks.len()];
        for (m, member) in self.members.iter().enumerate() {
            for task in &member.previous.standby {
                if let Some(&t) = self.index.get(task) {
                    previous_standbys[t].push(m);
                }
            }
        }
        let mut cursor = 0;
        for t in (0..self.tasks.len()).filter(|&t| self.tasks[t].stateful) {
            let active = self.owner[t].expect("every task placed");
            let task = &self.tasks[t].id;
            let eligible = |m: usize, out: &[Tasks]| {
                m != active
                    && self.members[m].process_id != self.members[active].process_id
                    && !out[m].holds(task)
            };
            let mut racks: Vec<&str> = self.members[active].rack.as_deref().into_iter().collect();
            let mut placed = 0;
            let take = |m: usize, out: &mut [Tasks], racks: &mut Vec<&'a str>| {
                out[m].standby.insert(task.clone());
                racks.extend(self.members[m].rack.as_deref());
            };
            for &m in &previous_standbys[t] {
                if placed < wanted && eligible(m, out) {
                    take(m, out, &mut racks);
                    placed += 1;
                }
            }
            // Then a new rack if there is one, else any member, round-robin
            // so standbys spread evenly.
            for need_new_rack in [true, false] {
                let start = cursor;
                let mut scanned = 0;
                while placed < wanted && scanned < n {
                    let m = (start + scanned) % n;
                    scanned += 1;
                    let rack = self.members[m].rack.as_deref();
                    let fresh = rack.is_none_or(|r| !racks.contains(&r));
                    if eligible(m, out) && (fresh || !need_new_rack) {
                        take(m, out, &mut racks);
                        placed += 1;
                        cursor = (m + 1) % n;
                    }
                }
            }
        }
    }
}

/// Each member's share of `tasks`, proportional to its weight; members
/// that owned more before get the remainder first, so fewer tasks move.
fn quotas(tasks: usize, members: &[&MemberSpec], previous_owner: &[Option<usize>]) -> Vec<usize> {
    let weights: Vec<usize> = members.iter().map(|m| m.weight.max(1) as usize).collect();
    let total: usize = weights.iter().sum();
    let mut quota: Vec<usize> = weights.iter().map(|w| tasks * w / total).collect();
    // Who held more than its floor before keeps the extra task, so the
    // same group assigned again moves nothing.
    let mut above_floor = vec![0usize; members.len()];
    for &m in previous_owner.iter().flatten() {
        above_floor[m] += 1;
    }
    for (m, a) in above_floor.iter_mut().enumerate() {
        *a = a.saturating_sub(quota[m]).min(1);
    }
    let left = tasks - quota.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by_key(|&m| {
        (
            Reverse(tasks * weights[m] % total),
            Reverse(above_floor[m]),
            m,
        )
    });
    for &m in order.iter().take(left) {
        quota[m] += 1;
    }
    quota
}

#[cfg(test)]
#[path = "assignor_tests.rs"]
mod tests;

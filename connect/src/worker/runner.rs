//! The worker's loop: task-group events start and stop connector instances
//! and tasks; config changes update the topology and restart what runs
//! with an outdated configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use weir_client::task_group::{MemberConfig, TaskEvent, TaskGroupMember, TaskId};

use super::{Props, Worker, topology};
use crate::store::configs::{Change, ConfigState, RestartRequest, TargetState};
use crate::store::statuses::{State, Subject};

/// What an assigned task id stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    Connector(String),
    Task(String, i32),
}

impl Unit {
    /// What an assigned task id runs: task `i` of the connector, and for
    /// partition 0 the connector instance too.
    pub fn of(id: &TaskId) -> Vec<Unit> {
        let Some(name) = id.subtopology.strip_prefix("c:") else {
            return Vec::new();
        };
        let mut out = vec![Unit::Task(name.to_string(), id.partition)];
        if id.partition == 0 {
            out.insert(0, Unit::Connector(name.to_string()));
        }
        out
    }

    /// The task id whose assignment runs this unit.
    fn task_id(&self) -> TaskId {
        match self {
            Unit::Connector(n) => TaskId::new(super::connector_subtopology(n), 0),
            Unit::Task(n, i) => TaskId::new(super::connector_subtopology(n), *i),
        }
    }

    pub fn subject(&self) -> Subject {
        match self {
            Unit::Connector(n) => Subject::Connector(n.clone()),
            Unit::Task(n, i) => Subject::Task(n.clone(), *i),
        }
    }

    fn connector(&self) -> &str {
        match self {
            Unit::Connector(n) | Unit::Task(n, _) => n,
        }
    }
}

/// What a unit was started with: when the config state says otherwise, it
/// restarts.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub connector_config: Props,
    /// The task's own config (tasks only).
    pub task_config: Option<Props>,
    pub target: TargetState,
    /// The committed task configs (connector instances compare them with
    /// what they would generate).
    pub tasks: Vec<Props>,
}

/// The snapshot a unit would start with now; `None` when it cannot run
/// (deleted connector, task config not committed).
pub fn snapshot(state: &ConfigState, unit: &Unit) -> Option<Snapshot> {
    let c = state.connectors.get(unit.connector())?;
    let task_config = match unit {
        Unit::Connector(_) => None,
        Unit::Task(_, i) => Some(c.tasks.get(usize::try_from(*i).ok()?)?.clone()),
    };
    Some(Snapshot {
        connector_config: c.config.clone(),
        task_config,
        target: c.target,
        tasks: match unit {
            Unit::Connector(_) => c.tasks.clone(),
            Unit::Task(..) => Vec::new(),
        },
    })
}

/// Whether a running unit must restart to follow the config state.
fn outdated(unit: &Unit, running: &Snapshot, now: &Snapshot) -> bool {
    match unit {
        // A connector instance writes the task configs itself; new ones
        // that match what it wrote need no restart.
        Unit::Connector(_) => {
            running.connector_config != now.connector_config || running.target != now.target
        }
        Unit::Task(..) => running != now,
    }
}

struct Running {
    snapshot: Snapshot,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// Why a unit stops: what status it leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Given to another worker (or the worker shuts down).
    Revoked,
    /// To start again at once.
    Restart,
    /// The connector is gone.
    Deleted,
}

struct Runner {
    worker: Arc<Worker>,
    /// Active tasks the coordinator gave this worker.
    assigned: BTreeSet<TaskId>,
    running: BTreeMap<Unit, Running>,
}

pub(super) async fn run(
    worker: Arc<Worker>,
    mut changes: mpsc::UnboundedReceiver<Change>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut sent = topology(&worker.config_state());
    let mut member_config = MemberConfig::new(worker.config.group_id.clone(), sent.clone());
    member_config.session_timeout = Some(worker.config.session_timeout);
    member_config.rebalance_timeout = worker.config.graceful_shutdown * 2 + Duration::from_secs(10);
    member_config.process_id = worker.id.clone();
    let (member, mut events) = TaskGroupMember::join(worker.cluster.clone(), member_config);
    tracing::info!(worker = %worker.id, group = %worker.config.group_id, "joined the worker group");
    let mut runner = Runner {
        worker,
        assigned: BTreeSet::new(),
        running: BTreeMap::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(TaskEvent::Assigned(tasks)) => {
                    runner.assigned = tasks.active;
                    runner.reconcile().await;
                }
                Some(TaskEvent::Revoked { tasks, done }) => {
                    for id in &tasks {
                        runner.assigned.remove(id);
                        for unit in runner.running_for(id) {
                            runner.stop(&unit, Stop::Revoked).await;
                        }
                    }
                    let _ = done.send(());
                }
                Some(TaskEvent::Lost(tasks)) => {
                    for id in &tasks {
                        runner.assigned.remove(id);
                        for unit in runner.running_for(id) {
                            if let Some(r) = runner.running.remove(&unit) {
                                tracing::warn!(unit = ?unit, "lost the task (fenced): stopping it at once");
                                r.handle.abort();
                            }
                        }
                    }
                }
                None => break,
            },
            change = changes.recv() => {
                let Some(change) = change else { break };
                let now = topology(&runner.worker.config_state());
                if now.subtopologies != sent.subtopologies {
                    member.update_topology(now.clone());
                    sent = now;
                }
                if let Change::Restart(req) = change {
                    runner.restart(&req).await;
                }
                runner.reconcile().await;
            }
            _ = tick.tick() => runner.reconcile().await,
            _ = shutdown.changed() => break,
        }
    }
    let units: Vec<Unit> = runner.running.keys().cloned().collect();
    for unit in units {
        runner.stop(&unit, Stop::Revoked).await;
    }
    member.leave().await;
    tracing::info!(worker = %runner.worker.id, "left the worker group");
}

impl Runner {
    fn running_for(&self, id: &TaskId) -> Vec<Unit> {
        self.running
            .keys()
            .filter(|u| u.task_id() == *id)
            .cloned()
            .collect()
    }

    /// Starts what is assigned and not running, restarts what runs with an
    /// outdated config, and stops what runs for a deleted connector.
    async fn reconcile(&mut self) {
        let state = self.worker.config_state();
        let units: Vec<Unit> = self.running.keys().cloned().collect();
        for unit in units {
            match snapshot(&state, &unit) {
                None if !state.connectors.contains_key(unit.connector()) => {
                    self.stop(&unit, Stop::Deleted).await;
                }
                None => self.stop(&unit, Stop::Revoked).await,
                Some(now) => {
                    let r = &self.running[&unit];
                    if r.handle.is_finished() && r.snapshot == now {
                        // Failed (its status says so): it stays down until
                        // restarted or reconfigured.
                        continue;
                    }
                    if outdated(&unit, &r.snapshot, &now) {
                        self.stop(&unit, Stop::Restart).await;
                    }
                }
            }
        }
        let assigned: Vec<Unit> = self.assigned.iter().flat_map(Unit::of).collect();
        for unit in assigned {
            if self.running.contains_key(&unit) {
                continue;
            }
            if let Some(snap) = snapshot(&state, &unit) {
                self.start(unit, snap);
            }
        }
    }

    fn start(&mut self, unit: Unit, snapshot: Snapshot) {
        let (stop, stopped) = watch::channel(false);
        let worker = self.worker.clone();
        tracing::info!(worker = %worker.id, unit = ?unit, "starting");
        let handle = match &unit {
            Unit::Connector(name) => tokio::spawn(super::instance::run(
                worker,
                name.clone(),
                snapshot.clone(),
                stopped,
            )),
            Unit::Task(name, index) => tokio::spawn(super::instance::run_task(
                worker,
                name.clone(),
                *index,
                snapshot.clone(),
                stopped,
            )),
        };
        self.running.insert(
            unit,
            Running {
                snapshot,
                stop,
                handle,
            },
        );
    }

    async fn stop(&mut self, unit: &Unit, why: Stop) {
        let Some(r) = self.running.remove(unit) else {
            return;
        };
        tracing::info!(worker = %self.worker.id, unit = ?unit, reason = ?why, "stopping");
        let _ = r.stop.send(true);
        let mut handle = r.handle;
        if tokio::time::timeout(self.worker.config.graceful_shutdown, &mut handle)
            .await
            .is_err()
        {
            tracing::warn!(unit = ?unit, "did not stop within task.shutdown.graceful.timeout.ms: cancelled");
            handle.abort();
        }
        tracing::info!(worker = %self.worker.id, unit = ?unit, "stopped");
        let subject = unit.subject();
        match why {
            Stop::Revoked => {
                self.worker
                    .put_status(&subject, State::Unassigned, None)
                    .await
            }
            Stop::Restart => {
                self.worker
                    .put_status(&subject, State::Restarting, None)
                    .await
            }
            Stop::Deleted => self.worker.forget_status(&subject).await,
        }
    }

    /// Acts on the part of a restart request this worker runs.
    async fn restart(&mut self, req: &RestartRequest) {
        let failed =
            |w: &Worker, s: &Subject| w.status_of(s).is_some_and(|st| st.state == State::Failed);
        let mut units = Vec::new();
        match req.task {
            Some(i) => units.push(Unit::Task(req.connector.clone(), i)),
            None => {
                let connector = Unit::Connector(req.connector.clone());
                if !req.only_failed || failed(&self.worker, &connector.subject()) {
                    units.push(connector);
                }
                if req.include_tasks {
                    for unit in self.running.keys() {
                        if let Unit::Task(n, _) = unit
                            && *n == req.connector
                            && (!req.only_failed || failed(&self.worker, &unit.subject()))
                        {
                            units.push(unit.clone());
                        }
                    }
                }
            }
        }
        for unit in units {
            if self.running.contains_key(&unit) {
                self.stop(&unit, Stop::Restart).await;
            }
        }
        // reconcile() starts them again.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::configs::records;
    use crate::test_props as p;

    fn state() -> ConfigState {
        let mut s = ConfigState::default();
        for (k, v) in [
            records::connector("c", &p(&[("file", "/a")])),
            records::task("c", 0, &p(&[("t", "0")])),
            records::commit("c", 1),
        ] {
            s.apply(s.applied, &k, v.as_deref());
        }
        s
    }

    #[test]
    fn units_restart_only_when_their_own_config_moves() {
        let mut s = state();
        let conn = Unit::Connector("c".into());
        let task = Unit::Task("c".into(), 0);
        let conn_before = snapshot(&s, &conn).unwrap();
        let task_before = snapshot(&s, &task).unwrap();
        assert!(snapshot(&s, &Unit::Task("c".into(), 1)).is_none());
        // New task configs: the task restarts, the instance that wrote them does not.
        let (k, v) = records::task("c", 0, &p(&[("t", "new")]));
        s.apply(s.applied, &k, v.as_deref());
        let (k, v) = records::commit("c", 1);
        s.apply(s.applied, &k, v.as_deref());
        assert!(!outdated(
            &conn,
            &conn_before,
            &snapshot(&s, &conn).unwrap()
        ));
        assert!(outdated(&task, &task_before, &snapshot(&s, &task).unwrap()));
        // Pausing moves both.
        let (k, v) = records::target_state("c", TargetState::Paused);
        s.apply(s.applied, &k, v.as_deref());
        assert!(outdated(&conn, &conn_before, &snapshot(&s, &conn).unwrap()));
    }

    #[test]
    fn the_topology_has_a_task_per_task_config_and_the_instance_rides_on_the_first() {
        let mut s = state();
        let t = topology(&s);
        let ids: Vec<(&str, i32)> = t
            .subtopologies
            .iter()
            .map(|s| (s.id.as_str(), s.task_count))
            .collect();
        assert_eq!(ids, [("c:c", 1)]);
        assert_eq!(t.epoch, 3);
        let (k, v) = records::commit("c", 3);
        s.apply(s.applied, &k, v.as_deref());
        assert_eq!(topology(&s).subtopologies[0].task_count, 3);
        let (k, v) = records::target_state("c", TargetState::Stopped);
        s.apply(s.applied, &k, v.as_deref());
        assert_eq!(topology(&s).subtopologies[0].task_count, 1);
        assert_eq!(
            Unit::of(&TaskId::new("c:c", 0)),
            [Unit::Connector("c".into()), Unit::Task("c".into(), 0)]
        );
        assert_eq!(
            Unit::of(&TaskId::new("c:c", 2)),
            [Unit::Task("c".into(), 2)]
        );
        assert!(Unit::of(&TaskId::new("x", 0)).is_empty());
        assert_eq!(Unit::Task("c".into(), 2).task_id(), TaskId::new("c:c", 2));
    }
}

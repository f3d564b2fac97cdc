//! `weir group describe` for a task group: its members with their active,
//! standby and warm-up tasks, and each task's owners with how far their
//! state lags the changelog.

use std::collections::BTreeMap;
use std::fmt::Write;

use weir_client::task_group::proto::{DescribedGroup, TaskId, TaskSet};

/// KIP-1071's names of the status codes.
fn status_name(code: i32) -> &'static str {
    match code {
        0 => "STALE_TOPOLOGY",
        1 => "MISSING_SOURCE_TOPICS",
        2 => "INCORRECTLY_PARTITIONED_TOPICS",
        3 => "MISSING_INTERNAL_TOPICS",
        _ => "UNKNOWN_STATUS",
    }
}

fn name(t: &TaskId) -> String {
    format!("{}_{}", t.subtopology, t.partition)
}

/// `0_0,0_1`; `-` for none.
fn task_list(tasks: &[TaskId]) -> String {
    if tasks.is_empty() {
        return "-".into();
    }
    let mut names: Vec<(&str, i32)> = tasks
        .iter()
        .map(|t| (t.subtopology.as_str(), t.partition))
        .collect();
    names.sort_unstable();
    names
        .iter()
        .map(|(s, p)| format!("{s}_{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn describe_text(g: &DescribedGroup) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Group: {}\tType: task\tState: {}\tGroup epoch: {}\tAssignment epoch: {}\tTopology epoch: {}\tMembers: {}",
        g.group_id,
        g.state,
        g.group_epoch,
        g.assignment_epoch,
        g.topology_epoch,
        g.members.len()
    );
    for s in &g.statuses {
        let _ = writeln!(out, "Status: {}: {}", status_name(s.code), s.detail);
    }
    if g.members.is_empty() {
        return out;
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "MEMBER\tEPOCH\tSTATE\tPROCESS\tHOST\tENDPOINT\tACTIVE\tSTANDBY\tWARMUP"
    );
    let empty = TaskSet::default();
    // Each task's holders: (role, member, lag).
    type Holder<'a> = (&'a str, &'a str, Option<i64>);
    let mut owners: BTreeMap<(String, i32), Vec<Holder>> = BTreeMap::new();
    for m in &g.members {
        let assigned = m.assigned.as_ref().unwrap_or(&empty);
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            m.member_id,
            m.member_epoch,
            m.state,
            m.process_id,
            m.client_host,
            m.endpoint
                .as_ref()
                .map_or("-".into(), |e| format!("{}:{}", e.host, e.port)),
            task_list(&assigned.active),
            task_list(&assigned.standby),
            task_list(&assigned.warmup)
        );
        let lag = |t: &TaskId| {
            m.lags
                .iter()
                .find(|l| l.task.as_ref() == Some(t))
                .map(|l| l.lag)
        };
        for (role, tasks) in [
            ("active", &assigned.active),
            ("standby", &assigned.standby),
            ("warmup", &assigned.warmup),
        ] {
            for t in tasks {
                owners
                    .entry((t.subtopology.clone(), t.partition))
                    .or_default()
                    .push((role, &m.member_id, lag(t)));
            }
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "TASK\tROLE\tMEMBER\tLAG");
    for ((sub, p), holders) in owners {
        let task = name(&TaskId {
            subtopology: sub,
            partition: p,
        });
        for (role, member, lag) in holders {
            let lag = lag.map_or("-".into(), |l| l.to_string());
            let _ = writeln!(out, "{task}\t{role}\t{member}\t{lag}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use weir_client::task_group::proto::{DescribedMember, Endpoint, Status, TaskLag};

    use super::*;

    fn task(s: &str, p: i32) -> TaskId {
        TaskId {
            subtopology: s.into(),
            partition: p,
        }
    }

    #[test]
    fn members_tasks_and_lags_are_listed() {
        let g = DescribedGroup {
            group_id: "app".into(),
            state: "Reconciling".into(),
            group_epoch: 4,
            assignment_epoch: 4,
            topology_epoch: 1,
            statuses: vec![Status {
                code: 3,
                detail: "Internal topics app-changelog are missing.".into(),
            }],
            members: vec![DescribedMember {
                member_id: "m1".into(),
                process_id: "p1".into(),
                client_host: "/10.0.0.1".into(),
                endpoint: Some(Endpoint {
                    host: "pod-1".into(),
                    port: 8080,
                }),
                member_epoch: 4,
                state: "Stable".into(),
                assigned: Some(TaskSet {
                    active: vec![task("1", 0), task("0", 2)],
                    standby: vec![],
                    warmup: vec![task("1", 1)],
                }),
                lags: vec![TaskLag {
                    task: Some(task("1", 1)),
                    lag: 1200,
                }],
                ..DescribedMember::default()
            }],
            ..DescribedGroup::default()
        };
        let text = describe_text(&g);
        assert!(text.starts_with("Group: app\tType: task\tState: Reconciling\tGroup epoch: 4\tAssignment epoch: 4\tTopology epoch: 1\tMembers: 1\n"), "{text}");
        assert!(
            text.contains(
                "Status: MISSING_INTERNAL_TOPICS: Internal topics app-changelog are missing.\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("m1\t4\tStable\tp1\t/10.0.0.1\tpod-1:8080\t0_2,1_0\t-\t1_1\n"),
            "{text}"
        );
        assert!(text.contains("1_1\twarmup\tm1\t1200\n"), "{text}");
        assert!(text.contains("0_2\tactive\tm1\t-\n"), "{text}");
    }
}

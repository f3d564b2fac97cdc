//! KIP-875 on a stopped connector: list, alter and reset its offsets — a
//! source's in the offsets topic, a sink's as its consumer group's
//! committed offsets.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, anyhow};
use tokio::time::Instant;
use kafka_protocol::error::ResponseError;
use weir_client::admin::Admin;
use weir_client::consumer::{Consumer, ConsumerConfig};

use super::Worker;
use super::sink::group_of;
use crate::offset_request::OffsetChanges;
use crate::store::offsets::JsonMap;

/// Tasks of a connector just stopped may still be leaving its group: the
/// coordinator refuses changes to a group with members until they are gone.
const MEMBERS_GONE_WITHIN: Duration = Duration::from_secs(15);

fn group_has_members(e: &weir_client::Error) -> bool {
    matches!(
        e.kafka_error(),
        Some(
            ResponseError::NonEmptyGroup
                | ResponseError::UnknownMemberId
                | ResponseError::GroupSubscribedToTopic
                | ResponseError::RebalanceInProgress
        )
    )
}

/// After a failure: waits a little and returns Ok when the group still
/// had members and there is time left to retry; else the failure.
async fn members_may_leave(e: weir_client::Error, deadline: Instant) -> Result<()> {
    if group_has_members(&e) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        Ok(())
    } else {
        Err(anyhow!(e))
    }
}

impl Worker {
    fn admin(&self) -> Admin {
        Admin::from_cluster(self.cluster.clone())
    }

    /// A sink's committed offsets (none before it first committed).
    pub async fn sink_offsets(&self, connector: &str) -> Result<BTreeMap<(String, i32), i64>> {
        match self.admin().committed_offsets(&group_of(connector)).await {
            Ok(c) => Ok(c),
            Err(e) if e.kafka_error() == Some(ResponseError::GroupIdNotFound) => {
                Ok(BTreeMap::new())
            }
            Err(e) => Err(anyhow!(e)),
        }
    }

    pub async fn alter_offsets(&self, connector: &str, changes: OffsetChanges) -> Result<()> {
        match changes {
            OffsetChanges::Source(pairs) => {
                self.write_source_offsets(connector, &pairs, true).await
            }
            OffsetChanges::Sink(pairs) => {
                let group = group_of(connector);
                let (commit, delete): (Vec<_>, Vec<_>) =
                    pairs.into_iter().partition(|(_, o)| o.is_some());
                let commit: Vec<(String, i32, i64)> = commit
                    .into_iter()
                    .filter_map(|((t, p), o)| o.map(|o| (t, p, o)))
                    .collect();
                if !commit.is_empty() {
                    // A consumer outside the group (no subscription) commits
                    // as an admin tool does, allowed only while it is empty.
                    let mut c = Consumer::with_cluster(
                        self.cluster.clone(),
                        ConsumerConfig {
                            group_id: Some(group.clone()),
                            ..ConsumerConfig::default()
                        },
                    );
                    let deadline = Instant::now() + MEMBERS_GONE_WITHIN;
                    let done = loop {
                        match c.commit_offsets(&commit).await {
                            Ok(()) => break Ok(()),
                            Err(e) => {
                                if let Err(e) = members_may_leave(e, deadline).await {
                                    break Err(e);
                                }
                            }
                        }
                    };
                    let _ = c.close().await;
                    done?;
                }
                let delete: Vec<(String, i32)> = delete.into_iter().map(|(tp, _)| tp).collect();
                if !delete.is_empty() {
                    let admin = self.admin();
                    let deadline = Instant::now() + MEMBERS_GONE_WITHIN;
                    while let Err(e) = admin.delete_committed_offsets(&group, &delete).await {
                        members_may_leave(e, deadline).await?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Forgets every offset: a source's stored offsets, a sink's group.
    pub async fn reset_offsets(&self, connector: &str, sink: bool) -> Result<()> {
        if sink {
            let admin = self.admin();
            let group = group_of(connector);
            let deadline = Instant::now() + MEMBERS_GONE_WITHIN;
            while let Err(e) = admin.delete_group(&group).await {
                if e.kafka_error() == Some(ResponseError::GroupIdNotFound) {
                    break;
                }
                members_may_leave(e, deadline).await?;
            }
            return Ok(());
        }
        let forget: Vec<(JsonMap, Option<JsonMap>)> = self
            .source_offsets(connector)
            .into_iter()
            .map(|(p, _)| (p, None))
            .collect();
        self.write_source_offsets(connector, &forget, true).await
    }

    /// `wait`: returns once this worker has read the last one back, so a
    /// listing right after shows the change.
    pub(super) async fn write_source_offsets(
        &self,
        connector: &str,
        pairs: &[(JsonMap, Option<JsonMap>)],
        wait: bool,
    ) -> Result<()> {
        let n = pairs.len();
        for (i, (partition, offset)) in pairs.iter().enumerate() {
            self.offset_log
                .send(
                    crate::store::offsets::key(connector, partition),
                    offset.as_ref().map(crate::store::offsets::value),
                    wait && i + 1 == n,
                )
                .await?;
        }
        Ok(())
    }
}

//! Rebalance callbacks, as Kafka's `ConsumerRebalanceListener`: the
//! application learns which partitions it gains and gives up, to flush
//! state, commit, or open stores before reading resumes.

use super::Tp;

/// Called from inside `poll`, on the task that polls. With auto-commit on,
/// the consumer has committed the positions of revoked partitions before
/// `on_partitions_revoked` runs.
pub trait RebalanceListener: Send + Sync {
    /// Newly owned partitions; reading them starts after this returns.
    fn on_partitions_assigned(&mut self, _partitions: &[Tp]) {}
    /// Partitions given up in an orderly rebalance: nobody else reads them
    /// until this returns.
    fn on_partitions_revoked(&mut self, _partitions: &[Tp]) {}
    /// Partitions already owned by someone else (our membership ended: a
    /// session timeout, a fencing); committing for them would fail. By
    /// default treated as revoked, as Kafka's listener does.
    fn on_partitions_lost(&mut self, partitions: &[Tp]) {
        self.on_partitions_revoked(partitions);
    }
}

/// The listener of a consumer that has none.
pub(super) struct NoListener;

impl RebalanceListener for NoListener {}

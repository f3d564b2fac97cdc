//! The shutdown signal shared by a member's tasks.

use tokio::sync::watch;

/// Resolves once `shutdown` turns true, or when its sender is gone (nobody
/// could ever stop the task otherwise).
pub(crate) async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    // The borrowed value is dropped here, so callers' futures stay `Send`.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

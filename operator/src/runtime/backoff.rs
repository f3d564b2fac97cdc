//! Exponential backoff after failed reconciles, per object, capped, and
//! forgotten on the first success.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The delay before retry number `failures` (1 after the first failure):
/// `base`, doubling each time, never above `cap`.
pub fn delay(failures: u32, base: Duration, cap: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    base.saturating_mul(1u32 << doublings).min(cap)
}

#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            failures: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a failure of `key`; returns how long to wait.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failures = self.lock();
        let n = failures.entry(key.to_string()).or_default();
        *n = n.saturating_add(1);
        delay(*n, self.base, self.cap)
    }

    pub fn succeeded(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets_on_success() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let waits: Vec<u64> = (0..6).map(|_| b.failed("ns/a").as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(b.failed("ns/b").as_secs(), 1);
        b.succeeded("ns/a");
        assert_eq!(b.failed("ns/a").as_secs(), 1);
        assert_eq!(
            delay(u32::MAX, Duration::from_secs(1), Duration::from_secs(60)).as_secs(),
            60
        );
    }
}

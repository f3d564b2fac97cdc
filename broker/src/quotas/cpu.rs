//! The CPU time a future spends being polled: what Kafka's request quota
//! counts (handler thread time), and not the time it spends waiting — a
//! long-polling fetch or a join waiting for its group costs nothing while
//! it waits. Each poll runs on one thread, so the thread's CPU clock read
//! around each poll adds up to the future's own.

// Unsafe is confined to this module: one `clock_gettime` call, which std
// does not offer for the thread CPU clock.
#![allow(unsafe_code)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `inner`, returning its output and the CPU time its polls took.
pub async fn cpu_timed<F: Future>(inner: F) -> (F::Output, Duration) {
    let mut timed = CpuTimed {
        inner: Box::pin(inner),
        used: Duration::ZERO,
    };
    let output = (&mut timed).await;
    (output, timed.used)
}

struct CpuTimed<F> {
    inner: Pin<Box<F>>,
    used: Duration,
}

impl<F: Future> Future for CpuTimed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Unpin: the inner future is boxed.
        let this = self.get_mut();
        let start = thread_cpu_time();
        let polled = this.inner.as_mut().poll(cx);
        this.used += thread_cpu_time().saturating_sub(start);
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_work_and_not_waiting() {
        let ((), waited) = cpu_timed(tokio::time::sleep(Duration::from_millis(200))).await;
        assert!(waited < Duration::from_millis(100), "{waited:?}");
        // Spins until this thread has used 50 ms of CPU, however long that
        // takes on a busy machine.
        let (_, worked) = cpu_timed(async {
            let start = thread_cpu_time();
            let mut x = 0u64;
            while thread_cpu_time() - start < Duration::from_millis(50) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            x
        })
        .await;
        assert!(worked >= Duration::from_millis(50), "{worked:?}");
    }
}

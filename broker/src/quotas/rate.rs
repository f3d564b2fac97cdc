//! A rate measured over a few fixed-span samples, as Kafka's quota sensors
//! measure one (`SampledStat` with `Rate`), and the throttle time that
//! brings a rate over its quota back to it. Pure: the time is passed in.

use std::collections::VecDeque;
use std::time::Duration;

/// How rates are sampled (`quota.window.num`, `quota.window.size.seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    pub samples: usize,
    pub span_ms: u64,
}

impl Sampling {
    pub fn new(samples: usize, span: Duration) -> Self {
        Sampling {
            samples: samples.max(1),
            span_ms: (span.as_millis() as u64).max(1),
        }
    }

    /// How long a sample counts toward the rate.
    fn horizon_ms(&self) -> u64 {
        self.samples as u64 * self.span_ms
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: u64,
    total: f64,
}

/// One sender's recorded amounts (bytes, or percent-seconds of handler
/// time) over the last samples.
#[derive(Debug, Clone, Default)]
pub struct Rate {
    samples: VecDeque<Sample>,
}

impl Rate {
    /// Adds `value` at `now_ms`.
    pub fn record(&mut self, sampling: Sampling, value: f64, now_ms: u64) {
        self.forget_old(sampling, now_ms);
        let current = self
            .samples
            .back()
            .is_some_and(|s| now_ms < s.start_ms + sampling.span_ms);
        if !current {
            self.samples.push_back(Sample {
                start_ms: now_ms,
                total: 0.0,
            });
            if self.samples.len() > sampling.samples {
                self.samples.pop_front();
            }
        }
        if let Some(s) = self.samples.back_mut() {
            s.total += value;
        }
    }

    /// Takes back what [`record`](Self::record) added (a fetch answered
    /// empty because it was throttled did not send its bytes).
    pub fn unrecord(&mut self, value: f64) {
        if let Some(s) = self.samples.back_mut() {
            s.total = (s.total - value).max(0.0);
        }
    }

    fn forget_old(&mut self, sampling: Sampling, now_ms: u64) {
        while self
            .samples
            .front()
            .is_some_and(|s| s.start_ms + sampling.horizon_ms() <= now_ms)
        {
            self.samples.pop_front();
        }
    }

    /// The span the rate is taken over: from the oldest sample to now,
    /// lengthened to at least all but one sample's worth, so a sender that
    /// just started is not judged on a few milliseconds (this is what
    /// lets a burst of about a window's worth through, as in Kafka).
    pub fn window_ms(&self, sampling: Sampling, now_ms: u64) -> u64 {
        let oldest = self
            .live(sampling, now_ms)
            .next()
            .map_or(now_ms, |s| s.start_ms);
        let elapsed = now_ms.saturating_sub(oldest);
        let full = elapsed / sampling.span_ms;
        let at_least = sampling.samples as u64 - 1;
        if full < at_least {
            elapsed + (at_least - full) * sampling.span_ms
        } else {
            elapsed
        }
        .max(1)
    }

    /// Per second, over [`window_ms`](Self::window_ms).
    pub fn per_second(&self, sampling: Sampling, now_ms: u64) -> f64 {
        let total: f64 = self.live(sampling, now_ms).map(|s| s.total).sum();
        total * 1000.0 / self.window_ms(sampling, now_ms) as f64
    }

    /// The samples that still count at `now_ms`, oldest first.
    fn live(&self, sampling: Sampling, now_ms: u64) -> impl Iterator<Item = &Sample> {
        let horizon = sampling.horizon_ms();
        self.samples
            .iter()
            .filter(move |s| s.start_ms + horizon > now_ms)
    }

    /// When the last amount was recorded (for forgetting idle senders).
    pub fn last_ms(&self) -> Option<u64> {
        self.samples.back().map(|s| s.start_ms)
    }
}

/// How long a sender whose `rate` is over `quota` must pause so that,
/// recording nothing more, its rate over the window comes down to the
/// quota: with O the rate and T the quota over a window W, a pause X with
/// O·W / (W + X) = T, so X = (O − T) / T · W. Zero when within the quota.
pub fn throttle(rate: f64, quota: f64, window_ms: u64) -> Duration {
    if rate <= quota || quota <= 0.0 {
        return Duration::ZERO;
    }
    let ms = (rate - quota) / quota * window_ms as f64;
    Duration::from_millis(ms.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAFKA: Sampling = Sampling {
        samples: 11,
        span_ms: 1000,
    };

    #[test]
    fn a_new_sender_is_measured_over_at_least_ten_spans() {
        let mut rate = Rate::default();
        rate.record(KAFKA, 1000.0, 5_000);
        assert_eq!(rate.window_ms(KAFKA, 5_500), 10_500);
        assert!((rate.per_second(KAFKA, 5_500) - 1000.0 / 10.5).abs() < 1e-9);
    }

    #[test]
    fn samples_roll_and_old_ones_stop_counting() {
        let two = Sampling {
            samples: 2,
            span_ms: 1000,
        };
        let mut rate = Rate::default();
        rate.record(two, 100.0, 0);
        rate.record(two, 100.0, 500);
        rate.record(two, 300.0, 1_000);
        // Two samples: 200 in [0, 1000), 300 in [1000, 2000); over 1.5 s.
        assert!((rate.per_second(two, 1_500) - 500.0 / 1.5).abs() < 1e-9);
        // At 2.5 s the first sample is past the horizon.
        assert!((rate.per_second(two, 2_500) - 300.0 / 1.5).abs() < 1e-9);
        rate.record(two, 50.0, 2_600);
        rate.unrecord(50.0);
        assert!((rate.per_second(two, 2_600) - 300.0 / 1.6).abs() < 1e-9);
        // Long idle: nothing counts.
        assert_eq!(rate.per_second(two, 10_000), 0.0);
    }

    #[test]
    fn throttle_brings_the_rate_back_to_the_quota() {
        assert_eq!(throttle(100.0, 100.0, 10_000), Duration::ZERO);
        assert_eq!(throttle(50.0, 100.0, 10_000), Duration::ZERO);
        // Twice the quota over 10 s: pausing 10 s halves it.
        assert_eq!(throttle(200.0, 100.0, 10_000), Duration::from_secs(10));
        assert_eq!(throttle(150.0, 100.0, 1_000), Duration::from_millis(500));
        let (rate, quota, window) = (340.0_f64, 100.0, 10_500);
        let pause = throttle(rate, quota, window).as_millis() as f64;
        assert!((rate * window as f64 / (window as f64 + pause) - quota).abs() < 0.01);
    }
}

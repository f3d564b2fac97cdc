//! Reconcile metrics in Prometheus text format: runs and failures (by
//! error reason) per kind, and a duration histogram.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the duration buckets, in seconds.
const BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Cumulative counts per bucket of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Inner {
    reconciles: BTreeMap<String, u64>,
    failures: BTreeMap<(String, String), u64>,
    durations: BTreeMap<String, Histogram>,
    leader: bool,
}

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one reconcile of `kind`; `failure` is the error's reason label.
    pub fn observe(&self, kind: &str, took: Duration, failure: Option<&str>) {
        let mut inner = self.lock();
        *inner.reconciles.entry(kind.into()).or_default() += 1;
        if let Some(reason) = failure {
            *inner
                .failures
                .entry((kind.into(), reason.into()))
                .or_default() += 1;
        }
        let h = inner.durations.entry(kind.into()).or_default();
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    pub fn set_leader(&self, leader: bool) {
        self.lock().leader = leader;
    }

    pub fn reconciles(&self, kind: &str) -> u64 {
        self.lock().reconciles.get(kind).copied().unwrap_or(0)
    }

    pub fn failures(&self, kind: &str, reason: &str) -> u64 {
        self.lock()
            .failures
            .get(&(kind.to_string(), reason.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "# HELP weir_operator_reconciles_total Reconciles run, by kind."
        );
        let _ = writeln!(out, "# TYPE weir_operator_reconciles_total counter");
        for (kind, n) in &inner.reconciles {
            let _ = writeln!(out, "weir_operator_reconciles_total{{kind=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP weir_operator_reconcile_failures_total Reconciles that failed, by kind and reason."
        );
        let _ = writeln!(out, "# TYPE weir_operator_reconcile_failures_total counter");
        for ((kind, reason), n) in &inner.failures {
            let _ = writeln!(
                out,
                "weir_operator_reconcile_failures_total{{kind=\"{kind}\",reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP weir_operator_reconcile_duration_seconds How long reconciles took, by kind."
        );
        let _ = writeln!(
            out,
            "# TYPE weir_operator_reconcile_duration_seconds histogram"
        );
        for (kind, h) in &inner.durations {
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(
                    out,
                    "weir_operator_reconcile_duration_seconds_bucket{{kind=\"{kind}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "weir_operator_reconcile_duration_seconds_bucket{{kind=\"{kind}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "weir_operator_reconcile_duration_seconds_sum{{kind=\"{kind}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "weir_operator_reconcile_duration_seconds_count{{kind=\"{kind}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP weir_operator_leader Whether this instance holds the lease."
        );
        let _ = writeln!(out, "# TYPE weir_operator_leader gauge");
        let _ = writeln!(out, "weir_operator_leader {}", u8::from(inner.leader));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_failures_by_reason_and_buckets_durations_cumulatively() {
        let m = Metrics::default();
        m.observe("Cluster", Duration::from_millis(30), None);
        m.observe("Cluster", Duration::from_secs(2), Some("kube_api"));
        m.observe("Topic", Duration::from_millis(1), None);
        assert_eq!(m.reconciles("Cluster"), 2);
        assert_eq!(m.failures("Cluster", "kube_api"), 1);
        let text = m.render();
        assert!(
            text.contains("weir_operator_reconciles_total{kind=\"Cluster\"} 2"),
            "{text}"
        );
        assert!(text.contains(
            "weir_operator_reconcile_failures_total{kind=\"Cluster\",reason=\"kube_api\"} 1"
        ));
        assert!(text.contains(
            "weir_operator_reconcile_duration_seconds_bucket{kind=\"Cluster\",le=\"0.05\"} 1"
        ));
        assert!(text.contains(
            "weir_operator_reconcile_duration_seconds_bucket{kind=\"Cluster\",le=\"2.5\"} 2"
        ));
        assert!(text.contains("weir_operator_reconcile_duration_seconds_count{kind=\"Topic\"} 1"));
        assert!(text.contains("weir_operator_leader 0"));
    }
}

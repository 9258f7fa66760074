//! Latency samples and outcome tallies, summarised as the JSON every phase prints.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Latencies in microseconds. Phases are bounded in count and time, so keeping every sample
/// (8 bytes each) is cheaper and more exact than a histogram.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    micros: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub count: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Samples {
    pub fn record(&mut self, latency: Duration) {
        self.micros.push(latency.as_micros() as u64);
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    pub fn summary(&self) -> Summary {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        // Nearest rank: the smallest sample with at least q of all samples at or below it.
        let rank = |q: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let index = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            ms(sorted[index])
        };
        let total: u64 = sorted.iter().sum();
        Summary {
            count: sorted.len(),
            mean_ms: if sorted.is_empty() {
                0.0
            } else {
                ms(total) / sorted.len() as f64
            },
            p50_ms: rank(0.50),
            p90_ms: rank(0.90),
            p99_ms: rank(0.99),
            max_ms: sorted.last().copied().map(ms).unwrap_or(0.0),
        }
    }
}

/// How requests ended: successes, failures by status (or `timeout` / `connect` / `io`), and
/// the first few failure bodies so that a report can say what went wrong.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Tally {
    pub ok: u64,
    pub failed: BTreeMap<String, u64>,
    pub failure_samples: Vec<String>,
}

const FAILURE_SAMPLES: usize = 5;

impl Tally {
    pub fn ok(&mut self) {
        self.ok += 1;
    }

    pub fn fail(&mut self, what: String, detail: impl FnOnce() -> String) {
        *self.failed.entry(what).or_default() += 1;
        if self.failure_samples.len() < FAILURE_SAMPLES {
            self.failure_samples.push(detail());
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        for (what, n) in other.failed {
            *self.failed.entry(what).or_default() += n;
        }
        for sample in other.failure_samples {
            if self.failure_samples.len() < FAILURE_SAMPLES {
                self.failure_samples.push(sample);
            }
        }
    }
}

/// One kind of request's figures within a phase.
#[derive(Debug, Default, Clone)]
pub struct Measured {
    pub tally: Tally,
    pub latency: Samples,
}

impl Measured {
    pub fn merge(&mut self, other: Measured) {
        self.tally.merge(other.tally);
        self.latency.merge(other.latency);
    }

    pub fn report(&self, seconds: f64) -> serde_json::Value {
        serde_json::json!({
            "ok": self.tally.ok,
            "failed": self.tally.failed,
            "failure_samples": self.tally.failure_samples,
            "per_sec": self.tally.ok as f64 / seconds.max(1e-9),
            "latency_ms": self.latency.summary(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut s = Samples::default();
        for ms in 1..=100 {
            s.record(Duration::from_millis(ms));
        }
        let sum = s.summary();
        assert_eq!(sum.count, 100);
        assert_eq!(sum.p50_ms, 50.0);
        assert_eq!(sum.p99_ms, 99.0);
        assert_eq!(sum.max_ms, 100.0);
    }

    #[test]
    fn an_empty_sample_summarises_to_zeroes() {
        let sum = Samples::default().summary();
        assert_eq!((sum.count, sum.p99_ms), (0, 0.0));
    }
}

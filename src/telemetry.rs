//! Logs and metrics. Tracing goes to stdout (pretty or JSON); metrics are recorded into one
//! process-wide Prometheus recorder that `/metrics` renders.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How old a live event is when the SSE hub has it, by stage (`sse::hub`).
pub const SSE_EVENT_AGE: &str = "bountyline_sse_event_age_seconds";

/// Finer at the low end than `LATENCY_BUCKETS`: an event's way from the store to a screen is
/// a matter of milliseconds, and its target (PERFORMANCE.md) is 50 ms.
const AGE_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5,
    1.0, 5.0,
];

/// Installs the tracing subscriber once; later calls (tests) keep the first.
pub fn init_tracing(format: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn,actix_server=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if format == "json" {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
}

/// The process's metrics recorder, installed on first use. The recorder is global, so tests
/// that build several applications in one process share it.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(SSE_EVENT_AGE.into()), AGE_BUCKETS)
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => {
                    keep_up(handle.clone());
                    handle
                }
                // Another recorder is already installed: render an empty one of our own.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The recorder keeps every histogram sample until it is folded into its buckets, which
/// rendering `/metrics` does; nobody scraping meant samples piling up, several per request: a
/// held load's API grew from 37 to 95 MiB in ten minutes, its CPU per command with it
/// (docs/HELD-LOAD.md). Folded every few seconds instead, whoever scrapes.
fn keep_up(handle: PrometheusHandle) {
    every(UPKEEP_EVERY, "metrics-upkeep", move || handle.run_upkeep());
}

/// Runs `work` every `period` on a thread of its own, for the life of the process: upkeep
/// that must go on whatever the async runtime is doing.
pub fn every(period: std::time::Duration, name: &str, work: impl Fn() + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || loop {
            std::thread::sleep(period);
            work();
        });
    if let Err(e) = spawned {
        tracing::warn!(thread = name, error = %e, "periodic upkeep not started");
    }
}

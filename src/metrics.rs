//! Prometheus metrics (`GET /metrics`), kept with prometheus-client: jobs by state, queue
//! depth, bytes processed, job duration histogram, rescans.
//!
//! Owned by the daemon and handed to the pipeline: the workers record each finished job
//! (bytes, duration), the scheduler each rescan. The per-state gauges are the job store's
//! counts, set at each scrape. Nothing here blocks or allocates per job beyond an atomic add,
//! and nothing here knows the store: `encode` is given the counts.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::job::Counts;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

pub struct Metrics {
    registry: prometheus_client::registry::Registry,
    jobs: Family<StateLabel, Gauge>,
    queue_depth: Gauge,
    bytes: Counter,
    duration: Histogram,
    rescans: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = prometheus_client::registry::Registry::with_prefix("file_processor");
        let jobs = Family::<StateLabel, Gauge>::default();
        let queue_depth = Gauge::default();
        let bytes = Counter::default();
        // 1 ms to ~65 s.
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        let rescans = Counter::default();
        registry.register(
            "jobs",
            "Jobs by state: queued and processing now; completed and failed all time (the \
             reports on disk at start plus those finished since)",
            jobs.clone(),
        );
        registry.register(
            "queue_depth",
            "Ready files waiting for a worker",
            queue_depth.clone(),
        );
        registry.register(
            "processed_bytes",
            "Bytes of the files finished since start",
            bytes.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Analysis time per finished job",
            duration.clone(),
        );
        registry.register(
            "rescans",
            "Listings of unprocessed/ after lost folder events",
            rescans.clone(),
        );
        Metrics {
            registry,
            jobs,
            queue_depth,
            bytes,
            duration,
            rescans,
        }
    }

    pub fn job_finished(&self, size_bytes: u64, duration_ms: u64) {
        self.bytes.inc_by(size_bytes);
        self.duration.observe(duration_ms as f64 / 1000.0);
    }

    pub fn rescanned(&self) {
        self.rescans.inc();
    }

    /// The text exposition, with the per-state gauges set from `counts`.
    pub fn encode(&self, counts: Counts) -> String {
        let as_gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for (state, value) in [
            ("queued", counts.queued as u64),
            ("processing", counts.processing as u64),
            ("completed", counts.completed),
            ("failed", counts.failed),
        ] {
            self.jobs
                .get_or_create(&StateLabel { state })
                .set(as_gauge(value));
        }
        self.queue_depth.set(as_gauge(counts.queued as u64));
        let mut text = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            log::error!("cannot encode the metrics: {err}");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family() {
        let metrics = Metrics::new();
        metrics.job_finished(1000, 3);
        metrics.job_finished(24, 2000);
        metrics.rescanned();
        let counts = Counts {
            queued: 2,
            processing: 1,
            completed: 7,
            failed: 1,
        };
        let text = metrics.encode(counts);
        for line in [
            "file_processor_jobs{state=\"queued\"} 2",
            "file_processor_jobs{state=\"completed\"} 7",
            "file_processor_queue_depth 2",
            "file_processor_processed_bytes_total 1024",
            "file_processor_job_duration_seconds_count 2",
            "file_processor_rescans_total 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}

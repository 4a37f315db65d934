//! Prometheus metrics (`GET /metrics`), kept with prometheus-client: jobs by state, queue
//! depth, bytes processed, job duration histogram, rescans.
//!
//! Owned by the daemon and handed to the pipeline: the workers record each finished job
//! (bytes, duration), the scheduler each rescan. The per-state gauges are the job store's
//! counts, set at each scrape. Nothing here blocks or allocates per job beyond an atomic add,
//! and nothing here knows the store: `encode` is given the counts.
//!
//! In a cluster (`for_node`) every node's store holds the whole cluster's counts, so the
//! per-state gauges would add up once per node. There, `file_processor_node_jobs{node,state}`
//! is this node's own (jobs running here, finished here since start: they sum over nodes), and
//! `file_processor_cluster_jobs{reporter,state}` and `file_processor_cluster_queue_depth` are
//! the cluster's, exported by one node at a time (the one holding the reporter lease in
//! Redis), so a `sum` over every node's series counts them once.

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeStateLabel {
    node: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReporterStateLabel {
    reporter: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReporterLabel {
    reporter: String,
}

/// A cluster node's own families.
struct NodeFamilies {
    node: String,
    node_jobs: Family<NodeStateLabel, Gauge>,
    cluster_jobs: Family<ReporterStateLabel, Gauge>,
    cluster_queue_depth: Family<ReporterLabel, Gauge>,
    completed: Counter,
    failed: Counter,
}

/// What a scrape of a cluster node needs besides the store's counts.
#[derive(Debug, Clone, Copy)]
pub struct NodeScrape {
    /// Jobs this node runs now.
    pub running: u64,
    /// Whether this node reports the cluster's gauges now (it holds the reporter lease).
    pub reporter: bool,
}

pub struct Metrics {
    registry: prometheus_client::registry::Registry,
    jobs: Family<StateLabel, Gauge>,
    queue_depth: Gauge,
    bytes: Counter,
    duration: Histogram,
    latency: Histogram,
    rescans: Counter,
    node: Option<NodeFamilies>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Self::build(None)
    }

    /// A cluster node's metrics (see the module comment).
    pub fn for_node(node: &str) -> Metrics {
        Self::build(Some(node))
    }

    fn build(node: Option<&str>) -> Metrics {
        let mut registry = prometheus_client::registry::Registry::with_prefix("file_processor");
        let jobs = Family::<StateLabel, Gauge>::default();
        let queue_depth = Gauge::default();
        let bytes = Counter::default();
        // 100 µs to ~52 s: a small file takes well under a millisecond.
        let duration = Histogram::new(exponential_buckets(0.0001, 2.0, 20));
        let latency = Histogram::new(exponential_buckets(0.0001, 2.0, 20));
        let rescans = Counter::default();
        let node = node.map(|name| NodeFamilies {
            node: name.to_string(),
            node_jobs: Family::default(),
            cluster_jobs: Family::default(),
            cluster_queue_depth: Family::default(),
            completed: Counter::default(),
            failed: Counter::default(),
        });
        match &node {
            None => {
                registry.register(
                    "jobs",
                    "Jobs by state: queued and processing now; completed and failed all time \
                     (the reports on disk at start plus those finished since)",
                    jobs.clone(),
                );
                registry.register(
                    "queue_depth",
                    "Ready files waiting for a worker",
                    queue_depth.clone(),
                );
            }
            Some(families) => {
                registry.register(
                    "node_jobs",
                    "This node's jobs: processing now, completed and failed here since start \
                     (sum over nodes)",
                    families.node_jobs.clone(),
                );
                registry.register(
                    "cluster_jobs",
                    "The cluster's jobs by state, as in the single-daemon file_processor_jobs; \
                     exported by one node at a time (reporter), so a sum counts them once",
                    families.cluster_jobs.clone(),
                );
                registry.register(
                    "cluster_queue_depth",
                    "Ready files waiting for a worker in the cluster; exported by one node at \
                     a time (reporter)",
                    families.cluster_queue_depth.clone(),
                );
            }
        }
        registry.register(
            "processed_bytes",
            "Bytes of the files finished since start",
            bytes.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Analysis time per finished job (microsecond precision)",
            duration.clone(),
        );
        registry.register(
            "job_latency_seconds",
            "Time per finished job from ready (queued) to finished: the wait for a worker \
             included",
            latency.clone(),
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
            latency,
            rescans,
            node,
        }
    }

    /// A job finished: its size, its analysis time and its time since it was ready, both in
    /// microseconds.
    pub fn job_finished(&self, size_bytes: u64, duration_us: u64, latency_us: u64, failed: bool) {
        self.bytes.inc_by(size_bytes);
        self.duration.observe(duration_us as f64 / 1e6);
        self.latency.observe(latency_us as f64 / 1e6);
        if let Some(node) = &self.node {
            if failed {
                node.failed.inc();
            } else {
                node.completed.inc();
            }
        }
    }

    pub fn rescanned(&self) {
        self.rescans.inc();
    }

    /// The text exposition, with the per-state gauges set from `counts` (and, for a cluster
    /// node, from `scrape`).
    pub fn encode(&self, counts: Counts, scrape: Option<NodeScrape>) -> String {
        let as_gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let states = [
            ("queued", counts.queued as u64),
            ("processing", counts.processing as u64),
            ("completed", counts.completed),
            ("failed", counts.failed),
        ];
        match (&self.node, scrape) {
            (Some(node), Some(scrape)) => {
                for (state, value) in [
                    ("processing", scrape.running),
                    ("completed", node.completed.get()),
                    ("failed", node.failed.get()),
                ] {
                    let label = NodeStateLabel {
                        node: node.node.clone(),
                        state,
                    };
                    node.node_jobs.get_or_create(&label).set(as_gauge(value));
                }
                // Only the reporter has these series; a node that stops being it drops them.
                node.cluster_jobs.clear();
                node.cluster_queue_depth.clear();
                if scrape.reporter {
                    let reporter = node.node.clone();
                    for (state, value) in states {
                        let label = ReporterStateLabel {
                            reporter: reporter.clone(),
                            state,
                        };
                        node.cluster_jobs.get_or_create(&label).set(as_gauge(value));
                    }
                    node.cluster_queue_depth
                        .get_or_create(&ReporterLabel { reporter })
                        .set(as_gauge(counts.queued as u64));
                }
            }
            _ => {
                for (state, value) in states {
                    self.jobs
                        .get_or_create(&StateLabel { state })
                        .set(as_gauge(value));
                }
                self.queue_depth.set(as_gauge(counts.queued as u64));
            }
        }
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
        metrics.job_finished(1000, 300, 250_000, false);
        metrics.job_finished(24, 2_000_000, 2_000_000, true);
        metrics.rescanned();
        let counts = Counts {
            queued: 2,
            processing: 1,
            completed: 7,
            failed: 1,
        };
        let text = metrics.encode(counts, None);
        for line in [
            "file_processor_jobs{state=\"queued\"} 2",
            "file_processor_jobs{state=\"completed\"} 7",
            "file_processor_queue_depth 2",
            "file_processor_processed_bytes_total 1024",
            "file_processor_job_duration_seconds_count 2",
            "file_processor_job_duration_seconds_sum 2.0003",
            "file_processor_job_latency_seconds_count 2",
            "file_processor_job_latency_seconds_sum 2.25",
            "file_processor_job_duration_seconds_bucket{le=\"0.0004\"} 1",
            "file_processor_rescans_total 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }

    #[test]
    fn a_cluster_node_exports_its_own_jobs_and_the_cluster_only_as_reporter() {
        let metrics = Metrics::for_node("a");
        metrics.job_finished(10, 1, 2, false);
        metrics.job_finished(10, 1, 2, true);
        metrics.job_finished(10, 1, 2, false);
        let counts = Counts {
            queued: 4,
            processing: 3,
            completed: 40,
            failed: 2,
        };
        let reporting = metrics.encode(
            counts,
            Some(NodeScrape {
                running: 1,
                reporter: true,
            }),
        );
        for line in [
            "file_processor_node_jobs{node=\"a\",state=\"processing\"} 1",
            "file_processor_node_jobs{node=\"a\",state=\"completed\"} 2",
            "file_processor_node_jobs{node=\"a\",state=\"failed\"} 1",
            "file_processor_cluster_jobs{reporter=\"a\",state=\"completed\"} 40",
            "file_processor_cluster_queue_depth{reporter=\"a\"} 4",
        ] {
            assert!(
                reporting.lines().any(|l| l == line),
                "{line} missing in:\n{reporting}"
            );
        }
        assert!(!reporting.contains("file_processor_jobs{"), "{reporting}");
        let quiet = metrics.encode(
            counts,
            Some(NodeScrape {
                running: 0,
                reporter: false,
            }),
        );
        assert!(!quiet.contains("file_processor_cluster_jobs{"), "{quiet}");
        assert!(quiet.contains("file_processor_node_jobs{"), "{quiet}");
    }
}

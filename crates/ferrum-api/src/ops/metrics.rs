//! The API's Prometheus metrics: one process-wide registry, exposed at `GET /metrics`.
//!
//! Labels stay bounded whatever tenants do: no task, code or runner ids; HTTP routes by their
//! template; task counters by status and source; per-project series only when the operator
//! turns them on (`ApiConfig::metrics_per_project`). Cluster names are chosen by tenants, so
//! the only per-cluster series (queue depth and age) are read at scrape time and capped at
//! [`QUEUE_SERIES`] cluster/priority pairs, the deepest first.
//!
//! Counters are per replica (Prometheus sums replicas). Finished tasks are counted by the
//! replica that handles their task events, so a batch delivered twice (its handler crashed
//! after counting) counts twice: the counts are at-least-once, like the events.

use std::sync::LazyLock;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Most cluster/priority pairs the queue gauges report in one scrape.
pub const QUEUE_SERIES: i64 = 100;

/// How a task came to be.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Source {
    api,
    webhook,
    schedule,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: Source,
    /// Empty unless per-project series are on.
    pub project: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
    /// Empty unless per-project series are on.
    pub project: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub cluster: String,
    pub priority: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DutyLabels {
    pub duty: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route template (`/2/projects/{project_id}/tasks`), or `unmatched`.
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the API records.
pub struct Metrics {
    registry: Registry,
    pub tasks_created: Family<SourceLabels, Counter>,
    pub tasks_finished: Family<StatusLabels, Counter>,
    /// From a task's `run_at` (due) to its start, observed when it finishes.
    pub queue_wait: Histogram,
    /// From a task's start to its end, by final status.
    pub run_duration: Histograms<StatusLabels>,
    /// From a schedule slot's time to its tasks being queued.
    pub schedule_lag: Histogram,
    pub duty_runs: Family<DutyLabels, Counter>,
    pub duty_failures: Family<DutyLabels, Counter>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Histograms<RouteLabels>,
    pub queue_depth: Family<QueueLabels, Gauge>,
    pub queue_oldest_age: Family<QueueLabels, Gauge<f64, AtomicU64>>,
}

/// Seconds from 5 ms to about 3 hours.
fn seconds_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.5, 16))
}

/// Seconds from 1 ms to about 40 s.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::with_prefix("ferrum"),
            tasks_created: Family::default(),
            tasks_finished: Family::default(),
            queue_wait: seconds_buckets(),
            run_duration: Family::new_with_constructor(seconds_buckets),
            schedule_lag: seconds_buckets(),
            duty_runs: Family::default(),
            duty_failures: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(request_buckets),
            queue_depth: Family::default(),
            queue_oldest_age: Family::default(),
        };
        let mut m = m;
        let r = &mut m.registry;
        r.register(
            "tasks_created",
            "Tasks queued, by source",
            m.tasks_created.clone(),
        );
        r.register(
            "tasks_finished",
            "Tasks that reached a final state, by status",
            m.tasks_finished.clone(),
        );
        r.register_with_unit(
            "task_queue_wait",
            "Time from a task being due to its start (observed when it finishes)",
            prometheus_client::registry::Unit::Seconds,
            m.queue_wait.clone(),
        );
        r.register_with_unit(
            "task_run_duration",
            "Time from a task's start to its end, by final status",
            prometheus_client::registry::Unit::Seconds,
            m.run_duration.clone(),
        );
        r.register_with_unit(
            "schedule_firing_lag",
            "Time from a schedule slot to its tasks being queued (earliest slot of each pass)",
            prometheus_client::registry::Unit::Seconds,
            m.schedule_lag.clone(),
        );
        r.register(
            "duty_runs",
            "Passes of a background duty",
            m.duty_runs.clone(),
        );
        r.register(
            "duty_failures",
            "Passes of a background duty that failed",
            m.duty_failures.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests answered, by route template and status",
            m.http_requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by route template",
            prometheus_client::registry::Unit::Seconds,
            m.http_duration.clone(),
        );
        r.register(
            "queue_depth",
            "Queued tasks that are due, by cluster and priority (read at scrape)",
            m.queue_depth.clone(),
        );
        r.register_with_unit(
            "queue_oldest_age",
            "Age of the oldest due queued task, by cluster and priority (read at scrape)",
            prometheus_client::registry::Unit::Seconds,
            m.queue_oldest_age.clone(),
        );
        m
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts one pass of a background duty and whether it failed.
    pub fn duty<T, E>(&self, duty: &'static str, result: &Result<T, E>) {
        let labels = DutyLabels { duty };
        self.duty_runs.get_or_create(&labels).inc();
        if result.is_err() {
            self.duty_failures.get_or_create(&labels).inc();
        }
    }

    /// Counts `n` tasks queued from `source`.
    pub fn created(&self, source: Source, project: Option<&dyn std::fmt::Display>, n: usize) {
        let labels = SourceLabels {
            source,
            project: project.map(|p| p.to_string()).unwrap_or_default(),
        };
        self.tasks_created.get_or_create(&labels).inc_by(n as u64);
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

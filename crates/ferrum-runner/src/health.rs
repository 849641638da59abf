//! What a runner tells its operator: whether it is alive and ready, and its own metrics
//! (slots used and available, leases, lease failures, task containers parked or cold), in the
//! Prometheus text format.
//!
//! The daemon updates a [`RunnerHealth`]; `ferrum runner --health-listen` serves it
//! (`/healthz`, `/readyz`, `/metrics`). It holds no secrets and names no tasks, so it is as
//! open as the address it listens on.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SlotLabels {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StartLabels {
    /// `pooled` (a parked container) or `cold` (created for the task).
    start: &'static str,
}

/// The daemon's state, as probes and Prometheus see it.
#[derive(Debug)]
pub struct RunnerHealth {
    registry: Registry,
    slots: Family<SlotLabels, Gauge>,
    leased: Counter,
    lease_failures: Counter,
    containers: Family<StartLabels, Counter>,
    capacity: AtomicI64,
    running: AtomicI64,
    registered: AtomicBool,
    api_ok: AtomicBool,
}

impl Default for RunnerHealth {
    fn default() -> Self {
        let mut h = RunnerHealth {
            registry: Registry::with_prefix("ferrum_runner"),
            slots: Family::default(),
            leased: Counter::default(),
            lease_failures: Counter::default(),
            containers: Family::default(),
            capacity: AtomicI64::new(0),
            running: AtomicI64::new(0),
            registered: AtomicBool::new(false),
            api_ok: AtomicBool::new(false),
        };
        let r = &mut h.registry;
        r.register(
            "slots",
            "Task slots of this runner, used and available",
            h.slots.clone(),
        );
        r.register("leased_tasks", "Tasks this runner leased", h.leased.clone());
        r.register(
            "lease_failures",
            "Lease calls that failed (the API unreachable or refusing)",
            h.lease_failures.clone(),
        );
        r.register(
            "task_containers",
            "Containers that ran a task, by how they started: pooled (parked before the task) or cold",
            h.containers.clone(),
        );
        h
    }
}

impl RunnerHealth {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Ready: registered with the API, and the last lease call reached it.
    pub fn ready(&self) -> bool {
        self.registered.load(Ordering::Relaxed) && self.api_ok.load(Ordering::Relaxed)
    }

    /// Why the runner is not ready, if it is not.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if !self.registered.load(Ordering::Relaxed) {
            Some("not registered with the API yet")
        } else if !self.api_ok.load(Ordering::Relaxed) {
            Some("the last lease call to the API failed")
        } else {
            None
        }
    }

    /// The text exposition of the runner's metrics.
    pub fn encode(&self) -> String {
        let capacity = self.capacity.load(Ordering::Relaxed);
        let running = self.running.load(Ordering::Relaxed);
        self.slots
            .get_or_create(&SlotLabels { state: "used" })
            .set(running);
        self.slots
            .get_or_create(&SlotLabels { state: "available" })
            .set((capacity - running).max(0));
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub(crate) fn registered(&self, capacity: u32) {
        self.capacity.store(capacity.into(), Ordering::Relaxed);
        self.registered.store(true, Ordering::Relaxed);
    }

    pub(crate) fn lease_answered(&self, tasks: usize) {
        self.api_ok.store(true, Ordering::Relaxed);
        self.leased.inc_by(tasks as u64);
    }

    pub(crate) fn lease_failed(&self) {
        self.api_ok.store(false, Ordering::Relaxed);
        self.lease_failures.inc();
    }

    pub(crate) fn task_started(&self) {
        self.running.fetch_add(1, Ordering::Relaxed);
    }

    /// A task's user code ran in a container from a pool (`pooled`) or created for it.
    pub(crate) fn container_ran(&self, pooled: bool) {
        let start = if pooled { "pooled" } else { "cold" };
        self.containers.get_or_create(&StartLabels { start }).inc();
    }

    pub(crate) fn task_ended(&self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
    }

    /// Tasks running now.
    pub fn running(&self) -> i64 {
        self.running.load(Ordering::Relaxed)
    }
}

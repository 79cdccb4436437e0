//! Request counters and latency histograms per operation, rendered as Prometheus text.
//!
//! Writers touch only atomics; the admin endpoint renders a snapshot on each scrape.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use diag::tasks::TaskProbes;

use crate::op::{Op, Role};
use crate::tasks::ServerTasks;

/// Upper bounds (seconds) of the latency histogram buckets; a last `+Inf` bucket is implied.
pub const LATENCY_BUCKETS_S: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Counters of one operation.
#[derive(Debug, Default)]
pub struct OpMetrics {
    /// Requests handled.
    pub requests_total: AtomicU64,
    /// Requests answered with an error frame.
    pub errors_total: AtomicU64,
    /// Sum of handling times, nanoseconds.
    pub duration_ns_total: AtomicU64,
    /// Allocations made while handling requests (by the handler's future, on any thread that
    /// polled it; not the log writer's or the blocking pool's).
    pub allocations_total: AtomicU64,
    /// Bytes those allocations asked for.
    pub allocated_bytes_total: AtomicU64,
    /// Requests per latency bucket (not cumulative; the last is `+Inf`).
    buckets: [AtomicU64; LATENCY_BUCKETS_S.len() + 1],
}

/// Counters of every operation of one server (a node or a gateway).
#[derive(Debug)]
pub struct ServiceMetrics {
    role: Role,
    instance: String,
    ops: [OpMetrics; Op::COUNT],
    /// Connections accepted.
    pub connections_total: AtomicU64,
    /// Connections refused because the server was at its connection limit.
    pub connections_refused_total: AtomicU64,
    /// Connections open now: each holds one place under the connection limit until its task
    /// has seen it close.
    pub connections_open: AtomicU64,
    /// Frames refused as malformed.
    pub bad_frames_total: AtomicU64,
    /// The task kinds the server's connections and requests run in.
    tasks: ServerTasks,
}

impl ServiceMetrics {
    /// Metrics of a server with `role` at `instance` (its address).
    pub fn new(role: Role, instance: String) -> ServiceMetrics {
        ServiceMetrics {
            role,
            instance,
            ops: Default::default(),
            connections_total: AtomicU64::new(0),
            connections_refused_total: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            bad_frames_total: AtomicU64::new(0),
            tasks: ServerTasks::off(),
        }
    }

    /// The same, with the server's connections and requests measured by `probes`.
    pub fn with_tasks(mut self, probes: &TaskProbes) -> ServiceMetrics {
        self.tasks = ServerTasks::new(self.role, probes);
        self
    }

    /// The server's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The task kinds of the server.
    pub fn tasks(&self) -> &ServerTasks {
        &self.tasks
    }

    /// Records one request of operation `op` that took `elapsed`.
    pub fn record(&self, op: Op, elapsed: Duration, is_error: bool) {
        let m = &self.ops[op.slot()];
        m.requests_total.fetch_add(1, Ordering::Relaxed);
        if is_error {
            m.errors_total.fetch_add(1, Ordering::Relaxed);
        }
        m.duration_ns_total
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS_S
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        m.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the allocations of one request of operation `op`.
    pub fn record_alloc(&self, op: Op, counts: &diag::alloc::AllocCounts) {
        let m = &self.ops[op.slot()];
        m.allocations_total
            .fetch_add(counts.allocations_total, Ordering::Relaxed);
        m.allocated_bytes_total
            .fetch_add(counts.bytes_allocated_total, Ordering::Relaxed);
    }

    /// Counters of operation `op`.
    pub fn op(&self, op: Op) -> &OpMetrics {
        &self.ops[op.slot()]
    }
}

/// One sample of a metric family from a [`MetricsSource`].
#[derive(Clone, Debug)]
pub struct Sample {
    /// Family name, e.g. `ddsplit_node_fragments`.
    pub family: &'static str,
    /// `counter`, `gauge`, `histogram` or `summary`.
    pub kind: &'static str,
    /// One sentence for `# HELP`.
    pub help: &'static str,
    /// Appended to the family name: `""`, or `_bucket`, `_sum`, `_count` for histograms.
    pub suffix: &'static str,
    /// Label pairs without braces, e.g. `instance="127.0.0.1:7500"`.
    pub labels: String,
    pub value: f64,
}

/// A source of metrics beyond the request metrics (gauges of a node's log, task metrics...).
/// Sources of one family from several servers of a process are rendered under one header.
pub trait MetricsSource: Send + Sync {
    /// Appends the source's current samples.
    fn collect(&self, out: &mut Vec<Sample>);
}

/// All the metrics of one process, rendered together on `/metrics`.
#[derive(Default)]
pub struct Registry {
    services: Mutex<Vec<Arc<ServiceMetrics>>>,
    sources: Mutex<Vec<Arc<dyn MetricsSource>>>,
    tasks: OnceLock<TaskProbes>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// Adds a server's request metrics.
    pub fn add_service(&self, metrics: Arc<ServiceMetrics>) {
        self.services
            .lock()
            .expect("registry lock is never poisoned")
            .push(metrics);
    }

    /// Adds another source of metric families.
    pub fn add_source(&self, source: Arc<dyn MetricsSource>) {
        self.sources
            .lock()
            .expect("registry lock is never poisoned")
            .push(source);
    }

    /// The task probes of the process's servers, created (with their sampler, and as a source
    /// of `/metrics`) at first use; see [`crate::tasks`].
    pub fn tasks(&self) -> &TaskProbes {
        self.tasks.get_or_init(|| {
            let probes = crate::tasks::probes_from_env();
            self.add_source(Arc::new(TasksSource::new(probes.clone())));
            probes
        })
    }

    /// Everything, as Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let services = self
            .services
            .lock()
            .expect("registry lock is never poisoned")
            .clone();
        let mut out = String::with_capacity(16 * 1024);
        render_services(&services, &mut out);
        let mut samples = Vec::new();
        for source in self
            .sources
            .lock()
            .expect("registry lock is never poisoned")
            .iter()
        {
            source.collect(&mut samples);
        }
        render_samples(&samples, &mut out);
        out
    }
}

/// The task and runtime figures on `/metrics`.
#[derive(Debug)]
pub struct TasksSource {
    probes: TaskProbes,
}

impl TasksSource {
    /// `/metrics` samples of `probes`.
    pub fn new(probes: TaskProbes) -> TasksSource {
        TasksSource { probes }
    }
}

impl MetricsSource for TasksSource {
    fn collect(&self, out: &mut Vec<Sample>) {
        for sample in self.probes.snapshot().metric_samples() {
            let labels = sample.labels();
            out.push(Sample {
                family: sample.family,
                kind: sample.kind.as_str(),
                help: sample.help,
                suffix: "",
                labels,
                value: sample.value,
            });
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn render_samples(samples: &[Sample], out: &mut String) {
    let mut families: Vec<&'static str> = Vec::new();
    for sample in samples {
        if !families.contains(&sample.family) {
            families.push(sample.family);
        }
    }
    for name in families {
        let mut members = samples.iter().filter(|s| s.family == name).peekable();
        let first = members
            .peek()
            .expect("a family has at least the sample that named it");
        family(out, name, first.kind, first.help);
        for s in members {
            if s.labels.is_empty() {
                let _ = writeln!(out, "{name}{} {}", s.suffix, s.value);
            } else {
                let _ = writeln!(out, "{name}{}{{{}}} {}", s.suffix, s.labels, s.value);
            }
        }
    }
}

/// The operations `s` has handled at least once, with their names.
fn used_ops(s: &ServiceMetrics) -> impl Iterator<Item = (Op, &'static str)> + '_ {
    Op::ALL
        .into_iter()
        .filter(|&op| s.op(op).requests_total.load(Ordering::Relaxed) > 0)
        .map(|op| (op, op.name()))
}

fn render_services(services: &[Arc<ServiceMetrics>], out: &mut String) {
    family(
        out,
        "ddsplit_requests_total",
        "counter",
        "Requests handled, by server role and operation.",
    );
    for s in services {
        for (op, name) in used_ops(s) {
            let v = s.op(op).requests_total.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "ddsplit_requests_total{{role=\"{}\",instance=\"{}\",op=\"{name}\"}} {v}",
                s.role.name(),
                s.instance
            );
        }
    }
    family(
        out,
        "ddsplit_request_errors_total",
        "counter",
        "Requests answered with an error, by role and operation.",
    );
    for s in services {
        for (op, name) in used_ops(s) {
            let v = s.op(op).errors_total.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "ddsplit_request_errors_total{{role=\"{}\",instance=\"{}\",op=\"{name}\"}} {v}",
                s.role.name(),
                s.instance
            );
        }
    }
    family(
        out,
        "ddsplit_request_duration_seconds",
        "histogram",
        "Time from a request's frame read to its response written.",
    );
    for s in services {
        for (op, name) in used_ops(s) {
            let m = s.op(op);
            let labels = format!(
                "role=\"{}\",instance=\"{}\",op=\"{name}\"",
                s.role.name(),
                s.instance
            );
            let mut cumulative = 0;
            for (i, le) in LATENCY_BUCKETS_S.iter().enumerate() {
                cumulative += m.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "ddsplit_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            cumulative += m.buckets[LATENCY_BUCKETS_S.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "ddsplit_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}"
            );
            let sum = m.duration_ns_total.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "ddsplit_request_duration_seconds_sum{{{labels}}} {sum}"
            );
            let _ = writeln!(
                out,
                "ddsplit_request_duration_seconds_count{{{labels}}} {cumulative}"
            );
        }
    }
    if diag::alloc::is_counting() {
        render_request_allocations(services, out);
    }
    for (name, kind, help, get) in [
        (
            "ddsplit_connections_total",
            "counter",
            "Connections accepted.",
            (|s: &ServiceMetrics| &s.connections_total) as fn(&ServiceMetrics) -> &AtomicU64,
        ),
        (
            "ddsplit_connections_refused_total",
            "counter",
            "Connections refused at the connection limit.",
            |s| &s.connections_refused_total,
        ),
        (
            "ddsplit_connections_open",
            "gauge",
            "Connections open, each holding a place under the connection limit.",
            |s| &s.connections_open,
        ),
        (
            "ddsplit_bad_frames_total",
            "counter",
            "Frames refused as malformed.",
            |s| &s.bad_frames_total,
        ),
    ] {
        family(out, name, kind, help);
        for s in services {
            let _ = writeln!(
                out,
                "{name}{{role=\"{}\",instance=\"{}\"}} {}",
                s.role.name(),
                s.instance,
                get(s).load(Ordering::Relaxed)
            );
        }
    }
}

/// Allocations per request: divided by `ddsplit_requests_total`, the allocations per operation.
fn render_request_allocations(services: &[Arc<ServiceMetrics>], out: &mut String) {
    for (name, help, get) in [
        (
            "ddsplit_request_allocations_total",
            "Heap allocations made while handling requests (on any thread polling the handler), by role and operation.",
            (|m: &OpMetrics| &m.allocations_total) as fn(&OpMetrics) -> &AtomicU64,
        ),
        (
            "ddsplit_request_allocated_bytes_total",
            "Heap bytes allocated while handling requests, by role and operation.",
            |m| &m.allocated_bytes_total,
        ),
    ] {
        family(out, name, "counter", help);
        for s in services {
            for (op, op_name) in used_ops(s) {
                let _ = writeln!(
                    out,
                    "{name}{{role=\"{}\",instance=\"{}\",op=\"{op_name}\"}} {}",
                    s.role.name(),
                    s.instance,
                    get(s.op(op)).load(Ordering::Relaxed)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_counts_match() {
        let registry = Registry::default();
        let m = Arc::new(ServiceMetrics::new(Role::Gateway, "127.0.0.1:1".into()));
        registry.add_service(Arc::clone(&m));
        m.record(Op::Get, Duration::from_micros(50), false);
        m.record(Op::Get, Duration::from_millis(3), true);
        m.record(Op::Get, Duration::from_secs(10), false);
        let text = registry.render();
        let labels = "role=\"gateway\",instance=\"127.0.0.1:1\",op=\"get\"";
        assert!(
            text.contains(&format!("ddsplit_requests_total{{{labels}}} 3\n")),
            "{text}"
        );
        assert!(text.contains(&format!("ddsplit_request_errors_total{{{labels}}} 1\n")));
        assert!(text.contains(&format!(
            "ddsplit_request_duration_seconds_bucket{{{labels},le=\"0.0001\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "ddsplit_request_duration_seconds_bucket{{{labels},le=\"0.005\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "ddsplit_request_duration_seconds_bucket{{{labels},le=\"5\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "ddsplit_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 3\n"
        )));
        assert!(
            !text.contains("op=\"put\""),
            "unused operations are not listed"
        );
        assert!(text.contains("# TYPE ddsplit_connections_open gauge\n"));
    }
}

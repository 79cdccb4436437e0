//! The task probes as Prometheus metrics: one family per figure, the task kind as the `task`
//! label, durations in seconds. [`Snapshot::metric_samples`] gives the samples to a service's
//! own exposition code; [`Snapshot::render_prometheus`] writes text exposition format 0.0.4.

use std::fmt::Write as _;

use super::figures::{RuntimeFigures, Snapshot, TaskFigures};

/// The Prometheus type of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (resets when the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl MetricKind {
    /// `counter` or `gauge`, as written after `# TYPE`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        }
    }
}

/// One sample of a metric family.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSample {
    /// Family name, e.g. `tokio_task_polls_total`.
    pub family: &'static str,
    /// The family's type.
    pub kind: MetricKind,
    /// One sentence for `# HELP`.
    pub help: &'static str,
    /// The task kind (the `task` label) for task families; `None` for runtime families.
    pub task: Option<String>,
    /// The value; durations in seconds.
    pub value: f64,
}

impl MetricSample {
    /// The label pairs without braces: `task="gateway.put"`, or empty.
    pub fn labels(&self) -> String {
        match &self.task {
            Some(task) => format!("task=\"{}\"", escape_label_value(task)),
            None => String::new(),
        }
    }
}

struct TaskFamily {
    name: &'static str,
    kind: MetricKind,
    help: &'static str,
    value: fn(&TaskFigures) -> Option<f64>,
}

struct RuntimeFamily {
    name: &'static str,
    kind: MetricKind,
    help: &'static str,
    value: fn(&RuntimeFigures) -> Option<f64>,
}

/// The task families, in exposition order.
const TASK_FAMILIES: &[TaskFamily] = &[
    TaskFamily {
        name: "tokio_task_instrumented_total",
        kind: MetricKind::Counter,
        help: "Futures wrapped by the task kind's monitor.",
        value: |f| Some(f.instrumented_count as f64),
    },
    TaskFamily {
        name: "tokio_task_dropped_total",
        kind: MetricKind::Counter,
        help: "Wrapped futures dropped (finished or cancelled).",
        value: |f| Some(f.dropped_count as f64),
    },
    TaskFamily {
        name: "tokio_task_first_polls_total",
        kind: MetricKind::Counter,
        help: "Wrapped futures polled at least once.",
        value: |f| Some(f.first_poll_count as f64),
    },
    TaskFamily {
        name: "tokio_task_first_poll_delay_seconds_total",
        kind: MetricKind::Counter,
        help: "Time between wrapping futures and their first poll.",
        value: |f| Some(seconds(f.total_first_poll_delay_ns)),
    },
    TaskFamily {
        name: "tokio_task_polls_total",
        kind: MetricKind::Counter,
        help: "Polls of the task kind's futures.",
        value: |f| Some(f.total_poll_count as f64),
    },
    TaskFamily {
        name: "tokio_task_poll_duration_seconds_total",
        kind: MetricKind::Counter,
        help: "Time spent inside polls.",
        value: |f| Some(seconds(f.total_poll_duration_ns)),
    },
    TaskFamily {
        name: "tokio_task_slow_polls_total",
        kind: MetricKind::Counter,
        help: "Polls that took at least the slow-poll threshold, holding their worker thread.",
        value: |f| Some(f.total_slow_poll_count as f64),
    },
    TaskFamily {
        name: "tokio_task_slow_poll_duration_seconds_total",
        kind: MetricKind::Counter,
        help: "Time spent inside slow polls.",
        value: |f| Some(seconds(f.total_slow_poll_duration_ns)),
    },
    TaskFamily {
        name: "tokio_task_scheduled_total",
        kind: MetricKind::Counter,
        help: "Wake-ups, each followed by a wait in the run queue until the next poll.",
        value: |f| Some(f.total_scheduled_count as f64),
    },
    TaskFamily {
        name: "tokio_task_scheduled_duration_seconds_total",
        kind: MetricKind::Counter,
        help: "Time between wake-ups and the polls that followed them (run-queue time).",
        value: |f| Some(seconds(f.total_scheduled_duration_ns)),
    },
    TaskFamily {
        name: "tokio_task_long_delays_total",
        kind: MetricKind::Counter,
        help: "Wake-ups that waited at least the long-delay threshold for their poll.",
        value: |f| Some(f.total_long_delay_count as f64),
    },
    TaskFamily {
        name: "tokio_task_long_delay_duration_seconds_total",
        kind: MetricKind::Counter,
        help: "Time of the wake-to-poll waits that were long.",
        value: |f| Some(seconds(f.total_long_delay_duration_ns)),
    },
    TaskFamily {
        name: "tokio_task_idles_total",
        kind: MetricKind::Counter,
        help: "Times a future went idle: a poll returned Pending and a wake-up came later.",
        value: |f| Some(f.total_idle_count as f64),
    },
    TaskFamily {
        name: "tokio_task_idle_duration_seconds_total",
        kind: MetricKind::Counter,
        help: "Time between the end of polls and the next wake-up (waiting on I/O, timers, other tasks).",
        value: |f| Some(seconds(f.total_idle_duration_ns)),
    },
    TaskFamily {
        name: "tokio_task_max_idle_duration_seconds",
        kind: MetricKind::Gauge,
        help: "Longest single idle period seen.",
        value: |f| Some(seconds(f.max_idle_duration_ns)),
    },
    TaskFamily {
        name: "tokio_task_blocked_duration_seconds_total",
        kind: MetricKind::Counter,
        help: "Wall time inside polls spent off the CPU (blocked), counted while a blocking profile runs; absent before the first.",
        value: |f| f.total_blocked_duration_ns.map(seconds),
    },
];

/// The runtime families, in exposition order; unstable ones yield `None` without
/// `--cfg tokio_unstable` and are left out.
const RUNTIME_FAMILIES: &[RuntimeFamily] = &[
    RuntimeFamily {
        name: "tokio_runtime_workers",
        kind: MetricKind::Gauge,
        help: "Worker threads of the runtime.",
        value: |r| Some(r.workers_count as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_live_tasks",
        kind: MetricKind::Gauge,
        help: "Tasks alive in the runtime (spawned, not finished).",
        value: |r| Some(r.live_tasks_count as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_global_queue_depth",
        kind: MetricKind::Gauge,
        help: "Tasks waiting in the runtime's global queue.",
        value: |r| Some(r.global_queue_depth as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_worker_parks_total",
        kind: MetricKind::Counter,
        help: "Times worker threads parked for lack of work.",
        value: |r| Some(r.total_park_count as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_worker_busy_seconds_total",
        kind: MetricKind::Counter,
        help: "Time worker threads spent busy (not parked), summed over workers.",
        value: |r| Some(seconds(r.total_busy_duration_ns)),
    },
    RuntimeFamily {
        name: "tokio_runtime_worker_noops_total",
        kind: MetricKind::Counter,
        help: "Times a worker woke from park and found no work.",
        value: |r| r.total_noop_count.map(|v| v as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_worker_steals_total",
        kind: MetricKind::Counter,
        help: "Tasks workers stole from other workers' queues.",
        value: |r| r.total_steal_count.map(|v| v as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_worker_steal_operations_total",
        kind: MetricKind::Counter,
        help: "Steal operations (each takes one or more tasks).",
        value: |r| r.total_steal_operations.map(|v| v as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_remote_schedules_total",
        kind: MetricKind::Counter,
        help: "Tasks scheduled from outside the runtime's threads.",
        value: |r| r.total_remote_schedule_count.map(|v| v as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_local_schedules_total",
        kind: MetricKind::Counter,
        help: "Tasks a worker scheduled onto its own local queue.",
        value: |r| r.total_local_schedule_count.map(|v| v as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_worker_overflows_total",
        kind: MetricKind::Counter,
        help: "Times a worker's local queue overflowed into the global queue.",
        value: |r| r.total_overflow_count.map(|v| v as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_worker_polls_total",
        kind: MetricKind::Counter,
        help: "Task polls by the worker threads.",
        value: |r| r.total_poll_count.map(|v| v as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_budget_forced_yields_total",
        kind: MetricKind::Counter,
        help: "Times a task was made to yield after using up its cooperative budget.",
        value: |r| r.total_budget_forced_yield_count.map(|v| v as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_io_driver_ready_events_total",
        kind: MetricKind::Counter,
        help: "Ready events processed by the I/O driver.",
        value: |r| r.total_io_driver_ready_count.map(|v| v as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_local_queue_depth",
        kind: MetricKind::Gauge,
        help: "Tasks waiting in the workers' local queues, summed over workers.",
        value: |r| r.local_queue_depth.map(|v| v as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_max_local_queue_depth",
        kind: MetricKind::Gauge,
        help: "Tasks waiting in the deepest worker local queue.",
        value: |r| r.max_local_queue_depth.map(|v| v as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_blocking_queue_depth",
        kind: MetricKind::Gauge,
        help: "Tasks waiting for a thread of the blocking pool.",
        value: |r| r.blocking_queue_depth.map(|v| v as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_blocking_threads",
        kind: MetricKind::Gauge,
        help: "Threads of the blocking pool.",
        value: |r| r.blocking_threads_count.map(|v| v as f64),
    },
    RuntimeFamily {
        name: "tokio_runtime_idle_blocking_threads",
        kind: MetricKind::Gauge,
        help: "Idle threads of the blocking pool.",
        value: |r| r.idle_blocking_threads_count.map(|v| v as f64),
    },
];

impl Snapshot {
    /// The snapshot's cumulative figures as metric samples, family by family (task families
    /// first, one sample per task kind in name order; then the runtime's).
    pub fn metric_samples(&self) -> Vec<MetricSample> {
        let mut samples =
            Vec::with_capacity(TASK_FAMILIES.len() * self.tasks.len() + RUNTIME_FAMILIES.len());
        for family in TASK_FAMILIES {
            for (task, figures) in &self.tasks {
                if let Some(value) = (family.value)(figures) {
                    samples.push(MetricSample {
                        family: family.name,
                        kind: family.kind,
                        help: family.help,
                        task: Some(task.clone()),
                        value,
                    });
                }
            }
        }
        if let Some(runtime) = &self.runtime {
            for family in RUNTIME_FAMILIES {
                if let Some(value) = (family.value)(runtime) {
                    samples.push(MetricSample {
                        family: family.name,
                        kind: family.kind,
                        help: family.help,
                        task: None,
                        value,
                    });
                }
            }
        }
        samples
    }

    /// Appends the snapshot as Prometheus text exposition format 0.0.4 to `out`.
    pub fn render_prometheus(&self, out: &mut String) {
        let mut current: Option<&'static str> = None;
        for sample in self.metric_samples() {
            if current != Some(sample.family) {
                let _ = writeln!(out, "# HELP {} {}", sample.family, sample.help);
                let _ = writeln!(out, "# TYPE {} {}", sample.family, sample.kind.as_str());
                current = Some(sample.family);
            }
            let labels = sample.labels();
            if labels.is_empty() {
                let _ = writeln!(out, "{} {}", sample.family, sample.value);
            } else {
                let _ = writeln!(out, "{}{{{labels}}} {}", sample.family, sample.value);
            }
        }
    }
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Escapes a label value as the exposition format requires (`\\`, `\"`, `\n`).
fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

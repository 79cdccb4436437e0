//! The figures the task probes report: per task kind ([`TaskFigures`]) and for the runtime
//! ([`RuntimeFigures`]), as plain `Copy` integers with their unit in the name, and the
//! [`Snapshot`] that holds them (what `/debug/tasks` and `tasks.json` serialize).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Version of the [`Snapshot`] JSON document; raised when a field changes meaning.
pub const SNAPSHOT_VERSION: u32 = 1;

/// What the tasks of one kind did: cumulative since the probes started, or over one sampling
/// interval. Durations are nanoseconds.
///
/// Each task kind has one `tokio_metrics::TaskMonitor`; these are its figures under names that
/// carry their unit. A "task" here is one future run inside the monitor (for DDSplit: one
/// request handler, or one connection), whether spawned or awaited inline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFigures {
    /// Number of futures wrapped by the monitor.
    pub instrumented_count: u64,
    /// Number of wrapped futures dropped (finished or cancelled); `instrumented_count -
    /// dropped_count` are alive.
    pub dropped_count: u64,
    /// Number of wrapped futures polled at least once.
    pub first_poll_count: u64,
    /// Total time between a future being wrapped and its first poll.
    pub total_first_poll_delay_ns: u64,
    /// Total number of polls.
    pub total_poll_count: u64,
    /// Total time spent inside polls.
    pub total_poll_duration_ns: u64,
    /// Number of polls that took at least the slow-poll threshold (they hold their worker thread
    /// and delay every other task queued on it).
    pub total_slow_poll_count: u64,
    /// Total time spent inside slow polls.
    pub total_slow_poll_duration_ns: u64,
    /// Number of times a future was woken and then waited in the runtime's queues to be polled.
    pub total_scheduled_count: u64,
    /// Total time between a wake-up and the poll that followed it (time in the run queue).
    pub total_scheduled_duration_ns: u64,
    /// Number of wake-ups that waited at least the long-delay threshold before their poll.
    pub total_long_delay_count: u64,
    /// Total time of the wake-to-poll waits that were long.
    pub total_long_delay_duration_ns: u64,
    /// Number of times a future went idle: a poll returned `Pending` and the future was later
    /// woken.
    pub total_idle_count: u64,
    /// Total time between the end of a poll and the next wake-up (waiting on I/O, timers,
    /// other tasks).
    pub total_idle_duration_ns: u64,
    /// Longest single idle period seen.
    pub max_idle_duration_ns: u64,
    /// Of the time inside polls, the wall time the polling thread spent off the CPU (blocked in
    /// a system call, a sleep, a contended lock), as sampled by [`crate::blocking`]. It counts
    /// only while a blocking profile runs, and is absent when none has run in the process: the
    /// rest of the poll time, `total_poll_duration_ns` minus this, ran on the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_blocked_duration_ns: Option<u64>,
}

impl TaskFigures {
    /// Futures wrapped but not yet dropped when the figures were taken.
    pub fn alive_count(&self) -> u64 {
        self.instrumented_count.saturating_sub(self.dropped_count)
    }

    /// Mean time inside one poll, nanoseconds (0 without polls).
    pub fn mean_poll_duration_ns(&self) -> u64 {
        mean(self.total_poll_duration_ns, self.total_poll_count)
    }

    /// Mean wake-to-poll wait, nanoseconds (0 without wake-ups).
    pub fn mean_scheduled_duration_ns(&self) -> u64 {
        mean(self.total_scheduled_duration_ns, self.total_scheduled_count)
    }

    /// Mean delay between wrapping and first poll, nanoseconds.
    pub fn mean_first_poll_delay_ns(&self) -> u64 {
        mean(self.total_first_poll_delay_ns, self.first_poll_count)
    }

    /// Mean idle period, nanoseconds.
    pub fn mean_idle_duration_ns(&self) -> u64 {
        mean(self.total_idle_duration_ns, self.total_idle_count)
    }

    /// Share of polls that were slow, 0.0 to 1.0 (0.0 without polls).
    pub fn slow_poll_ratio(&self) -> f64 {
        ratio(self.total_slow_poll_count, self.total_poll_count)
    }

    /// Share of wake-ups whose wait was long, 0.0 to 1.0.
    pub fn long_delay_ratio(&self) -> f64 {
        ratio(self.total_long_delay_count, self.total_scheduled_count)
    }
    /// Adds another monitor's figures of the same period (a shard of the same kind): counts and
    /// totals add up, the longest idle period is the longer one.
    pub(crate) fn merge(&mut self, other: &TaskFigures) {
        self.instrumented_count += other.instrumented_count;
        self.dropped_count += other.dropped_count;
        self.first_poll_count += other.first_poll_count;
        self.total_first_poll_delay_ns += other.total_first_poll_delay_ns;
        self.total_poll_count += other.total_poll_count;
        self.total_poll_duration_ns += other.total_poll_duration_ns;
        self.total_slow_poll_count += other.total_slow_poll_count;
        self.total_slow_poll_duration_ns += other.total_slow_poll_duration_ns;
        self.total_scheduled_count += other.total_scheduled_count;
        self.total_scheduled_duration_ns += other.total_scheduled_duration_ns;
        self.total_long_delay_count += other.total_long_delay_count;
        self.total_long_delay_duration_ns += other.total_long_delay_duration_ns;
        self.total_idle_count += other.total_idle_count;
        self.total_idle_duration_ns += other.total_idle_duration_ns;
        self.max_idle_duration_ns = self.max_idle_duration_ns.max(other.max_idle_duration_ns);
        self.total_blocked_duration_ns = match (
            self.total_blocked_duration_ns,
            other.total_blocked_duration_ns,
        ) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
    }
}

impl From<tokio_metrics::TaskMetrics> for TaskFigures {
    fn from(m: tokio_metrics::TaskMetrics) -> TaskFigures {
        TaskFigures {
            instrumented_count: m.instrumented_count,
            dropped_count: m.dropped_count,
            first_poll_count: m.first_poll_count,
            total_first_poll_delay_ns: ns(m.total_first_poll_delay),
            total_poll_count: m.total_poll_count,
            total_poll_duration_ns: ns(m.total_poll_duration),
            total_slow_poll_count: m.total_slow_poll_count,
            total_slow_poll_duration_ns: ns(m.total_slow_poll_duration),
            total_scheduled_count: m.total_scheduled_count,
            total_scheduled_duration_ns: ns(m.total_scheduled_duration),
            total_long_delay_count: m.total_long_delay_count,
            total_long_delay_duration_ns: ns(m.total_long_delay_duration),
            total_idle_count: m.total_idled_count,
            total_idle_duration_ns: ns(m.total_idle_duration),
            max_idle_duration_ns: ns(m.max_idle_duration),
            total_blocked_duration_ns: None,
        }
    }
}

/// What the runtime's worker threads did, cumulative since the probes started or over one
/// sampling interval. Counters add up over intervals; depths and counts of live things are the
/// value at the end of the last interval.
///
/// The `Option` fields come from tokio's unstable metrics: they are `Some` only in builds with
/// `--cfg tokio_unstable`, and absent from the JSON otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeFigures {
    /// Number of worker threads of the runtime.
    pub workers_count: u64,
    /// Tasks alive in the runtime (spawned, not yet finished) at the end of the figures.
    pub live_tasks_count: u64,
    /// Tasks waiting in the runtime's global (injection) queue at the end of the figures.
    pub global_queue_depth: u64,
    /// Wall time the figures cover.
    pub elapsed_ns: u64,
    /// Number of times worker threads parked (slept for lack of work), summed over workers.
    pub total_park_count: u64,
    /// Time worker threads spent busy (not parked), summed over workers.
    pub total_busy_duration_ns: u64,
    /// Number of times a worker woke from park without finding work (unstable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_noop_count: Option<u64>,
    /// Number of tasks workers stole from other workers' queues (unstable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_steal_count: Option<u64>,
    /// Number of steal operations (each takes one or more tasks) (unstable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_steal_operations: Option<u64>,
    /// Number of tasks scheduled from outside the runtime's threads (unstable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_remote_schedule_count: Option<u64>,
    /// Number of tasks a worker scheduled onto its own local queue (unstable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_local_schedule_count: Option<u64>,
    /// Number of times a worker's local queue overflowed into the global queue (unstable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_overflow_count: Option<u64>,
    /// Number of task polls by the workers (unstable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_poll_count: Option<u64>,
    /// Number of times a task was made to yield because it used up its cooperative budget
    /// (unstable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_budget_forced_yield_count: Option<u64>,
    /// Number of ready events the I/O driver processed (unstable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_io_driver_ready_count: Option<u64>,
    /// Tasks waiting in the workers' local queues, summed, at the end of the figures (unstable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_queue_depth: Option<u64>,
    /// Deepest worker local queue at the end of the figures (unstable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_local_queue_depth: Option<u64>,
    /// Tasks waiting for a blocking-pool thread at the end of the figures (unstable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocking_queue_depth: Option<u64>,
    /// Threads of the blocking pool at the end of the figures (unstable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocking_threads_count: Option<u64>,
    /// Idle threads of the blocking pool at the end of the figures (unstable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_blocking_threads_count: Option<u64>,
}

impl RuntimeFigures {
    /// Share of the workers' capacity (workers × covered wall time) spent busy, 0.0 to 1.0
    /// (0.0 when no time is covered).
    pub fn busy_ratio(&self) -> f64 {
        let capacity = (self.elapsed_ns as f64) * (self.workers_count as f64);
        if capacity == 0.0 {
            0.0
        } else {
            self.total_busy_duration_ns as f64 / capacity
        }
    }

    /// Adds the interval `next` to these cumulative figures: counters add up, gauges take the
    /// newer value.
    pub fn accumulate(&mut self, next: &RuntimeFigures) {
        fn add(total: &mut Option<u64>, next: Option<u64>) {
            if let Some(n) = next {
                *total = Some(total.unwrap_or(0).saturating_add(n));
            }
        }
        self.workers_count = next.workers_count;
        self.live_tasks_count = next.live_tasks_count;
        self.global_queue_depth = next.global_queue_depth;
        self.elapsed_ns = self.elapsed_ns.saturating_add(next.elapsed_ns);
        self.total_park_count = self.total_park_count.saturating_add(next.total_park_count);
        self.total_busy_duration_ns = self
            .total_busy_duration_ns
            .saturating_add(next.total_busy_duration_ns);
        add(&mut self.total_noop_count, next.total_noop_count);
        add(&mut self.total_steal_count, next.total_steal_count);
        add(
            &mut self.total_steal_operations,
            next.total_steal_operations,
        );
        add(
            &mut self.total_remote_schedule_count,
            next.total_remote_schedule_count,
        );
        add(
            &mut self.total_local_schedule_count,
            next.total_local_schedule_count,
        );
        add(&mut self.total_overflow_count, next.total_overflow_count);
        add(&mut self.total_poll_count, next.total_poll_count);
        add(
            &mut self.total_budget_forced_yield_count,
            next.total_budget_forced_yield_count,
        );
        add(
            &mut self.total_io_driver_ready_count,
            next.total_io_driver_ready_count,
        );
        self.local_queue_depth = next.local_queue_depth;
        self.max_local_queue_depth = next.max_local_queue_depth;
        self.blocking_queue_depth = next.blocking_queue_depth;
        self.blocking_threads_count = next.blocking_threads_count;
        self.idle_blocking_threads_count = next.idle_blocking_threads_count;
    }
}

impl From<&tokio_metrics::RuntimeMetrics> for RuntimeFigures {
    fn from(m: &tokio_metrics::RuntimeMetrics) -> RuntimeFigures {
        #[allow(
            unused_mut,
            reason = "the unstable fields are set only with tokio_unstable"
        )]
        let mut figures = RuntimeFigures {
            workers_count: m.workers_count as u64,
            live_tasks_count: m.live_tasks_count as u64,
            global_queue_depth: m.global_queue_depth as u64,
            elapsed_ns: ns(m.elapsed),
            total_park_count: m.total_park_count,
            total_busy_duration_ns: ns(m.total_busy_duration),
            ..RuntimeFigures::default()
        };
        #[cfg(tokio_unstable)]
        {
            figures.total_noop_count = Some(m.total_noop_count);
            figures.total_steal_count = Some(m.total_steal_count);
            figures.total_steal_operations = Some(m.total_steal_operations);
            figures.total_remote_schedule_count = Some(m.num_remote_schedules);
            figures.total_local_schedule_count = Some(m.total_local_schedule_count);
            figures.total_overflow_count = Some(m.total_overflow_count);
            figures.total_poll_count = Some(m.total_polls_count);
            figures.total_budget_forced_yield_count = Some(m.budget_forced_yield_count);
            figures.total_io_driver_ready_count = Some(m.io_driver_ready_count);
            figures.local_queue_depth = Some(m.total_local_queue_depth as u64);
            figures.max_local_queue_depth = Some(m.max_local_queue_depth as u64);
            figures.blocking_queue_depth = Some(m.blocking_queue_depth as u64);
            figures.blocking_threads_count = Some(m.blocking_threads_count as u64);
            figures.idle_blocking_threads_count = Some(m.idle_blocking_threads_count as u64);
        }
        figures
    }
}

/// The task probes at one moment: cumulative figures per task kind and for the runtime, and
/// the last sampling interval. This is the JSON of `/debug/tasks` and of `tasks.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SNAPSHOT_VERSION`].
    pub version: u32,
    /// Whether the task monitors were on; when off, `tasks` is empty (nothing was measured).
    pub enabled: bool,
    /// Time from the probes' start to this snapshot, nanoseconds.
    pub uptime_ns: u64,
    /// Cumulative figures per task kind, since the probes started.
    pub tasks: BTreeMap<String, TaskFigures>,
    /// Cumulative runtime figures since the probes started; absent when the probes were built
    /// outside a runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeFigures>,
    /// The figures of the last sampling interval only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<IntervalFigures>,
}

/// The figures of one sampling interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalFigures {
    /// Length of the interval, nanoseconds.
    pub duration_ns: u64,
    /// What each task kind did during the interval.
    pub tasks: BTreeMap<String, TaskFigures>,
    /// What the runtime did during the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeFigures>,
}

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn mean(total: u64, count: u64) -> u64 {
    total.checked_div(count).unwrap_or(0)
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

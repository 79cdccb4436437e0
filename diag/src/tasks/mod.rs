//! Task and runtime probes: a registry of named `tokio_metrics::TaskMonitor`s, one per kind of
//! work (`gateway.put`, `node.get`, ...), and the runtime's `RuntimeMonitor`, sampled at an
//! interval into [`Snapshot`]s (JSON with serde) and Prometheus text.
//!
//! The write side is the monitors' own atomics, touched by the instrumented futures as they are
//! polled. The read side is one collector (the sampler task, a scrape, the end of a run) that
//! takes the [`figures`](TaskFigures) out as `Copy` values. The hot path never takes a lock and
//! never waits on the collector: the collector's lock guards only the interval state.
//!
//! ```
//! use diag::tasks::TaskProbes;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let probes = TaskProbes::builder().kind("gateway.put").build().unwrap();
//! let put = probes.kind("gateway.put").unwrap();
//! put.instrument(async { tokio::task::yield_now().await }).await;
//! let snapshot = probes.sample();
//! let figures = snapshot.tasks["gateway.put"];
//! assert_eq!(figures.instrumented_count, 1);
//! assert_eq!(figures.dropped_count, 1);
//! assert_eq!(figures.total_poll_count, 2); // yield_now returns Pending once
//! # }
//! ```

mod figures;
mod prometheus;
mod shards;
mod spawn;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;
use shards::{ShardedIntervals, ShardedMonitor};
use tokio_metrics::{Instrumented, RuntimeIntervals, RuntimeMonitor, TaskMonitor};

pub use figures::{IntervalFigures, RuntimeFigures, SNAPSHOT_VERSION, Snapshot, TaskFigures};
pub use prometheus::{MetricKind, MetricSample};
pub use shards::MONITOR_SHARDS;
pub use spawn::{names_tasks, spawn_named, spawn_named_in};

/// Default time between two samples of the sampler task. One second matches the finest
/// Prometheus scrape interval in common use, so a scrape never sees figures older than that;
/// a sample costs a few dozen atomic loads per task kind.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Shortest sample interval accepted: below this the sampler itself becomes load on the
/// runtime it measures.
pub const SAMPLE_INTERVAL_MIN: Duration = Duration::from_millis(10);

/// Default slow-poll threshold: a poll this long keeps every other task queued on its worker
/// waiting noticeably. tokio-metrics' own default.
pub const DEFAULT_SLOW_POLL_THRESHOLD: Duration = Duration::from_micros(50);

/// Default long-delay threshold for the wake-to-poll wait, tokio-metrics' own default.
pub const DEFAULT_LONG_DELAY_THRESHOLD: Duration = Duration::from_micros(50);

/// Most task kinds in one registry: each kind is a label value on about fifteen series, and
/// label values must stay few for a metrics server.
pub const TASK_KINDS_MAX: usize = 64;

/// Longest task kind name, in bytes: a label value and a JSON key, not a description.
pub const TASK_KIND_NAME_BYTES_MAX: usize = 64;

/// Why task probes could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum TasksError {
    /// A kind was registered twice.
    #[error("task kind {name:?} is registered twice")]
    DuplicateKind {
        /// The name.
        name: String,
    },
    /// A kind's name is empty, too long or has characters outside `[a-z0-9._-]`.
    #[error(
        "task kind {name:?} is not a valid name: use 1 to {TASK_KIND_NAME_BYTES_MAX} characters from a-z, 0-9, '.', '_' and '-'"
    )]
    BadKindName {
        /// The name.
        name: String,
    },
    /// More kinds than [`TASK_KINDS_MAX`].
    #[error("{count} task kinds given, the limit is {TASK_KINDS_MAX}")]
    TooManyKinds {
        /// How many were given.
        count: usize,
    },
    /// The sample interval is shorter than [`SAMPLE_INTERVAL_MIN`].
    #[error("sample interval {got:?} is shorter than the minimum {SAMPLE_INTERVAL_MIN:?}")]
    SampleIntervalTooShort {
        /// The interval asked for.
        got: Duration,
    },
    /// The sampler was started outside a tokio runtime.
    #[error("the task probes' sampler must be started from inside a tokio runtime")]
    NoRuntime,
}

/// Builds [`TaskProbes`]; every setting has a `DEFAULT_*` value.
#[derive(Clone, Debug)]
pub struct TaskProbesBuilder {
    kinds: Vec<&'static str>,
    sample_interval: Duration,
    slow_poll_threshold: Duration,
    long_delay_threshold: Duration,
    runtime: RuntimeChoice,
    enabled: bool,
}

#[derive(Clone, Debug)]
enum RuntimeChoice {
    Current,
    Given(tokio::runtime::Handle),
    None,
}

impl Default for TaskProbesBuilder {
    fn default() -> TaskProbesBuilder {
        TaskProbesBuilder {
            kinds: Vec::new(),
            sample_interval: DEFAULT_SAMPLE_INTERVAL,
            slow_poll_threshold: DEFAULT_SLOW_POLL_THRESHOLD,
            long_delay_threshold: DEFAULT_LONG_DELAY_THRESHOLD,
            runtime: RuntimeChoice::Current,
            enabled: true,
        }
    }
}

impl TaskProbesBuilder {
    /// Adds a task kind (a name of `[a-z0-9._-]`, e.g. `gateway.put`).
    pub fn kind(mut self, name: &'static str) -> TaskProbesBuilder {
        self.kinds.push(name);
        self
    }

    /// Adds several task kinds.
    pub fn kinds(mut self, names: impl IntoIterator<Item = &'static str>) -> TaskProbesBuilder {
        self.kinds.extend(names);
        self
    }

    /// Time between two samples of the sampler task (default [`DEFAULT_SAMPLE_INTERVAL`]).
    /// Shorter intervals show changes sooner in `interval` figures; cumulative figures do not
    /// depend on it.
    pub fn sample_interval(mut self, interval: Duration) -> TaskProbesBuilder {
        self.sample_interval = interval;
        self
    }

    /// Polls at least this long count as slow (default [`DEFAULT_SLOW_POLL_THRESHOLD`]).
    /// Lower it to catch smaller stalls; raise it when the work polls long by design.
    pub fn slow_poll_threshold(mut self, threshold: Duration) -> TaskProbesBuilder {
        self.slow_poll_threshold = threshold;
        self
    }

    /// Wake-to-poll waits at least this long count as long (default
    /// [`DEFAULT_LONG_DELAY_THRESHOLD`]).
    pub fn long_delay_threshold(mut self, threshold: Duration) -> TaskProbesBuilder {
        self.long_delay_threshold = threshold;
        self
    }

    /// The runtime whose metrics are sampled (default: the runtime `build` runs in, if any;
    /// built outside one, the probes have task figures only).
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> TaskProbesBuilder {
        self.runtime = RuntimeChoice::Given(handle);
        self
    }

    /// Leaves the runtime's metrics out.
    pub fn without_runtime(mut self) -> TaskProbesBuilder {
        self.runtime = RuntimeChoice::None;
        self
    }

    /// Turns the task monitors on or off (default on). Off, [`TaskKind::instrument`] passes
    /// futures through untouched and snapshots list no task figures: the switch that measures
    /// what the monitors cost.
    pub fn enabled(mut self, enabled: bool) -> TaskProbesBuilder {
        self.enabled = enabled;
        self
    }

    /// Checks the settings and creates the monitors.
    pub fn build(self) -> Result<TaskProbes, TasksError> {
        if self.kinds.len() > TASK_KINDS_MAX {
            return Err(TasksError::TooManyKinds {
                count: self.kinds.len(),
            });
        }
        for (i, name) in self.kinds.iter().enumerate() {
            if !is_valid_kind_name(name) {
                return Err(TasksError::BadKindName {
                    name: name.to_string(),
                });
            }
            if self.kinds[..i].contains(name) {
                return Err(TasksError::DuplicateKind {
                    name: name.to_string(),
                });
            }
        }
        if self.sample_interval < SAMPLE_INTERVAL_MIN {
            return Err(TasksError::SampleIntervalTooShort {
                got: self.sample_interval,
            });
        }
        let kinds: Vec<TaskKind> = self
            .kinds
            .iter()
            .map(|&name| TaskKind {
                name,
                blocking_id: crate::blocking::intern_kind(name),
                monitor: self.enabled.then(|| {
                    ShardedMonitor::new(|| {
                        let mut builder = TaskMonitor::builder();
                        builder
                            .with_slow_poll_threshold(self.slow_poll_threshold)
                            .with_long_delay_threshold(self.long_delay_threshold);
                        builder.build()
                    })
                }),
            })
            .collect();
        let handle = match self.runtime {
            RuntimeChoice::Current => tokio::runtime::Handle::try_current().ok(),
            RuntimeChoice::Given(handle) => Some(handle),
            RuntimeChoice::None => None,
        };
        let collector = Collector {
            task_intervals: kinds
                .iter()
                .filter_map(|k| k.monitor.as_ref().map(ShardedMonitor::intervals))
                .collect(),
            blocked_at_last_sample: kinds
                .iter()
                .filter(|k| k.monitor.is_some())
                .map(TaskKind::blocked_ns)
                .collect(),
            runtime_intervals: handle.map(|h| RuntimeMonitor::new(&h).intervals()),
            runtime_total: RuntimeFigures::default(),
            last_sample_at: Instant::now(),
            latest: None,
        };
        Ok(TaskProbes {
            inner: Arc::new(Inner {
                kinds,
                enabled: self.enabled,
                sample_interval: self.sample_interval,
                started: Instant::now(),
                collector: Mutex::new(collector),
                sampler: OnceLock::new(),
            }),
        })
    }
}

fn is_valid_kind_name(name: &str) -> bool {
    (1..=TASK_KIND_NAME_BYTES_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// A registry of task monitors, one per kind of work, and the runtime's metrics. Cheap to
/// clone (one `Arc`).
#[derive(Clone, Debug)]
pub struct TaskProbes {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    kinds: Vec<TaskKind>,
    enabled: bool,
    sample_interval: Duration,
    started: Instant,
    /// Only the read side takes this lock: the sampler, scrapes, the end of a run.
    collector: Mutex<Collector>,
    sampler: OnceLock<tokio::task::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(sampler) = self.sampler.get() {
            sampler.abort();
        }
    }
}

/// The interval state, owned by whoever samples.
#[derive(Debug)]
struct Collector {
    /// One per enabled kind, in the order of `Inner::kinds`.
    task_intervals: Vec<ShardedIntervals>,
    /// Each enabled kind's blocked time at the last sample, for the interval's share of it.
    blocked_at_last_sample: Vec<Option<u64>>,
    runtime_intervals: Option<RuntimeIntervals>,
    /// Sum of every runtime interval so far.
    runtime_total: RuntimeFigures,
    last_sample_at: Instant,
    latest: Option<Snapshot>,
}

impl TaskProbes {
    /// A builder with the defaults.
    pub fn builder() -> TaskProbesBuilder {
        TaskProbesBuilder::default()
    }

    /// The kind named `name`, if registered. Look kinds up once, at setup: the lookup compares
    /// strings.
    pub fn kind(&self, name: &str) -> Option<TaskKind> {
        self.inner.kinds.iter().find(|k| k.name == name).cloned()
    }

    /// Every registered kind, in registration order.
    pub fn kinds(&self) -> impl Iterator<Item = &TaskKind> {
        self.inner.kinds.iter()
    }

    /// Whether the task monitors are on.
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled
    }

    /// The sampler's period.
    pub fn sample_interval(&self) -> Duration {
        self.inner.sample_interval
    }

    /// Ends the current sampling interval and returns the new snapshot (also kept as the
    /// latest). The sampler task calls this every interval; call it yourself for figures as of
    /// now, e.g. at the end of a run.
    pub fn sample(&self) -> Snapshot {
        let mut collector = self
            .inner
            .collector
            .lock()
            .expect("the collector lock is never held across a panic");
        let now = Instant::now();
        let duration_ns = figures::ns(now.saturating_duration_since(collector.last_sample_at));
        collector.last_sample_at = now;
        let enabled = self.inner.kinds.iter().filter(|k| k.monitor.is_some());
        let collector = &mut *collector;
        let interval_tasks = enabled
            .clone()
            .zip(collector.task_intervals.iter_mut())
            .zip(collector.blocked_at_last_sample.iter_mut())
            .map(|((kind, intervals), blocked_at_last)| {
                let mut figures = intervals.next();
                let blocked_now = kind.blocked_ns();
                figures.total_blocked_duration_ns =
                    blocked_now.map(|now| now.saturating_sub(blocked_at_last.unwrap_or(0)));
                *blocked_at_last = blocked_now;
                (kind.name.to_string(), figures)
            })
            .collect();
        let interval_runtime = collector.runtime_intervals.as_mut().map(|intervals| {
            RuntimeFigures::from(
                &intervals
                    .next()
                    .expect("RuntimeIntervals is an endless iterator"),
            )
        });
        if let Some(interval) = &interval_runtime {
            collector.runtime_total.accumulate(interval);
        }
        let tasks = enabled
            .filter_map(|kind| Some((kind.name.to_string(), kind.cumulative()?)))
            .collect();
        let snapshot = Snapshot {
            version: SNAPSHOT_VERSION,
            enabled: self.inner.enabled,
            uptime_ns: figures::ns(now.saturating_duration_since(self.inner.started)),
            tasks,
            runtime: collector
                .runtime_intervals
                .is_some()
                .then_some(collector.runtime_total),
            interval: Some(IntervalFigures {
                duration_ns,
                tasks: interval_tasks,
                runtime: interval_runtime,
            }),
        };
        collector.latest = Some(snapshot.clone());
        snapshot
    }

    /// The latest snapshot (at most one sample interval old while the sampler runs); takes a
    /// sample if none was taken yet.
    pub fn snapshot(&self) -> Snapshot {
        let latest = self
            .inner
            .collector
            .lock()
            .expect("the collector lock is never held across a panic")
            .latest
            .clone();
        latest.unwrap_or_else(|| self.sample())
    }

    /// Starts the sampler task on the current runtime: it calls [`TaskProbes::sample`] every
    /// sample interval and stops when the last clone of these probes is dropped. Starting it
    /// again does nothing.
    pub fn start_sampler(&self) -> Result<(), TasksError> {
        if self.inner.sampler.get().is_some() {
            return Ok(());
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(TasksError::NoRuntime);
        }
        let probes = Arc::downgrade(&self.inner);
        let period = self.inner.sample_interval;
        let task = spawn_named("diag.tasks.sampler", async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate; the first interval should be a whole one.
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(inner) = probes.upgrade() else {
                    break;
                };
                TaskProbes { inner }.sample();
            }
        });
        if let Err(task) = self.inner.sampler.set(task) {
            // Another caller started one in the meantime.
            task.abort();
        }
        Ok(())
    }

    /// The latest snapshot as Prometheus text (see [`Snapshot::render_prometheus`]).
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        self.snapshot().render_prometheus(&mut out);
        out
    }
}

/// One kind of work and its monitor. Cheap to clone (one `Arc`); keep one per call site and
/// wrap each unit of work with [`TaskKind::instrument`].
#[derive(Clone, Debug)]
pub struct TaskKind {
    name: &'static str,
    /// The kind's id in the blocking sampler's thread table.
    blocking_id: u32,
    /// `None` when the probes are off.
    monitor: Option<ShardedMonitor>,
}

impl TaskKind {
    /// A kind with no monitor: [`TaskKind::instrument`] passes futures through. For code that
    /// runs with or without probes.
    pub fn off(name: &'static str) -> TaskKind {
        TaskKind {
            name,
            blocking_id: 0,
            monitor: None,
        }
    }

    /// The kind's name (the `task` label).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Wraps `future` so that its polls, wake-ups and idle time count for this kind. Awaiting
    /// the result inline measures it as its own task; so does spawning it.
    ///
    /// Cost: one allocation per call (the waker state), and per poll three clock reads and a
    /// few atomic additions on counters shared by the kind's futures wrapped on the same thread
    /// (see [`MONITOR_SHARDS`]), plus one relaxed load that tells whether a
    /// [`crate::blocking`] profile runs (two atomic stores if so). About 0.26 µs per future and
    /// 0.21 µs per further poll (`cargo run --release -p diag --example task_overhead`).
    pub fn instrument<F: Future>(&self, future: F) -> Monitored<F> {
        match &self.monitor {
            Some(monitor) => Monitored::On {
                future: monitor.instrument(future),
                blocking_id: self.blocking_id,
            },
            None => Monitored::Off { future },
        }
    }

    /// The kind's cumulative figures, or `None` when the probes are off.
    pub fn cumulative(&self) -> Option<TaskFigures> {
        let mut figures = self.monitor.as_ref()?.cumulative();
        figures.total_blocked_duration_ns = self.blocked_ns();
        Some(figures)
    }

    /// Wall time this kind's polls spent blocked while blocking profiles ran; `None` before
    /// the first. Kinds of one name share it, like their id in the sampler's table.
    fn blocked_ns(&self) -> Option<u64> {
        crate::blocking::blocked_ns(self.blocking_id)
    }
}

pin_project! {
    /// A future wrapped by [`TaskKind::instrument`].
    #[project = MonitoredProj]
    #[derive(Debug)]
    pub enum Monitored<F> {
        /// Measured by the kind's monitor.
        On { #[pin] future: Instrumented<F>, blocking_id: u32 },
        /// Probes off: the future itself.
        Off { #[pin] future: F },
    }
}

impl<F: Future> Future for Monitored<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.project() {
            MonitoredProj::On {
                future,
                blocking_id,
            } => {
                let _scope = crate::blocking::PollScope::enter(*blocking_id);
                future.poll(cx)
            }
            MonitoredProj::Off { future } => future.poll(cx),
        }
    }
}

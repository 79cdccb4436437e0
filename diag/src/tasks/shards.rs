//! A kind's monitor split into shards, one per polling thread: two workers polling futures of
//! one kind at once would otherwise update the same counters, and the cache line they share
//! would move between the cores on every poll (a monitored poll cost about 3.8× as much on two
//! threads as on one, `examples/task_overhead.rs`). A future counts in the shard of the thread
//! that wrapped it; the figures are the sum of the shards.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_metrics::{Instrumented, TaskIntervals, TaskMonitor};

use super::TaskFigures;

/// Shards per kind: a runtime's workers each get their own up to this many; past it threads
/// share them in turn (each shard is a few hundred bytes, so this is per kind, not per core).
pub const MONITOR_SHARDS: usize = 4;

/// The next shard to hand to a thread that has none yet.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % MONITOR_SHARDS;
}

/// The calling thread's shard (0 while its thread-locals are being torn down).
fn this_threads_shard() -> usize {
    THREAD_SHARD.try_with(|shard| *shard).unwrap_or(0)
}

/// [`MONITOR_SHARDS`] monitors of one kind. Cheap to clone (one `Arc`).
#[derive(Clone, Debug)]
pub(crate) struct ShardedMonitor {
    shards: Arc<[TaskMonitor]>,
}

impl ShardedMonitor {
    /// Shards made by `build`, all with the same settings.
    pub(crate) fn new(build: impl Fn() -> TaskMonitor) -> ShardedMonitor {
        ShardedMonitor {
            shards: (0..MONITOR_SHARDS).map(|_| build()).collect(),
        }
    }

    /// Wraps `future` in the calling thread's shard.
    #[inline]
    pub(crate) fn instrument<F>(&self, future: F) -> Instrumented<F> {
        self.shards[this_threads_shard()].instrument(future)
    }

    /// The figures since the monitors were made, summed over the shards.
    pub(crate) fn cumulative(&self) -> TaskFigures {
        sum(self
            .shards
            .iter()
            .map(|m| TaskFigures::from(m.cumulative())))
    }

    /// The shards' intervals, taken together.
    pub(crate) fn intervals(&self) -> ShardedIntervals {
        ShardedIntervals(self.shards.iter().map(TaskMonitor::intervals).collect())
    }
}

/// Every shard's interval iterator; each [`next`](ShardedIntervals::next) sums one interval.
#[derive(Debug)]
pub(crate) struct ShardedIntervals(Vec<TaskIntervals>);

impl ShardedIntervals {
    /// The figures since the previous call (or since the monitors were made).
    pub(crate) fn next(&mut self) -> TaskFigures {
        sum(self.0.iter_mut().map(|intervals| {
            TaskFigures::from(
                intervals
                    .next()
                    .expect("TaskIntervals is an endless iterator"),
            )
        }))
    }
}

fn sum(shards: impl Iterator<Item = TaskFigures>) -> TaskFigures {
    shards.fold(TaskFigures::default(), |mut total, shard| {
        total.merge(&shard);
        total
    })
}

//! Blocking inside polls: which code holds a runtime thread off the CPU while it polls a task
//! (an `fsync`, a `std::thread::sleep`, a contended `std::sync::Mutex`, a file read, DNS), and
//! for how long. A poll that blocks holds its worker thread and everything queued behind it; a
//! CPU profile never sees it, since the thread uses no CPU while it waits.
//!
//! How it works, without perf, eBPF or root:
//! - every poll of an instrumented future ([`crate::tasks::TaskKind::instrument`]) marks its
//!   thread as "in a poll of kind K" in a fixed table of thread slots (two atomic stores; one
//!   relaxed load when no profile runs);
//! - while a [`BlockingProfiler`] runs, a sampler thread wakes `hz` times a second and reads the
//!   scheduler state of every thread inside a poll (`/proc/self/task/TID/stat`); a thread that
//!   is sleeping or in uninterruptible wait is blocked, and the time since the last tick is
//!   charged to its kind;
//! - for a blocked thread the sampler sends a signal whose handler unwinds the thread's stack
//!   into its slot; the time charged while the stack was on its way is charged to that stack.
//!
//! The time charged to each kind is also kept in the process, so the task probes
//! ([`crate::tasks::TaskFigures::total_blocked_duration_ns`]) show it live on `/debug/tasks` and
//! `/metrics` while a profile runs.
//!
//! The result is wall time off the CPU inside polls, by task kind and by stack: the folded
//! stacks count microseconds, so the flamegraph's widths are blocked time.
//!
//! ```no_run
//! use diag::blocking::{BlockingProfiler, DEFAULT_HZ};
//! let profiler = BlockingProfiler::start(DEFAULT_HZ)?;
//! // ... instrumented work that may block ...
//! let profile = profiler.stop();
//! std::fs::write("blocking.folded", profile.folded())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod slots;
mod summary;

#[cfg(feature = "cpu")]
mod sampler;

pub use slots::{
    KIND_NAMES_MAX, PollMarks, STACK_DEPTH_MAX, THREADS_MAX, mark_polls, polling_kind,
};
pub(crate) use slots::{PollScope, blocked_ns, intern_kind};
pub use summary::{BLOCKING_SUMMARY_VERSION, Blocked, BlockingSummary, SamplerCost};

#[cfg(feature = "cpu")]
pub use sampler::{
    BlockedStack, BlockingError, BlockingProfile, BlockingProfiler, DEFAULT_HZ, HZ_MAX,
    STACK_SIGNAL,
};

#[cfg(all(test, feature = "cpu"))]
mod tests;

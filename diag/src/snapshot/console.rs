//! What the console pass says about a run: the `tokio::sync` and timer resources tasks waited
//! on, by where each was created (measured in the process by the console build's wait layer,
//! `diag::console::waits`), and the console's lints on the tasks (self-wakes, lost wakers,
//! polls that never yield, large and auto-boxed futures), read from its console recording.

use serde::{Deserialize, Serialize};

pub use crate::waits::{ResourceWaits, TaskWaits};

/// Most resource sites kept per snapshot, most waited on first.
pub const CONSOLE_RESOURCES_MAX: usize = 50;

/// Most lints kept per snapshot.
pub const CONSOLE_LINTS_MAX: usize = 50;

/// A task wakes itself in more than this share of its wakes: the console's self-wake lint.
pub const SELF_WAKE_SHARE_MIN: f64 = 0.5;

/// ... once it has been woken at least this often (a task woken twice, once by itself, is no
/// pattern).
pub const SELF_WAKE_WAKES_MIN: u64 = 10;

/// A poll that runs this long without yielding: the console's never-yielded lint.
pub const LONG_POLL_NS: u64 = 1_000_000_000;

/// A task's future this large or larger: the console's large-future lint (its default).
pub const LARGE_FUTURE_BYTES: u64 = 1024;

/// The figures of one console recording.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsoleFigures {
    /// Operations of the recorded run.
    pub ops: u64,
    /// Updates in the recording.
    pub updates: u64,
    /// Events the console layer dropped while recording (its buffer was full): waits and
    /// tasks it missed. 0 means the view is complete.
    pub dropped_events: u64,
    /// Tasks seen.
    pub tasks: u64,
    /// Resources waited on, by the place they were created, most wait time first (at most
    /// [`CONSOLE_RESOURCES_MAX`]).
    pub resources: Vec<ResourceWaits>,
    /// The console's lints, by task name and spawn location.
    pub lints: Vec<ConsoleLint>,
    /// The recording, relative to the snapshot directory.
    pub file: String,
}

/// A lint of the console's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lint {
    /// The task wakes itself in most of its wakes (a busy loop of `yield_now` or a waker it
    /// calls itself).
    SelfWakes,
    /// The task waits with no waker left: nothing will ever wake it.
    LostWaker,
    /// A poll of the task ran for a second or more without yielding.
    NeverYielded,
    /// The task's future is large (moved into the task when spawned).
    LargeFuture,
    /// The task's future was so large that tokio boxed it when spawning.
    AutoBoxedFuture,
}

impl Lint {
    /// What the lint says, in words.
    pub fn says(self) -> &'static str {
        match self {
            Lint::SelfWakes => "wakes itself in most of its wakes",
            Lint::LostWaker => "has lost its waker: nothing will wake it again",
            Lint::NeverYielded => "ran a poll for over a second without yielding",
            Lint::LargeFuture => "is a large future",
            Lint::AutoBoxedFuture => "is a future so large that tokio boxed it",
        }
    }
}

/// The tasks of one name and spawn location a lint applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsoleLint {
    /// Which lint.
    pub lint: Lint,
    /// The tasks' name (or `unnamed`).
    pub task: String,
    /// Where they were spawned (`file:line`).
    pub location: String,
    /// How many tasks.
    pub tasks: u64,
    /// The lint's figure: the largest future's bytes, the highest self-wake share, the longest
    /// poll in nanoseconds; 0 for a lost waker.
    pub value: f64,
}

impl ConsoleFigures {
    /// The waits on the resources of each site (see [`ResourceWaits::site`]): the entries of
    /// one type in one file added up, under the line that was waited on most.
    pub fn by_site(&self) -> std::collections::BTreeMap<String, ResourceWaits> {
        let mut sites: std::collections::BTreeMap<String, ResourceWaits> = Default::default();
        // Most waited on first: the first entry of a site gives it its line.
        let mut entries: Vec<&ResourceWaits> = self.resources.iter().collect();
        entries.sort_by(|a, b| b.wait_ns.total_cmp(&a.wait_ns));
        for r in entries {
            match sites.entry(r.site()) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(r.clone());
                }
                std::collections::btree_map::Entry::Occupied(mut o) => o.get_mut().absorb(r),
            }
        }
        sites
    }
}

#[cfg(feature = "console-recording")]
mod fold;

#[cfg(feature = "console-recording")]
pub use fold::ConsoleFold;

//! Waits on a runtime's resources, as plain data: what a console build measures (the
//! `console` feature's wait layer writes it as `resources.json`) and what a snapshot keeps.
//! Any build reads it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The file the waits are written to in a probe directory, beside the console recording.
pub const WAITS_FILE: &str = "resources.json";

/// Version of `resources.json`; raised when a field changes meaning.
pub const WAITS_VERSION: u32 = 1;

/// What `resources.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaitsSummary {
    /// [`WAITS_VERSION`].
    pub version: u32,
    /// Wall time measured, nanoseconds.
    pub duration_ns: u64,
    /// Resource sites, most wait time first.
    pub resources: Vec<ResourceWaits>,
}

/// The waits on the resources created at one place.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceWaits {
    /// Its type as tokio names it (`Mutex`, `Semaphore`, `Sleep`).
    pub concrete_type: String,
    /// Its kind (`Sync`, `timer`).
    pub kind: String,
    /// Where it was created (`file:line`).
    pub location: String,
    /// Resources created there (seen while measuring).
    pub resources: u64,
    /// Completed waits on them.
    pub waits: u64,
    /// Their time, nanoseconds.
    pub wait_ns: f64,
    /// Waits and their time by the name of the waiting task.
    pub tasks: BTreeMap<String, TaskWaits>,
    /// Waits and their time by the task kind (`diag::tasks`) whose poll started them: the
    /// handler that waited, where the tokio task (a connection) runs many.
    #[serde(default)]
    pub kinds: BTreeMap<String, TaskWaits>,
}

/// Share of a site's wait time that names a waiting task kind.
pub const WAITER_SHARE_MIN: f64 = 0.1;

/// Waiting task kinds named per site, at most.
pub const WAITERS_MAX: usize = 3;

/// The name with the most wait time.
fn top(waits: &BTreeMap<String, TaskWaits>) -> Option<&str> {
    waits
        .iter()
        .max_by(|a, b| a.1.wait_ns.total_cmp(&b.1.wait_ns))
        .map(|(name, _)| name.as_str())
}

/// One task name's waits on a resource site.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskWaits {
    /// Completed waits.
    pub waits: u64,
    /// Their time, nanoseconds.
    pub wait_ns: f64,
}

impl ResourceWaits {
    /// The task name that waited longest here.
    pub fn top_task(&self) -> Option<&str> {
        top(&self.tasks)
    }

    /// The task kind that waited longest here.
    pub fn top_kind(&self) -> Option<&str> {
        top(&self.kinds)
    }

    /// The task kinds that waited here for at least [`WAITER_SHARE_MIN`] of the site's wait
    /// time, longest first (at most [`WAITERS_MAX`]): one lock is often taken by several
    /// handlers, and each is a place to look.
    pub fn waiting_kinds(&self) -> Vec<&str> {
        let total: f64 = self.kinds.values().map(|w| w.wait_ns).sum();
        let mut kinds: Vec<(&str, f64)> = self
            .kinds
            .iter()
            .filter(|(_, w)| total > 0.0 && w.wait_ns / total >= WAITER_SHARE_MIN)
            .map(|(name, w)| (name.as_str(), w.wait_ns))
            .collect();
        kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
        kinds.truncate(WAITERS_MAX);
        kinds.into_iter().map(|(name, _)| name).collect()
    }

    /// Adds `other`'s resources and waits to these.
    pub fn absorb(&mut self, other: &ResourceWaits) {
        self.resources += other.resources;
        self.waits += other.waits;
        self.wait_ns += other.wait_ns;
        for (into, from) in [
            (&mut self.tasks, &other.tasks),
            (&mut self.kinds, &other.kinds),
        ] {
            for (name, w) in from {
                let entry = into.entry(name.clone()).or_default();
                entry.waits += w.waits;
                entry.wait_ns += w.wait_ns;
            }
        }
    }

    /// How a site is matched between builds: its type and file, not its line (code added above
    /// it moves the line, not the resource).
    pub fn site(&self) -> String {
        let file = self
            .location
            .rsplit_once(':')
            .filter(|(_, line)| line.bytes().all(|b| b.is_ascii_digit()))
            .map_or(self.location.as_str(), |(file, _)| file);
        format!("{} {file}", self.concrete_type)
    }
}

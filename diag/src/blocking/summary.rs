//! The blocking profile's figures as plain data: what `blocking.json` holds, shared by the
//! writer (the profiler) and the reader (the snapshot).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of `blocking.json`; raised when a field changes meaning.
pub const BLOCKING_SUMMARY_VERSION: u32 = 1;

/// Blocked time of one kind, or of one stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    /// Ticks that found a thread blocked.
    pub ticks: u64,
    /// Wall time those ticks stand for, nanoseconds.
    pub ns: u64,
}

impl Blocked {
    pub(crate) fn add(&mut self, ns: u64) {
        self.ticks += 1;
        self.ns += ns;
    }

    pub(crate) fn merge(&mut self, other: Blocked) {
        self.ticks += other.ticks;
        self.ns += other.ns;
    }
}

/// What `blocking.json` holds: the per-kind totals and how the profile was taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockingSummary {
    /// [`BLOCKING_SUMMARY_VERSION`].
    pub version: u32,
    /// Ticks per second.
    pub hz: u32,
    /// Wall time sampled, nanoseconds.
    pub duration_ns: u64,
    /// Blocked time per task kind.
    pub kinds: BTreeMap<String, Blocked>,
    /// Blocked time whose stack never arrived.
    pub unknown_stack_ns: u64,
    /// Threads inside polls that found no free slot.
    pub threads_unsampled: u64,
}

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
    /// What the profile itself cost; absent in files written before it was measured.
    #[serde(default)]
    pub cost: Option<SamplerCost>,
}

/// The CPU a profile spent on itself, against the CPU of the whole process over the same time:
/// how much the measurement disturbed what it measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerCost {
    /// CPU time of the sampler thread (waking, reading thread states, sending signals), ns.
    pub sampler_cpu_ns: u64,
    /// CPU time of the stack signal's handlers (unwinding blocked threads), ns.
    pub handler_cpu_ns: u64,
    /// CPU time of the whole process while the profile ran, theirs included, ns.
    pub process_cpu_ns: u64,
}

impl SamplerCost {
    /// The profile's own CPU as a fraction of the process's CPU (0 when the process used none).
    pub fn share(&self) -> f64 {
        if self.process_cpu_ns == 0 {
            return 0.0;
        }
        (self.sampler_cpu_ns + self.handler_cpu_ns) as f64 / self.process_cpu_ns as f64
    }
}

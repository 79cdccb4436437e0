//! The report of a `ddsplit` load run, as `ddsplit local --json` and `ddsplit load --json`
//! print it: one definition shared by the load generator that writes it and the xtask that
//! reads it back, so a field renamed on one side fails to compile on the other instead of
//! reading as zero.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the report's JSON; a reader refuses others. Reports written before the field
/// existed are version 1.
pub const REPORT_VERSION: u32 = 1;

fn version_one() -> u32 {
    1
}

/// The operations of the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadOp {
    Put,
    Get,
    Query,
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// Results of one operation kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpReport {
    pub ops: u64,
    pub errors: u64,
    pub bytes: u64,
    pub latency_us: Latency,
}

/// The result of a load run (`--json` prints it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadReport {
    /// [`REPORT_VERSION`] of the writer.
    #[serde(default = "version_one")]
    pub version: u32,
    /// Operations completed (successful or not).
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Reads that returned bytes different from what was written: must be 0.
    pub wrong_data: u64,
    pub elapsed_s: f64,
    pub ops_per_s: f64,
    /// Record bytes written and read per second.
    pub bytes_per_s: f64,
    pub latency_us: Latency,
    pub per_op: BTreeMap<LoadOp, OpReport>,
    /// A few distinct error messages.
    pub error_samples: Vec<String>,
    pub seed: u64,
    pub concurrency: usize,
    /// Allocations of this whole process over the measured phase (absent when the process's
    /// global allocator does not count: see `diag::alloc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc: Option<AllocReport>,
}

impl LoadReport {
    /// Reads a report printed by `--json`, refusing another version of the format.
    pub fn from_json(text: &str) -> Result<LoadReport, ReportError> {
        let report: LoadReport = serde_json::from_str(text).map_err(ReportError::Malformed)?;
        if report.version != REPORT_VERSION {
            return Err(ReportError::Version(report.version));
        }
        Ok(report)
    }

    /// A table for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{:<7} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}\n",
            "op", "ops", "errors", "MiB", "p50 µs", "p99 µs", "p99.9 µs", "max µs"
        ));
        let row = |name: &str, ops: u64, errors: u64, bytes: u64, l: &Latency| {
            format!(
                "{name:<7} {ops:>9} {errors:>7} {:>10.1} {:>9} {:>9} {:>9} {:>9}\n",
                bytes as f64 / (1 << 20) as f64,
                l.p50,
                l.p99,
                l.p999,
                l.max
            )
        };
        for (op, r) in &self.per_op {
            out.push_str(&row(
                &format!("{op:?}").to_lowercase(),
                r.ops,
                r.errors,
                r.bytes,
                &r.latency_us,
            ));
        }
        let bytes: u64 = self.per_op.values().map(|r| r.bytes).sum();
        out.push_str(&row("all", self.ops, self.errors, bytes, &self.latency_us));
        out.push_str(&format!(
            "{:.0} ops/s, {:.1} MiB/s over {:.1} s, {} workers, seed {}; wrong data: {}\n",
            self.ops_per_s,
            self.bytes_per_s / (1 << 20) as f64,
            self.elapsed_s,
            self.concurrency,
            self.seed,
            self.wrong_data
        ));
        if let Some(alloc) = &self.alloc {
            out.push_str(&alloc.line());
        }
        for sample in &self.error_samples {
            out.push_str(&format!("error: {sample}\n"));
        }
        out
    }
}

/// The allocations of a load run (the process's, over the measured phase) in the load report.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct AllocReport {
    /// Successful allocations (`alloc`, `alloc_zeroed`).
    pub allocations: u64,
    /// Deallocations.
    pub deallocations: u64,
    /// Reallocations (counted apart from allocations).
    pub reallocations: u64,
    /// Bytes allocated, plus the growth of reallocations.
    pub bytes_allocated: u64,
    /// The highest live heap bytes of the process during the phase.
    pub peak_live_bytes: u64,
    /// `allocations / ops`.
    pub allocations_per_op: f64,
    /// `bytes_allocated / ops`.
    pub bytes_allocated_per_op: f64,
}

impl AllocReport {
    /// One line of the load table.
    pub fn line(&self) -> String {
        format!(
            "allocations: {:.1}/op, {:.1} KiB/op ({} allocations, {} reallocations, {:.1} MiB); peak live heap {:.1} MiB\n",
            self.allocations_per_op,
            self.bytes_allocated_per_op / 1024.0,
            self.allocations,
            self.reallocations,
            self.bytes_allocated as f64 / (1 << 20) as f64,
            self.peak_live_bytes as f64 / (1 << 20) as f64,
        )
    }
}

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Not a load report's JSON (cut short, or another document).
    #[error("not a load report: {0}")]
    Malformed(serde_json::Error),
    /// Written by a version of the format this reader does not know.
    #[error("load report version {0}, this reader knows version {REPORT_VERSION}")]
    Version(u32),
}

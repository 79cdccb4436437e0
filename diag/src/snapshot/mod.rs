//! The snapshot: everything one profile of one build measured, as one versioned JSON document
//! (`snapshot.json`) in a directory beside the raw outputs it was read from (flamegraphs, heap
//! profile, sizes and moves reports).
//!
//! Every figure is kept with the number of operations it was measured over, so two snapshots
//! of runs of different lengths compare per operation. Probes that did not run are `None`, and
//! [`Snapshot::passes`] says why.

mod blocking;
mod callers;
mod console;
mod cpu;
mod heap;
mod syscall_sites;
mod syscalls;
mod tasks;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use blocking::{BLOCKING_FUNCTIONS_MAX, BlockingFigures, BlockingFunction};
pub use callers::{LIBRARY_CALLERS_MAX, LibraryCaller, library_callers};
#[cfg(feature = "console-recording")]
pub use console::ConsoleFold;
pub use console::{
    CONSOLE_LINTS_MAX, CONSOLE_RESOURCES_MAX, ConsoleFigures, ConsoleLint, LARGE_FUTURE_BYTES,
    LONG_POLL_NS, Lint, ResourceWaits, SELF_WAKE_SHARE_MIN, SELF_WAKE_WAKES_MIN, TaskWaits,
};
pub(crate) use cpu::is_allocator_routine;
pub(crate) use cpu::is_own_code;
pub use cpu::{
    CpuCategory, CpuFigures, CpuPart, FunctionSamples, SyscallCaller, classify_stack, parse_frame,
};
pub use heap::{HeapFigures, HeapSite};
pub use syscall_sites::{SYSCALL_SITES_MAX, SampledStacks, SyscallSite};
pub use syscalls::{
    COUNTER_STRACE, COUNTER_SYSCOUNT, IO_SYSCALLS, StraceSummaryError, SyscallFigures,
    TCP_WRITES_NAGLE, TCP_WRITES_NODELAY,
};
pub use tasks::{TaskRunFigures, TasksJsonError};

use crate::moves::MovesReport;

/// Version of the snapshot JSON; a reader refuses other versions with an error saying so.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 2;

/// The snapshot document's file name inside a snapshot directory.
pub const SNAPSHOT_FILE: &str = "snapshot.json";

/// Most copy sites kept per snapshot (largest first): enough to explain, small enough to commit.
pub const MOVE_SITES_MAX: usize = 400;

/// Most functions kept per snapshot in the copy totals by function.
pub const MOVE_FUNCTIONS_MAX: usize = 200;

/// Errors reading a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file could not be read or written.
    #[error("{context}: {error}")]
    Io {
        /// What was being done.
        context: String,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The JSON does not parse as a snapshot.
    #[error("{path} is not a snapshot: {error}")]
    Json {
        /// The file.
        path: String,
        /// What the parser said.
        error: serde_json::Error,
    },
    /// Written by another version of the format.
    #[error(
        "{path} has snapshot format {found}, this tool reads format {SNAPSHOT_FORMAT_VERSION}: profile the build again"
    )]
    Version {
        /// The file.
        path: String,
        /// The version found.
        found: u32,
    },
}

/// One profile of one build under one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SNAPSHOT_FORMAT_VERSION`].
    pub format_version: u32,
    /// What was built.
    pub build: BuildIdentity,
    /// What it was run with.
    pub workload: Workload,
    /// Throughput and latency of each wall-time run, in the order they ran.
    pub wall: Vec<WallRun>,
    /// Allocation counters of the metrics pass.
    pub alloc: Option<AllocFigures>,
    /// Task and runtime metrics of the metrics pass.
    pub tasks: Option<TaskRunFigures>,
    /// The CPU profile.
    pub cpu: Option<CpuFigures>,
    /// Blocking inside polls (wall time off the CPU), by task kind and function.
    #[serde(default)]
    pub blocking: Option<BlockingFigures>,
    /// System call counts.
    #[serde(default)]
    pub syscalls: Option<SyscallFigures>,
    /// The console pass: resources waited on and the console's lints, from a recording of the
    /// tokio-console stream (a build with `--cfg tokio_unstable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleFigures>,
    /// The heap profile.
    pub heap: Option<HeapFigures>,
    /// Copies traced by the memcpy tracer.
    pub moves: Option<MoveFigures>,
    /// Type and future sizes (the report itself is a file in the directory).
    pub sizes: Option<SizeFigures>,
    /// Instruction counts of fixed work under callgrind.
    pub instructions: Option<InstructionFigures>,
    /// Each pass: ran, skipped or failed, and why.
    pub passes: Vec<PassOutcome>,
}

impl Snapshot {
    /// An empty snapshot of `build` under `workload`: passes add their figures.
    pub fn new(build: BuildIdentity, workload: Workload) -> Snapshot {
        Snapshot {
            format_version: SNAPSHOT_FORMAT_VERSION,
            build,
            workload,
            wall: Vec::new(),
            alloc: None,
            tasks: None,
            cpu: None,
            blocking: None,
            syscalls: None,
            console: None,
            heap: None,
            moves: None,
            sizes: None,
            instructions: None,
            passes: Vec::new(),
        }
    }

    /// Reads `dir/snapshot.json`.
    pub fn read_dir(dir: &Path) -> Result<Snapshot, SnapshotError> {
        let path = dir.join(SNAPSHOT_FILE);
        let text = std::fs::read_to_string(&path).map_err(|error| SnapshotError::Io {
            context: format!("cannot read {}", path.display()),
            error,
        })?;
        Snapshot::from_json(&text, &path.display().to_string())
    }

    /// Parses a snapshot document; `path` names it in errors.
    pub fn from_json(text: &str, path: &str) -> Result<Snapshot, SnapshotError> {
        #[derive(Deserialize)]
        struct Head {
            format_version: u32,
        }
        let head: Head = serde_json::from_str(text).map_err(|error| SnapshotError::Json {
            path: path.to_string(),
            error,
        })?;
        if head.format_version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::Version {
                path: path.to_string(),
                found: head.format_version,
            });
        }
        serde_json::from_str(text).map_err(|error| SnapshotError::Json {
            path: path.to_string(),
            error,
        })
    }

    /// Writes `dir/snapshot.json` (pretty, so a committed baseline diffs readably).
    pub fn write_dir(&self, dir: &Path) -> Result<(), SnapshotError> {
        let path = dir.join(SNAPSHOT_FILE);
        let text = serde_json::to_string_pretty(self).expect("a snapshot always serializes");
        std::fs::write(&path, text + "\n").map_err(|error| SnapshotError::Io {
            context: format!("cannot write {}", path.display()),
            error,
        })
    }

    /// The outcome of pass `name`, if it was recorded.
    pub fn pass(&self, name: &str) -> Option<&PassOutcome> {
        self.passes.iter().find(|p| p.name == name)
    }
}

/// Which build a snapshot is of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildIdentity {
    /// How the user named it (`features:story`, a revision, a directory).
    pub label: String,
    /// The git revision the tree was at.
    pub revision: Option<String>,
    /// True when the tree had uncommitted changes.
    pub dirty: bool,
    /// Cargo features of the profiled package.
    pub features: Vec<String>,
    /// `rustc --version`.
    pub rustc: String,
    /// Cargo profile of the binary.
    pub profile: String,
    /// The machine's description (cores, CPU model): wall times compare only on one machine.
    pub machine: String,
    /// The hash of the sources the binary was built from, read from the binary itself
    /// (`ddsplit build-info`); absent in snapshots of builds from before build identities.
    #[serde(default)]
    pub source_hash: Option<String>,
}

/// The workload every pass runs (scaled down for the slow passes, see `ops` of each figure).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// Operations of a wall-time run.
    pub ops: u64,
    /// Seed of the load generator.
    pub seed: u64,
    /// Concurrent client connections.
    pub concurrency: u64,
    /// Arguments given to the program besides ops, seed and concurrency.
    pub args: Vec<String>,
}

/// One wall-time run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WallRun {
    /// Operations completed.
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Reads that returned wrong bytes (must be 0).
    pub wrong_data: u64,
    /// Seconds the load ran.
    pub elapsed_s: f64,
    /// Operations per second.
    pub ops_per_s: f64,
    /// Latency percentiles of all operations, microseconds.
    pub latency_us: Latency,
    /// Run in the replication batch: fresh pairs run after a change of the wall time that no
    /// probe explained, to see whether it repeats (see `compare::wall`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replication: bool,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

/// Allocation counters over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AllocFigures {
    /// Operations of the run.
    pub ops: u64,
    /// Calls to `alloc` (and `alloc_zeroed`).
    pub allocations: u64,
    /// Calls to `dealloc`.
    pub deallocations: u64,
    /// Calls to `realloc`.
    pub reallocations: u64,
    /// Bytes requested by allocations and reallocations.
    pub bytes_allocated: u64,
    /// Most bytes live at once.
    pub peak_live_bytes: u64,
}

impl AllocFigures {
    /// Allocations (and reallocations) per operation.
    pub fn allocations_per_op(&self) -> f64 {
        per_op(self.allocations + self.reallocations, self.ops)
    }

    /// Bytes allocated per operation.
    pub fn bytes_per_op(&self) -> f64 {
        per_op(self.bytes_allocated, self.ops)
    }
}

/// Copies seen by the memcpy tracer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MoveFigures {
    /// Operations of the run.
    pub ops: u64,
    /// Copies of at least this many bytes have their site recorded.
    pub threshold_bytes: u64,
    /// `memcpy`/`memmove` calls of every size.
    pub copies: u64,
    /// Copies at or above the threshold.
    pub large_copies: u64,
    /// Bytes of those copies.
    pub large_bytes: u64,
    /// The sites with the most bytes (at most [`MOVE_SITES_MAX`]), most first.
    pub sites: Vec<MoveSite>,
    /// Large copies by the program's function that asked for them, over every site (at most
    /// [`MOVE_FUNCTIONS_MAX`]), most bytes first: complete where `sites` is cut.
    #[serde(default)]
    pub functions: Vec<MoveFunction>,
    /// The program's functions that call the library functions among the sites, from the CPU
    /// profile of the same build (see [`Snapshot::attach_library_callers`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub library_callers: Vec<LibraryCaller>,
    /// Operations of the CPU profile those callers' samples are of.
    #[serde(default)]
    pub library_callers_ops: u64,
}

/// All the large copies one function asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveFunction {
    /// The function (std frames skipped).
    pub function: String,
    /// Copies.
    pub count: u64,
    /// Bytes in total.
    pub bytes: u64,
}

impl MoveFigures {
    /// The figures of a moves report of a run of `ops` operations.
    pub fn from_report(report: &MovesReport, ops: u64) -> MoveFigures {
        let sites = merged_sites(report.sites.iter().map(|s| {
            let frame = s.user_frame();
            MoveSite {
                function: frame.map_or_else(|| "?".to_string(), |f| f.function.clone()),
                location: frame.map_or_else(|| "?".to_string(), |f| f.location()),
                compiled_in: s
                    .outermost()
                    .map_or_else(|| "?".to_string(), |f| f.function.clone()),
                size: s.size,
                count: s.count,
                bytes: s.bytes,
                types: s.types.clone(),
            }
        }));
        let mut by_function: BTreeMap<String, MoveFunction> = BTreeMap::new();
        for s in &report.sites {
            let function = s
                .user_frame()
                .map_or_else(|| "?".to_string(), |f| f.function.clone());
            let entry = by_function
                .entry(function.clone())
                .or_insert_with(|| MoveFunction {
                    function,
                    ..MoveFunction::default()
                });
            entry.count += s.count;
            entry.bytes += s.bytes;
        }
        let mut functions: Vec<MoveFunction> = by_function.into_values().collect();
        functions.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then_with(|| a.function.cmp(&b.function))
        });
        functions.truncate(MOVE_FUNCTIONS_MAX);
        MoveFigures {
            ops,
            functions,
            library_callers: Vec::new(),
            library_callers_ops: 0,
            threshold_bytes: report.trace.threshold_bytes,
            copies: report.trace.histogram.iter().map(|(_, n)| n).sum(),
            large_copies: report.large_copies(),
            large_bytes: report.large_bytes(),
            sites,
        }
    }

    /// Bytes of large copies per operation.
    pub fn large_bytes_per_op(&self) -> f64 {
        per_op(self.large_bytes, self.ops)
    }
}

/// The sites with the most bytes, at most [`MOVE_SITES_MAX`], most first. Sites that differ
/// only below the program's frame (two calls of one `memcpy` wrapper inlined in one function)
/// are one site, their copies added up.
fn merged_sites(sites: impl Iterator<Item = MoveSite>) -> Vec<MoveSite> {
    let mut merged: Vec<MoveSite> = Vec::new();
    for site in sites {
        let same = |m: &&mut MoveSite| {
            m.function == site.function
                && m.location == site.location
                && m.compiled_in == site.compiled_in
                && m.size == site.size
                && m.types == site.types
        };
        match merged.iter_mut().find(same) {
            Some(m) => {
                m.count += site.count;
                m.bytes += site.bytes;
            }
            None => merged.push(site),
        }
    }
    merged.sort_by_key(|m| std::cmp::Reverse(m.bytes));
    merged.truncate(MOVE_SITES_MAX);
    merged
}

/// Large copies of one size from one call site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveSite {
    /// The program's own function that asked for the copy (std frames skipped).
    pub function: String,
    /// Its file and line.
    pub location: String,
    /// The function the copy was compiled into (after inlining).
    pub compiled_in: String,
    /// Bytes per copy (0: various sizes).
    pub size: u64,
    /// Copies.
    pub count: u64,
    /// Bytes in total.
    pub bytes: u64,
    /// Types of exactly `size` bytes, most specific first.
    pub types: Vec<String>,
}

/// Where the sizes report is, and what it was filtered to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeFigures {
    /// The report's file, relative to the snapshot directory.
    pub file: String,
    /// Only types mentioning this path prefix were kept (empty: all).
    pub prefix: String,
    /// Types in the report.
    pub types: u64,
}

/// Instructions executed by fixed pieces of work, counted by callgrind: the same for the same
/// binary and input whatever the machine is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstructionFigures {
    /// Instructions per case (`split 4+2 64KiB`...).
    pub cases: BTreeMap<String, u64>,
    /// The CPU features the work saw under callgrind (`avx2`, `ssse3`, `sse4.2`): the codec picks
    /// its SIMD path from them at run time, so counts compare only between equal sets.
    #[serde(default)]
    pub cpu_features: Vec<String>,
}

/// What happened to one pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassOutcome {
    /// `wall`, `metrics`, `cpu`, `heap`, `moves`, `sizes`, `instructions`.
    pub name: String,
    /// Whether it ran.
    pub status: PassStatus,
    /// Why it was skipped or failed; empty when it ran.
    pub detail: String,
    /// How long it took.
    pub seconds: f64,
}

/// Whether a pass ran: `ok`, `skipped` or `failed` in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PassStatus {
    /// It ran and its figures are in the snapshot.
    Ok,
    /// It was not run (not asked for, or the binary cannot do it).
    Skipped,
    /// It ran and failed: no figures.
    Failed,
}

impl PassStatus {
    /// The status as the JSON writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            PassStatus::Ok => "ok",
            PassStatus::Skipped => "skipped",
            PassStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for PassStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The file of a `file:line` location (the location itself when it has no line): sites are
/// matched by file, so that a moved line is the same site.
pub(crate) fn file_of(location: &str) -> &str {
    location.rsplit_once(':').map_or(location, |(file, _)| file)
}

/// `total / ops`, 0 when there were no operations.
pub fn per_op(total: u64, ops: u64) -> f64 {
    if ops == 0 {
        0.0
    } else {
        total as f64 / ops as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sites_alike_above_the_program_frame_are_one_site() {
        let site = |function: &str, count: u64| MoveSite {
            function: function.into(),
            location: "app/src/server.rs:235".into(),
            compiled_in: "app::server::run".into(),
            size: 16_880,
            count,
            bytes: count * 16_880,
            types: vec!["app::Fut".into()],
        };
        let sites = [
            site("app::run", 2),
            site("app::other", 5),
            site("app::run", 4),
        ];
        let merged = merged_sites(sites.into_iter());
        assert_eq!(merged.len(), 2, "{merged:?}");
        assert_eq!(
            (merged[0].function.as_str(), merged[0].count),
            ("app::run", 6)
        );
        assert_eq!(merged[0].bytes, 6 * 16_880);
        assert_eq!(merged[1].function, "app::other");
    }

    #[test]
    fn a_snapshot_round_trips_and_other_versions_are_refused() {
        let mut snapshot = Snapshot::new(
            BuildIdentity {
                label: "features:".into(),
                ..BuildIdentity::default()
            },
            Workload {
                ops: 100,
                ..Workload::default()
            },
        );
        snapshot.alloc = Some(AllocFigures {
            ops: 100,
            allocations: 250,
            reallocations: 50,
            bytes_allocated: 1000,
            ..AllocFigures::default()
        });
        snapshot.passes.push(PassOutcome {
            name: "heap".into(),
            status: PassStatus::Skipped,
            detail: "not asked for".into(),
            seconds: 0.0,
        });
        let text = serde_json::to_string(&snapshot).unwrap();
        assert!(text.contains("\"status\":\"skipped\""), "{text}");
        let back = Snapshot::from_json(&text, "x").unwrap();
        assert_eq!(back, snapshot);
        assert_eq!(back.alloc.unwrap().allocations_per_op(), 3.0);
        assert_eq!(back.alloc.unwrap().bytes_per_op(), 10.0);

        let other = text.replace(
            &format!("\"format_version\":{SNAPSHOT_FORMAT_VERSION}"),
            "\"format_version\":99",
        );
        let err = Snapshot::from_json(&other, "old.json").unwrap_err();
        assert!(err.to_string().contains("format 99"), "{err}");
    }
}

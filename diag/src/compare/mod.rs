//! Explaining the difference between two snapshots: a ranked list of findings, each with what
//! changed, the evidence from both sides, its estimated share of the slowdown, and the fix to
//! try.
//!
//! The engine reads only snapshots (and the sizes reports beside them), so it is tested on
//! fixture snapshots and runs the same on saved ones. Costs come from the CPU profiles: the
//! extra CPU per operation in `memcpy` is shared among the copy findings by the bytes each
//! adds, the extra CPU in the allocator among the allocation findings by the allocations each
//! adds. Findings whose cost cannot be estimated rank after those whose cost can.

mod allocator;
mod blocking;
mod claims;
mod context;
mod copies;
mod disk_waits;
mod fan_out;
mod format;
mod heap;
mod hot_spots;
mod html;
mod instructions;
mod latency;
mod nagle;
mod names;
mod overview;
mod polls;
mod renames;
mod render;
mod resources;
mod runtime;
mod spawns;
mod stack_frames;
mod syscalls;
mod task_changes;
mod totals;
mod types;
mod waiting;
mod wall;

use serde::{Deserialize, Serialize};

pub use blocking::{BlockedCall, Wait};
pub use html::{Picture, render_html};
pub use names::short_name;
pub use render::render_markdown;
pub use wall::{
    PairedChange, Replication, Spread, WALL_SE_FLOOR, WALL_SIGMAS, WallComparison, WallVerdict,
    median,
};

use claims::Found;
use context::Context;
pub(crate) use format::{
    fmt_bytes, fmt_count, fmt_us, function_identity, ratio, site_size, size_or_absent,
};

use crate::sizes::SizesReport;
use crate::snapshot::{BuildIdentity, CpuCategory, CpuFigures, PassStatus, Snapshot};

/// Default throughput drop that is a regression (when beyond the noise): 3%.
pub const DEFAULT_THROUGHPUT_DROP: f64 = 0.03;
/// Default growth of allocations per operation that is a regression: 2%.
pub const DEFAULT_ALLOC_GROWTH: f64 = 0.02;
/// Allocations per operation below this change are never a finding: scheduling alone moves the
/// count of a concurrent run by a fraction of an allocation.
pub const ALLOC_CHANGE_PER_OP_MIN: f64 = 0.5;
/// Default growth of bytes copied per operation that is a regression: 5%.
pub const DEFAULT_COPY_GROWTH: f64 = 0.05;
/// Copies below this change per operation are never a finding: 1 KiB, the tracer's default
/// threshold, one large value.
pub const COPY_CHANGE_BYTES_PER_OP_MIN: f64 = 1024.0;
/// Default growth of one type that is a regression: 1 KiB.
pub const DEFAULT_TYPE_GROWTH_BYTES: u64 = 1024;
/// Default growth of instructions of a fixed piece of work that is a regression: 1%.
pub const DEFAULT_INSTRUCTIONS_GROWTH: f64 = 0.01;
/// Default growth of a task kind's poll time per operation worth reporting: 25%.
pub const DEFAULT_POLL_GROWTH: f64 = 0.25;
/// Default growth of bytes allocated per operation (whole process) that is a regression: 5%.
/// Wider than the count's 2%: the bytes of a concurrent run follow which records were in flight
/// together (two runs of the gate's workload: within 0.5%), the count barely moves.
pub const DEFAULT_ALLOC_BYTES_GROWTH: f64 = 0.05;
/// Bytes allocated per operation below this change are never a finding.
pub const ALLOC_BYTES_CHANGE_PER_OP_MIN: f64 = 1024.0;
/// Default growth of one allocation site's count per operation that is a finding: 20%. A
/// site's count moves more than the whole process's (which path served a request), so a site
/// needs a larger change than the total's 2% to be named.
pub const DEFAULT_SITE_ALLOC_GROWTH: f64 = 0.20;
/// Default stack frame that is a regression: 256 KiB; a few of them nested fill a 2 MiB
/// thread stack.
pub const DEFAULT_STACK_FRAME_FAIL_BYTES: u64 = 256 * 1024;
/// Default growth of the p99 latency that is a regression, when beyond the noise: +50%. A tail
/// that doubles while throughput stays flat (a lock held across an await, a queue) is a
/// regression the throughput never shows; the p99 of one run scatters more than its throughput,
/// so the threshold is wider.
pub const DEFAULT_P99_GROWTH: f64 = 0.5;
/// Default growth of one function's blocked time inside polls, per operation, that is a
/// regression: 5 µs. A runtime thread off the CPU inside a poll stalls every task queued behind
/// it; 5 µs per operation is a 1 ms `fsync` on one request in 200, or about 1.5% of a worker at
/// this machine's 3,000 operations per second per worker.
pub const DEFAULT_BLOCKED_NS_PER_OP: f64 = 5_000.0;
/// Default relative growth of one function's blocked time that is a regression: +50%. Lock
/// contention and page-cache misses already block a little and move with the machine's load;
/// a new blocking call multiplies it.
pub const DEFAULT_BLOCKED_GROWTH: f64 = 0.5;
/// Default growth of an I/O system call's count per operation that is a regression: +25% (and
/// at least one call per operation). Counts of a seeded run repeat closely, but how many bytes
/// a socket read finds waiting follows the timing, so reads and writes of sockets move by a few
/// percent between runs of one build.
pub const DEFAULT_SYSCALL_GROWTH: f64 = 0.25;
/// Default size at which a future with no counterpart in the baseline is a regression: 8 KiB.
/// New code brings new futures; only a large one is a change worth failing on by itself.
pub const DEFAULT_NEW_FUTURE_FAIL_BYTES: u64 = 8 * 1024;

/// What counts as a regression. Defaults are the `DEFAULT_*` constants.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Throughput drop (fraction) that fails, when it is beyond the noise.
    pub throughput_drop: f64,
    /// Growth of allocations per operation (fraction).
    pub alloc_growth: f64,
    /// Growth of bytes copied per operation (fraction).
    pub copy_growth: f64,
    /// Growth of one type or future, bytes.
    pub type_growth_bytes: u64,
    /// Growth of instructions of a fixed piece of work (fraction).
    pub instructions_growth: f64,
    /// Growth of a task kind's poll time per operation worth reporting (fraction).
    pub poll_growth: f64,
    /// Growth of bytes allocated per operation, whole process (fraction).
    #[serde(default = "default_alloc_bytes_growth")]
    pub alloc_bytes_growth: f64,
    /// Growth of one allocation site's count per operation that names it (fraction).
    #[serde(default = "default_site_alloc_growth")]
    pub site_alloc_growth: f64,
    /// A stack frame this large (bytes) fails.
    #[serde(default = "default_stack_frame_fail_bytes")]
    pub stack_frame_fail_bytes: u64,
    /// A new future this large (bytes) fails.
    #[serde(default = "default_new_future_fail_bytes")]
    pub new_future_fail_bytes: u64,
    /// Growth of the p99 latency (fraction) that fails, beyond the noise.
    #[serde(default = "default_p99_growth")]
    pub p99_growth: f64,
    /// Growth of one function's blocked time inside polls per operation (ns) that fails.
    #[serde(default = "default_blocked_ns_per_op")]
    pub blocked_ns_per_op: f64,
    /// Relative growth of one function's blocked time that fails (fraction).
    #[serde(default = "default_blocked_growth")]
    pub blocked_growth: f64,
    /// Growth of an I/O system call's count per operation that fails (fraction).
    #[serde(default = "default_syscall_growth")]
    pub syscall_growth: f64,
}

fn default_syscall_growth() -> f64 {
    DEFAULT_SYSCALL_GROWTH
}

fn default_blocked_ns_per_op() -> f64 {
    DEFAULT_BLOCKED_NS_PER_OP
}

fn default_blocked_growth() -> f64 {
    DEFAULT_BLOCKED_GROWTH
}

fn default_p99_growth() -> f64 {
    DEFAULT_P99_GROWTH
}

fn default_alloc_bytes_growth() -> f64 {
    DEFAULT_ALLOC_BYTES_GROWTH
}
fn default_site_alloc_growth() -> f64 {
    DEFAULT_SITE_ALLOC_GROWTH
}
fn default_stack_frame_fail_bytes() -> u64 {
    DEFAULT_STACK_FRAME_FAIL_BYTES
}
fn default_new_future_fail_bytes() -> u64 {
    DEFAULT_NEW_FUTURE_FAIL_BYTES
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            throughput_drop: DEFAULT_THROUGHPUT_DROP,
            alloc_growth: DEFAULT_ALLOC_GROWTH,
            copy_growth: DEFAULT_COPY_GROWTH,
            type_growth_bytes: DEFAULT_TYPE_GROWTH_BYTES,
            instructions_growth: DEFAULT_INSTRUCTIONS_GROWTH,
            poll_growth: DEFAULT_POLL_GROWTH,
            alloc_bytes_growth: DEFAULT_ALLOC_BYTES_GROWTH,
            site_alloc_growth: DEFAULT_SITE_ALLOC_GROWTH,
            stack_frame_fail_bytes: DEFAULT_STACK_FRAME_FAIL_BYTES,
            new_future_fail_bytes: DEFAULT_NEW_FUTURE_FAIL_BYTES,
            p99_growth: DEFAULT_P99_GROWTH,
            blocked_ns_per_op: DEFAULT_BLOCKED_NS_PER_OP,
            blocked_growth: DEFAULT_BLOCKED_GROWTH,
            syscall_growth: DEFAULT_SYSCALL_GROWTH,
        }
    }
}

/// One side of a comparison: its snapshot and, when it has one, its sizes report.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The snapshot.
    pub snapshot: &'a Snapshot,
    /// The sizes report of its binary.
    pub sizes: Option<&'a SizesReport>,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A type grew (or appeared) and is copied.
    TypeGrew,
    /// Futures are boxed per call.
    BoxedFuture,
    /// Allocations appeared or grew at a site.
    Allocations,
    /// Bytes copied at a site grew, not explained by a type that grew.
    Copies,
    /// Instructions of a fixed piece of work grew.
    Instructions,
    /// Functions' stack frames grew.
    StackFrames,
    /// A function's CPU per operation grew.
    HotSpot,
    /// A task kind waits longer between polls, unexplained by CPU or blocking.
    Waiting,
    /// The tail latency grew beyond the noise.
    Latency,
    /// A function blocks a runtime thread inside polls for longer.
    Blocking,
    /// An I/O system call is made more often per operation.
    Syscalls,
    /// A site spawns more tasks per operation (its allocations go through a spawn).
    TaskPerCall,
    /// The sides ran different global allocators.
    AllocatorChanged,
    /// A task kind is polled much more per operation, and the executor's CPU grew.
    Polls,
    /// The sides' runtimes ran different numbers of worker threads.
    RuntimeChanged,
    /// A task kind runs more tasks per operation: an operation asks for more of its work.
    FanOut,
    /// Tasks wait longer on a `tokio::sync` resource or a timer (the console pass).
    ResourceWait,
    /// A tokio-console lint the baseline did not have (the console pass).
    ConsoleLint,
    /// More writes go to TCP sockets with Nagle's algorithm on.
    Nagle,
}

impl FindingKind {
    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            FindingKind::TypeGrew => "type size",
            FindingKind::BoxedFuture => "boxed futures",
            FindingKind::Allocations => "allocations",
            FindingKind::Copies => "copies",
            FindingKind::Instructions => "instructions",
            FindingKind::StackFrames => "stack frames",
            FindingKind::HotSpot => "CPU hot spot",
            FindingKind::Waiting => "waiting",
            FindingKind::Latency => "tail latency",
            FindingKind::Blocking => "blocking",
            FindingKind::Syscalls => "system calls",
            FindingKind::TaskPerCall => "tasks spawned",
            FindingKind::AllocatorChanged => "allocator",
            FindingKind::Polls => "polls",
            FindingKind::RuntimeChanged => "runtime",
            FindingKind::FanOut => "fan-out",
            FindingKind::ResourceWait => "resource wait",
            FindingKind::ConsoleLint => "console lint",
            FindingKind::Nagle => "Nagle's algorithm",
        }
    }
}

/// One line of evidence: a figure on both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// What is measured.
    pub what: String,
    /// The baseline's figure, formatted.
    pub baseline: String,
    /// The candidate's figure, formatted.
    pub candidate: String,
}

impl Evidence {
    /// A line of evidence.
    pub fn new(
        what: impl Into<String>,
        baseline: impl Into<String>,
        candidate: impl Into<String>,
    ) -> Evidence {
        Evidence {
            what: what.into(),
            baseline: baseline.into(),
            candidate: candidate.into(),
        }
    }
}

/// A cause of the difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What it is about.
    pub kind: FindingKind,
    /// One line: what changed.
    pub title: String,
    /// Figures from both sides.
    pub evidence: Vec<Evidence>,
    /// Where: functions with file and line.
    pub sites: Vec<String>,
    /// The functions of `sites`, as the profiles name them.
    pub functions: Vec<String>,
    /// Estimated CPU per operation it costs the candidate, nanoseconds.
    pub cost_ns_per_op: Option<f64>,
    /// Its share of the candidate's extra runtime-thread time per operation (CPU, and time
    /// blocked inside polls), 0..1.
    pub share: Option<f64>,
    /// What to try.
    pub fix: String,
    /// True when it crossed a threshold.
    pub regression: bool,
    /// True when it is the effect of another finding (a lock that waits longer because a new
    /// cause slows its holders): shown, ranked after the causes, never a regression.
    #[serde(default)]
    pub symptom: bool,
    /// For a blocking finding: what the call waits on and whether it blocked in the baseline
    /// too (what the symptom rule reads); `None` for the other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_call: Option<BlockedCall>,
    /// The count per operation the finding is about (calls, allocations, bytes copied, tasks
    /// spawned, polls), both sides: what is checked against a cause that multiplies the work
    /// (more tasks of a kind per operation) to call it a symptom. `None` for the other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts_per_op: Option<(f64, f64)>,
}

/// CPU per operation of both sides, by category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuComparison {
    /// Per category: (category, baseline ns/op, candidate ns/op).
    pub categories: Vec<(CpuCategory, f64, f64)>,
    /// All samples: baseline and candidate ns/op.
    pub total: (f64, f64),
}

impl CpuComparison {
    fn of(baseline: &CpuFigures, candidate: &CpuFigures) -> CpuComparison {
        CpuComparison {
            categories: CpuCategory::ALL
                .iter()
                .map(|&c| (c, baseline.ns_per_op(Some(c)), candidate.ns_per_op(Some(c))))
                .collect(),
            total: (baseline.ns_per_op(None), candidate.ns_per_op(None)),
        }
    }

    /// Extra CPU per operation of the candidate in `category` (negative: less).
    pub fn delta(&self, category: CpuCategory) -> f64 {
        self.categories
            .iter()
            .find(|(c, _, _)| *c == category)
            .map_or(0.0, |(_, b, c)| c - b)
    }

    /// Extra CPU per operation of the candidate in all.
    pub fn total_delta(&self) -> f64 {
        self.total.1 - self.total.0
    }

    /// Executor share of each side's CPU.
    pub fn executor_share(&self) -> (f64, f64) {
        let (b, c) = self
            .categories
            .iter()
            .find(|(cat, _, _)| *cat == CpuCategory::Executor)
            .map_or((0.0, 0.0), |(_, b, c)| (*b, *c));
        (ratio(b, self.total.0), ratio(c, self.total.1))
    }
}

/// A per-operation figure on both sides, for the overview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// What it is.
    pub what: String,
    /// Baseline value.
    pub baseline: f64,
    /// Candidate value.
    pub candidate: f64,
    /// Unit for display (`ops/s`, `µs`, `B`...).
    pub unit: String,
}

/// How one task kind's polls changed (an observation: where the time shows up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskChange {
    /// The task kind.
    pub kind: String,
    /// Polls per operation, both sides.
    pub polls_per_op: (f64, f64),
    /// Tasks (instrumented futures) of the kind per operation, both sides.
    #[serde(default)]
    pub tasks_per_op: (f64, f64),
    /// Poll time per operation, nanoseconds, both sides.
    pub poll_ns_per_op: (f64, f64),
    /// Scheduled (waiting in a run queue) time per operation, nanoseconds, both sides.
    pub scheduled_ns_per_op: (f64, f64),
    /// Slow polls per operation, both sides.
    pub slow_polls_per_op: (f64, f64),
    /// Idle time (from the end of a poll that returned `Pending` to the wake) per operation,
    /// nanoseconds, both sides: waiting on I/O, timers, locks, other tasks.
    #[serde(default)]
    pub idle_ns_per_op: (f64, f64),
    /// Of the poll time, the part spent blocked off the CPU (from the blocking profile), per
    /// operation, nanoseconds, both sides; `None` without a blocking profile on both sides.
    #[serde(default)]
    pub blocked_ns_per_op: Option<(f64, f64)>,
    /// True when poll time per operation grew past the reporting threshold.
    pub notable: bool,
}

impl TaskChange {
    /// Poll time split into (on the CPU, blocked) per operation, both sides; without a
    /// blocking profile, all of it counts as on the CPU and the blocked part is `None`.
    pub fn poll_split(&self) -> ((f64, f64), Option<(f64, f64)>) {
        let (pb, pc) = self.poll_ns_per_op;
        match self.blocked_ns_per_op {
            // Two passes measure the two figures: the blocked part cannot exceed the poll.
            Some((bb, bc)) => {
                let (bb, bc) = (bb.min(pb), bc.min(pc));
                ((pb - bb, pc - bc), Some((bb, bc)))
            }
            None => ((pb, pc), None),
        }
    }
}

/// The explained difference between two snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The baseline's identity.
    pub baseline: BuildIdentity,
    /// The candidate's identity.
    pub candidate: BuildIdentity,
    /// The thresholds used.
    pub thresholds: Thresholds,
    /// Throughput and latency, with their noise.
    pub wall: Option<WallComparison>,
    /// CPU per operation by category.
    pub cpu: Option<CpuComparison>,
    /// Per-operation figures of every probe.
    pub figures: Vec<Figure>,
    /// Causes, most costly first.
    pub findings: Vec<Finding>,
    /// Task kinds, with how their polls changed.
    pub tasks: Vec<TaskChange>,
    /// True when a threshold was crossed.
    pub regression: bool,
    /// What could not be compared, and why.
    pub notes: Vec<String>,
    /// Passes that did not produce figures on a side (`heap (candidate: failed)`): what the
    /// verdict could not look at.
    #[serde(default)]
    pub missing_passes: Vec<String>,
    /// Why the result cannot be trusted as a pass or a fail (set by the gate: a pass the
    /// baseline has but this run could not produce, a toolchain that differs...). Not empty
    /// means "could not compare" (exit 2).
    #[serde(default)]
    pub blockers: Vec<String>,
    /// What the tasks waited on per operation, both sides, when both ran the console pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceChange>,
    /// What the probes that measured their own cost took from the process they measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probe_costs: Vec<ProbeCost>,
}

/// A probe's own CPU as a fraction of the CPU of the process it measured, on each side
/// (`None` where that side's probe did not measure it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeCost {
    /// The pass and what in it cost (`blocking pass: the sampler and its stack signals`).
    pub probe: String,
    /// Fractions of the process's CPU, both sides.
    pub share: (Option<f64>, Option<f64>),
}

impl Comparison {
    /// True when the wall time changed and no probe names a cause: no finding but the ways
    /// the change shows (tasks waiting longer, polled more, a longer tail). Such a change is
    /// measured again in fresh pairs before it is believed (see [`Replication`]).
    pub fn wall_change_unexplained(&self) -> bool {
        let changed = self
            .wall
            .as_ref()
            .is_some_and(|w| w.verdict != WallVerdict::NoChange && w.replication.is_none());
        // A hot spot or an allocator change names a cause by its cost without crossing a
        // threshold of its own.
        let named = self.findings.iter().any(|f| {
            (f.regression || f.cost_ns_per_op.is_some_and(|c| c > 0.0))
                && !f.symptom
                && !matches!(
                    f.kind,
                    FindingKind::Waiting | FindingKind::Polls | FindingKind::Latency
                )
        });
        changed && !named
    }
}

/// The waits on one resource site (type and place of creation), per operation, both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    /// Its type as tokio names it (`Mutex`, `Sleep`).
    pub concrete_type: String,
    /// Where it was created (the candidate's line, or the baseline's when the candidate has
    /// none).
    pub location: String,
    /// Completed waits per operation, both sides.
    pub waits_per_op: (f64, f64),
    /// Time waited per operation, nanoseconds, both sides.
    pub wait_ns_per_op: (f64, f64),
}

/// Compares `candidate` against `baseline`.
pub fn compare(baseline: &Side<'_>, candidate: &Side<'_>, thresholds: &Thresholds) -> Comparison {
    let (b, c) = (baseline.snapshot, candidate.snapshot);
    let mut notes = workload_notes(b, c);
    let wall = WallComparison::of(&b.wall, &c.wall, thresholds.throughput_drop);
    if wall.is_none() {
        notes.push("no wall-time runs on one side: throughput not compared".into());
    }
    let cpu = cpu_comparison(b, c, &mut notes);
    let cx = Context {
        baseline,
        candidate,
        thresholds,
        cpu: cpu.as_ref(),
        wall: wall.as_ref(),
    };
    let tasks = task_changes::every_kind(&cx);
    let findings = run_stages(&cx, &tasks, &mut notes);
    let figures = overview::figures(&cx, wall.as_ref());
    let missing_passes = missing_passes(b, c, &mut notes);
    let probe_costs = overview::probe_costs(b, c);
    notes.extend(overview::costly_probes(&probe_costs));
    let wall_regression = wall
        .as_ref()
        .is_some_and(|w| w.verdict == WallVerdict::Slower);
    Comparison {
        baseline: b.build.clone(),
        candidate: c.build.clone(),
        thresholds: *thresholds,
        regression: wall_regression || findings.iter().any(|f| f.regression),
        wall,
        cpu,
        figures,
        findings,
        tasks,
        notes,
        missing_passes,
        blockers: Vec::new(),
        resources: resources::changes(b, c),
        probe_costs,
    }
}

/// The stages, in order: each may claim what a later one would otherwise report again (see
/// [`Claims`](claims::Claims): a stage that reads a claim runs after the stages that make it).
/// Then the symptoms among the findings, their shares, and their ranking.
fn run_stages(cx: &Context<'_>, tasks: &[TaskChange], notes: &mut Vec<String>) -> Vec<Finding> {
    let mut found = Found::default();
    found.add(types::findings(cx, notes));
    found.add(heap::findings(cx, &found.claims, notes));
    found.add(copies::findings(cx, &found.claims));
    found.add(instructions::findings(cx).into());
    found.add(stack_frames::findings(cx).into());
    found.add(blocking::findings(cx).into());
    found.add(syscalls::findings(cx, notes).into());
    found.add(nagle::finding(cx, notes).into());
    found.add(allocator::findings(cx));
    found.add(runtime::finding(cx).into());
    found.add(hot_spots::findings(cx, &found.claims));
    found.add(totals::findings(cx, &found.claims));
    found.add(latency::finding(cx).into());
    found.add(polls::findings(cx, tasks).into());
    found.add(fan_out::findings(cx, tasks).into());
    found.add(resources::findings(cx).into());
    // Waiting is a finding only when the threads' time leaves the slowdown unexplained.
    let worker_delta = worker_time_delta(cx);
    let causes_so_far = waiting::explained_by(&found.findings);
    found.add(waiting::finding(cx, tasks, worker_delta, causes_so_far).into());
    let mut findings = found.findings;
    disk_waits::mark_symptoms(&mut findings);
    blocking::mark_symptoms(cx, &mut findings);
    waiting::mark_symptoms(&mut findings);
    waiting::mark_polls_symptoms(&mut findings);
    polls::mark_symptoms(&mut findings);
    runtime::mark_symptoms(&mut findings);
    nagle::mark_symptoms(&mut findings);
    resources::mark_symptoms(&mut findings);
    fan_out::mark_symptoms(&mut findings);
    let slower = cx.wall.is_some_and(|w| w.verdict == WallVerdict::Slower);
    assign_shares(&mut findings, slowdown(cx, worker_delta), slower);
    rank(&mut findings);
    findings
}

/// Makes every finding of `kind` a symptom of the finding titled `cause`, `why` saying how the
/// cause brings it about: shown after the causes, never a regression.
fn mark_symptoms_of(findings: &mut [Finding], kind: FindingKind, cause: &str, why: &str) {
    for f in findings.iter_mut().filter(|f| f.kind == kind) {
        make_symptom(f, cause, why);
    }
}

/// Makes `f` a symptom of the finding titled `cause`, `why` saying how the cause brings it about.
fn make_symptom(f: &mut Finding, cause: &str, why: &str) {
    f.fix = format!("likely a symptom of: {cause}; {why}. Fix that first, then compare again");
    f.regression = false;
    f.symptom = true;
}

/// A note when the sides ran different workloads.
fn workload_notes(b: &Snapshot, c: &Snapshot) -> Vec<String> {
    if b.workload == c.workload {
        return Vec::new();
    }
    vec![format!(
        "the two sides ran different workloads ({:?} vs {:?}): figures are per operation, but \
         compare with care",
        b.workload, c.workload
    )]
}

/// CPU per operation by category, when both sides have a CPU profile.
fn cpu_comparison(b: &Snapshot, c: &Snapshot, notes: &mut Vec<String>) -> Option<CpuComparison> {
    match (&b.cpu, &c.cpu) {
        (Some(bc), Some(cc)) => Some(CpuComparison::of(bc, cc)),
        _ => {
            notes.push(
                "no CPU profile on one side: costs are not estimated, findings rank by size".into(),
            );
            None
        }
    }
}

/// The passes that did not produce figures on a side, each with a note saying why.
fn missing_passes(b: &Snapshot, c: &Snapshot, notes: &mut Vec<String>) -> Vec<String> {
    let mut missing = Vec::new();
    for (side, snapshot) in [("baseline", b), ("candidate", c)] {
        for pass in snapshot
            .passes
            .iter()
            .filter(|p| p.status != PassStatus::Ok)
        {
            notes.push(format!(
                "{side} pass `{}` {}: {}",
                pass.name, pass.status, pass.detail
            ));
            missing.push(format!("{} ({side}: {})", pass.name, pass.status));
        }
    }
    missing
}

/// The candidate's extra runtime-thread time per operation: CPU, plus the time threads spent
/// blocked inside polls. Both hold a thread that other tasks wait for, so CPU costs and
/// blocking costs are shares of one total. `None` without a CPU profile on both sides.
fn worker_time_delta(cx: &Context<'_>) -> Option<f64> {
    let cpu = cx.cpu?.total_delta();
    Some(cpu + blocking::total_delta(cx).unwrap_or(0.0).max(0.0))
}

/// The slowdown the shares are of: the candidate's extra runtime-thread time per operation
/// ([`worker_time_delta`]), or the wall-time change as runtime-thread time when the wall time
/// got slower and that is larger (time spent waiting shows in the wall time only).
fn slowdown(cx: &Context<'_>, worker_delta: Option<f64>) -> Option<f64> {
    match (worker_delta, cx.wall) {
        (Some(d), Some(w)) if w.verdict == WallVerdict::Slower => {
            Some(d.max(waiting::wall_equivalent(cx, w).unwrap_or(0.0)))
        }
        (d, _) => d,
    }
}

/// Each finding's share of the slowdown (`total`, see [`slowdown`]).
/// A wait the operations see while the throughput holds (`slower` false) is latency, not a part
/// of the threads' time: it gets no share.
fn assign_shares(findings: &mut [Finding], total: Option<f64>, slower: bool) {
    let Some(total) = total else { return };
    for f in findings {
        f.share = match f.cost_ns_per_op {
            _ if f.kind == FindingKind::Waiting && !slower => None,
            Some(cost) if total > 0.0 => Some((cost / total).clamp(0.0, 1.0)),
            _ => None,
        };
    }
}

/// Causes before symptoms; most costly first; findings without a measurable cost after,
/// regressions first, those that say where before those that do not, then by kind. A cost too
/// small to see is no cost: a total that grew with no CPU of its own (bytes copied, no time in
/// `memcpy`) must not outrank a wait of milliseconds whose cost is not CPU.
fn rank(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        let cost = |f: &Finding| {
            f.cost_ns_per_op
                .filter(|&n| n >= render::COST_VISIBLE_NS)
                .unwrap_or(f64::NEG_INFINITY)
        };
        a.symptom
            .cmp(&b.symptom)
            .then_with(|| cost(b).total_cmp(&cost(a)))
            .then_with(|| b.regression.cmp(&a.regression))
            .then_with(|| a.sites.is_empty().cmp(&b.sites.is_empty()))
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.title.cmp(&b.title))
    });
}

#[cfg(test)]
mod tests;

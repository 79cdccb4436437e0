//! The passes of a profile, each a run of the same seeded DDSplit workload (a local cluster in
//! one process) under one probe: heavy probes never share a run, so each pass measures the
//! program, not the other probes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ddsplit_report::{LoadReport, ReportError};
use diag::blocking::{BLOCKING_SUMMARY_VERSION, BlockingSummary};
use diag::cpu::{CPU_SUMMARY_VERSION, CpuSummary};
use diag::moves::{MovesReport, TraceRun};
use diag::recording::{ConsoleRecording, RECORDING_FILE};
use diag::sizes::SizesReport;
use diag::snapshot::{
    AllocFigures, BlockingFigures, ConsoleFigures, CpuFigures, HeapFigures, InstructionFigures,
    Latency, MoveFigures, PassOutcome, PassStatus, SampledStacks, SizeFigures, SyscallFigures,
    TaskRunFigures, WallRun, Workload,
};
use diag::waits::{WAITS_FILE, WAITS_VERSION, WaitsSummary};

use crate::side::Built;
use crate::util::{run_logged, tail};

/// Longest a single run may take before it is killed: a hung cluster must not hang CI.
pub const RUN_TIME_MAX: Duration = Duration::from_secs(600);

/// Default operations of a wall-time run: about a second and a half here. Short runs in many
/// pairs average the machine's slow minutes out across pairs, where a long run takes them in
/// whole: the same binary against itself, interleaved, scattered 0.142 in log ratio per pair
/// with 20,000-operation runs and 0.079 with 5,000 (0.113 with 2,000, where start-up weighs).
pub const DEFAULT_OPS: u64 = 5_000;

/// Default seed of the workload.
pub const DEFAULT_SEED: u64 = 7;

/// Default concurrent connections: enough to keep both cores of a small machine busy.
pub const DEFAULT_CONCURRENCY: u64 = 16;

/// How many operations each probe pass runs, against a wall run's: the CPU and blocking
/// samplers need many operations for their counts to rise above sampling noise; the heap
/// profiler and the copy tracer slow every call they see, and count exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassScale {
    /// The CPU pass runs this many times a wall run's operations (in two parts).
    pub cpu_factor: u64,
    /// The blocking pass runs this many times a wall run's operations.
    pub blocking_factor: u64,
    /// The system call pass runs this fraction of them (it counts exactly, at a few
    /// nanoseconds a call).
    pub syscalls_divisor: u64,
    /// The heap pass runs this fraction: dhat records a stack per allocation.
    pub heap_divisor: u64,
    /// The copy pass runs this fraction: the tracer stops at every large copy.
    pub moves_divisor: u64,
}

impl PassScale {
    /// `ops` times `factor`.
    fn times(ops: u64, factor: u64) -> u64 {
        ops.saturating_mul(factor).max(1)
    }

    /// `ops` divided by `divisor`, at least one.
    fn fraction(ops: u64, divisor: u64) -> u64 {
        (ops / divisor.max(1)).max(1)
    }
}

/// The scale of `compare` and `profile`, for wall runs of [`DEFAULT_OPS`]: 40,000 operations
/// under the CPU profiler (about 1,500 samples), 20,000 under the blocking sampler.
pub const COMPARE_SCALE: PassScale = PassScale {
    cpu_factor: 8,
    blocking_factor: 4,
    syscalls_divisor: 1,
    heap_divisor: 1,
    moves_divisor: 1,
};

/// Operations per second of the console pass. The console layer's aggregator is one thread;
/// past what it folds, events are dropped and the recording is a sample (measured on 2 cores:
/// 100 operations a second lose nothing, 200 lose about 180,000 events a minute).
pub const CONSOLE_PASS_RATE: u64 = 100;

/// Operations of the console pass: 15 s at [`CONSOLE_PASS_RATE`].
pub const CONSOLE_PASS_OPS: u64 = 1_500;

/// Arguments (flag and value pairs) every pass gives `ddsplit local` besides ops, seed and
/// concurrency, unless the user's arguments give the flag: no fsync, so
/// the disk's timing does not drown the CPU's (the comparison is of the program, not of the
/// disk).
pub const WORKLOAD_ARGS: [&str; 2] = ["--fsync", "never"];

/// Sampling rate of the CPU pass: the profiler's default. Faster rates lose samples (the kernel
/// delivers fewer `SIGPROF`s than asked for), which would understate CPU per operation.
pub const CPU_PASS_HZ: u32 = 99;

/// The project's own types and functions, for the sizes report kept in a snapshot.
pub const PROJECT_PREFIX: &str = "ddsplit";

/// The workload of every pass: [`WORKLOAD_ARGS`], less any flag the user's `extra` arguments
/// give themselves (theirs wins: `ddsplit local` refuses a flag given twice), then `extra`.
pub fn workload(ops: u64, seed: u64, concurrency: u64, extra: &[String]) -> Workload {
    let given = |flag: &str| {
        extra
            .iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    let defaults = WORKLOAD_ARGS
        .chunks(2)
        .filter(|pair| !given(pair[0]))
        .flatten();
    Workload {
        ops,
        seed,
        concurrency,
        args: defaults
            .map(|s| s.to_string())
            .chain(extra.iter().cloned())
            .collect(),
    }
}

/// The last load report on `stdout` (`ddsplit local --json` prints one line); a report of a
/// version this xtask does not read is an error, not a missing report.
fn last_report(stdout: &str) -> anyhow::Result<Option<LoadReport>> {
    for line in stdout.lines().rev().filter(|l| l.starts_with('{')) {
        match LoadReport::from_json(line) {
            Ok(report) => return Ok(Some(report)),
            Err(e @ ReportError::Version(_)) => return Err(e.into()),
            Err(ReportError::Malformed(_)) => continue,
        }
    }
    Ok(None)
}

/// The figures of one run of the workload.
#[derive(Debug)]
pub struct RunFigures {
    /// Throughput and latency.
    pub wall: WallRun,
    /// Allocation counters, when the binary reports them.
    pub alloc: Option<AllocFigures>,
    /// Task and runtime metrics, when the binary writes them.
    pub tasks: Option<TaskRunFigures>,
}

/// The task figures a run wrote to `path`: none when the binary writes none, an error when the
/// file is there but cannot be read.
fn read_tasks(path: &Path, ops: u64) -> anyhow::Result<Option<TaskRunFigures>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let figures = TaskRunFigures::from_json(&text, ops)
        .with_context(|| format!("{} is not a task snapshot", path.display()))?;
    Ok(Some(figures))
}

/// A probe's JSON summary (`what` names it), refused when its version (read by `version_of`)
/// is not the one this xtask reads: a file from another version is an error, never misread.
fn read_versioned<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
    version: u32,
    version_of: impl Fn(&T) -> u32,
) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("the pass wrote no readable {}", path.display()))?;
    let value: T = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a {what}", path.display()))?;
    let found = version_of(&value);
    if found != version {
        bail!(
            "{} is version {found} of the {what}; this xtask reads version {version}",
            path.display()
        );
    }
    Ok(value)
}

/// The CPU pass's `cpu.json`: its sampling rate turns samples into time, so a missing or
/// unreadable one fails the pass (it once read as 99 Hz).
fn read_cpu_summary(path: &Path) -> anyhow::Result<CpuSummary> {
    read_versioned(
        path,
        "CPU summary",
        CPU_SUMMARY_VERSION,
        |s: &CpuSummary| s.version,
    )
}

/// The command line of one run: `ddsplit local` with the workload, `ops` operations, writing
/// probe results into `out` when the binary can.
fn local_args(built: &Built, w: &Workload, ops: u64, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "local".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--json".into(),
        "--ops".into(),
        ops.to_string(),
        "--seed".into(),
        w.seed.to_string(),
        "--concurrency".into(),
        w.concurrency.to_string(),
    ];
    if built.caps.no_admin {
        args.push("--no-admin".into());
    }
    if built.caps.diag_out {
        args.push("--diag-out".into());
        args.push(out.display().to_string());
    }
    let mut workload_args = w.args.iter();
    while let Some(a) = workload_args.next() {
        if a == "--fsync" && !built.caps.fsync {
            // An older build without the flag: leave it and its value out.
            workload_args.next();
            continue;
        }
        args.push(a.clone());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Runs `command` (the side's binary, another build of it, or a tracer in front of it) with
/// the workload's arguments, once in `dir`.
fn run_local(
    mut command: Command,
    built: &Built,
    w: &Workload,
    ops: u64,
    dir: &Path,
    extra: &[&str],
) -> anyhow::Result<RunFigures> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let args = local_args(built, w, ops, dir, extra);
    let program = format!("{command:?}");
    let (stdout, stderr) = (dir.join("stdout.json"), dir.join("stderr.log"));
    let status = run_logged(
        command.args(&args).current_dir(dir),
        &stdout,
        &stderr,
        RUN_TIME_MAX,
    )?;
    let text = std::fs::read_to_string(&stdout).unwrap_or_default();
    let Some(report) = last_report(&text)? else {
        bail!(
            "`{} {}` exited with {status} without a JSON report; its last lines:\n{}",
            program,
            args.join(" "),
            tail(&stderr, 15)
        );
    };
    if report.wrong_data > 0 {
        bail!(
            "{} reads returned wrong data: the build is broken, not slow",
            report.wrong_data
        );
    }
    if report.errors * 100 > report.ops.max(1) {
        bail!(
            "{} of {} operations failed (e.g. {:?}): the comparison would be of errors",
            report.errors,
            report.ops,
            report.error_samples.first()
        );
    }
    let alloc = report.alloc.as_ref().map(|a| AllocFigures {
        ops: report.ops,
        allocations: a.allocations,
        deallocations: a.deallocations,
        reallocations: a.reallocations,
        bytes_allocated: a.bytes_allocated,
        peak_live_bytes: a.peak_live_bytes,
    });
    let tasks = read_tasks(&dir.join("tasks.json"), report.ops)?;
    Ok(RunFigures {
        wall: WallRun {
            ops: report.ops,
            errors: report.errors,
            wrong_data: report.wrong_data,
            elapsed_s: report.elapsed_s,
            ops_per_s: report.ops_per_s,
            latency_us: Latency {
                p50: report.latency_us.p50,
                p99: report.latency_us.p99,
                p999: report.latency_us.p999,
                max: report.latency_us.max,
            },
            replication: false,
        },
        alloc,
        tasks,
    })
}

/// One wall-time run (also the metrics run: allocation counters and task metrics come with it).
pub fn wall(built: &Built, w: &Workload, dir: &Path) -> anyhow::Result<RunFigures> {
    run_local(Command::new(&built.binary), built, w, w.ops, dir, &[])
}

/// The CPU pass runs in this many parts, each a run of its share of the operations. With two
/// sides they run A B B A, so a machine that slows down for a minute slows both sides, and a
/// change of the program shows in both pairs of parts (a comment-only change once measured 274
/// against 327 µs of CPU per operation with the two sides' passes 40 s apart).
pub const CPU_PARTS: usize = 2;

/// One part of the CPU pass, as it ran.
#[derive(Debug)]
pub struct CpuPartRun {
    /// Its folded stacks.
    folded: String,
    /// Its folded stacks rooted at task kinds, when the build writes them.
    tasks_folded: Option<String>,
    /// Operations it ran.
    ops: u64,
    /// Its sampling rate.
    hz: u32,
}

impl CpuPartRun {
    /// Operations the part ran.
    pub fn ops(&self) -> u64 {
        self.ops
    }
}

/// One part of the CPU pass: its share of the operations sampled by the profiler, in `dir`.
pub fn cpu_part(
    built: &Built,
    w: &Workload,
    scale: PassScale,
    dir: &Path,
) -> anyhow::Result<CpuPartRun> {
    if !built.caps.cpu_profile || !built.caps.diag_out {
        return Err(Skipped("this build has no --cpu-profile").into());
    }
    let hz = CPU_PASS_HZ.to_string();
    let ops = PassScale::fraction(PassScale::times(w.ops, scale.cpu_factor), CPU_PARTS as u64);
    let run = run_local(
        Command::new(&built.binary),
        built,
        w,
        ops,
        dir,
        &["--cpu-profile", "--cpu-profile-hz", &hz],
    )?;
    let folded_path = dir.join("cpu.folded");
    let folded = std::fs::read_to_string(&folded_path)
        .with_context(|| format!("the CPU pass wrote no {}", folded_path.display()))?;
    Ok(CpuPartRun {
        folded,
        tasks_folded: std::fs::read_to_string(dir.join("cpu-tasks.folded")).ok(),
        ops: run.wall.ops,
        hz: read_cpu_summary(&dir.join("cpu.json"))?.hz,
    })
}

/// The CPU figures of a pass's parts: their stacks added up (written to `dir` as `cpu.folded`,
/// `cpu-tasks.folded` and `flamegraph.svg`), with each part's samples kept.
pub fn cpu_figures(parts: &[CpuPartRun], dir: &Path) -> anyhow::Result<CpuFigures> {
    let Some(first) = parts.first() else {
        bail!("the CPU pass ran no part");
    };
    if let Some(other) = parts.iter().find(|p| p.hz != first.hz) {
        bail!(
            "the CPU pass's parts sampled at {} and {} Hz: their samples do not add up",
            first.hz,
            other.hz
        );
    }
    let folded = merge_folded(parts.iter().map(|p| p.folded.as_str()));
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text)
            .with_context(|| format!("cannot write {}", dir.join(name).display()))
    };
    write("cpu.folded", &folded)?;
    let ops = parts.iter().map(|p| p.ops).sum();
    let mut figures = CpuFigures::from_folded(&folded, ops, first.hz);
    let each: Vec<(&str, u64)> = parts.iter().map(|p| (p.folded.as_str(), p.ops)).collect();
    figures.attach_parts(&each);
    for f in &mut figures.functions {
        if let Some(l) = &mut f.location {
            *l = in_workspace(l);
        }
    }
    figures.folded_file = relative(dir, "cpu.folded");
    let tasks: Vec<&str> = parts
        .iter()
        .filter_map(|p| p.tasks_folded.as_deref())
        .collect();
    if tasks.len() == parts.len() {
        write("cpu-tasks.folded", &merge_folded(tasks.into_iter()))?;
        figures.tasks_folded_file = Some(relative(dir, "cpu-tasks.folded"));
    }
    write("flamegraph.svg", &crate::flame::flamegraph(&folded, "CPU")?)?;
    figures.flamegraph_file = Some(relative(dir, "flamegraph.svg"));
    Ok(figures)
}

/// Folded stacks of several runs as one: each stack once, with the sum of its counts.
fn merge_folded<'a>(runs: impl Iterator<Item = &'a str>) -> String {
    let mut counts: std::collections::BTreeMap<&str, u64> = Default::default();
    for line in runs.flat_map(str::lines) {
        if let Some((stack, count)) = line.rsplit_once(' ')
            && let Ok(count) = count.trim().parse::<u64>()
        {
            *counts.entry(stack).or_default() += count;
        }
    }
    counts
        .into_iter()
        .map(|(stack, count)| format!("{stack} {count}\n"))
        .collect()
}

/// The blocking pass: the workload with the blocking sampler, every task kind instrumented
/// (the connection tasks too: a connection loop can block as well as a handler).
pub fn blocking(
    built: &Built,
    w: &Workload,
    scale: PassScale,
    dir: &Path,
) -> anyhow::Result<BlockingFigures> {
    if !built.caps.blocking_profile || !built.caps.diag_out {
        return Err(Skipped("this build has no --blocking-profile").into());
    }
    let mut command = Command::new(&built.binary);
    command.env("DDSPLIT_TASK_PROBES", "all");
    let ops = PassScale::times(w.ops, scale.blocking_factor);
    let run = run_local(command, built, w, ops, dir, &["--blocking-profile"])?;
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path)
            .with_context(|| format!("the blocking pass wrote no {}", path.display()))
    };
    let summary: BlockingSummary = read_versioned(
        &dir.join("blocking.json"),
        "blocking summary",
        BLOCKING_SUMMARY_VERSION,
        |s: &BlockingSummary| s.version,
    )?;
    let mut figures = BlockingFigures::new(&read("blocking.folded")?, &summary, run.wall.ops);
    for f in &mut figures.functions {
        if let Some(l) = &mut f.location {
            *l = in_workspace(l);
        }
    }
    figures.folded_file = relative(dir, "blocking.folded");
    figures.flamegraph_file = dir
        .join("blocking.svg")
        .is_file()
        .then(|| relative(dir, "blocking.svg"));
    Ok(figures)
}

/// The console pass: [`CONSOLE_PASS_OPS`] operations of the workload at [`CONSOLE_PASS_RATE`]
/// a second (unless the workload sets its own rate), run by the side's tokio-console build
/// (`console_binary`) while it records its own console stream and times every wait on a tokio
/// resource: the waits and the recording's lints are its figures.
pub fn console(
    built: &Built,
    console_binary: &Path,
    w: &Workload,
    dir: &Path,
) -> anyhow::Result<ConsoleFigures> {
    if !built.caps.console_record || !built.caps.diag_out {
        return Err(Skipped("this build has no --console-record").into());
    }
    let rate = CONSOLE_PASS_RATE.to_string();
    let mut extra = vec!["--console-record"];
    if !w
        .args
        .iter()
        .any(|a| a == "--rate" || a.starts_with("--rate="))
    {
        extra.extend(["--rate", &rate]);
    }
    let mut command = Command::new(console_binary);
    // A port of its own: two passes, or a console the user runs, must not meet.
    command.env("TOKIO_CONSOLE_BIND", free_loopback_addr()?);
    let run = run_local(command, built, w, CONSOLE_PASS_OPS, dir, &extra)?;
    let path = dir.join(RECORDING_FILE);
    let recording = ConsoleRecording::read(&path)?;
    let mut figures = ConsoleFigures::from_recording(&recording, run.wall.ops);
    figures.resources = read_waits(&dir.join(WAITS_FILE))?.resources;
    figures
        .resources
        .truncate(diag::snapshot::CONSOLE_RESOURCES_MAX);
    for r in &mut figures.resources {
        r.location = in_workspace(&r.location);
    }
    for l in &mut figures.lints {
        l.location = in_workspace(&l.location);
    }
    figures.file = relative(dir, RECORDING_FILE);
    Ok(figures)
}

/// The waits a console build measured (`resources.json`), of the version this xtask reads.
pub fn read_waits(path: &Path) -> anyhow::Result<WaitsSummary> {
    read_versioned(path, "waits summary", WAITS_VERSION, |w: &WaitsSummary| {
        w.version
    })
}

/// A loopback address with a port no one listens on now.
fn free_loopback_addr() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
    Ok(listener.local_addr()?.to_string())
}

/// The system call pass: the workload (the scale's fraction of it) with `diag-syscount`
/// preloaded, counting the C library's I/O calls per system call (an eventfd's apart: one
/// thread waking another), and which program functions make them (its sampled stacks). It writes its counts at exit; none is an error (a binary that does
/// not load preloaded libraries, a process killed before its exit).
pub fn syscalls(
    built: &Built,
    w: &Workload,
    scale: PassScale,
    counter: &Path,
    dir: &Path,
) -> anyhow::Result<SyscallFigures> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ops = PassScale::fraction(w.ops, scale.syscalls_divisor);
    let out = std::path::absolute(dir.join(SYSCOUNT_FILE))
        .with_context(|| format!("no absolute path for {}", dir.display()))?;
    // A count left by an earlier pass in this directory must not pass for this one's.
    if out.exists() {
        std::fs::remove_file(&out).with_context(|| format!("cannot remove {}", out.display()))?;
    }
    let mut command = Command::new(&built.binary);
    command
        .env("LD_PRELOAD", counter)
        .env("DIAG_SYSCALLS_OUT", &out)
        .env("DIAG_SYSCALLS_SIGNAL", "0");
    let run = run_local(command, built, w, ops, dir, &[])?;
    let text = std::fs::read_to_string(&out).with_context(|| {
        format!(
            "the system call counter wrote no {} (was {} loaded into {}?)",
            out.display(),
            counter.display(),
            built.binary.display()
        )
    })?;
    let mut figures = SyscallFigures::from_syscount(&text, run.wall.ops)
        .with_context(|| format!("reading {}", out.display()))?;
    let stacks =
        SampledStacks::parse(&text).with_context(|| format!("reading {}", out.display()))?;
    figures
        .attribute_sites(&stacks, &built.binary, str::to_string)
        .with_context(|| format!("symbolizing the sampled stacks of {}", out.display()))?;
    let counts = dir.join("syscalls.txt");
    std::fs::write(&counts, counts_table(&figures))
        .with_context(|| format!("cannot write {}", counts.display()))?;
    figures.file = relative(dir, "syscalls.txt");
    Ok(figures)
}

/// The counts the system call counter writes at the side's exit.
const SYSCOUNT_FILE: &str = "syscount.txt";

/// The counts of a system call pass as a table, most calls first, then the functions making
/// them.
fn counts_table(figures: &SyscallFigures) -> String {
    let mut rows: Vec<(&String, &u64)> = figures.calls.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let mut out = format!(
        "# system calls of {} operations, counted by {}\n{:>10} {:>10}  call\n",
        figures.ops, figures.counter, "calls", "errors"
    );
    for (name, calls) in rows {
        let errors = figures.errors.get(name).copied().unwrap_or(0);
        out.push_str(&format!("{calls:>10} {errors:>10}  {name}\n"));
    }
    out.push_str(&format!(
        "\n# where they come from (sampled stacks)\n{:>10} {:>8}  call  function  (location)\n",
        "calls", "samples"
    ));
    for site in &figures.sites {
        out.push_str(&format!(
            "{:>10.0} {:>8}  {}  {}  ({})\n",
            site.calls,
            site.samples,
            site.call,
            site.function,
            site.location.as_deref().unwrap_or("?")
        ));
    }
    out
}

/// The heap pass: the workload (the scale's fraction of it) with dhat as the global allocator.
pub fn heap(
    built: &Built,
    w: &Workload,
    scale: PassScale,
    dir: &Path,
) -> anyhow::Result<HeapFigures> {
    let Some(dhat) = &built.dhat_binary else {
        return Err(Skipped("this tree has no dhat-heap feature").into());
    };
    let ops = PassScale::fraction(w.ops, scale.heap_divisor);
    let run = run_local(Command::new(dhat), built, w, ops, dir, &[])?;
    let path = [dir.join("dhat-heap.json")]
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| format!("the heap pass wrote no dhat-heap.json in {}", dir.display()))?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut figures = HeapFigures::from_dhat_json_in(&text, run.wall.ops, &[PROJECT_PREFIX])?;
    for site in &mut figures.sites {
        if let Some(l) = &mut site.location {
            *l = in_workspace(l);
        }
    }
    figures.file = relative(dir, "dhat-heap.json");
    Ok(figures)
}

/// The copy pass: the workload (the scale's fraction of it) under the memcpy tracer.
pub fn moves(
    built: &Built,
    w: &Workload,
    scale: PassScale,
    preload: &Path,
    sizes: Option<&SizesReport>,
    dir: &Path,
) -> anyhow::Result<MoveFigures> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ops = PassScale::fraction(w.ops, scale.moves_divisor);
    let args = local_args(built, w, ops, dir, &[]);
    let traced = TraceRun::new(preload, built.binary.display().to_string())
        .args(args)
        .out_dir(dir)
        .capture_stdout(true)
        .run()?;
    let stdout = String::from_utf8_lossy(&traced.stdout);
    let ops_done = last_report(&stdout)?.map(|r| r.ops).with_context(|| {
        format!(
            "the traced run exited with {} without a JSON report",
            traced.status
        )
    })?;
    let report = MovesReport::build(&traced.trace, &built.binary, sizes)?;
    std::fs::write(dir.join("moves.json"), report.to_json())
        .with_context(|| format!("cannot write {}", dir.join("moves.json").display()))?;
    std::fs::write(dir.join("moves.txt"), report.render(40))
        .with_context(|| format!("cannot write {}", dir.join("moves.txt").display()))?;
    let mut figures = MoveFigures::from_report(&report, ops_done);
    for site in &mut figures.sites {
        site.location = in_workspace(&site.location);
    }
    Ok(figures)
}

/// The sizes pass: types, enums and futures of the binary, kept for the project's types.
pub fn sizes(built: &Built, dir: &Path) -> anyhow::Result<(SizeFigures, SizesReport)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let report = SizesReport::from_binary(&built.binary)?.filtered(PROJECT_PREFIX);
    std::fs::write(dir.join("sizes.json"), report.to_json())
        .with_context(|| format!("cannot write {}", dir.join("sizes.json").display()))?;
    Ok((
        SizeFigures {
            file: "sizes.json".into(),
            prefix: PROJECT_PREFIX.into(),
            types: report.types.len() as u64,
        },
        report,
    ))
}

/// Instructions of fixed codec work, counted by callgrind: `codec_work` runs one case per
/// invocation (`codec-work CASE`), and `cases` names them.
pub fn instructions(
    codec_work: &Path,
    cases: &[&str],
    dir: &Path,
) -> anyhow::Result<InstructionFigures> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut figures = InstructionFigures {
        cpu_features: cpu_features_under_valgrind(codec_work, dir)?,
        ..InstructionFigures::default()
    };
    for case in cases {
        let log = dir.join(format!("callgrind-{}.log", crate::side::slug(case)));
        let status = run_logged(
            Command::new("valgrind")
                .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
                .arg(codec_work)
                .arg(case),
            &dir.join("callgrind.out"),
            &log,
            RUN_TIME_MAX,
        )
        .context("cannot run valgrind (install it: apt-get install valgrind)")?;
        if !status.success() {
            bail!("callgrind of `{case}` failed:\n{}", tail(&log, 10));
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let collected = text
            .lines()
            .find_map(|l| {
                l.split_once("Collected :")
                    .map(|(_, n)| n.trim().to_string())
            })
            .and_then(|n| n.replace(',', "").parse::<u64>().ok())
            .with_context(|| format!("callgrind printed no instruction count for `{case}`"))?;
        figures.cases.insert(case.to_string(), collected);
    }
    Ok(figures)
}

/// The CPU features `codec-work` sees under valgrind (its `cpu-features` case).
fn cpu_features_under_valgrind(codec_work: &Path, dir: &Path) -> anyhow::Result<Vec<String>> {
    let (stdout, log) = (dir.join("cpu-features.txt"), dir.join("cpu-features.log"));
    let status = run_logged(
        Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(codec_work)
            .arg("cpu-features"),
        &stdout,
        &log,
        RUN_TIME_MAX,
    )
    .context("cannot run valgrind (install it: apt-get install valgrind)")?;
    if !status.success() {
        bail!(
            "callgrind of `codec-work cpu-features` failed ({status}):\n{}",
            tail(&log, 10)
        );
    }
    let text = std::fs::read_to_string(&stdout).unwrap_or_default();
    let features: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    if features.is_empty() {
        bail!("`codec-work cpu-features` printed nothing under callgrind");
    }
    Ok(features)
}

/// Why a pass did not run although nothing failed: the build or tree has no such probe (an
/// older revision, a build without the feature). Recorded as "skipped", not "failed".
#[derive(Debug)]
pub struct Skipped(pub &'static str);

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Skipped {}

/// Runs `pass`, recording its outcome; a failed pass leaves its figures out and says why.
pub fn record<T>(
    passes: &mut Vec<PassOutcome>,
    name: &str,
    pass: impl FnOnce() -> anyhow::Result<T>,
) -> Option<T> {
    let started = Instant::now();
    let result = pass();
    let seconds = started.elapsed().as_secs_f64();
    let (status, detail, value) = match result {
        Ok(v) => (PassStatus::Ok, String::new(), Some(v)),
        Err(e) => {
            let detail = format!("{e:#}");
            let status = if e.chain().any(|cause| cause.is::<Skipped>()) {
                PassStatus::Skipped
            } else {
                PassStatus::Failed
            };
            (status, detail, None)
        }
    };
    passes.retain(|p| p.name != name);
    passes.push(PassOutcome {
        name: name.into(),
        status,
        detail,
        seconds,
    });
    value
}

/// A source location relative to the workspace (`ddsplit/src/store.rs:140`) when it is in it,
/// so reports read the same on every machine and checkout.
fn in_workspace(location: &str) -> String {
    let root = crate::util::workspace_root();
    let root = root.to_string_lossy();
    let worktrees = format!("{root}/{}/", crate::side::WORKTREES_DIR);
    if let Some(rest) = location.strip_prefix(&worktrees) {
        // `<revision>/ddsplit/src/...`: drop the worktree's own directory.
        return rest.split_once('/').map_or(rest, |(_, r)| r).to_string();
    }
    if let Some(rest) = location.strip_prefix(&format!("{root}/")) {
        return rest.to_string();
    }
    // The standard library's sources (`/rustc/<commit>/library/...`) and crates from the
    // registry (`.../registry/src/<index>/tokio-1.54.1/src/...`) by their own path.
    if let Some(rest) = location.strip_prefix("/rustc/") {
        return rest.split_once('/').map_or(rest, |(_, r)| r).to_string();
    }
    if let Some((_, rest)) = location.split_once("/registry/src/") {
        return rest.split_once('/').map_or(rest, |(_, r)| r).to_string();
    }
    location.to_string()
}

/// `dir`'s `file` as a path relative to the snapshot directory (`dir`'s parent).
fn relative(dir: &Path, file: &str) -> String {
    let pass = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    PathBuf::from(pass).join(file).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Vec<String> {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        workload(1, 2, 3, &extra).args
    }

    #[test]
    fn the_parts_of_a_cpu_pass_add_up_stack_by_stack() {
        let merged =
            merge_folded(["main;a 3\nmain;b 1\n", "main;a 2\nmain;c 4\nnot a line\n"].into_iter());
        assert_eq!(merged, "main;a 5\nmain;b 1\nmain;c 4\n");
    }

    #[test]
    fn the_default_fsync_is_never() {
        assert_eq!(
            args(&["--mix", "put:1"]),
            ["--fsync", "never", "--mix", "put:1"]
        );
    }

    #[test]
    fn a_flag_the_user_gives_replaces_the_default() {
        assert_eq!(args(&["--fsync", "always"]), ["--fsync", "always"]);
        assert_eq!(args(&["--fsync=always"]), ["--fsync=always"]);
    }
}

//! `cargo xtask profile`: one build, the seeded workload in several passes (wall time with the
//! always-on metrics, CPU, blocking, heap, copies, and the static sizes report), written as a snapshot
//! directory: `snapshot.json` plus the flamegraph, heap profile and reports.
//!
//! [`SideProfile`] is also what `compare` and `gate` drive, a pass at a time, so the two sides'
//! wall-time runs can be interleaved.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use diag::sizes::SizesReport;
use diag::snapshot::{PassOutcome, PassStatus, Snapshot, Workload};
use indicatif::{ProgressBar, ProgressStyle};

use crate::passes::{
    self, COMPARE_SCALE, CPU_PARTS, CpuPartRun, DEFAULT_CONCURRENCY, DEFAULT_OPS, DEFAULT_SEED,
    PassScale,
};
use crate::side::{self, Built, SideSpec};
use crate::util::{cargo_in, target_dir, workspace_root};

/// Default wall-time runs of a profile.
pub const DEFAULT_RUNS: usize = 3;

const USAGE: &str = "\
cargo xtask profile [--features LIST] [--out DIR] [--ops N] [--seed N] [--concurrency N]
                    [--runs N] [--skip PASSES] [-- EXTRA DDSPLIT LOCAL ARGS]

Builds ddsplit (profile `profiling`: release code, full debug info) with the given features and
runs one seeded workload (`ddsplit local --ops N`) in several passes, heavy probes apart:

  wall     N runs: throughput, latency, allocation counters, task and runtime metrics
  cpu      the workload x 8 under the CPU profiler (99 Hz), in two runs (A B B A across the
           sides of a compare): folded stacks, flamegraph, CPU by category and function
  blocking the workload x 4 with the blocking sampler (1 kHz wall clock, every task kind): which
           functions hold a runtime thread off the CPU inside a poll (fsync, sleep, a
           contended lock), folded stacks and a flamegraph of blocked time
  syscalls the workload with diag-syscount preloaded (an LD_PRELOAD library counting the C
           library's I/O calls): calls per system call per operation (calls on an eventfd, one
           thread waking another, counted apart)
  heap     the workload under dhat (feature dhat-heap): allocation sites
  moves    the workload under the memcpy tracer: copies by site and type
  sizes    types, enums and futures from the binary's DWARF
  console  (compare only, when the others point at waiting, or --console always) 1,500
           operations at 100 a second by the side's tokio-console build (--cfg tokio_unstable),
           recording its console stream: the resources tasks wait on and the console's lints

Writes a snapshot directory (default target/xtask/profiles/<features>): snapshot.json, the
flamegraph, the heap profile, the sizes and moves reports. `cargo xtask compare` reads it back.

  --features LIST   ddsplit features, comma-separated (default: none)
  --out DIR         where to write the snapshot
  --ops N           operations per wall run (default 5000)
  --seed N          workload seed (default 7)
  --concurrency N   client connections (default 16)
  --runs N          wall-time runs (default 3)
  --skip PASSES     passes to leave out, comma-separated (e.g. heap,moves,blocking,syscalls)
";

/// The passes a profile can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassSet {
    pub cpu: bool,
    pub blocking: bool,
    pub syscalls: bool,
    pub heap: bool,
    pub moves: bool,
    pub sizes: bool,
}

impl Default for PassSet {
    fn default() -> PassSet {
        PassSet {
            cpu: true,
            blocking: true,
            syscalls: true,
            heap: true,
            moves: true,
            sizes: true,
        }
    }
}

impl PassSet {
    /// Turns off the passes named in `list` (comma-separated).
    pub fn skip(mut self, list: &str) -> anyhow::Result<PassSet> {
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "cpu" => self.cpu = false,
                "blocking" => self.blocking = false,
                "syscalls" => self.syscalls = false,
                "heap" => self.heap = false,
                "moves" => self.moves = false,
                "sizes" => self.sizes = false,
                other => {
                    bail!(
                        "no pass {other:?} to skip (passes: cpu, blocking, syscalls, heap, moves, sizes)"
                    )
                }
            }
        }
        Ok(self)
    }
}

/// What the progress line shows, on a terminal as a bar and elsewhere as lines.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A progress display of `steps` steps.
    pub fn new(steps: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(steps);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
                )
                .expect("the template is valid"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar }
    }

    /// Shows what is being done now.
    pub fn say(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(message.to_string()),
            None => eprintln!("  {message}"),
        }
    }

    /// One step done, with what it found.
    pub fn done(&self, message: &str) {
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.println(format!("  {message}"));
            }
            None => eprintln!("  {message}"),
        }
    }

    /// Adds steps (more wall-time pairs were needed).
    pub fn add_steps(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc_length(n);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// One side being profiled, a pass at a time, into its snapshot directory.
#[derive(Debug)]
pub struct SideProfile {
    pub built: Built,
    pub dir: PathBuf,
    pub snapshot: Snapshot,
    pub sizes: Option<SizesReport>,
    /// How many operations each probe pass runs against a wall run's.
    pub scale: PassScale,
    /// The CPU pass's parts run so far, or why one failed.
    cpu_parts: anyhow::Result<Vec<CpuPartRun>>,
    /// Seconds the CPU pass's parts took.
    cpu_seconds: f64,
}

impl SideProfile {
    /// Starts the profile of `built` in `dir` (emptied first), its passes at `scale`.
    pub fn new(
        built: Built,
        workload: Workload,
        scale: PassScale,
        dir: PathBuf,
    ) -> anyhow::Result<SideProfile> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot empty {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(SideProfile {
            snapshot: Snapshot::new(built.identity.clone(), workload),
            built,
            dir,
            sizes: None,
            scale,
            cpu_parts: Ok(Vec::new()),
            cpu_seconds: 0.0,
        })
    }

    /// Steps the CPU pass and [`SideProfile::probe_passes`] take with `passes`.
    pub fn probe_steps(set: PassSet) -> u64 {
        let cpu_steps = if set.cpu { CPU_PARTS as u64 + 1 } else { 0 };
        cpu_steps
            + [set.sizes, set.blocking, set.syscalls, set.heap, set.moves]
                .iter()
                .filter(|p| **p)
                .count() as u64
    }

    /// Runs the next part of the CPU pass (none after a part that failed).
    pub fn cpu_part(&mut self, progress: &Progress) {
        let Ok(parts) = &mut self.cpu_parts else {
            progress.done(&format!(
                "{}: CPU part not run (a part before it failed)",
                self.built.label
            ));
            return;
        };
        let n = parts.len() + 1;
        let label = &self.built.label;
        progress.say(&format!("{label}: CPU profile, part {n} of {CPU_PARTS}"));
        let started = std::time::Instant::now();
        let dir = self.dir.join("cpu").join(format!("part-{n}"));
        let part = passes::cpu_part(&self.built, &self.snapshot.workload, self.scale, &dir);
        self.cpu_seconds += started.elapsed().as_secs_f64();
        match part {
            Ok(part) => {
                progress.done(&format!("{label}: CPU part {n}: {} operations", part.ops()));
                parts.push(part);
            }
            Err(e) => {
                progress.done(&format!("{label}: CPU part {n}: {e:#}"));
                self.cpu_parts = Err(e);
            }
        }
    }

    /// Adds the CPU pass's parts up into the snapshot's CPU figures, recording the pass.
    pub fn finish_cpu(&mut self, progress: &Progress) {
        let parts = std::mem::replace(&mut self.cpu_parts, Ok(Vec::new()));
        let (dir, s) = (self.dir.join("cpu"), &mut self.snapshot);
        let shown = Shown {
            progress,
            label: &self.built.label,
        };
        s.cpu = shown.pass(
            &CPU_PASS,
            &mut s.passes,
            || passes::cpu_figures(&parts?, &dir),
            |c| {
                format!(
                    "{} samples, {:.1} µs per operation",
                    c.samples,
                    c.ns_per_op(None) / 1e3
                )
            },
        );
        if let Some(pass) = s.passes.iter_mut().find(|p| p.name == CPU_PASS.name) {
            pass.seconds += self.cpu_seconds;
        }
    }

    /// The console pass: builds the side's tokio-console twin (`spec` is the side), runs the
    /// workload at the console's pace while it records its console stream, and reads the
    /// recording into waits on resources and the console's lints.
    pub fn console_pass(&mut self, spec: &SideSpec, progress: &Progress) {
        let label = self.built.label.clone();
        let (built, dir, s) = (&self.built, &self.dir, &mut self.snapshot);
        let shown = Shown {
            progress,
            label: &label,
        };
        let say = |m: &str| progress.say(&format!("{label}: {m}"));
        s.console = shown.pass(
            &CONSOLE_PASS,
            &mut s.passes,
            || {
                let binary = side::build_console_twin(&workspace_root(), spec, &say)?;
                say("console pass: the workload at the console's pace, recorded");
                passes::console(built, &binary, &s.workload, &dir.join("console"))
            },
            |c| {
                format!(
                    "{} resource sites, {} waits, {} lints, {} events dropped",
                    c.resources.len(),
                    c.resources.iter().map(|r| r.waits).sum::<u64>(),
                    c.lints.len(),
                    c.dropped_events
                )
            },
        );
    }

    /// The whole CPU pass of this side alone: its parts one after the other.
    pub fn cpu_pass(&mut self, progress: &Progress) {
        for _ in 0..CPU_PARTS {
            self.cpu_part(progress);
        }
        self.finish_cpu(progress);
    }

    /// Runs every pass but the CPU pass and the wall-time runs. The sizes pass reads debug info and runs no
    /// workload, so it runs beside the passes that count (system calls, heap), whose figures do
    /// not depend on the CPU they get, and never beside the CPU, blocking or wall-time runs.
    pub fn probe_passes(&mut self, set: PassSet, preloads: &Preloads, progress: &Progress) {
        let label = self.built.label.as_str();
        let (built, dir, s, scale) = (&self.built, &self.dir, &mut self.snapshot, self.scale);
        let shown = Shown { progress, label };
        if set.blocking {
            s.blocking = shown.pass(
                &BLOCKING_PASS,
                &mut s.passes,
                || passes::blocking(built, &s.workload, scale, &dir.join("blocking")),
                |b| {
                    format!(
                        "{:.1} µs per operation blocked inside polls",
                        b.ns_per_op() / 1e3
                    )
                },
            );
        }
        let (outcomes, sizes) = std::thread::scope(|scope| {
            let sizes = set.sizes.then(|| {
                scope.spawn(|| {
                    let mut outcomes = Vec::new();
                    let sizes = shown.pass(
                        &SIZES_PASS,
                        &mut outcomes,
                        || passes::sizes(built, dir),
                        |(f, _)| format!("{} types", f.types),
                    );
                    (outcomes, sizes)
                })
            });
            counting_passes(&shown, set, (built, scale, preloads), dir, s);
            sizes.map_or_else(Default::default, |thread| {
                thread.join().expect("the sizes pass does not panic")
            })
        });
        s.passes.extend(outcomes);
        if let Some((figures, report)) = sizes {
            s.sizes = Some(figures);
            self.sizes = Some(report);
        }
        if set.moves {
            let sizes = self.sizes.as_ref();
            s.moves = shown.pass(
                &MOVES_PASS,
                &mut s.passes,
                || match &preloads.moves {
                    Some(preload) => passes::moves(
                        built,
                        &s.workload,
                        scale,
                        preload,
                        sizes,
                        &dir.join("moves"),
                    ),
                    None => bail!("the copy tracer was not built"),
                },
                |m| {
                    format!(
                        "{:.0} bytes in large copies per operation",
                        m.large_bytes_per_op()
                    )
                },
            );
        }
        if let Err(e) = s.attach_library_callers(dir) {
            // The copies stay, named by their library functions.
            progress.say(&format!(
                "{label}: the CPU profile's stacks cannot be read for the copies' callers: {e}"
            ));
        }
    }

    /// One wall-time run; the first also gives the allocation counters and task metrics.
    pub fn wall_run(&mut self, index: usize, replication: bool) -> anyhow::Result<f64> {
        let dir = self.dir.join(format!("wall-{index}"));
        let mut run = passes::wall(&self.built, &self.snapshot.workload, &dir)?;
        run.wall.replication = replication;
        let ops_per_s = run.wall.ops_per_s;
        if self.snapshot.alloc.is_none() {
            self.snapshot.alloc = run.alloc;
        }
        if self.snapshot.tasks.is_none() {
            self.snapshot.tasks = run.tasks;
        }
        self.snapshot.wall.push(run.wall);
        Ok(ops_per_s)
    }

    /// Writes `snapshot.json`.
    pub fn write(&self) -> anyhow::Result<()> {
        self.snapshot.write_dir(&self.dir)?;
        Ok(())
    }
}

/// The system call and heap passes: counts per operation, which the sizes pass beside them
/// does not change.
fn counting_passes(
    shown: &Shown,
    set: PassSet,
    (built, scale, preloads): (&Built, PassScale, &Preloads),
    dir: &Path,
    s: &mut Snapshot,
) {
    if set.syscalls {
        s.syscalls = shown.pass(
            &SYSCALLS_PASS,
            &mut s.passes,
            || match &preloads.syscalls {
                Some(counter) => {
                    passes::syscalls(built, &s.workload, scale, counter, &dir.join("syscalls"))
                }
                None => bail!("the system call counter was not built"),
            },
            |f| {
                let calls: f64 = diag::snapshot::IO_SYSCALLS
                    .iter()
                    .map(|n| f.per_op(n))
                    .sum();
                format!("{calls:.1} I/O calls per operation")
            },
        );
    }
    if set.heap {
        s.heap = shown.pass(
            &HEAP_PASS,
            &mut s.passes,
            || passes::heap(built, &s.workload, scale, &dir.join("heap")),
            |h| {
                format!(
                    "{:.1} allocations per operation at {} sites",
                    diag::snapshot::per_op(h.blocks, h.ops),
                    h.sites.len()
                )
            },
        );
    }
}

/// How a pass is named on the progress line: its name in the snapshot, what runs while it
/// runs, and the word before its result.
struct PassText {
    name: &'static str,
    running: &'static str,
    result: &'static str,
}

const CPU_PASS: PassText = PassText {
    name: "cpu",
    running: "CPU profile",
    result: "CPU",
};
const BLOCKING_PASS: PassText = PassText {
    name: "blocking",
    running: "blocking profile",
    result: "blocking",
};
const SIZES_PASS: PassText = PassText {
    name: "sizes",
    running: "sizes, beside the counting passes",
    result: "sizes",
};
const SYSCALLS_PASS: PassText = PassText {
    name: "syscalls",
    running: "system calls (counted by diag-syscount)",
    result: "system calls",
};
const HEAP_PASS: PassText = PassText {
    name: "heap",
    running: "heap profile (dhat)",
    result: "heap",
};
const CONSOLE_PASS: PassText = PassText {
    name: "console",
    running: "console pass (tokio-console build, recorded)",
    result: "console",
};
const MOVES_PASS: PassText = PassText {
    name: "moves",
    running: "copy trace",
    result: "copies",
};

/// The progress line of one side.
struct Shown<'a> {
    progress: &'a Progress,
    label: &'a str,
}

impl Shown<'_> {
    /// Runs one pass: says what runs, records its outcome in `outcomes`, and shows what it
    /// found or why it has no figures.
    fn pass<T>(
        &self,
        text: &PassText,
        outcomes: &mut Vec<PassOutcome>,
        run: impl FnOnce() -> anyhow::Result<T>,
        found: impl FnOnce(&T) -> String,
    ) -> Option<T> {
        let label = self.label;
        self.progress.say(&format!("{label}: {}", text.running));
        let value = passes::record(outcomes, text.name, run);
        let result = match &value {
            Some(v) => found(v),
            None => outcomes.iter().find(|p| p.name == text.name).map_or_else(
                || "not run".into(),
                |p| format!("{}: {}", p.status, p.detail),
            ),
        };
        self.progress
            .done(&format!("{label}: {}: {result}", text.result));
        value
    }
}

/// The `LD_PRELOAD` libraries the passes load into a side's binary: built once per invocation
/// from the xtask's own tree, the same for every side.
#[derive(Debug, Default)]
pub struct Preloads {
    /// The copy tracer (`diag-memtrace`), for the copy pass.
    pub moves: Option<PathBuf>,
    /// The system call counter (`diag-syscount`), for the system call pass.
    pub syscalls: Option<PathBuf>,
}

impl Preloads {
    /// Builds the libraries the passes of `set` need (none when they need none).
    pub fn build(set: PassSet) -> anyhow::Result<Preloads> {
        let wanted = [
            (set.moves, "diag-memtrace"),
            (set.syscalls, "diag-syscount"),
        ];
        let mut args = vec!["build", "--quiet", "--release"];
        for (_, package) in wanted.iter().filter(|(on, _)| *on) {
            args.extend(["-p", package]);
        }
        if args.len() == 3 {
            return Ok(Preloads::default());
        }
        let root = workspace_root();
        cargo_in(&root, &args)?;
        let release = target_dir(&root).join("release");
        Ok(Preloads {
            moves: set.moves.then(|| release.join("libdiag_memtrace.so")),
            syscalls: set.syscalls.then(|| release.join("libdiag_syscount.so")),
        })
    }
}

/// Runs the command.
pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let mut features = String::new();
    let mut out: Option<PathBuf> = None;
    let (mut ops, mut seed, mut concurrency, mut runs) =
        (DEFAULT_OPS, DEFAULT_SEED, DEFAULT_CONCURRENCY, DEFAULT_RUNS);
    let mut set = PassSet::default();
    let mut extra = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| crate::util::flag_value(&mut it, flag, USAGE);
        match arg.as_str() {
            "--features" => features = value("--features")?,
            "--out" => out = Some(crate::util::absolute_dir(&value("--out")?)?),
            "--ops" => ops = number(&value("--ops")?, "--ops")?,
            "--seed" => seed = number(&value("--seed")?, "--seed")?,
            "--concurrency" => concurrency = number(&value("--concurrency")?, "--concurrency")?,
            "--runs" => runs = number(&value("--runs")?, "--runs")? as usize,
            "--skip" => set = set.skip(&value("--skip")?)?,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            "--" => extra = it.by_ref().cloned().collect(),
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let spec = SideSpec::parse(&format!("features:{features}"))?;
    let dir = out.unwrap_or_else(|| {
        target_dir(&workspace_root())
            .join("xtask")
            .join("profiles")
            .join(side::slug(&spec.label()))
    });
    let progress = Progress::new(2 + SideProfile::probe_steps(set) + runs as u64);
    // The dhat twin is a whole second build: only when the heap pass runs.
    let options = side::BuildOptions {
        dhat: set.heap,
        ..side::BuildOptions::default()
    };
    let built = side::build_in(&workspace_root(), &spec, options, &|m| progress.say(m))?;
    progress.done(&format!("built {}", built.binary.display()));
    progress.say("building the copy tracer and the system call counter");
    let preloads = Preloads::build(set)?;
    progress.done("tools ready");
    let workload = passes::workload(ops, seed, concurrency, &extra);
    let mut profile = SideProfile::new(built, workload, COMPARE_SCALE, dir)?;
    if set.cpu {
        profile.cpu_pass(&progress);
    }
    profile.probe_passes(set, &preloads, &progress);
    for i in 0..runs {
        progress.say(&format!("wall run {}/{runs}", i + 1));
        let ops_per_s = profile.wall_run(i, false)?;
        progress.done(&format!("wall run {}/{runs}: {ops_per_s:.0} ops/s", i + 1));
    }
    profile.write()?;
    progress.finish();
    println!("{}", summary(&profile.snapshot));
    println!("snapshot: {}", profile.dir.display());
    Ok(ExitCode::SUCCESS)
}

/// A few lines about a snapshot.
fn summary(s: &Snapshot) -> String {
    let mut lines = vec![format!(
        "{} ({} operations per run, seed {})",
        s.build.label, s.workload.ops, s.workload.seed
    )];
    let throughput: Vec<f64> = s.wall.iter().map(|w| w.ops_per_s).collect();
    if !throughput.is_empty() {
        lines.push(format!(
            "throughput: median {:.0} ops/s of {} runs",
            diag::compare::median(&throughput),
            throughput.len()
        ));
    }
    if let Some(a) = &s.alloc {
        lines.push(format!(
            "allocations: {:.1} per operation, {:.0} bytes per operation",
            a.allocations_per_op(),
            a.bytes_per_op()
        ));
    }
    if let Some(c) = &s.cpu {
        lines.push(format!(
            "CPU: {:.1} µs per operation",
            c.ns_per_op(None) / 1e3
        ));
    }
    if let Some(m) = &s.moves {
        lines.push(format!(
            "large copies: {:.0} bytes per operation",
            m.large_bytes_per_op()
        ));
    }
    for p in s.passes.iter().filter(|p| p.status != PassStatus::Ok) {
        lines.push(format!("pass {} {}: {}", p.name, p.status, p.detail));
    }
    lines.join("\n")
}

/// Parses a number for `flag`.
pub fn number(text: &str, flag: &str) -> anyhow::Result<u64> {
    text.replace('_', "")
        .parse()
        .with_context(|| format!("{flag} takes a whole number, not {text:?}"))
}

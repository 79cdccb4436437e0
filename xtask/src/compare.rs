//! `cargo xtask compare`: builds (or loads) a baseline and a candidate, profiles both with the
//! same workload, interleaves their wall-time runs, and explains the difference: a ranked list
//! of findings in markdown (printed), JSON and an HTML page with the flamegraphs.
//!
//! Exit code: 0 when no threshold was crossed, 1 when one was, 2 when it could not compare (a
//! pass failed on a side).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use diag::compare::{
    Comparison, FindingKind, Picture, Side, Thresholds, WallComparison, compare, render_html,
    render_markdown,
};
use diag::sizes::SizesReport;
use diag::snapshot::{PassStatus, Snapshot, Workload};

use crate::passes::{
    self, COMPARE_SCALE, CPU_PARTS, DEFAULT_CONCURRENCY, DEFAULT_OPS, DEFAULT_SEED,
};
use crate::profile::{PassSet, Preloads, Progress, SideProfile, number};
use crate::side::{self, SideSpec};
use crate::util::{target_dir, workspace_root};
use crate::wall_pairs::{self, DEFAULT_PAIRS, DEFAULT_PAIRS_MAX, REPLICATION_PAIRS, abba_order};

const USAGE: &str = "\
cargo xtask compare --baseline SPEC --candidate SPEC [OPTIONS] [-- EXTRA DDSPLIT LOCAL ARGS]

SPEC is one of:
  features:LIST   this working tree with these ddsplit features (`features:` is the default build)
  REVISION        a git revision, built in a worktree of its own under .xtask/worktrees, with
                  its own target directory (seeded with the workspace's compiled dependencies)
  DIR             a snapshot directory saved by `cargo xtask profile` or an earlier compare

Profiles both sides with the same seeded workload (see `cargo xtask profile --help` for the
passes), runs their wall-time passes interleaved (A B B A A B ...), adding pairs while the verdict
is within the noise, and explains the difference as findings ranked by their estimated share of
the extra runtime-thread time per operation (CPU, and time blocked inside polls), each with its
evidence and the fix to try. A change of the wall time that no probe explains is measured again
in 10 fresh pairs, and holds only if they move the same way by half the threshold.

Options:
  --out DIR                   where to write the report and both snapshots
                              (default target/xtask/compare/<baseline>--<candidate>)
  --ops N                     operations per wall run (default 5000; the probe passes run
                              multiples of it: see `cargo xtask profile --help`)
  --seed N                    workload seed (default 7)
  --concurrency N             client connections (default 16)
  --pairs N                   wall-time pairs to start with (default 10)
  --max-pairs N               most pairs when the verdict is unclear (default 24)
  --skip PASSES               passes to leave out: cpu, blocking, syscalls, heap, moves, sizes
  --console WHEN              the console pass (each side's tokio-console build, recorded at
                              the console's pace: which resources tasks wait on, the console's
                              lints): auto (default: when the other passes find waiting or a
                              longer tail), always, never
  --max-throughput-drop PCT   throughput drop that fails, beyond the noise (default 3)
  --max-alloc-growth PCT      growth of allocations per operation that fails (default 2)
  --max-copy-growth PCT       growth of bytes copied per operation that fails (default 5)
  --max-p99-growth PCT        growth of the p99 latency that fails, beyond the noise (default 50)
  --max-alloc-bytes-growth PCT  growth of bytes allocated per operation that fails (default 5)
  --max-type-growth BYTES     growth of one type or future that fails (default 1024)
  --min-site-alloc-growth PCT growth of one allocation site's count that names it (default 20)
  --max-stack-frame BYTES     a stack frame that fails (default 262144)
  --max-new-future BYTES      a future the baseline does not have that fails (default 8192)
  --max-blocked-us US         growth of one function's time blocked inside polls, µs per
                              operation, that fails, beyond the sampling noise (default 5)
  --max-blocked-growth PCT    ... and its relative growth that fails (default 50)
  --max-syscall-growth PCT    growth of an I/O system call's count per operation that fails
                              (default 25, and at least one call per operation)
  --json                      print the report as JSON instead of markdown

Exit code: 0 no threshold crossed, 1 a regression, 2 could not compare (a side did not build,
or one of its passes failed: the report names it and why).
";

/// Options of a comparison.
#[derive(Debug, Clone)]
pub struct Options {
    pub baseline: String,
    pub candidate: String,
    pub out: Option<PathBuf>,
    pub workload: Workload,
    pub pairs: usize,
    pub pairs_max: usize,
    pub passes: PassSet,
    pub thresholds: Thresholds,
    pub json: bool,
    pub console: ConsoleWhen,
}

/// Said when the console pass named no resource: what tokio-console cannot see.
const NO_RESOURCE_NOTE: &str = "the console pass found no `tokio::sync` resource or timer \
     whose waits grew. It times the waits on what tokio instruments (its locks, semaphores, \
     `oneshot` channels, barriers, timers): not on `mpsc` channels, `Notify` or sockets; the wait \
     is at an `.await` of the waiting kind's handler";

/// When `compare` runs the console pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleWhen {
    /// When the other passes find waiting or a longer tail: the pass needs a build of each
    /// side with `--cfg tokio_unstable`, so it runs when it can name what the tasks wait on.
    Auto,
    /// Every time.
    Always,
    /// Never.
    Never,
}

impl ConsoleWhen {
    fn parse(text: &str) -> anyhow::Result<ConsoleWhen> {
        Ok(match text {
            "auto" => ConsoleWhen::Auto,
            "always" => ConsoleWhen::Always,
            "never" => ConsoleWhen::Never,
            other => bail!("--console takes auto, always or never, not {other:?}"),
        })
    }

    /// Whether the console pass runs, given the comparison of the other passes.
    fn wanted(self, without: &Comparison) -> bool {
        match self {
            ConsoleWhen::Always => true,
            ConsoleWhen::Never => false,
            ConsoleWhen::Auto => without.findings.iter().any(|f| {
                !f.symptom && matches!(f.kind, FindingKind::Waiting | FindingKind::Latency)
            }),
        }
    }
}

/// Runs the command.
pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let Some(options) = parse(args)? else {
        print!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    let (comparison, report) = run_comparison(&options)?;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&comparison)?);
    } else {
        print!("{}", render_markdown(&comparison));
    }
    println!("report: {}", report.display());
    Ok(if !comparison.blockers.is_empty() {
        ExitCode::from(2)
    } else if comparison.regression {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A pass that failed on a side leaves the explanation without its evidence: the comparison is
/// then not a pass, whatever it found (exit 2, the failure named). A pass left out on purpose
/// (`--skip`) is no blocker.
fn failed_passes(sides: &[Resolved]) -> Vec<String> {
    let names = ["baseline", "candidate"];
    sides
        .iter()
        .zip(names)
        .flat_map(|(side, name)| {
            side.snapshot()
                .passes
                .iter()
                .filter(|p| p.status == PassStatus::Failed)
                .map(move |p| format!("the {name}'s {} pass failed (see the notes)", p.name))
        })
        .collect()
}

pub(crate) fn parse(args: &[String]) -> anyhow::Result<Option<Options>> {
    let mut baseline = None;
    let mut candidate = None;
    let mut out = None;
    let (mut ops, mut seed, mut concurrency) = (DEFAULT_OPS, DEFAULT_SEED, DEFAULT_CONCURRENCY);
    let (mut pairs, mut pairs_max) = (DEFAULT_PAIRS, DEFAULT_PAIRS_MAX);
    let mut set = PassSet::default();
    let mut thresholds = Thresholds::default();
    let mut json = false;
    let mut console = ConsoleWhen::Auto;
    let mut extra = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| crate::util::flag_value(&mut it, flag, USAGE);
        match arg.as_str() {
            "--baseline" => baseline = Some(value("--baseline")?),
            "--candidate" => candidate = Some(value("--candidate")?),
            "--out" => out = Some(crate::util::absolute_dir(&value("--out")?)?),
            "--ops" => ops = number(&value("--ops")?, "--ops")?,
            "--seed" => seed = number(&value("--seed")?, "--seed")?,
            "--concurrency" => concurrency = number(&value("--concurrency")?, "--concurrency")?,
            "--pairs" => pairs = number(&value("--pairs")?, "--pairs")? as usize,
            "--max-pairs" => pairs_max = number(&value("--max-pairs")?, "--max-pairs")? as usize,
            "--skip" => set = set.skip(&value("--skip")?)?,
            "--max-throughput-drop" => {
                thresholds.throughput_drop = percent(&value("--max-throughput-drop")?)?
            }
            "--max-alloc-growth" => {
                thresholds.alloc_growth = percent(&value("--max-alloc-growth")?)?
            }
            "--max-copy-growth" => thresholds.copy_growth = percent(&value("--max-copy-growth")?)?,
            "--max-type-growth" => {
                thresholds.type_growth_bytes =
                    number(&value("--max-type-growth")?, "--max-type-growth")?
            }
            "--max-p99-growth" => thresholds.p99_growth = percent(&value("--max-p99-growth")?)?,
            "--max-alloc-bytes-growth" => {
                thresholds.alloc_bytes_growth = percent(&value("--max-alloc-bytes-growth")?)?
            }
            "--min-site-alloc-growth" => {
                thresholds.site_alloc_growth = percent(&value("--min-site-alloc-growth")?)?
            }
            "--max-stack-frame" => {
                thresholds.stack_frame_fail_bytes =
                    number(&value("--max-stack-frame")?, "--max-stack-frame")?
            }
            "--max-new-future" => {
                thresholds.new_future_fail_bytes =
                    number(&value("--max-new-future")?, "--max-new-future")?
            }
            "--max-blocked-us" => {
                thresholds.blocked_ns_per_op =
                    number(&value("--max-blocked-us")?, "--max-blocked-us")? as f64 * 1e3
            }
            "--max-syscall-growth" => {
                thresholds.syscall_growth = percent(&value("--max-syscall-growth")?)?
            }
            "--max-blocked-growth" => {
                thresholds.blocked_growth = percent(&value("--max-blocked-growth")?)?
            }
            "--json" => json = true,
            "--console" => console = ConsoleWhen::parse(&value("--console")?)?,
            "-h" | "--help" => return Ok(None),
            "--" => extra = it.by_ref().cloned().collect(),
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    let (Some(baseline), Some(candidate)) = (baseline, candidate) else {
        bail!("give both --baseline and --candidate\n\n{USAGE}");
    };
    if pairs == 0 || pairs_max < pairs {
        bail!("--pairs must be at least 1 and at most --max-pairs");
    }
    Ok(Some(Options {
        baseline,
        candidate,
        out,
        workload: passes::workload(ops, seed, concurrency, &extra),
        pairs,
        pairs_max,
        passes: set,
        thresholds,
        json,
        console,
    }))
}

/// A side once resolved: profiled here, or loaded from a saved snapshot.
enum Resolved {
    Profiled(Box<SideProfile>),
    Saved {
        snapshot: Box<Snapshot>,
        sizes: Option<SizesReport>,
        dir: PathBuf,
    },
}

impl Resolved {
    fn snapshot(&self) -> &Snapshot {
        match self {
            Resolved::Profiled(p) => &p.snapshot,
            Resolved::Saved { snapshot, .. } => snapshot,
        }
    }

    fn sizes(&self) -> Option<&SizesReport> {
        match self {
            Resolved::Profiled(p) => p.sizes.as_ref(),
            Resolved::Saved { sizes, .. } => sizes.as_ref(),
        }
    }

    /// The side's profile, when it is measured in this run (not loaded from a snapshot).
    fn profile_mut(&mut self) -> Option<&mut SideProfile> {
        match self {
            Resolved::Profiled(p) => Some(p),
            Resolved::Saved { .. } => None,
        }
    }

    fn dir(&self) -> &Path {
        match self {
            Resolved::Profiled(p) => &p.dir,
            Resolved::Saved { dir, .. } => dir,
        }
    }
}

/// Profiles both sides and compares them; returns the comparison and the HTML report's path.
pub fn run_comparison(o: &Options) -> anyhow::Result<(Comparison, PathBuf)> {
    let specs = [
        SideSpec::parse(&o.baseline)?,
        SideSpec::parse(&o.candidate)?,
    ];
    let out = o.out.clone().unwrap_or_else(|| {
        target_dir(&workspace_root())
            .join("xtask")
            .join("compare")
            .join(format!(
                "{}--{}",
                side::slug(&specs[0].label()),
                side::slug(&specs[1].label())
            ))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let built_count = specs
        .iter()
        .filter(|s| !matches!(s, SideSpec::Saved(_)))
        .count() as u64;
    let progress = Progress::new(
        built_count * (1 + SideProfile::probe_steps(o.passes)) + 1 + o.pairs as u64 * built_count,
    );
    let mut sides = Vec::new();
    let mut notes = Vec::new();
    for (spec, name) in specs.iter().zip(["baseline", "candidate"]) {
        sides.push(match spec {
            SideSpec::Saved(dir) => {
                progress.say(&format!("{name}: loading {}", dir.display()));
                let mut snapshot = Snapshot::read_dir(dir)?;
                // Snapshots saved before the callers were kept have the stacks to find them.
                if snapshot
                    .moves
                    .as_ref()
                    .is_some_and(|m| m.library_callers.is_empty())
                    && let Err(e) = snapshot.attach_library_callers(dir)
                {
                    notes.push(format!(
                        "{name}: the CPU profile's stacks in {} cannot be read ({e}): copies made \
                         in library functions are named without the program's callers",
                        dir.display()
                    ));
                }
                Resolved::Saved {
                    snapshot: Box::new(snapshot),
                    sizes: load_sizes(dir)?,
                    dir: dir.clone(),
                }
            }
            spec => {
                let options = side::BuildOptions {
                    dhat: o.passes.heap,
                    ..side::BuildOptions::default()
                };
                let say = |m: &str| progress.say(&format!("{name}: {m}"));
                let built = side::build_in(&workspace_root(), spec, options, &say)?;
                progress.done(&format!("{name}: built {}", spec.label()));
                let profile =
                    SideProfile::new(built, o.workload.clone(), COMPARE_SCALE, out.join(name))?;
                Resolved::Profiled(Box::new(profile))
            }
        });
    }
    let preloads = if built_count > 0 {
        progress.say("building the copy tracer and the system call counter");
        Preloads::build(o.passes)?
    } else {
        Preloads::default()
    };
    progress.done("tools ready");
    if o.passes.cpu {
        interleave_cpu_parts(&mut sides, &progress);
    }
    for side in &mut sides {
        if let Resolved::Profiled(p) = side {
            p.probe_passes(o.passes, &preloads, &progress);
        }
    }
    interleave_wall_runs(&mut sides, o, &progress)?;
    let mut comparison = compare_sides(&sides, o);
    if comparison.wall_change_unexplained() && built_count == 2 {
        progress.add_steps(2 * REPLICATION_PAIRS as u64);
        progress.done(
            "no probe explains the change of the wall time: measuring it again in fresh pairs",
        );
        run_wall_pairs(&mut sides, REPLICATION_PAIRS, true, &progress)?;
        comparison = compare_sides(&sides, o);
    }
    if o.console.wanted(&comparison) && built_count > 0 {
        progress.add_steps(built_count);
        for (side, spec) in sides.iter_mut().zip(&specs) {
            if let Resolved::Profiled(p) = side {
                p.console_pass(spec, &progress);
            }
        }
        comparison = compare_sides(&sides, o);
        if o.console == ConsoleWhen::Auto {
            comparison.notes.push(
                "the console pass ran because the other passes found the tasks waiting longer \
                 or a longer tail"
                    .into(),
            );
        }
        let both_ran = sides.iter().all(|s| s.snapshot().console.is_some());
        let named = comparison
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::ResourceWait);
        if both_ran && !named {
            comparison.notes.push(NO_RESOURCE_NOTE.into());
        }
    }
    for side in &sides {
        if let Resolved::Profiled(p) = side {
            p.write()?;
        }
    }
    progress.finish();
    comparison.blockers.extend(failed_passes(&sides));
    comparison.notes.extend(notes);
    if sides.iter().any(|s| matches!(s, Resolved::Saved { .. })) {
        comparison.notes.push(
            "a side was loaded from a saved snapshot: its wall-time runs were not interleaved \
             with the other side's, so machine drift counts as a difference"
                .into(),
        );
    }
    let report = write_report(&comparison, &sides, &out)?;
    Ok((comparison, report))
}

/// The comparison of the two sides' snapshots as they are now.
fn compare_sides(sides: &[Resolved], o: &Options) -> Comparison {
    compare(
        &Side {
            snapshot: sides[0].snapshot(),
            sizes: sides[0].sizes(),
        },
        &Side {
            snapshot: sides[1].snapshot(),
            sizes: sides[1].sizes(),
        },
        &o.thresholds,
    )
}

/// Runs the CPU pass's parts of the profiled sides A B B A (each side's parts one after the
/// other when only one side is profiled), then adds each side's parts up.
fn interleave_cpu_parts(sides: &mut [Resolved], progress: &Progress) {
    for part in 0..CPU_PARTS {
        for i in abba_order(part) {
            if let Resolved::Profiled(p) = &mut sides[i] {
                p.cpu_part(progress);
            }
        }
    }
    for side in sides {
        if let Resolved::Profiled(p) = side {
            p.finish_cpu(progress);
        }
    }
}

/// Runs the wall-time passes of the profiled sides, A B A B ..., adding pairs (up to the
/// maximum) while the verdict is within the noise of the threshold.
fn interleave_wall_runs(
    sides: &mut [Resolved],
    o: &Options,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut pairs = 0;
    loop {
        run_wall_pairs(sides, 1, false, progress)?;
        pairs += 1;
        if pairs < o.pairs {
            continue;
        }
        let both_profiled = sides.iter().all(|s| matches!(s, Resolved::Profiled(_)));
        let wall = WallComparison::of(
            &sides[0].snapshot().wall,
            &sides[1].snapshot().wall,
            o.thresholds.throughput_drop,
        );
        match wall {
            Some(w) if both_profiled && w.is_ambiguous() && pairs < o.pairs_max => {
                progress.add_steps(2);
                progress.done(&format!(
                    "after {pairs} pairs the change ({:+.1}%) is within the noise (±{:.1}%) of the \
                     threshold: one more pair",
                    w.change() * 100.0,
                    w.noise * 100.0
                ));
            }
            _ => return Ok(()),
        }
    }
}

/// Runs `count` more wall-time pairs of the profiled sides, each run marked as part of a
/// replication batch or not.
fn run_wall_pairs(
    sides: &mut [Resolved],
    count: usize,
    replication: bool,
    progress: &Progress,
) -> anyhow::Result<()> {
    for _ in 0..count {
        let n = sides
            .iter()
            .find(|s| matches!(s, Resolved::Profiled(_)))
            .map_or(0, |s| s.snapshot().wall.len());
        let [baseline, candidate] = sides else {
            unreachable!("a comparison has two sides")
        };
        wall_pairs::run_pair(
            [baseline.profile_mut(), candidate.profile_mut()],
            ["baseline", "candidate"],
            n,
            replication,
            progress,
        )?;
    }
    Ok(())
}

/// The sizes report saved in a snapshot directory, if any.
fn load_sizes(dir: &Path) -> anyhow::Result<Option<SizesReport>> {
    let path = dir.join("sizes.json");
    if !path.is_file() {
        return Ok(None);
    }
    Ok(Some(SizesReport::from_json_file(&path)?))
}

/// Writes report.md, report.json, the flamegraphs and report.html into `out`.
fn write_report(c: &Comparison, sides: &[Resolved], out: &Path) -> anyhow::Result<PathBuf> {
    let write = |name: &str, text: &str| -> anyhow::Result<()> {
        std::fs::write(out.join(name), text)
            .with_context(|| format!("cannot write {}", out.join(name).display()))
    };
    write("report.md", &render_markdown(c))?;
    write("report.json", &serde_json::to_string_pretty(c)?)?;
    let folded: Vec<Option<String>> = sides
        .iter()
        .map(|s| {
            let file = s.snapshot().cpu.as_ref()?.folded_file.clone();
            std::fs::read_to_string(s.dir().join(file)).ok()
        })
        .collect();
    let mut pictures = Vec::new();
    if let (Some(before), Some(after)) = (&folded[0], &folded[1]) {
        let diff = crate::flame::differential(
            before,
            after,
            &format!(
                "{} → {} (red: more samples in the candidate)",
                c.baseline.label, c.candidate.label
            ),
        )?;
        write("flamegraph-diff.svg", &diff)?;
        pictures.push(Picture {
            title: "Differential flamegraph (the candidate's stacks; red grew, blue shrank)".into(),
            svg: diff,
        });
    }
    for (i, (f, label)) in folded
        .iter()
        .zip([&c.baseline.label, &c.candidate.label])
        .enumerate()
    {
        if let Some(f) = f {
            let svg = crate::flame::flamegraph(f, &format!("{label}: CPU"))?;
            let name = if i == 0 {
                "flamegraph-baseline.svg"
            } else {
                "flamegraph-candidate.svg"
            };
            write(name, &svg)?;
            pictures.push(Picture {
                title: format!(
                    "Flamegraph of the {} ({label})",
                    if i == 0 { "baseline" } else { "candidate" }
                ),
                svg,
            });
        }
    }
    let html = out.join("report.html");
    write("report.html", &render_html(c, &pictures))?;
    Ok(html)
}

/// `3` or `3%` as 0.03.
fn percent(text: &str) -> anyhow::Result<f64> {
    let n: f64 = text
        .trim_end_matches('%')
        .parse()
        .with_context(|| format!("a percentage, not {text:?}"))?;
    if !(0.0..100.0).contains(&n) {
        bail!("a percentage between 0 and 100, not {text:?}");
    }
    Ok(n / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_that_failed_blocks_and_one_skipped_does_not() {
        use diag::snapshot::PassOutcome;
        let side = |status: PassStatus| {
            let mut snapshot = Snapshot::new(
                diag::snapshot::BuildIdentity::default(),
                passes::workload(1, 1, 1, &[]),
            );
            snapshot.passes.push(PassOutcome {
                name: "cpu".into(),
                status,
                detail: "No space left on device".into(),
                seconds: 1.0,
            });
            Resolved::Saved {
                snapshot: Box::new(snapshot),
                sizes: None,
                dir: PathBuf::new(),
            }
        };
        let blockers = failed_passes(&[side(PassStatus::Skipped), side(PassStatus::Failed)]);
        assert_eq!(
            blockers,
            ["the candidate's cpu pass failed (see the notes)"]
        );
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_console_pass_runs_by_default_only_when_the_others_find_waiting() {
        let finding = |kind: FindingKind, symptom: bool| diag::compare::Finding {
            kind,
            title: String::new(),
            evidence: Vec::new(),
            sites: Vec::new(),
            functions: Vec::new(),
            cost_ns_per_op: None,
            share: None,
            fix: String::new(),
            regression: true,
            symptom,
            blocked_call: None,
            counts_per_op: None,
        };
        let with = |findings: Vec<diag::compare::Finding>| {
            let mut c = compare(
                &Side {
                    snapshot: &empty_snapshot(),
                    sizes: None,
                },
                &Side {
                    snapshot: &empty_snapshot(),
                    sizes: None,
                },
                &Thresholds::default(),
            );
            c.findings = findings;
            c
        };
        let waiting = with(vec![finding(FindingKind::Waiting, false)]);
        let cpu_only = with(vec![finding(FindingKind::HotSpot, false)]);
        let waiting_as_symptom = with(vec![finding(FindingKind::Latency, true)]);
        assert!(ConsoleWhen::Auto.wanted(&waiting));
        assert!(!ConsoleWhen::Auto.wanted(&cpu_only));
        assert!(!ConsoleWhen::Auto.wanted(&waiting_as_symptom));
        assert!(ConsoleWhen::Always.wanted(&cpu_only));
        assert!(!ConsoleWhen::Never.wanted(&waiting));
        assert!(ConsoleWhen::parse("sometimes").is_err());
    }

    fn empty_snapshot() -> Snapshot {
        Snapshot::new(
            diag::snapshot::BuildIdentity::default(),
            passes::workload(1, 1, 1, &[]),
        )
    }

    #[test]
    fn options_parse_with_their_defaults_and_refuse_nonsense() {
        let o = parse(&args(&[
            "--baseline",
            "features:",
            "--candidate",
            "features:story",
            "--max-throughput-drop",
            "5%",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(o.thresholds.throughput_drop, 0.05);
        assert_eq!(o.pairs, DEFAULT_PAIRS);
        assert_eq!(o.workload.ops, DEFAULT_OPS);
        assert!(
            parse(&args(&["--baseline", "features:"]))
                .unwrap_err()
                .to_string()
                .contains("both")
        );
        assert!(
            parse(&args(&[
                "--baseline",
                "a",
                "--candidate",
                "b",
                "--pairs",
                "30"
            ]))
            .is_err()
        );
        assert!(parse(&args(&["--bogus"])).is_err());
        assert!(percent("150").is_err());
        assert!(parse(&args(&["--help"])).unwrap().is_none());
    }
}

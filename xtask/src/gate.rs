//! `cargo xtask gate`: CI's comparison of the working tree against a baseline committed in the
//! repository (`xtask/gate/`), updated on purpose with `--bless`.
//!
//! It gates with tight thresholds on figures that do not depend on the machine's speed:
//! allocations and bytes copied per operation, type and future sizes, and instructions of fixed
//! codec work under callgrind. Wall time depends on the machine, so it is gated only against a
//! fresh build of the baseline's own revision, run interleaved with the tree on this machine,
//! through the same noise model as `compare`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use diag::compare::{
    Side, Thresholds, WallComparison, WallVerdict, compare, render_html, render_markdown,
};
use diag::sizes::SizesReport;
use diag::snapshot::{PassStatus, Snapshot, Workload};

use crate::passes::{self, DEFAULT_CONCURRENCY, DEFAULT_OPS, DEFAULT_SEED, PassScale};
use crate::profile::{PassSet, Preloads, Progress, SideProfile, number};
use crate::side::{self, SideSpec};
use crate::util::{cargo_in, git, target_dir, workspace_root};

/// Where the committed baseline lives, relative to the workspace.
pub const GATE_DIR: &str = "xtask/gate";

/// Operations of the gate's counting run: small, so the heap and copy passes stay quick.
pub const GATE_OPS: u64 = 4_000;

/// How many operations the gate's passes run against its counting run's: the committed
/// baseline's protocol (its heap and copy passes ran a quarter of the counting run, its system
/// calls an eighth), kept so that its figures and the tree's are counted the same way.
pub const GATE_SCALE: PassScale = PassScale {
    cpu_factor: 2,
    blocking_factor: 1,
    syscalls_divisor: 8,
    heap_divisor: 4,
    moves_divisor: 4,
};

/// Connections of the gate's counting run: few, so scheduling moves the counts little.
pub const GATE_CONCURRENCY: u64 = 4;

/// Growth of allocations per operation that fails the gate: counts of a seeded run repeat to
/// within a fraction of a percent, so 2% is a real change.
pub const GATE_ALLOC_GROWTH: f64 = 0.02;

/// Growth of bytes copied per operation that fails the gate.
pub const GATE_COPY_GROWTH: f64 = 0.05;

/// Growth of instructions of the codec work that fails the gate: callgrind repeats exactly.
pub const GATE_INSTRUCTIONS_GROWTH: f64 = 0.01;

/// Throughput drop that fails the gate when it is beyond the noise. Wider than `compare`'s:
/// CI machines are shared, and the other figures catch the known kinds of regression exactly.
pub const GATE_THROUGHPUT_DROP: f64 = 0.05;

/// Types smaller than this keep only their name and size in the committed sizes report.
const COMMITTED_DETAIL_BYTES_MIN: u64 = 256;

/// Types smaller than this are left out of the committed sizes report unless they are the
/// project's own: they cannot grow past the threshold without appearing in it.
const COMMITTED_TYPE_BYTES_MIN: u64 = 64;

/// The codec cases counted under callgrind (see `benches/src/bin/codec-work.rs`).
pub const CODEC_CASES: [&str; 4] = [
    "split-4+2-64KiB",
    "split-4+2-1MiB",
    "reassemble-4+2-1MiB",
    "degraded-4+2-1MiB",
];

const USAGE: &str = "\
cargo xtask gate [--bless] [--no-wall] [--skip PASSES] [--pairs N] [--max-pairs N]
                 [--max-throughput-drop PCT]

Profiles the working tree (default features) and compares it with the baseline committed in
xtask/gate/: allocations and bytes allocated and copied per operation, type and future sizes,
and callgrind instruction counts of the codec, with tight thresholds; then wall time against a
build of the baseline's revision, interleaved on this machine (A B B A ...), with the noise model
of `compare`; a change of the wall time is measured again in 10 fresh pairs and holds only if
they move the same way by half the threshold.

It fails closed: a pass the baseline has that this run could not produce, a wall-time comparison
that could not run, or a toolchain or CPU-feature set other than the baseline's (the counts
depend on them) is exit 2 with the reason. Leave a check out on purpose with --skip or --no-wall.

  --bless                    write the tree's figures as the new baseline (commit xtask/gate/)
  --no-wall                  leave wall time out
  --skip PASSES              passes to leave out on purpose: heap, moves, sizes, instructions
  --pairs N, --max-pairs N   wall-time pairs (default 10, at most 24 when unclear)
  --max-throughput-drop PCT  throughput drop that fails, beyond the noise (default 5)

Thresholds: allocations per operation +2%, bytes allocated per operation +5%, bytes in large
copies per operation +5%, codec instructions +1%, one type or future +1 KiB (a new future:
8 KiB), a stack frame of 256 KiB, throughput -5% beyond the noise.

Exit code: 0 within the thresholds, 1 a regression (the report says which and why), 2 could not
gate (the report's first line says why). The report is written to target/xtask/gate/.
";

/// What the command line asked for.
#[derive(Debug)]
struct GateOptions {
    bless: bool,
    wall: bool,
    pairs: usize,
    pairs_max: usize,
    thresholds: Thresholds,
    passes: PassSet,
    instructions: bool,
}

/// The passes `--skip` can leave out.
const SKIPPABLE: [&str; 4] = ["heap", "moves", "sizes", "instructions"];

fn parse(args: &[String]) -> anyhow::Result<Option<GateOptions>> {
    let mut o = GateOptions {
        bless: false,
        wall: true,
        pairs: crate::wall_pairs::DEFAULT_PAIRS,
        pairs_max: crate::wall_pairs::DEFAULT_PAIRS_MAX,
        thresholds: Thresholds {
            throughput_drop: GATE_THROUGHPUT_DROP,
            alloc_growth: GATE_ALLOC_GROWTH,
            copy_growth: GATE_COPY_GROWTH,
            instructions_growth: GATE_INSTRUCTIONS_GROWTH,
            ..Thresholds::default()
        },
        passes: gate_passes(),
        instructions: true,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| crate::util::flag_value(&mut it, flag, USAGE);
        match arg.as_str() {
            "--bless" => o.bless = true,
            "--no-wall" => o.wall = false,
            "--skip" => {
                let list = value("--skip")?;
                for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    if !SKIPPABLE.contains(&name) {
                        bail!("the gate has no pass {name:?} to skip (passes: {SKIPPABLE:?})");
                    }
                    if name == "instructions" {
                        o.instructions = false;
                    } else {
                        o.passes = o.passes.skip(name)?;
                    }
                }
            }
            "--pairs" => o.pairs = number(&value("--pairs")?, "--pairs")? as usize,
            "--max-pairs" => o.pairs_max = number(&value("--max-pairs")?, "--max-pairs")? as usize,
            "--max-throughput-drop" => {
                let text = value("--max-throughput-drop")?;
                o.thresholds.throughput_drop = text
                    .trim_end_matches('%')
                    .parse::<f64>()
                    .with_context(|| format!("a percentage, not {text:?}"))?
                    / 100.0;
            }
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if o.pairs == 0 || o.pairs_max < o.pairs {
        bail!("--pairs must be at least 1 and at most --max-pairs");
    }
    if o.bless && (!o.instructions || o.passes != gate_passes()) {
        bail!("--bless records every pass: leave --skip out");
    }
    Ok(Some(o))
}

/// The passes the gate runs: every one but the CPU and blocking profiles (their figures depend
/// on the machine's speed and load, and the baseline was measured at another time).
fn gate_passes() -> PassSet {
    PassSet {
        cpu: false,
        blocking: false,
        syscalls: false,
        ..PassSet::default()
    }
}

impl GateOptions {
    /// The passes left out on purpose.
    fn skipped(&self) -> Vec<&'static str> {
        let p = self.passes;
        [
            (!p.heap, "heap"),
            (!p.moves, "moves"),
            (!p.sizes, "sizes"),
            (!self.instructions, "instructions"),
        ]
        .into_iter()
        .filter_map(|(skipped, name)| skipped.then_some(name))
        .collect()
    }
}

/// Runs the command.
pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let Some(o) = parse(args)? else {
        print!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    crate::setup::ensure(&crate::setup::GATE_REQUIREMENTS)?;
    let root = workspace_root();
    let committed_dir = root.join(GATE_DIR);
    let out = target_dir(&root).join("xtask").join("gate");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let committed = if o.bless {
        None
    } else {
        Some(load_committed(&committed_dir)?)
    };
    let progress = Progress::new(
        6 + if o.wall && !o.bless {
            2 + 2 * o.pairs as u64
        } else {
            0
        },
    );
    let current = profile_tree(&out.join("tree"), &o, &progress)?;
    if o.bless {
        progress.finish();
        let failed: Vec<String> = current
            .snapshot
            .passes
            .iter()
            .filter(|p| p.status != PassStatus::Ok)
            .map(|p| format!("{} {}: {}", p.name, p.status, p.detail))
            .collect();
        if !failed.is_empty() {
            bail!(
                "not blessed: a baseline must have every pass, and these did not run:\n{}",
                failed.join("\n")
            );
        }
        write_committed(&current, &committed_dir)?;
        println!(
            "baseline written to {}: commit it. Figures:\n{}",
            committed_dir.display(),
            gate_summary(&current.snapshot)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (baseline, baseline_sizes) = committed.expect("loaded unless blessing");
    let mut comparison = compare(
        &Side {
            snapshot: &baseline,
            sizes: baseline_sizes.as_ref(),
        },
        &Side {
            snapshot: &current.snapshot,
            sizes: current.sizes.as_ref(),
        },
        &o.thresholds,
    );
    comparison
        .notes
        .retain(|n| !n.starts_with("no CPU profile") && !n.starts_with("no wall-time runs"));
    comparison.blockers = blockers(&baseline, &current.snapshot, &o.skipped());
    if o.wall {
        match wall_against_revision(&baseline, &o, &out, &progress) {
            Ok(w) => {
                comparison.regression |= w.verdict == WallVerdict::Slower;
                comparison.wall = Some(w);
            }
            Err(e) => comparison
                .blockers
                .push(format!("wall time could not be compared: {e:#}")),
        }
    } else {
        comparison
            .notes
            .push("wall time not gated (--no-wall)".into());
    }
    for skipped in o.skipped() {
        comparison
            .notes
            .push(format!("pass `{skipped}` left out (--skip)"));
    }
    progress.finish();
    let markdown = render_markdown(&comparison);
    std::fs::write(out.join("report.md"), &markdown)?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&comparison)?,
    )?;
    std::fs::write(out.join("report.html"), render_html(&comparison, &[]))?;
    print!("{markdown}");
    println!("report: {}", out.join("report.html").display());
    if !comparison.blockers.is_empty() {
        println!("The gate could not check everything it gates:");
        for blocker in &comparison.blockers {
            println!("- {blocker}");
        }
        return Ok(ExitCode::from(2));
    }
    if comparison.regression {
        println!(
            "The gate failed. If the change is intended, run `cargo xtask gate --bless` and commit {GATE_DIR}/."
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Why this run's figures cannot be held against the baseline's: a pass the baseline has that
/// this run did not produce (unless `skipped` on purpose), or a toolchain or CPU-feature set
/// other than the one the counts were blessed with.
fn blockers(baseline: &Snapshot, current: &Snapshot, skipped: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for pass in baseline
        .passes
        .iter()
        .filter(|p| p.status == PassStatus::Ok)
    {
        if skipped.contains(&pass.name.as_str()) {
            continue;
        }
        match current.pass(&pass.name) {
            Some(p) if p.status == PassStatus::Ok => {}
            Some(p) => out.push(format!("pass `{}` {}: {}", p.name, p.status, p.detail)),
            None => out.push(format!("pass `{}` did not run", pass.name)),
        }
    }
    if baseline.build.rustc != current.build.rustc {
        out.push(format!(
            "the toolchain is not the baseline's ({} here, {} in the baseline): instruction \
             counts and type sizes depend on it; re-bless with the toolchain CI uses",
            current.build.rustc, baseline.build.rustc
        ));
    }
    if let (Some(b), Some(c)) = (&baseline.instructions, &current.instructions)
        && b.cpu_features != c.cpu_features
        && !skipped.contains(&"instructions")
    {
        out.push(format!(
            "the codec's CPU features under callgrind are [{}] here and [{}] in the baseline: it \
             picks its SIMD path by them, so the instruction counts do not compare; re-bless on \
             this machine's kind or skip the instructions",
            c.cpu_features.join(" "),
            b.cpu_features.join(" ")
        ));
    }
    out
}

/// The gate's workload: small and gently concurrent, so the counts repeat.
fn gate_workload() -> Workload {
    passes::workload(GATE_OPS, DEFAULT_SEED, GATE_CONCURRENCY, &[])
}

/// Profiles the working tree's default build with the machine-independent passes.
fn profile_tree(dir: &Path, o: &GateOptions, progress: &Progress) -> anyhow::Result<SideProfile> {
    let root = workspace_root();
    let options = side::BuildOptions {
        dhat: o.passes.heap,
        ..side::BuildOptions::default()
    };
    let built = side::build_in(&root, &SideSpec::Features(Vec::new()), options, &|m| {
        progress.say(m)
    })?;
    progress.done("built the tree");
    progress.say("building the copy tracer, the system call counter and the codec work");
    let preloads = Preloads::build(o.passes)?;
    cargo_in(
        &root,
        &[
            "build",
            "--quiet",
            "--profile",
            side::SIDE_PROFILE,
            "-p",
            "ddsplit-benches",
            "--bin",
            "codec-work",
        ],
    )?;
    let codec_work = target_dir(&root)
        .join(side::SIDE_PROFILE)
        .join("codec-work");
    progress.done("tools ready");
    let mut profile = SideProfile::new(built, gate_workload(), GATE_SCALE, dir.to_path_buf())?;
    profile.probe_passes(o.passes, &preloads, progress);
    progress.say("counting run");
    profile.wall_run(0, false)?;
    // One run's throughput is not a figure the gate compares: wall time is gated apart.
    profile.snapshot.wall.clear();
    if o.instructions {
        progress.say("instructions of the codec (callgrind)");
        let s = &mut profile.snapshot;
        s.instructions = passes::record(&mut s.passes, "instructions", || {
            passes::instructions(&codec_work, &CODEC_CASES, &dir.join("callgrind"))
        });
        progress.done(&match &s.instructions {
            Some(i) => format!(
                "instructions: {} codec cases counted (CPU features {})",
                i.cases.len(),
                i.cpu_features.join(" ")
            ),
            None => format!(
                "instructions: {:?}",
                s.pass("instructions").map(|p| &p.detail)
            ),
        });
    }
    profile.write()?;
    Ok(profile)
}

/// Wall time: the baseline's revision against the tree, interleaved on this machine. An error
/// when the revision is not in the repository or does not build.
fn wall_against_revision(
    baseline: &Snapshot,
    o: &GateOptions,
    out: &Path,
    progress: &Progress,
) -> anyhow::Result<WallComparison> {
    let root = workspace_root();
    let Some(revision) = &baseline.build.revision else {
        bail!("the baseline records no revision to build");
    };
    if git(
        &root,
        &["cat-file", "-e", &format!("{revision}^{{commit}}")],
    )
    .is_none()
    {
        bail!(
            "the baseline's revision {revision} is not in this repository (a shallow clone?): \
             fetch it, or re-bless"
        );
    }
    let workload = passes::workload(DEFAULT_OPS, DEFAULT_SEED, DEFAULT_CONCURRENCY, &[]);
    let base = side::build(&SideSpec::Revision(revision.clone()), &|m| progress.say(m))?;
    progress.done(&format!(
        "built the baseline's revision {}",
        &revision[..revision.len().min(12)]
    ));
    let tree = side::build(&SideSpec::Features(Vec::new()), &|m| progress.say(m))?;
    progress.done("tree ready");
    let mut sides = [
        SideProfile::new(
            base,
            workload.clone(),
            GATE_SCALE,
            out.join("wall-baseline"),
        )?,
        SideProfile::new(tree, workload, GATE_SCALE, out.join("wall-tree"))?,
    ];
    let names = ["baseline revision", "tree"];
    let compared = |sides: &[SideProfile; 2]| {
        WallComparison::of(
            &sides[0].snapshot.wall,
            &sides[1].snapshot.wall,
            o.thresholds.throughput_drop,
        )
        .expect("both sides ran")
    };
    let mut n = 0;
    let wall = loop {
        wall_pair(&mut sides, n, false, names, progress)?;
        n += 1;
        let wall = compared(&sides);
        if n >= o.pairs && (!wall.is_ambiguous() || n >= o.pairs_max) {
            break wall;
        }
        if n >= o.pairs {
            progress.add_steps(2);
        }
    };
    if wall.verdict == WallVerdict::NoChange {
        return Ok(wall);
    }
    // The wall time alone decides this part of the gate: a change is measured again in fresh
    // pairs before it blocks (or is reported as a gain), as `compare` does for a change no probe
    // explains.
    progress.add_steps(2 * crate::wall_pairs::REPLICATION_PAIRS as u64);
    for _ in 0..crate::wall_pairs::REPLICATION_PAIRS {
        wall_pair(&mut sides, n, true, names, progress)?;
        n += 1;
    }
    Ok(compared(&sides))
}

/// Runs wall pair `n` of the baseline's revision and the tree.
fn wall_pair(
    sides: &mut [SideProfile; 2],
    n: usize,
    replication: bool,
    names: [&str; 2],
    progress: &Progress,
) -> anyhow::Result<()> {
    let [baseline, tree] = sides;
    crate::wall_pairs::run_pair(
        [Some(baseline), Some(tree)],
        names,
        n,
        replication,
        progress,
    )
}

/// Reads the committed baseline.
fn load_committed(dir: &Path) -> anyhow::Result<(Snapshot, Option<SizesReport>)> {
    if !dir.join(diag::snapshot::SNAPSHOT_FILE).is_file() {
        bail!(
            "no committed baseline in {}: run `cargo xtask gate --bless` and commit it",
            dir.display()
        );
    }
    let snapshot = Snapshot::read_dir(dir)?;
    let sizes_path = dir.join("sizes.json");
    let sizes = if sizes_path.is_file() {
        Some(SizesReport::from_json_file(&sizes_path)?)
    } else {
        None
    };
    Ok((snapshot, sizes))
}

/// Writes the tree's figures as the committed baseline: the snapshot and a compact sizes
/// report (small types without their fields, very small ones left out).
fn write_committed(profile: &SideProfile, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut snapshot = profile.snapshot.clone();
    // Raw files stay in target/: the committed baseline holds figures only.
    if let Some(h) = &mut snapshot.heap {
        h.file.clear();
    }
    snapshot.write_dir(dir)?;
    if let Some(sizes) = &profile.sizes {
        let mut compact = sizes.clone();
        compact.types.retain(|t| {
            t.size >= COMMITTED_TYPE_BYTES_MIN || t.name.starts_with(passes::PROJECT_PREFIX)
        });
        for t in &mut compact.types {
            if t.size < COMMITTED_DETAIL_BYTES_MIN {
                t.variants.clear();
                t.fields.clear();
            }
        }
        compact
            .futures
            .retain(|f| f.size >= COMMITTED_DETAIL_BYTES_MIN);
        compact.binary = "ddsplit".into();
        std::fs::write(dir.join("sizes.json"), compact.to_json() + "\n")
            .with_context(|| format!("cannot write {}", dir.join("sizes.json").display()))?;
    }
    let readme = dir.join("README.md");
    std::fs::write(
        &readme,
        "The baseline of `cargo xtask gate`: figures of the default build that do not depend on \
         the machine's speed (allocations and bytes copied per operation, type and future sizes, \
         codec instructions under callgrind), and the revision they were measured at, whose build \
         the gate runs beside the tree for wall time.\n\nUpdate it on purpose: `cargo xtask gate \
         --bless`, then commit this directory with the change that moved the figures.\n",
    )
    .with_context(|| format!("cannot write {}", readme.display()))?;
    Ok(())
}

/// The gated figures of a snapshot, one per line.
fn gate_summary(s: &Snapshot) -> String {
    let mut lines = Vec::new();
    if let Some(a) = &s.alloc {
        lines.push(format!(
            "allocations per operation: {:.2}",
            a.allocations_per_op()
        ));
        lines.push(format!(
            "bytes allocated per operation: {:.0}",
            a.bytes_per_op()
        ));
    }
    if let Some(m) = &s.moves {
        lines.push(format!(
            "bytes in large copies per operation: {:.0}",
            m.large_bytes_per_op()
        ));
    }
    if let Some(i) = &s.instructions {
        for (case, n) in &i.cases {
            lines.push(format!("instructions of {case}: {n}"));
        }
    }
    if let Some(z) = &s.sizes {
        lines.push(format!("types in the sizes report: {}", z.types));
    }
    for p in s.passes.iter().filter(|p| p.status != PassStatus::Ok) {
        lines.push(format!("pass {} {}: {}", p.name, p.status, p.detail));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests;

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
use diag::snapshot::{Snapshot, Workload};

use crate::passes::{self, DEFAULT_CONCURRENCY, DEFAULT_OPS, DEFAULT_SEED};
use crate::profile::{PassSet, Progress, SideProfile, build_preload, number};
use crate::side::{self, SideSpec};
use crate::util::{cargo_in, git, target_dir, workspace_root};

/// Where the committed baseline lives, relative to the workspace.
pub const GATE_DIR: &str = "xtask/gate";

/// Operations of the gate's counting run: small, so the heap and copy passes stay quick.
pub const GATE_OPS: u64 = 4_000;

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
cargo xtask gate [--bless] [--no-wall] [--pairs N] [--max-pairs N] [--max-throughput-drop PCT]

Profiles the working tree (default features) and compares it with the baseline committed in
xtask/gate/: allocations and bytes copied per operation, type and future sizes, and callgrind
instruction counts of the codec, with tight thresholds; then wall time against a build of the
baseline's revision, interleaved on this machine, with the noise model of `compare`.

  --bless                    write the tree's figures as the new baseline (commit xtask/gate/)
  --no-wall                  leave wall time out
  --pairs N, --max-pairs N   wall-time pairs (default 5, at most 12 when unclear)
  --max-throughput-drop PCT  throughput drop that fails, beyond the noise (default 5)

Exit code: 0 within the thresholds, 1 a regression (the report says which and why), 2 could not
gate. The report is written to target/xtask/gate/.
";

/// Runs the command.
pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let mut bless = false;
    let mut wall = true;
    let (mut pairs, mut pairs_max) = (
        crate::compare::DEFAULT_PAIRS,
        crate::compare::DEFAULT_PAIRS_MAX,
    );
    let mut thresholds = Thresholds {
        throughput_drop: GATE_THROUGHPUT_DROP,
        alloc_growth: GATE_ALLOC_GROWTH,
        copy_growth: GATE_COPY_GROWTH,
        instructions_growth: GATE_INSTRUCTIONS_GROWTH,
        ..Thresholds::default()
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| crate::util::flag_value(&mut it, flag, USAGE);
        match arg.as_str() {
            "--bless" => bless = true,
            "--no-wall" => wall = false,
            "--pairs" => pairs = number(&value("--pairs")?, "--pairs")? as usize,
            "--max-pairs" => pairs_max = number(&value("--max-pairs")?, "--max-pairs")? as usize,
            "--max-throughput-drop" => {
                let text = value("--max-throughput-drop")?;
                thresholds.throughput_drop = text
                    .trim_end_matches('%')
                    .parse::<f64>()
                    .with_context(|| format!("a percentage, not {text:?}"))?
                    / 100.0;
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if pairs == 0 || pairs_max < pairs {
        bail!("--pairs must be at least 1 and at most --max-pairs");
    }
    crate::setup::ensure(&crate::setup::GATE_REQUIREMENTS)?;
    let root = workspace_root();
    let committed_dir = root.join(GATE_DIR);
    let out = target_dir(&root).join("xtask").join("gate");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let committed = if bless {
        None
    } else {
        Some(load_committed(&committed_dir)?)
    };
    let progress = Progress::new(
        6 + if wall && !bless {
            2 + 2 * pairs as u64
        } else {
            0
        },
    );
    let current = profile_tree(&out.join("tree"), &progress)?;
    if bless {
        progress.finish();
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
        &thresholds,
    );
    comparison
        .notes
        .retain(|n| !n.starts_with("no CPU profile") && !n.starts_with("no wall-time runs"));
    if wall {
        match wall_against_revision(
            &baseline,
            pairs,
            pairs_max,
            thresholds.throughput_drop,
            &out,
            &progress,
        ) {
            Ok(Some(w)) => {
                comparison.regression |= w.verdict == WallVerdict::Slower;
                comparison.wall = Some(w);
            }
            Ok(None) => comparison.notes.push(format!(
                "wall time not gated: the baseline's revision {} is not in this repository",
                baseline.build.revision.as_deref().unwrap_or("?")
            )),
            Err(e) => comparison.notes.push(format!("wall time not gated: {e:#}")),
        }
    } else {
        comparison
            .notes
            .push("wall time not gated (--no-wall)".into());
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
    if comparison.regression {
        println!(
            "The gate failed. If the change is intended, run `cargo xtask gate --bless` and commit {GATE_DIR}/."
        );
    }
    println!("report: {}", out.join("report.html").display());
    Ok(if comparison.regression {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The gate's workload: small and gently concurrent, so the counts repeat.
fn gate_workload() -> Workload {
    passes::workload(GATE_OPS, DEFAULT_SEED, GATE_CONCURRENCY, &[])
}

/// Profiles the working tree's default build with the machine-independent passes.
fn profile_tree(dir: &Path, progress: &Progress) -> anyhow::Result<SideProfile> {
    let built = side::build(&SideSpec::Features(Vec::new()), &|m| progress.say(m))?;
    progress.done("built the tree");
    let root = workspace_root();
    progress.say("building the copy tracer and the codec work");
    let preload = build_preload()?;
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
    let mut profile = SideProfile::new(built, gate_workload(), dir.to_path_buf())?;
    let set = PassSet {
        cpu: false,
        ..PassSet::default()
    };
    profile.probe_passes(set, Some(&preload), progress);
    progress.say("counting run");
    profile.wall_run(0)?;
    // One run's throughput is not a figure the gate compares: wall time is gated apart.
    profile.snapshot.wall.clear();
    progress.say("instructions of the codec (callgrind)");
    let s = &mut profile.snapshot;
    s.instructions = passes::record(&mut s.passes, "instructions", || {
        passes::instructions(&codec_work, &CODEC_CASES, &dir.join("callgrind"))
    });
    progress.done(&match &s.instructions {
        Some(i) => format!("instructions: {} codec cases counted", i.cases.len()),
        None => format!(
            "instructions: {:?}",
            s.pass("instructions").map(|p| &p.detail)
        ),
    });
    profile.write()?;
    Ok(profile)
}

/// Wall time: the baseline's revision against the tree, interleaved on this machine. `None`
/// when the revision is not in the repository.
fn wall_against_revision(
    baseline: &Snapshot,
    pairs: usize,
    pairs_max: usize,
    drop: f64,
    out: &Path,
    progress: &Progress,
) -> anyhow::Result<Option<WallComparison>> {
    let root = workspace_root();
    let Some(revision) = &baseline.build.revision else {
        return Ok(None);
    };
    if git(
        &root,
        &["cat-file", "-e", &format!("{revision}^{{commit}}")],
    )
    .is_none()
    {
        return Ok(None);
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
        SideProfile::new(base, workload.clone(), out.join("wall-baseline"))?,
        SideProfile::new(tree, workload, out.join("wall-tree"))?,
    ];
    let mut n = 0;
    loop {
        for (side, name) in sides.iter_mut().zip(["baseline revision", "tree"]) {
            progress.say(&format!("wall pair {}: {name}", n + 1));
            let ops_per_s = side.wall_run(n)?;
            progress.done(&format!("wall pair {}: {name} {ops_per_s:.0} ops/s", n + 1));
        }
        n += 1;
        let wall = WallComparison::of(&sides[0].snapshot.wall, &sides[1].snapshot.wall, drop)
            .expect("both sides ran");
        if n >= pairs && (!wall.is_ambiguous() || n >= pairs_max) {
            return Ok(Some(wall));
        }
        if n >= pairs {
            progress.add_steps(2);
        }
    }
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
    for p in s.passes.iter().filter(|p| p.status != "ok") {
        lines.push(format!("pass {} {}: {}", p.name, p.status, p.detail));
    }
    lines.join("\n")
}

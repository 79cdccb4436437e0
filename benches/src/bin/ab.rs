//! `ab`: end-to-end throughput of several `ddsplit` builds, run interleaved. Each round runs
//! every build once (`ddsplit local --ops N --seed S --json`: a local cluster and the same
//! seeded, fixed amount of work), starting with a different build each round so no build always
//! runs first; then it prints each build's median throughput, its ratio to the first build's
//! and the spread of the per-round ratios. A run with errors or wrong data stops it.
//!
//! Beside throughput it reports CPU time per operation (user + system of the whole process,
//! cluster and load generator): on a machine shared with other work, wall-clock throughput
//! moves with the neighbours, CPU time per operation much less.
//!
//! ```sh
//! cargo run --release -p ddsplit-benches --bin ab -- --rounds 7 --ops 10000 \
//!     default=target/ab/default/ddsplit story=target/ab/story/ddsplit
//! ```
//! Arguments after `--` go to every `ddsplit local` (e.g. `-- --mix query:100`).

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

const USAGE: &str = "\
ab [--rounds N] [--ops N] [--seed S] [--json] NAME=BINARY... [-- DDSPLIT LOCAL ARGS]

  --rounds N  rounds; each runs every build once (default 5)
  --ops N     operations per run (default 10000)
  --seed S    workload seed (default 7)
  --json      print the figures as JSON
The first build is the baseline of the ratios.
";

/// Rounds by default: five give a median that one disturbed run cannot move.
const ROUNDS_DEFAULT: usize = 5;
/// Operations per run by default: about two seconds of work on a small machine.
const OPS_DEFAULT: u64 = 10_000;

struct Build {
    name: String,
    binary: PathBuf,
    ops_per_s: Vec<f64>,
    cpu_us_per_op: Vec<f64>,
}

/// One run's figures.
struct Figures {
    ops_per_s: f64,
    cpu_us_per_op: f64,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut rounds = ROUNDS_DEFAULT;
    let mut ops = OPS_DEFAULT;
    let mut seed = 7u64;
    let mut json = false;
    let mut builds: Vec<Build> = Vec::new();
    let mut extra: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("{name} takes a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--rounds" => rounds = value("--rounds")?.parse().context("--rounds")?,
            "--ops" => ops = value("--ops")?.parse().context("--ops")?,
            "--seed" => seed = value("--seed")?.parse().context("--seed")?,
            "--json" => json = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            "--" => extra = args.by_ref().collect(),
            spec => {
                let Some((name, binary)) = spec.split_once('=') else {
                    bail!("{spec:?} is not NAME=BINARY\n\n{USAGE}");
                };
                let binary = PathBuf::from(binary);
                if !binary.is_file() {
                    bail!("{} (build {name}) is not a file", binary.display());
                }
                builds.push(Build {
                    name: name.to_string(),
                    binary,
                    ops_per_s: Vec::new(),
                    cpu_us_per_op: Vec::new(),
                });
            }
        }
    }
    if builds.len() < 2 || rounds == 0 {
        bail!("give at least two builds and one round\n\n{USAGE}");
    }
    for round in 0..rounds {
        let n = builds.len();
        for i in 0..n {
            let build = &mut builds[(round + i) % n];
            let figures = run_once(build, ops, seed, &extra)?;
            eprintln!(
                "round {}: {:>24} {:>10.0} ops/s {:>8.1} CPU us/op",
                round + 1,
                build.name,
                figures.ops_per_s,
                figures.cpu_us_per_op
            );
            build.ops_per_s.push(figures.ops_per_s);
            build.cpu_us_per_op.push(figures.cpu_us_per_op);
        }
    }
    report(&builds, rounds, ops, seed, &extra, json);
    Ok(())
}

fn run_once(build: &Build, ops: u64, seed: u64, extra: &[String]) -> anyhow::Result<Figures> {
    let cpu_before = children_cpu_s();
    let output = Command::new(&build.binary)
        .args(["local", "--listen", "127.0.0.1:0", "--no-admin", "--json"])
        .args(["--ops", &ops.to_string(), "--seed", &seed.to_string()])
        .args(extra)
        .output()
        .with_context(|| format!("starting {}", build.binary.display()))?;
    let cpu_s = children_cpu_s() - cpu_before;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}",
            build.name,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("{} printed no JSON report", build.name))?;
    let result: serde_json::Value = serde_json::from_str(line).context("reading the report")?;
    for counter in ["errors", "wrong_data"] {
        if result[counter].as_u64() != Some(0) {
            bail!("{}: {counter} is {}, not 0", build.name, result[counter]);
        }
    }
    let (Some(ops_per_s), Some(done)) = (result["ops_per_s"].as_f64(), result["ops"].as_u64())
    else {
        bail!("{}: no ops or ops_per_s in the report", build.name);
    };
    Ok(Figures {
        ops_per_s,
        cpu_us_per_op: cpu_s * 1e6 / done as f64,
    })
}

/// User + system CPU seconds of the children waited for so far.
fn children_cpu_s() -> f64 {
    // SAFETY: `getrusage` writes one `rusage` into the zeroed value it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

fn report(builds: &[Build], rounds: usize, ops: u64, seed: u64, extra: &[String], json: bool) {
    let base = &builds[0];
    let base_median = median(&base.ops_per_s);
    let mut rows = Vec::new();
    for build in builds {
        // Ratios of runs in the same round: the machine's drift over the rounds cancels.
        let ratios: Vec<f64> = build
            .ops_per_s
            .iter()
            .zip(&base.ops_per_s)
            .map(|(b, a)| b / a)
            .collect();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let cpu_ratios: Vec<f64> = build
            .cpu_us_per_op
            .iter()
            .zip(&base.cpu_us_per_op)
            .map(|(b, a)| b / a)
            .collect();
        rows.push(serde_json::json!({
            "build": build.name,
            "binary": build.binary.display().to_string(),
            "ops_per_s": build.ops_per_s,
            "median_ops_per_s": median(&build.ops_per_s),
            "min_ops_per_s": build.ops_per_s.iter().copied().fold(f64::INFINITY, f64::min),
            "max_ops_per_s": build.ops_per_s.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            "ratio_of_medians": median(&build.ops_per_s) / base_median,
            "round_ratio_median": median(&ratios),
            "round_ratio_min": lo,
            "round_ratio_max": hi,
            "cpu_us_per_op": build.cpu_us_per_op,
            "median_cpu_us_per_op": median(&build.cpu_us_per_op),
            "cpu_round_ratio_median": median(&cpu_ratios),
            "cpu_round_ratio_min": cpu_ratios.iter().copied().fold(f64::INFINITY, f64::min),
            "cpu_round_ratio_max": cpu_ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }));
    }
    if json {
        let doc = serde_json::json!({
            "rounds": rounds, "ops": ops, "seed": seed, "extra_args": extra,
            "baseline": base.name, "builds": rows,
        });
        println!("{doc}");
        return;
    }
    println!(
        "{rounds} rounds, --ops {ops} --seed {seed} {}; baseline {}",
        extra.join(" "),
        base.name
    );
    println!(
        "{:<22} {:>8} {:>8} {:>8} {:>7} {:>21} {:>9} {:>21}",
        "build",
        "median/s",
        "min/s",
        "max/s",
        "ratio",
        "round ratio (range)",
        "CPU us/op",
        "CPU round ratio"
    );
    let f = |row: &serde_json::Value, key: &str| row[key].as_f64().unwrap_or(f64::NAN);
    for row in rows {
        println!(
            "{:<22} {:>8.0} {:>8.0} {:>8.0} {:>7.3} {:>5.3} ({:.3}..{:.3}) {:>9.1} {:>5.3} ({:.3}..{:.3})",
            row["build"].as_str().unwrap_or(""),
            f(&row, "median_ops_per_s"),
            f(&row, "min_ops_per_s"),
            f(&row, "max_ops_per_s"),
            f(&row, "ratio_of_medians"),
            f(&row, "round_ratio_median"),
            f(&row, "round_ratio_min"),
            f(&row, "round_ratio_max"),
            f(&row, "median_cpu_us_per_op"),
            f(&row, "cpu_round_ratio_median"),
            f(&row, "cpu_round_ratio_min"),
            f(&row, "cpu_round_ratio_max"),
        );
    }
}

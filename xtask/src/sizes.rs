//! `cargo xtask sizes`: type, enum, future and stack-frame sizes of a binary, from its DWARF.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use diag::sizes::{RenderOptions, SizesReport, render_diff, render_report};

const USAGE: &str = "\
cargo xtask sizes [--bin PATH] [--filter PREFIX] [--json] [--top N] [--diff OTHER]

  --bin PATH       the binary to read (default: builds `ddsplit` with --profile profiling)
  --filter PREFIX  only types whose path, or a generic argument's, starts with PREFIX
  --json           print the report (or the diff) as JSON
  --top N          rows per table (default 20)
  --diff OTHER     compare against OTHER, a saved JSON report or another binary:
                   OTHER is the baseline, --bin the candidate
";

/// Runs the command.
pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let mut bin: Option<PathBuf> = None;
    let mut filter: Option<String> = None;
    let mut json = false;
    let mut options = RenderOptions::default();
    let mut diff: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| crate::util::flag_value(&mut it, flag, USAGE);
        match arg.as_str() {
            "--bin" => bin = Some(value("--bin")?.into()),
            "--filter" => filter = Some(value("--filter")?),
            "--json" => json = true,
            "--top" => options.top = value("--top")?.parse().context("--top takes a number")?,
            "--diff" => diff = Some(value("--diff")?.into()),
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    let bin = match bin {
        Some(path) => path,
        None => build_ddsplit()?,
    };
    let started = std::time::Instant::now();
    let mut report = SizesReport::from_binary(&bin)?;
    let elapsed = started.elapsed();
    if let Some(prefix) = &filter {
        report = report.filtered(prefix);
    }
    match diff {
        Some(other) => {
            let mut baseline = load_report(&other)?;
            if let Some(prefix) = &filter {
                baseline = baseline.filtered(prefix);
            }
            let d = baseline.diff(&report);
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                println!("sizes: {} (baseline) -> {}", other.display(), bin.display());
                print!("{}", render_diff(&d, &options));
            }
        }
        None if json => println!("{}", report.to_json()),
        None => {
            print!("{}", render_report(&report, &options));
            eprintln!("(read in {:.2} s)", elapsed.as_secs_f64());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A saved JSON report, or a binary to read.
fn load_report(path: &Path) -> anyhow::Result<SizesReport> {
    let head = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if head.starts_with(b"\x7fELF") {
        Ok(SizesReport::from_binary(path)?)
    } else {
        Ok(SizesReport::from_json_file(path)?)
    }
}

/// Builds `ddsplit` with the `profiling` profile and returns the binary's path.
fn build_ddsplit() -> anyhow::Result<PathBuf> {
    let root = crate::util::workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--profile", "profiling", "-p", "ddsplit"])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("`cargo build --profile profiling -p ddsplit` failed");
    }
    Ok(crate::util::target_dir(&root)
        .join("profiling")
        .join("ddsplit"))
}

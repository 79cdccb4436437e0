//! `cargo xtask moves`: runs a program under the memcpy tracer and says where large values are
//! copied and which types they are.

use std::process::ExitCode;

use anyhow::{Context, bail};
use diag::moves::{DEFAULT_THRESHOLD_BYTES, MovesReport, TraceRun};

use crate::util::{cargo_in as cargo, target_dir, workspace_root};

const USAGE: &str = "\
cargo xtask moves [--threshold BYTES] [--top N] [--json] -- PROGRAM ARGS...
cargo xtask moves [--threshold BYTES] [--top N] [--json] --ddsplit

  --threshold BYTES  copies of at least BYTES record their call site (default 1024)
  --top N            sites to print (default 20)
  --json             print the report as JSON
  --ddsplit          build ddsplit (--profile profiling) and trace `ddsplit local --load 10s`

Builds the preload library (release), runs PROGRAM with LD_PRELOAD, then symbolizes the call
sites against PROGRAM's debug info. The trace is kept under target/diag-moves/.
";

/// Runs the command.
pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let mut threshold = DEFAULT_THRESHOLD_BYTES;
    let mut top = 20usize;
    let mut json = false;
    let mut ddsplit = false;
    let mut command: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| crate::util::flag_value(&mut it, flag, USAGE);
        match arg.as_str() {
            "--threshold" => {
                threshold = value("--threshold")?
                    .parse()
                    .context("--threshold takes bytes")?;
            }
            "--top" => top = value("--top")?.parse().context("--top takes a number")?,
            "--json" => json = true,
            "--ddsplit" => ddsplit = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            "--" => {
                command = it.by_ref().cloned().collect();
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    let root = workspace_root();
    let target = target_dir(&root);
    if ddsplit {
        if !command.is_empty() {
            bail!("give either --ddsplit or a command after --, not both");
        }
        cargo(&root, &["build", "--profile", "profiling", "-p", "ddsplit"])?;
        let bin = target.join("profiling").join("ddsplit");
        command = vec![
            bin.display().to_string(),
            "local".into(),
            "--load".into(),
            "10s".into(),
        ];
    }
    let Some((program, program_args)) = command.split_first() else {
        bail!("no program to run\n\n{USAGE}");
    };
    // Fail on a static binary or another platform before building anything.
    diag::moves::check_program(program)?;
    cargo(&root, &["build", "--release", "-p", "diag-memtrace"])?;
    let preload = target.join("release").join("libdiag_memtrace.so");
    let traced = TraceRun::new(&preload, program.as_str())
        .args(program_args.iter().cloned())
        .threshold_bytes(threshold)
        .out_dir(target.join("diag-moves"))
        .run()?;
    let report = MovesReport::build(&traced.trace, &traced.program, None)?;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render(top));
        println!("trace: {}", traced.trace_path.display());
    }
    if !traced.status.success() {
        eprintln!("note: the program exited with {}", traced.status);
    }
    Ok(ExitCode::SUCCESS)
}

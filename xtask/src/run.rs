//! `cargo xtask run`: a local cluster under load with the live summary, from a release build
//! (with the features asked for).

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

use crate::util::{cargo, run_step};

const USAGE: &str = "\
cargo xtask run [--features LIST] [-- DDSPLIT LOCAL ARGS]

Builds ddsplit (release, with the features given) and runs `ddsplit local` with the arguments
after `--`; without --load or --ops among them, it adds --load 20s. For example:

  cargo xtask run --features story -- --load 30s --concurrency 32
";

/// Load added when the arguments name none: long enough for the live summary to settle.
pub const DEFAULT_LOAD: &str = "20s";

/// Runs the command.
pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let (features, local_args) = parse(args, USAGE)?;
    let Some(local_args) = local_args else {
        print!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    let mut build = cargo();
    build.args(["build", "--release", "-p", "ddsplit"]);
    if let Some(features) = &features {
        build.args(["--features", features]);
    }
    run_step("building ddsplit (release)", &mut build)?;
    let bin = crate::util::target_dir(&crate::util::workspace_root())
        .join("release")
        .join("ddsplit");
    run_local(&bin, &local_args, DEFAULT_LOAD)
}

/// Splits `[--features LIST] [-- ARGS...]`; `None` for the arguments means help was asked.
pub fn parse(
    args: &[String],
    usage: &str,
) -> anyhow::Result<(Option<String>, Option<Vec<String>>)> {
    let mut features = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--features" | "-F" => {
                features = Some(
                    it.next()
                        .cloned()
                        .with_context(|| format!("--features takes a list\n\n{usage}"))?,
                )
            }
            "--" => return Ok((features, Some(it.cloned().collect()))),
            "-h" | "--help" => return Ok((features, None)),
            other => bail!("unknown argument {other:?} (ddsplit's own go after `--`)\n\n{usage}"),
        }
    }
    Ok((features, Some(Vec::new())))
}

/// Runs `bin local ARGS`, adding `--load DEFAULT` when the arguments set no load, and returns
/// its exit status.
pub fn run_local(bin: &Path, args: &[String], default_load: &str) -> anyhow::Result<ExitCode> {
    let mut command = Command::new(bin);
    command.arg("local").args(args);
    if !args.iter().any(|a| {
        a == "--load" || a == "--ops" || a.starts_with("--load=") || a.starts_with("--ops=")
    }) {
        command.args(["--load", default_load]);
    }
    let status = command
        .status()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        // Ended by a signal (Ctrl-C reaches both processes): not a failure of ours.
        None => ExitCode::SUCCESS,
    })
}

//! `cargo xtask console`: a local cluster under load, built with tokio-console support (feature
//! `console`, `--cfg tokio_unstable`, in its own target directory), and the line that attaches
//! `tokio-console` to it.

use std::process::ExitCode;

use crate::run::{parse, run_local};
use crate::util::{console_cargo, console_target_dir, run_step};

const USAGE: &str = "\
cargo xtask console [--features LIST] [-- DDSPLIT LOCAL ARGS]

Builds ddsplit with the `console` feature (release, RUSTFLAGS=\"--cfg tokio_unstable\", in
target/console) and runs `ddsplit local` with the arguments after `--` (default: --load 10m
--rate 100).

The console's aggregator is one thread: past what it can fold, events are dropped and the
console shows a sample. On a 2-core machine 100 operations a second lose nothing, 200 lose
about 180,000 events a minute (measured); the live line and /metrics
(ddsplit_console_dropped_events_total) say how many were dropped. Give --rate (or
--concurrency without --rate) to choose the load.
Attach from another terminal with

  tokio-console http://127.0.0.1:6669

(set TOKIO_CONSOLE_BIND=HOST:PORT to move the console server). Install tokio-console with
`cargo install --locked tokio-console`.
";

/// Load added when the arguments name none: long enough to look around in the console.
const DEFAULT_LOAD: &str = "10m";

/// Operations per second added when the arguments name no `--rate`: the console loses no event
/// at this load on a 2-core machine (measured; twice it loses about 180,000 events a minute).
const DEFAULT_RATE: &str = "100";

/// The console server's address unless `TOKIO_CONSOLE_BIND` moves it (console-subscriber's
/// default, where `tokio-console` looks without an argument).
const DEFAULT_CONSOLE_ADDR: &str = "127.0.0.1:6669";

/// Runs the command.
pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    let (features, local_args) = parse(args, USAGE)?;
    let Some(local_args) = local_args else {
        print!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    let features = match features {
        Some(more) => format!("console,{more}"),
        None => "console".to_string(),
    };
    let mut build = console_cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "ddsplit",
        "--features",
        &features,
    ]);
    run_step(
        "building ddsplit with tokio-console support (release, target/console)",
        &mut build,
    )?;
    let addr =
        std::env::var("TOKIO_CONSOLE_BIND").unwrap_or_else(|_| DEFAULT_CONSOLE_ADDR.to_string());
    eprintln!("==> attach from another terminal: tokio-console http://{addr}");
    if !on_path("tokio-console") {
        eprintln!("    (tokio-console is not installed: cargo install --locked tokio-console)");
    }
    let bin = console_target_dir().join("release").join("ddsplit");
    let mut local_args = local_args;
    if !local_args
        .iter()
        .any(|a| a == "--rate" || a.starts_with("--rate=") || a == "--concurrency")
    {
        local_args.extend(["--rate".to_string(), DEFAULT_RATE.to_string()]);
    }
    run_local(&bin, &local_args, DEFAULT_LOAD)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

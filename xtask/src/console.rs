//! `cargo xtask console`: a local cluster under load, built with tokio-console support (feature
//! `console`, `--cfg tokio_unstable`, in its own target directory), and the line that attaches
//! `tokio-console` to it.

use std::process::ExitCode;

use anyhow::{Context, bail};
use diag::recording::ConsoleRecording;
use diag::recording::replay::{Replay, serve};

use crate::run::{parse, run_local};
use crate::util::{console_cargo, console_target_dir, run_step};

const USAGE: &str = "\
cargo xtask console [--features LIST] [-- DDSPLIT LOCAL ARGS]
cargo xtask console --replay FILE [--speed X]
cargo xtask console --summary FILE

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

--replay FILE serves a console recording (`ddsplit local --diag-out DIR --console-record`
writes DIR/console.rec; `cargo xtask compare` keeps one per side when its console pass ran)
to tokio-console on the same address, its updates at the pace they were recorded (--speed 2:
twice as fast). Pausing in the console pauses the replay. Ctrl-C stops it.

--summary FILE prints what a recording says: the console's lints on the tasks, and (from the
resources.json written beside it) the resources tasks waited on, by where each was created,
with the waiting tasks.
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
    match args.first().map(String::as_str) {
        Some("--replay") => return replay(&args[1..]),
        Some("--summary") => return summary(&args[1..]),
        _ => {}
    }
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

/// `--replay FILE [--speed X]`: serves the recording until Ctrl-C.
fn replay(args: &[String]) -> anyhow::Result<ExitCode> {
    let mut file = None;
    let mut speed = 1.0;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--speed" => {
                let text = it.next().context("--speed takes a factor")?;
                speed = text
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0)
                    .with_context(|| format!("--speed takes a positive factor, not {text:?}"))?;
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other if file.is_none() && !other.starts_with('-') => file = Some(other.to_string()),
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    let file = file.with_context(|| format!("--replay takes a recording file\n\n{USAGE}"))?;
    let recording = ConsoleRecording::read(std::path::Path::new(&file))?;
    let updates = recording.updates.len();
    let addr =
        std::env::var("TOKIO_CONSOLE_BIND").unwrap_or_else(|_| DEFAULT_CONSOLE_ADDR.to_string());
    let runtime = tokio::runtime::Runtime::new().context("cannot start a runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (TOKIO_CONSOLE_BIND moves it)"))?;
        eprintln!(
            "==> replaying {updates} updates of {file} at {speed}x on {addr}; attach with \
             `tokio-console http://{addr}`; Ctrl-C stops"
        );
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        serve(Replay::new(recording, speed), listener, stop)
            .await
            .context("the replay server failed")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `--summary FILE`: the figures of a recording, as tables.
fn summary(args: &[String]) -> anyhow::Result<ExitCode> {
    let [file] = args else {
        bail!("--summary takes one recording file\n\n{USAGE}");
    };
    let path = std::path::Path::new(file);
    let recording = ConsoleRecording::read(path)?;
    let mut figures = diag::snapshot::ConsoleFigures::from_recording(&recording, 0);
    let waits = path.with_file_name(diag::waits::WAITS_FILE);
    if waits.is_file() {
        figures.resources = crate::passes::read_waits(&waits)?.resources;
    } else {
        println!(
            "(no {} beside it: the waits are not shown)",
            waits.display()
        );
    }
    println!(
        "{file}: {} updates, {} tasks, {} events dropped",
        figures.updates, figures.tasks, figures.dropped_events
    );
    println!("\n| resource | created at | resources | waits | mean wait | waited most by |");
    println!("|---|---|---:|---:|---:|---|");
    for r in &figures.resources {
        let mean_us = if r.waits > 0 {
            r.wait_ns / r.waits as f64 / 1e3
        } else {
            0.0
        };
        let by = match (r.top_kind(), r.top_task()) {
            (Some(kind), Some(task)) => format!("{kind} (in {task})"),
            (None, Some(task)) => task.to_string(),
            _ => String::new(),
        };
        println!(
            "| {} ({}) | {} | {} | {} | {mean_us:.1} µs | {by} |",
            r.concrete_type, r.kind, r.location, r.resources, r.waits
        );
    }
    println!("\n| lint | task | spawned at | tasks |");
    println!("|---|---|---|---:|");
    for l in &figures.lints {
        println!(
            "| {} | {} | {} | {} |",
            l.lint.says(),
            l.task,
            l.location,
            l.tasks
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

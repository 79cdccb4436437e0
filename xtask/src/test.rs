//! `cargo xtask test`: the whole test suite, as CI runs it: every crate of the workspace with
//! the default features, then DDSplit again with the `story` features (the same tests must
//! pass: the story changes performance, never behaviour), then DDSplit's probe tests in the
//! heap-profile build (`dhat-heap`, whose global allocator is dhat's), then the tokio-console
//! build (its own `--cfg tokio_unstable` target directory): diag's wait layer on a real
//! runtime, and the console protocol test, which
//! also checks the task probes' unstable runtime figures.

use std::process::ExitCode;

use std::time::Duration;

use crate::util::{cargo, console_cargo, run_step_within};

/// Runs the suite; extra arguments go to every `cargo test` (e.g. a test name filter).
pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "cargo xtask test [CARGO TEST ARGS]\n\nRuns the workspace's tests, then ddsplit's with --features story, \
             then its probe tests in the dhat-heap build, then the tokio-console tests \
             (--cfg tokio_unstable, target/console).\n\nEach step has at most {} minutes (set \
             {STEP_MINUTES_ENV} to change it); a step past it is killed with everything it started, \
             and the command fails naming it.",
            STEP_TIME_MAX.as_secs() / 60
        );
        return Ok(ExitCode::SUCCESS);
    }
    crate::setup::ensure(&crate::setup::TEST_REQUIREMENTS)?;
    let limit = step_limit()?;
    let steps: Vec<(&str, Vec<&str>)> = vec![
        ("workspace, default features", vec!["test", "--workspace"]),
        (
            "ddsplit with the story features",
            vec!["test", "-p", "ddsplit", "--features", "story"],
        ),
        (
            "ddsplit's probes in the heap-profile build",
            vec![
                "test",
                "-p",
                "ddsplit",
                "--features",
                "dhat-heap",
                "--test",
                "it",
                "probes::",
            ],
        ),
        (
            "diag's wait layer on a real runtime (console build)",
            vec![
                "test",
                "-p",
                "diag",
                "--features",
                "console",
                "--lib",
                "console::",
            ],
        ),
        (
            "tokio-console protocol test (console build)",
            vec![
                "test",
                "-p",
                "ddsplit",
                "--features",
                "console-test",
                "--test",
                "console",
            ],
        ),
    ];
    let count = steps.len();
    for (i, (name, step)) in steps.into_iter().enumerate() {
        let mut command = if name.contains("console build") {
            console_cargo()
        } else {
            cargo()
        };
        command.args(&step);
        if !args.is_empty() {
            command.arg("--");
            command.args(args);
        }
        if name.contains("story") {
            // Unoptimised story builds keep every 48 KiB `Result` of every async layer in its
            // own stack slot: the default 2 MiB test-thread stack is too small for them. The
            // optimised binaries do not need this; `cargo xtask sizes` shows where it goes.
            command.env("RUST_MIN_STACK", STORY_TEST_STACK_BYTES.to_string());
        }
        run_step_within(&format!("[{}/{count}] {name}", i + 1), &mut command, limit)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Longest one step may take. The longest step, the workspace's (a cold build, the cluster tests
/// and the xtask's builds of whole sides), takes about 15 minutes on a cold 2-core machine, so
/// only a hang reaches it.
const STEP_TIME_MAX: Duration = Duration::from_secs(30 * 60);

/// Environment variable that overrides [`STEP_TIME_MAX`], in minutes.
const STEP_MINUTES_ENV: &str = "XTASK_TEST_STEP_MINUTES";

fn step_limit() -> anyhow::Result<Duration> {
    match std::env::var(STEP_MINUTES_ENV) {
        Ok(text) => {
            let minutes: u64 = text.trim().parse().map_err(|_| {
                anyhow::anyhow!(
                    "{STEP_MINUTES_ENV} must be a whole number of minutes, not {text:?}"
                )
            })?;
            Ok(Duration::from_secs(minutes * 60))
        }
        Err(_) => Ok(STEP_TIME_MAX),
    }
}

/// Thread stack for the debug-build tests of the story features (see above).
const STORY_TEST_STACK_BYTES: usize = 8 * 1024 * 1024;

//! `cargo xtask test`: the whole test suite, as CI runs it: every crate of the workspace with
//! the default features, then DDSplit again with the `story` features (the same tests must
//! pass: the story changes performance, never behaviour), then DDSplit's probe tests in the
//! heap-profile build (`dhat-heap`, whose global allocator is dhat's).

use std::process::ExitCode;

use crate::util::{cargo, run_step};

/// Runs the suite; extra arguments go to every `cargo test` (e.g. a test name filter).
pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "cargo xtask test [CARGO TEST ARGS]\n\nRuns the workspace's tests, then ddsplit's with --features story."
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut steps: Vec<(&str, Vec<String>)> = vec![
        (
            "workspace, default features",
            strings(&["test", "--workspace"]),
        ),
        (
            "ddsplit with the story features",
            strings(&["test", "-p", "ddsplit", "--features", "story"]),
        ),
        (
            "ddsplit's probes in the heap-profile build",
            strings(&[
                "test",
                "-p",
                "ddsplit",
                "--features",
                "dhat-heap",
                "--test",
                "it",
                "probes::",
            ]),
        ),
    ];
    for (_, step) in &mut steps {
        if !args.is_empty() {
            step.push("--".into());
            step.extend(args.iter().cloned());
        }
    }
    for (name, step) in steps {
        let mut command = cargo();
        command.args(&step);
        if name.contains("story") {
            // Unoptimised story builds keep every 48 KiB `Result` of every async layer in its
            // own stack slot: the default 2 MiB test-thread stack is too small for them. The
            // optimised binaries do not need this; `cargo xtask sizes` shows where it goes.
            command.env("RUST_MIN_STACK", STORY_TEST_STACK_BYTES.to_string());
        }
        run_step(name, &mut command)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Thread stack for the debug-build tests of the story features (see above).
const STORY_TEST_STACK_BYTES: usize = 8 * 1024 * 1024;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

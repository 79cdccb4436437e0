//! `cargo xtask test`: the whole test suite, as CI runs it: every crate of the workspace with
//! the default features, then DDSplit again with the `story` features (the same tests must
//! pass: the story changes performance, never behaviour).

use std::process::ExitCode;

use crate::util::{cargo, run_step};

/// Runs the suite; extra arguments go to every `cargo test` (e.g. a test name filter).
pub fn run(args: &[String]) -> anyhow::Result<ExitCode> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("cargo xtask test [CARGO TEST ARGS]\n\nRuns the workspace's tests, then ddsplit's with --features story.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut steps: Vec<(&str, Vec<String>)> = vec![
        ("workspace, default features", strings(&["test", "--workspace"])),
        ("ddsplit with the story features", strings(&["test", "-p", "ddsplit", "--features", "story"])),
    ];
    for (_, step) in &mut steps {
        if !args.is_empty() {
            step.push("--".into());
            step.extend(args.iter().cloned());
        }
    }
    for (name, step) in steps {
        run_step(name, cargo().args(&step))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

//! `cargo xtask`: the workflows of the DDSplit workspace, one module per command.

use std::process::ExitCode;

mod compare;
mod console;
mod flame;
mod gate;
mod moves;
mod passes;
mod profile;
mod run;
mod setup;
mod side;
mod sizes;
mod test;
mod util;
mod wall_pairs;
mod zoo;

/// Tests that build whole sides take turns: they share the cores, and one seeds a target
/// directory from `target/debug` while the other may be building into it.
#[cfg(test)]
static WHOLE_BUILDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`WHOLE_BUILDS`] (a test that failed while holding it does not stop the others).
#[cfg(test)]
fn whole_builds_turn() -> std::sync::MutexGuard<'static, ()> {
    WHOLE_BUILDS.lock().unwrap_or_else(|e| e.into_inner())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("help");
    let rest = &args[args.len().min(1)..];
    let result = match command {
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        "run" => run::run(rest),
        "console" => console::run(rest),
        "sizes" => sizes::run(rest),
        "profile" => profile::run(rest),
        "compare" => compare::run(rest),
        "gate" => gate::run(rest),
        "moves" => moves::run(rest),
        "test" => test::run(rest),
        "zoo" => zoo::run(rest),
        other => Err(anyhow::anyhow!(
            "unknown command {other:?}; `cargo xtask help` lists them"
        )),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

const HELP: &str = "\
cargo xtask COMMAND [ARGS]

Commands:
  help        this text
  test        the whole test suite, default, story and tokio-console builds (what CI runs)
  run         a local cluster under load with a live summary, release build (--features LIST)
  console     the same, built for tokio-console, with the line that attaches it
  sizes       type, enum, future and stack frame sizes from a binary's DWARF (--help for options)
  moves       run a program under the memcpy tracer: where large values are copied, and which types
  profile     one build, the seeded workload under every probe, written as a snapshot directory
  compare     profile a baseline and a candidate and explain the difference, ranked (exit 1: regression)
  zoo         the regression zoo: known patches compared against their base, scored on the true cause
  gate        CI's comparison of the tree against the committed baseline in xtask/gate (--bless updates it)
";

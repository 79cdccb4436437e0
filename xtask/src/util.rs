//! Helpers shared by the xtask commands: the workspace's paths, running cargo and other
//! programs (with a time limit), git, and what machine this is.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How often a running child is checked for exit.
const CHILD_POLL: Duration = Duration::from_millis(20);

/// The workspace root (the parent of the xtask crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the xtask crate lives inside the workspace")
        .to_path_buf()
}

/// The target directory cargo uses for the workspace (honours `CARGO_TARGET_DIR`).
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// `cargo` (the one running us, if known) in the workspace root.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

/// Runs `cargo ARGS` in `root`, failing with the command line if it fails.
pub fn cargo_in(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = cargo()
        .current_dir(root)
        .args(args)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed", args.join(" "));
    }
    Ok(())
}

/// Runs `command` as the step `name`, failing with the step's name if it fails.
pub fn run_step(name: &str, command: &mut Command) -> anyhow::Result<()> {
    eprintln!("==> {name}");
    let status = command
        .status()
        .with_context(|| format!("starting {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

/// Runs `command` as the step `name` in a process group of its own, killing the whole group
/// (cargo, the test binaries and every server they started) if it runs past `limit`, so a hang
/// anywhere ends with the step's name instead of running CI out of time.
pub fn run_step_within(name: &str, command: &mut Command, limit: Duration) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    eprintln!("==> {name} (at most {} min)", limit.as_secs().div_ceil(60));
    let started = Instant::now();
    let mut child = command
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= limit {
            // The group's id is the child's pid (process_group(0)); `kill -KILL -PGID`.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            bail!(
                "{name} did not finish within {} min and was killed with everything it started: \
                 the last test named above is the one that hangs",
                limit.as_secs().div_ceil(60)
            );
        }
        std::thread::sleep(STEP_POLL);
    };
    let seconds = started.elapsed().as_secs();
    if !status.success() {
        bail!("{name} failed ({status}) after {seconds} s");
    }
    eprintln!("<== {name}: passed in {seconds} s");
    Ok(())
}

/// How often a running step is checked.
const STEP_POLL: Duration = Duration::from_millis(200);

/// Runs `command` with its output going to `stdout` and `stderr` files, killing it after
/// `limit`. Returns its exit status.
pub fn run_logged(
    command: &mut Command,
    stdout: &Path,
    stderr: &Path,
    limit: Duration,
) -> anyhow::Result<ExitStatus> {
    let out = std::fs::File::create(stdout)
        .with_context(|| format!("cannot create {}", stdout.display()))?;
    let err = std::fs::File::create(stderr)
        .with_context(|| format!("cannot create {}", stderr.display()))?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot start {:?}", command.get_program()))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{:?} did not finish within {} s and was killed (its output: {})",
                command.get_program(),
                limit.as_secs(),
                stderr.display()
            );
        }
        std::thread::sleep(CHILD_POLL);
    }
}

/// The last lines of a log file, for an error message.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Output of `git ARGS` in `dir`, trimmed; `None` when git fails.
pub fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The CPU model and core count: wall times compare only on one machine.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {model}")
}

/// The flag tokio needs to report its tasks to tokio-console (and to give its unstable metrics).
pub const CONSOLE_RUSTFLAGS: &str = "--cfg tokio_unstable";

/// Where console builds go: their own target directory, so the different `RUSTFLAGS` do not
/// rebuild the ordinary one.
pub fn console_target_dir() -> PathBuf {
    target_dir(&workspace_root()).join("console")
}

/// [`cargo`] for a console build: `RUSTFLAGS` with [`CONSOLE_RUSTFLAGS`] added, and
/// [`console_target_dir`]. Give it the subcommand first (`build`, `test`).
pub fn console_cargo() -> Command {
    let mut command = cargo();
    let flags = match std::env::var("RUSTFLAGS") {
        Ok(existing) if !existing.trim().is_empty() => format!("{existing} {CONSOLE_RUSTFLAGS}"),
        _ => CONSOLE_RUSTFLAGS.to_string(),
    };
    command.env("RUSTFLAGS", flags);
    command.env("CARGO_TARGET_DIR", console_target_dir());
    command
}

/// `dir` as an absolute path: the passes run programs in other directories, so a relative
/// `--out` would be read against theirs.
pub fn absolute_dir(dir: &str) -> anyhow::Result<PathBuf> {
    std::path::absolute(dir).with_context(|| format!("--out {dir:?} is not a usable path"))
}

/// The value after a flag on the command line, or an error naming the flag, then `usage`.
pub fn flag_value(
    args: &mut std::slice::Iter<'_, String>,
    flag: &str,
    usage: &str,
) -> anyhow::Result<String> {
    args.next()
        .cloned()
        .with_context(|| format!("{flag} takes a value\n\n{usage}"))
}

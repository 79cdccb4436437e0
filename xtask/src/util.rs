//! Helpers shared by the xtask commands: finding the workspace, running cargo and steps.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// The workspace root (the parent of the xtask crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the xtask crate lives inside the workspace")
        .to_path_buf()
}

/// `cargo` (the one running us, if known) in the workspace root.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
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

/// The flag tokio needs to report its tasks to tokio-console (and to give its unstable metrics).
pub const CONSOLE_RUSTFLAGS: &str = "--cfg tokio_unstable";

/// Where console builds go: their own target directory, so the different `RUSTFLAGS` do not
/// rebuild the ordinary one.
pub fn console_target_dir() -> PathBuf {
    crate::moves::target_dir(&workspace_root()).join("console")
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

//! What the tests need beyond the Rust toolchain, installed when missing: Debian's
//! `prometheus` (a test scrapes DDSplit with a real Prometheus server) and `valgrind` (the
//! gate counts instructions with callgrind). A fresh Debian machine has apt; elsewhere the
//! error says what to install.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// A program the tests run, and the Debian package that has it.
#[derive(Debug, Clone, Copy)]
pub struct Requirement {
    /// The program's path once installed.
    pub program: &'static str,
    /// The Debian package.
    pub package: &'static str,
    /// Who needs it, for messages.
    pub needed_by: &'static str,
}

/// What `cargo xtask test` needs.
pub const TEST_REQUIREMENTS: [Requirement; 1] = [Requirement {
    program: "/usr/bin/prometheus",
    package: "prometheus",
    needed_by: "the test that scrapes DDSplit with a real Prometheus server",
}];

/// What `cargo xtask gate` needs.
pub const GATE_REQUIREMENTS: [Requirement; 1] = [Requirement {
    program: "/usr/bin/valgrind",
    package: "valgrind",
    needed_by: "the gate's instruction counts (callgrind)",
}];

/// Installs the missing programs of `requirements` with apt (as root, or through sudo).
pub fn ensure(requirements: &[Requirement]) -> anyhow::Result<()> {
    let missing: Vec<&Requirement> = requirements
        .iter()
        .filter(|r| !Path::new(r.program).exists())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|r| r.package).collect();
    for r in &missing {
        eprintln!(
            "==> {} is missing ({}): installing Debian's `{}`",
            r.program, r.needed_by, r.package
        );
    }
    if !Path::new("/usr/bin/apt-get").exists() {
        bail!(
            "{} not found and this machine has no apt-get: install {} by hand",
            missing
                .iter()
                .map(|r| r.program)
                .collect::<Vec<_>>()
                .join(", "),
            packages.join(", ")
        );
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        let status = command
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(args)
            .status()
            .context("cannot run apt-get")?;
        if !status.success() {
            bail!("`apt-get {}` failed ({status})", args.join(" "));
        }
        Ok(())
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(&packages);
    apt(&install)?;
    for r in &missing {
        if !Path::new(r.program).exists() {
            bail!(
                "installed `{}` but {} is still missing",
                r.package,
                r.program
            );
        }
    }
    Ok(())
}

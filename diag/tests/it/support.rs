//! Test harness: builds the fixture programs and the preload library once, in a target
//! directory of their own, and runs fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("diag/ is in the workspace")
        .to_path_buf()
}

/// Target directory for the fixtures: beside the test binary's own (`target/diag-fixtures`),
/// so the nested cargo never waits on the lock of the cargo running the tests.
fn fixtures_target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/it-HASH
    let target = exe
        .ancestors()
        .nth(3)
        .expect("test binaries live in target/<profile>/deps");
    target.join("diag-fixtures")
}

fn cargo_build(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", fixtures_target_dir())
        .arg("build")
        .args(args)
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo build {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Builds the fixtures and the preload library (profiling profile), once per test run.
fn built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        cargo_build(&[
            "--profile",
            "profiling",
            "-p",
            "diag-fixtures",
            "-p",
            "diag-memtrace",
        ]);
        fixtures_target_dir().join("profiling")
    })
}

/// The path of fixture `name` (built with full debug info).
pub fn fixture(name: &str) -> PathBuf {
    built().join(name)
}

/// The path of fixture `name` built with the `release` profile (line tables, no types).
pub fn fixture_without_types(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            cargo_build(&["--release", "-p", "diag-fixtures", "--bin", "no-copies"]);
            fixtures_target_dir().join("release")
        })
        .join(name)
}

/// The preload library.
pub fn preload() -> PathBuf {
    built().join("libdiag_memtrace.so")
}

/// The `type NAME SIZE` lines fixture `name` prints on `--print-sizes`: `size_of` as the
/// compiler says.
pub fn printed_sizes(name: &str) -> Vec<(String, u64)> {
    let output = Command::new(fixture(name))
        .arg("--print-sizes")
        .output()
        .expect("fixture runs");
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|line| {
            let rest = line.strip_prefix("type ").expect("a `type NAME SIZE` line");
            let (name, size) = rest.rsplit_once(' ').expect("NAME SIZE");
            (name.to_string(), size.parse().expect("a size"))
        })
        .collect()
}

/// The size fixture `name` prints for type `type_name`.
pub fn printed_size(name: &str, type_name: &str) -> u64 {
    printed_sizes(name)
        .into_iter()
        .find(|(n, _)| n == type_name)
        .unwrap_or_else(|| panic!("{name} --print-sizes has no {type_name}"))
        .1
}

/// A fresh temporary directory.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

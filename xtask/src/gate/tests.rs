//! The gate fails closed: what it cannot check is exit 2 with the reason, never a pass.

use std::os::unix::fs::PermissionsExt as _;

use diag::snapshot::{
    BuildIdentity, InstructionFigures, PassOutcome, PassStatus, Snapshot, Workload,
};

use super::blockers;
use crate::util::{cargo, workspace_root};

fn snapshot(rustc: &str, passes: &[(&str, &str)], cpu_features: &[&str]) -> Snapshot {
    let mut s = Snapshot::new(
        BuildIdentity {
            rustc: rustc.into(),
            ..BuildIdentity::default()
        },
        Workload::default(),
    );
    s.passes = passes
        .iter()
        .map(|(name, status)| PassOutcome {
            name: name.to_string(),
            status: match *status {
                "ok" => PassStatus::Ok,
                "skipped" => PassStatus::Skipped,
                _ => PassStatus::Failed,
            },
            detail: format!("{name} detail"),
            seconds: 1.0,
        })
        .collect();
    s.instructions = Some(InstructionFigures {
        cpu_features: cpu_features.iter().map(|f| f.to_string()).collect(),
        ..InstructionFigures::default()
    });
    s
}

const ALL_OK: [(&str, &str); 4] = [
    ("sizes", "ok"),
    ("heap", "ok"),
    ("moves", "ok"),
    ("instructions", "ok"),
];

#[test]
fn a_pass_the_baseline_has_and_this_run_lacks_blocks_unless_skipped() {
    let baseline = snapshot("rustc 1", &ALL_OK, &["avx2"]);
    let same = snapshot("rustc 1", &ALL_OK, &["avx2"]);
    assert!(blockers(&baseline, &same, &[]).is_empty());

    let failed = snapshot(
        "rustc 1",
        &[("sizes", "ok"), ("moves", "ok"), ("instructions", "failed")],
        &["avx2"],
    );
    let found = blockers(&baseline, &failed, &[]);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("`heap` did not run"), "{found:?}");
    assert!(
        found[1].contains("`instructions` failed: instructions detail"),
        "{found:?}"
    );
    assert!(blockers(&baseline, &failed, &["heap", "instructions"]).is_empty());
}

#[test]
fn another_toolchain_or_simd_path_blocks() {
    let baseline = snapshot("rustc 1.95.0", &ALL_OK, &["avx2", "ssse3"]);
    let toolchain = snapshot("rustc 1.96.0", &ALL_OK, &["avx2", "ssse3"]);
    let found = blockers(&baseline, &toolchain, &[]);
    assert!(
        found.len() == 1 && found[0].contains("toolchain is not the baseline's"),
        "{found:?}"
    );
    let simd = snapshot("rustc 1.95.0", &ALL_OK, &["ssse3"]);
    let found = blockers(&baseline, &simd, &[]);
    assert!(
        found.len() == 1 && found[0].contains("CPU features"),
        "{found:?}"
    );
    assert!(blockers(&baseline, &simd, &["instructions"]).is_empty());
}

/// The real command with a `valgrind` that fails first on `PATH`: the gate builds the tree,
/// makes its counting run, and must end with exit 2 naming the instructions pass.
#[test]
fn the_gate_with_a_broken_valgrind_exits_2_and_names_the_pass() {
    let _turn = crate::whole_builds_turn();
    let bin = tempfile::tempdir().unwrap();
    let valgrind = bin.path().join("valgrind");
    std::fs::write(
        &valgrind,
        "#!/bin/sh\necho 'valgrind: broken on purpose' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&valgrind, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = cargo()
        .current_dir(workspace_root())
        .env("PATH", path)
        .args(["xtask", "gate", "--no-wall", "--skip", "heap,moves,sizes"])
        .output()
        .expect("cargo xtask gate runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("pass `instructions` failed") && stdout.contains("broken on purpose"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

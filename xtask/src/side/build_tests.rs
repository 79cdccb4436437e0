//! Every built side is the code it names: two commits that differ in one string build into two
//! binaries, each reporting its own identity, and a build of the main tree afterwards is not
//! the second commit's. The commits are made in a clone of this repository's `HEAD`, so the test
//! exercises revision mode (worktrees with their own target directories) end to end.
//!
//! Built with the `dev` profile, seeded with this workspace's compiled dependencies, so the test
//! compiles only ddsplit and diag three times (the real sides use the `profiling` profile; the
//! plumbing is the same).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{BuildOptions, SideSpec, build_in, seed_target, tree_of, verify};
use crate::util::{target_dir, workspace_root};

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=test", "-c", "user.email=test@localhost"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The words of `ddsplit --help` the two commits change (the `build-info` command's summary).
const SUMMARY: &str = "Print this binary's build identity";

/// Commits `ddsplit --help` with `from` replaced by `to`; returns the commit.
fn commit_replacing(repo: &Path, from: &str, to: &str) -> String {
    let cli = repo.join("ddsplit/src/bin/ddsplit/cli.rs");
    let text = std::fs::read_to_string(&cli).unwrap();
    assert!(text.contains(from), "{from:?} is not in {}", cli.display());
    std::fs::write(&cli, text.replacen(from, to, 1)).unwrap();
    git(repo, &["commit", "--quiet", "-am", to]);
    git(repo, &["rev-parse", "HEAD"])
}

fn help(binary: &Path) -> String {
    let output = Command::new(binary).arg("--help").output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn bytes_contain(binary: &Path, needle: &str) -> bool {
    let bytes = std::fs::read(binary).unwrap();
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn dev() -> BuildOptions {
    BuildOptions {
        profile: "dev",
        dhat: false,
    }
}

#[test]
fn two_commits_build_into_two_binaries_each_with_its_own_identity() {
    let _turn = crate::whole_builds_turn();
    let dir = tempfile::tempdir().unwrap();
    let repo: PathBuf = dir.path().join("repo");
    let root = workspace_root();
    git(
        dir.path(),
        &[
            "clone",
            "--quiet",
            "--shared",
            &root.display().to_string(),
            "repo",
        ],
    );
    seed_target(&target_dir(&root), &repo.join("target"), "dev").unwrap();
    let first = commit_replacing(&repo, SUMMARY, &format!("{SUMMARY} (mark-first)"));
    let second = commit_replacing(&repo, "(mark-first)", "(mark-second)");
    let say = |m: &str| eprintln!("  {m}");

    let a = build_in(&repo, &SideSpec::Revision(first.clone()), dev(), &say).unwrap();
    let b = build_in(&repo, &SideSpec::Revision(second.clone()), dev(), &say).unwrap();
    assert_ne!(
        std::fs::read(&a.binary).unwrap(),
        std::fs::read(&b.binary).unwrap(),
        "the two revisions built the same binary"
    );
    for (built, revision, mine, other) in [
        (&a, &first, "mark-first", "mark-second"),
        (&b, &second, "mark-second", "mark-first"),
    ] {
        assert_eq!(built.identity.revision.as_deref(), Some(revision.as_str()));
        assert!(!built.identity.dirty);
        let text = help(&built.binary);
        assert!(text.contains(mine), "{mine} missing from --help: {text}");
        assert!(
            !text.contains(other),
            "{other} in the other's --help: {text}"
        );
        assert!(!bytes_contain(&built.binary, other));
    }
    assert_ne!(a.identity.source_hash, b.identity.source_hash);

    // One side's binary is refused as the other's, with both identities.
    let tree_a = tree_of(&repo, &SideSpec::Revision(first.clone()), "dev", &say).unwrap();
    let refused = verify(&b.binary, &tree_a, &[]).unwrap_err().to_string();
    assert!(
        refused.contains("is not the build it should be"),
        "{refused}"
    );
    assert!(
        refused.contains(&first) && refused.contains(&second),
        "{refused}"
    );

    // The main tree, back at the first commit, builds as itself, not as the second commit.
    git(&repo, &["checkout", "--quiet", &first]);
    let tree = build_in(&repo, &SideSpec::Features(Vec::new()), dev(), &say).unwrap();
    assert_eq!(tree.identity.revision.as_deref(), Some(first.as_str()));
    assert_eq!(tree.identity.source_hash, a.identity.source_hash);
    assert!(help(&tree.binary).contains("mark-first"));
    assert!(!bytes_contain(&tree.binary, "mark-second"));
}

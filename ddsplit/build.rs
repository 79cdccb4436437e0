//! Embeds the build's identity (`ddsplit build-info`): the git revision, whether the sources
//! differed from it, a hash of the sources, the features, the compiler and the profile. The
//! xtask reads it back from every binary it runs, so a stale build cannot stand in for a side.

use std::path::{Path, PathBuf};
use std::process::Command;

use ddsplit_build_info::{BuildInfo, FEATURES_MANIFEST, SOURCE_INPUTS, declared_features};

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("ddsplit lives inside the workspace")
        .to_path_buf();
    for input in SOURCE_INPUTS {
        if root.join(input).exists() {
            println!("cargo:rerun-if-changed={}", root.join(input).display());
        }
    }
    for watched in git_refs(&root) {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    let manifest = std::fs::read_to_string(root.join(FEATURES_MANIFEST))
        .expect("ddsplit's manifest is readable");
    let info = BuildInfo {
        revision: git(&root, &["rev-parse", "HEAD"]),
        dirty: git_dirty(&root),
        source_hash: ddsplit_build_info::source_hash(&root).expect("the sources are readable"),
        features: declared_features(&manifest)
            .into_iter()
            .filter(|f| std::env::var_os(feature_env(f)).is_some())
            .collect(),
        rustc: rustc_version(),
        profile: profile(),
    };
    let out = PathBuf::from(env("OUT_DIR")).join("build-info.txt");
    std::fs::write(&out, info.to_text()).expect("OUT_DIR is writable");
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}

/// `CARGO_FEATURE_STORY_ASYNC_TRAIT` for `story-async-trait`.
fn feature_env(feature: &str) -> String {
    format!("CARGO_FEATURE_{}", feature.to_uppercase().replace('-', "_"))
}

/// The profile's name: `OUT_DIR` is `<target>/<profile>/build/ddsplit-<hash>/out`
/// (`PROFILE` says only `release` or `debug`, also for custom profiles).
fn profile() -> String {
    let out = PathBuf::from(env("OUT_DIR"));
    let name = out
        .ancestors()
        .nth(3)
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned());
    match name.as_deref() {
        Some("debug") => "dev".into(),
        Some(name) => name.into(),
        None => env("PROFILE"),
    }
}

fn rustc_version() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "rustc unknown".into())
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .current_dir(root)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !text.is_empty()).then_some(text)
}

/// True when a source input differs from the revision (edited, staged or untracked).
fn git_dirty(root: &Path) -> bool {
    let mut args = vec!["status", "--porcelain", "--"];
    args.extend(SOURCE_INPUTS);
    git(root, &args).is_some()
}

/// The files that change when the revision does: HEAD, the branch it points at, packed refs.
/// (Not the index: `git status` rewrites it, and a rerun rebuilds the crate.)
fn git_refs(root: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut add = |git_path: &str| {
        if let Some(p) = git(
            root,
            &[
                "rev-parse",
                "--path-format=absolute",
                "--git-path",
                git_path,
            ],
        ) {
            let p = PathBuf::from(p);
            if p.exists() {
                paths.push(p);
            }
        }
    };
    add("HEAD");
    add("packed-refs");
    if let Some(branch) = git(root, &["symbolic-ref", "-q", "HEAD"]) {
        add(&branch);
    }
    paths
}

//! One side of a comparison: a SPEC (`features:LIST` of this tree, a git revision, or a saved
//! snapshot directory), built into a `ddsplit` binary with full debug info, or loaded.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use diag::snapshot::{BuildIdentity, SNAPSHOT_FILE};

use crate::util::{git, machine, rustc_version, target_dir, workspace_root};

/// The cargo profile sides are built with: release code, full debug info (the sizes report
/// reads DWARF; the CPU, heap and copy reports symbolize against it).
pub const SIDE_PROFILE: &str = "profiling";

/// The ddsplit feature that switches the global allocator to dhat's heap profiler.
pub const DHAT_FEATURE: &str = "dhat-heap";

/// What the user asked to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SideSpec {
    /// This working tree with these ddsplit features (`features:` is the default build).
    Features(Vec<String>),
    /// A git revision, built in a worktree under `target/`.
    Revision(String),
    /// A snapshot directory written by `cargo xtask profile` or an earlier compare.
    Saved(PathBuf),
}

impl SideSpec {
    /// Parses `features:LIST`, a directory holding a snapshot, or a git revision.
    pub fn parse(text: &str) -> anyhow::Result<SideSpec> {
        if let Some(list) = text.strip_prefix("features:") {
            let features = list
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect();
            return Ok(SideSpec::Features(features));
        }
        let path = Path::new(text);
        if path.is_dir() {
            if !path.join(SNAPSHOT_FILE).is_file() {
                bail!(
                    "{text} is a directory without a {SNAPSHOT_FILE}: give a snapshot directory \
                     (written by `cargo xtask profile`), a git revision, or features:LIST"
                );
            }
            return Ok(SideSpec::Saved(path.to_path_buf()));
        }
        let root = workspace_root();
        match git(
            &root,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{text}^{{commit}}"),
            ],
        ) {
            Some(rev) if !rev.is_empty() => Ok(SideSpec::Revision(text.to_string())),
            _ => bail!(
                "{text:?} is neither features:LIST, a snapshot directory, nor a git revision of \
                 this repository"
            ),
        }
    }

    /// How reports name this side.
    pub fn label(&self) -> String {
        match self {
            SideSpec::Features(f) => format!("features:{}", f.join(",")),
            SideSpec::Revision(r) => r.clone(),
            SideSpec::Saved(p) => p.display().to_string(),
        }
    }
}

/// What a built binary can do: older revisions lack some probes' flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct Capabilities {
    /// `--diag-out DIR` (probe results written at the end of a run).
    pub diag_out: bool,
    /// `--cpu-profile`.
    pub cpu_profile: bool,
    /// `--no-admin`.
    pub no_admin: bool,
    /// `--fsync`.
    pub fsync: bool,
}

/// A side built into binaries.
#[derive(Debug, Clone)]
pub struct Built {
    /// The side's name in reports.
    pub label: String,
    /// The `ddsplit` binary.
    pub binary: PathBuf,
    /// The same build with dhat's heap profiler as the global allocator, when the tree has it.
    pub dhat_binary: Option<PathBuf>,
    /// Revision, features, toolchain, machine.
    pub identity: BuildIdentity,
    /// Which probe flags the binary has.
    pub caps: Capabilities,
}

/// Builds a side that is not a saved snapshot. `say` reports what is being built.
pub fn build(spec: &SideSpec, say: &dyn Fn(&str)) -> anyhow::Result<Built> {
    let root = workspace_root();
    let (tree, features, revision, dirty) = match spec {
        SideSpec::Features(features) => {
            let revision = git(&root, &["rev-parse", "HEAD"]);
            let dirty = git(&root, &["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
            (root.clone(), features.clone(), revision, dirty)
        }
        SideSpec::Revision(rev) => {
            let full = git(&root, &["rev-parse", &format!("{rev}^{{commit}}")])
                .with_context(|| format!("cannot resolve revision {rev}"))?;
            (worktree(&root, &full, say)?, Vec::new(), Some(full), false)
        }
        SideSpec::Saved(_) => bail!("a saved snapshot is not built"),
    };
    let slug = slug(&spec.label());
    let out_dir = target_dir(&root).join("xtask").join("bin").join(&slug);
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;

    say(&format!("building {} ({SIDE_PROFILE})", spec.label()));
    let binary = build_one(&root, &tree, &features, &out_dir.join("ddsplit"))?;
    let dhat_binary = if has_feature(&tree, DHAT_FEATURE) {
        say(&format!("building {} with {DHAT_FEATURE}", spec.label()));
        // dhat is the global allocator of the heap build: the `alloc-*` features, which pick
        // another one, stay out (the sites are the program's, whatever serves them).
        let mut with_dhat: Vec<String> = features
            .iter()
            .filter(|f| !f.starts_with("alloc-"))
            .cloned()
            .collect();
        with_dhat.push(DHAT_FEATURE.into());
        Some(build_one(
            &root,
            &tree,
            &with_dhat,
            &out_dir.join("ddsplit-dhat"),
        )?)
    } else {
        None
    };
    let caps = capabilities(&binary)?;
    Ok(Built {
        label: spec.label(),
        binary,
        dhat_binary,
        identity: BuildIdentity {
            label: spec.label(),
            revision,
            dirty,
            features,
            rustc: rustc_version(),
            profile: SIDE_PROFILE.into(),
            machine: machine(),
        },
        caps,
    })
}

/// Builds ddsplit of `tree` with `features` and copies the binary to `dest` (builds of other
/// features and revisions overwrite cargo's own output path).
fn build_one(
    root: &Path,
    tree: &Path,
    features: &[String],
    dest: &Path,
) -> anyhow::Result<PathBuf> {
    let manifest = tree.join("Cargo.toml");
    let manifest = manifest.to_string_lossy();
    let features = features.join(",");
    let mut args = vec![
        "build",
        "--quiet",
        "--manifest-path",
        &manifest,
        "-p",
        "ddsplit",
    ];
    let has_profile = std::fs::read_to_string(tree.join("Cargo.toml"))
        .is_ok_and(|t| t.contains(&format!("[profile.{SIDE_PROFILE}]")));
    if has_profile {
        args.extend(["--profile", SIDE_PROFILE]);
    } else {
        args.push("--release");
    }
    if !features.is_empty() {
        args.extend(["--features", &features]);
    }
    // One target directory for every tree: dependencies build once.
    let target = target_dir(root);
    let status = crate::util::cargo()
        .current_dir(tree)
        .env("CARGO_TARGET_DIR", &target)
        .args(&args)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!(
            "building ddsplit of {} with features [{features}] failed",
            tree.display()
        );
    }
    let built = target
        .join(if has_profile { SIDE_PROFILE } else { "release" })
        .join("ddsplit");
    std::fs::copy(&built, dest)
        .with_context(|| format!("cannot copy {} to {}", built.display(), dest.display()))?;
    Ok(dest.to_path_buf())
}

/// A worktree of `revision` under `target/xtask/worktrees`, made once.
fn worktree(root: &Path, revision: &str, say: &dyn Fn(&str)) -> anyhow::Result<PathBuf> {
    let dir = target_dir(root)
        .join("xtask")
        .join("worktrees")
        .join(&revision[..revision.len().min(12)]);
    if dir.join("Cargo.toml").is_file() {
        return Ok(dir);
    }
    say(&format!("checking out {revision} in {}", dir.display()));
    let status = Command::new("git")
        .current_dir(root)
        .args(["worktree", "add", "--quiet", "--force", "--detach"])
        .arg(&dir)
        .arg(revision)
        .status()
        .context("cannot run git")?;
    if !status.success() {
        bail!("`git worktree add {} {revision}` failed", dir.display());
    }
    Ok(dir)
}

/// True when the ddsplit package of `tree` declares `feature`.
fn has_feature(tree: &Path, feature: &str) -> bool {
    std::fs::read_to_string(tree.join("ddsplit").join("Cargo.toml")).is_ok_and(|t| {
        t.lines()
            .any(|l| l.trim_start().starts_with(&format!("{feature} =")))
    })
}

/// Reads `ddsplit local --help` for the flags the passes use.
fn capabilities(binary: &Path) -> anyhow::Result<Capabilities> {
    let output = Command::new(binary)
        .args(["local", "--help"])
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let help = String::from_utf8_lossy(&output.stdout);
    Ok(Capabilities {
        diag_out: help.contains("--diag-out"),
        cpu_profile: help.contains("--cpu-profile"),
        no_admin: help.contains("--no-admin"),
        fsync: help.contains("--fsync"),
    })
}

/// A file-name-safe form of a label.
pub fn slug(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "default".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_into_features_directories_and_revisions() {
        assert_eq!(
            SideSpec::parse("features:").unwrap(),
            SideSpec::Features(vec![])
        );
        assert_eq!(
            SideSpec::parse("features:story, alloc-mimalloc").unwrap(),
            SideSpec::Features(vec!["story".into(), "alloc-mimalloc".into()])
        );
        assert_eq!(
            SideSpec::parse("HEAD").unwrap(),
            SideSpec::Revision("HEAD".into())
        );
        let err = SideSpec::parse("no-such-revision-or-dir")
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither features:LIST"), "{err}");
        let dir = std::env::temp_dir();
        let err = SideSpec::parse(&dir.display().to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("without a snapshot.json"), "{err}");
    }

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(
            slug("features:story,alloc-mimalloc"),
            "features_story_alloc-mimalloc"
        );
        assert_eq!(slug(""), "default");
    }
}

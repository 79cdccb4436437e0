//! One side of a comparison: a SPEC (`features:LIST` of this tree, a git revision, or a saved
//! snapshot directory), built into a `ddsplit` binary with full debug info, or loaded.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use ddsplit_build_info::{BuildInfo, FEATURES_MANIFEST, feature_closure, source_hash};
use diag::snapshot::{BuildIdentity, SNAPSHOT_FILE};

use crate::util::{git, machine, target_dir, workspace_root};

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
    /// A git revision, built in a worktree of its own (see [`WORKTREES_DIR`]).
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
    /// `--blocking-profile`.
    pub blocking_profile: bool,
    /// `--console-record` (the flag; only a console build can record).
    pub console_record: bool,
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

/// Where revision sides are checked out, relative to the workspace: outside every target
/// directory, each worktree with a target directory of its own (see [`tree_of`]).
pub const WORKTREES_DIR: &str = ".xtask/worktrees";

/// How a side is built.
#[derive(Debug, Clone, Copy)]
pub struct BuildOptions {
    /// The cargo profile ([`SIDE_PROFILE`] for every pass; tests use cheaper ones).
    pub profile: &'static str,
    /// Also build the `dhat-heap` twin (for the heap pass).
    pub dhat: bool,
}

impl Default for BuildOptions {
    fn default() -> BuildOptions {
        BuildOptions {
            profile: SIDE_PROFILE,
            dhat: true,
        }
    }
}

/// Builds a side of this workspace that is not a saved snapshot. `say` reports progress.
pub fn build(spec: &SideSpec, say: &dyn Fn(&str)) -> anyhow::Result<Built> {
    build_in(&workspace_root(), spec, BuildOptions::default(), say)
}

/// Builds `spec` of the repository at `root` (its `dhat-heap` twin too if `options` say), and
/// proves that each binary is the code the side names: its embedded build identity must carry
/// the source hash of the tree it was built from, the side's features, and for a revision that
/// revision with a clean tree. A mismatch is an error with both identities.
pub fn build_in(
    root: &Path,
    spec: &SideSpec,
    options: BuildOptions,
    say: &dyn Fn(&str),
) -> anyhow::Result<Built> {
    let tree = tree_of(root, spec, options.profile, say)?;
    let out_dir = binaries_dir(root, spec)?;

    say(&format!("building {} ({})", spec.label(), options.profile));
    let binary = build_one(
        &tree,
        options.profile,
        &tree.features,
        &out_dir.join("ddsplit"),
    )?;
    let info = verify(&binary, &tree, &tree.features)?;
    let dhat_binary = if options.dhat && has_feature(&tree.dir, DHAT_FEATURE) {
        say(&format!("building {} with {DHAT_FEATURE}", spec.label()));
        // dhat is the global allocator of the heap build: the `alloc-*` features, which pick
        // another one, stay out (the sites are the program's, whatever serves them).
        let mut with_dhat: Vec<String> = tree
            .features
            .iter()
            .filter(|f| !f.starts_with("alloc-"))
            .cloned()
            .collect();
        with_dhat.push(DHAT_FEATURE.into());
        let dhat = build_one(
            &tree,
            options.profile,
            &with_dhat,
            &out_dir.join("ddsplit-dhat"),
        )?;
        verify(&dhat, &tree, &with_dhat)?;
        Some(dhat)
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
            revision: info.revision,
            dirty: info.dirty,
            features: tree.features.clone(),
            rustc: info.rustc,
            profile: info.profile,
            machine: machine(),
            source_hash: Some(info.source_hash),
        },
        caps,
    })
}

/// The ddsplit feature of the tokio-console build (needs `--cfg tokio_unstable`).
pub const CONSOLE_FEATURE: &str = "console";

/// Builds the tokio-console twin of a built side (its features and [`CONSOLE_FEATURE`], release,
/// `--cfg tokio_unstable`, in the console target directory of the side's tree, which no other
/// flags build into), proves it is the side's code, and returns the binary. Only the console
/// pass needs it, so it is built only when that pass runs.
pub fn build_console_twin(
    root: &Path,
    spec: &SideSpec,
    say: &dyn Fn(&str),
) -> anyhow::Result<PathBuf> {
    let tree = tree_of(root, spec, CONSOLE_PROFILE, say)?;
    if !has_feature(&tree.dir, CONSOLE_FEATURE) {
        bail!(
            "{} has no `{CONSOLE_FEATURE}` feature: this revision cannot record the console",
            spec.label()
        );
    }
    let target = tree.target.join("console");
    let workspace_console = crate::util::console_target_dir();
    if !target.exists() && target != workspace_console {
        say("seeding the console build's target directory with the compiled dependencies");
        seed_target(&workspace_console, &target, CONSOLE_PROFILE)?;
    }
    let mut features = tree.features.clone();
    features.push(CONSOLE_FEATURE.into());
    let out_dir = binaries_dir(root, spec)?;
    say(&format!(
        "building {} with {CONSOLE_FEATURE} (--cfg tokio_unstable)",
        spec.label()
    ));
    let mut cargo = crate::util::console_cargo();
    cargo.env_remove("CARGO_TARGET_DIR");
    let binary = build_into(
        &tree,
        &target,
        CONSOLE_PROFILE,
        &features,
        &out_dir.join("ddsplit-console"),
        cargo,
    )?;
    verify(&binary, &tree, &features)?;
    Ok(binary)
}

/// The cargo profile of console builds: the one `cargo xtask console` and the console tests
/// build, so the workspace's console target directory serves all of them.
pub const CONSOLE_PROFILE: &str = "release";

/// Where a side's binaries are copied out of cargo's output (created): builds of other features
/// overwrite cargo's own path, these stay. Making a new one first removes the least recently
/// used beyond [`BINARIES_KEPT`].
fn binaries_dir(root: &Path, spec: &SideSpec) -> anyhow::Result<PathBuf> {
    let parent = target_dir(root).join("xtask").join("bin");
    let dir = parent.join(slug(&spec.label()));
    if dir.is_dir() {
        mark_used(&dir);
        return Ok(dir);
    }
    for old in least_used(&parent, BINARIES_KEPT - 1) {
        // Cleaning up is no reason to fail the build it makes room for.
        let _ = std::fs::remove_dir_all(&old);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Sides whose binaries are kept (each 200-270 MB: ddsplit and its dhat and console twins):
/// without a limit, a series of compares or zoo runs fills the disk a side at a time.
pub const BINARIES_KEPT: usize = 12;

/// A source tree to build: where it is, the target directory only it builds into, and what the
/// side expects of its binary.
#[derive(Debug, Clone)]
pub struct Tree {
    /// The checkout.
    pub dir: PathBuf,
    /// Its target directory: no other tree builds into it. Cargo gives every checkout of the
    /// workspace the same unit hashes and trusts file times, so a target directory shared by two
    /// checkouts calls one checkout's stale build fresh for the other.
    pub target: PathBuf,
    /// ddsplit features of the side.
    pub features: Vec<String>,
    /// The revision a revision side must have been built at (clean).
    pub revision: Option<String>,
}

/// The tree of a side: the workspace itself for `features:`, a worktree of the revision
/// (checked out once, under [`WORKTREES_DIR`]) for a revision.
pub fn tree_of(
    root: &Path,
    spec: &SideSpec,
    profile: &str,
    say: &dyn Fn(&str),
) -> anyhow::Result<Tree> {
    match spec {
        SideSpec::Features(features) => Ok(Tree {
            dir: root.to_path_buf(),
            target: target_dir(root),
            features: features.clone(),
            revision: None,
        }),
        SideSpec::Revision(rev) => {
            let full = git(root, &["rev-parse", &format!("{rev}^{{commit}}")])
                .with_context(|| format!("cannot resolve revision {rev}"))?;
            let dir = worktree(root, &full, say)?;
            let target = dir.join("target");
            if !target.exists() {
                say("seeding the worktree's target directory with the compiled dependencies");
                seed_target(&target_dir(root), &target, profile)?;
            }
            Ok(Tree {
                dir,
                target,
                features: Vec::new(),
                revision: Some(full),
            })
        }
        SideSpec::Saved(_) => bail!("a saved snapshot is not built"),
    }
}

/// Builds ddsplit of `tree` with `features` and copies the binary to `dest` (builds of other
/// features overwrite cargo's own output path).
fn build_one(
    tree: &Tree,
    profile: &str,
    features: &[String],
    dest: &Path,
) -> anyhow::Result<PathBuf> {
    build_into(
        tree,
        &tree.target,
        profile,
        features,
        dest,
        crate::util::cargo(),
    )
}

/// [`build_one`] into `target` with `cargo` (which may carry other `RUSTFLAGS`: such a build
/// needs a target directory of its own).
fn build_into(
    tree: &Tree,
    target: &Path,
    profile: &str,
    features: &[String],
    dest: &Path,
    mut cargo: Command,
) -> anyhow::Result<PathBuf> {
    let manifest = tree.dir.join("Cargo.toml");
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
    let has_profile = ["dev", "release"].contains(&profile)
        || std::fs::read_to_string(tree.dir.join("Cargo.toml"))
            .is_ok_and(|t| t.contains(&format!("[profile.{profile}]")));
    let profile = if has_profile { profile } else { "release" };
    args.extend(["--profile", profile]);
    if !features.is_empty() {
        args.extend(["--features", &features]);
    }
    let status = cargo
        .current_dir(&tree.dir)
        .env("CARGO_TARGET_DIR", target)
        .args(&args)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!(
            "building ddsplit of {} with features [{features}] failed",
            tree.dir.display()
        );
    }
    let built = target.join(profile_dir(profile)).join("ddsplit");
    std::fs::copy(&built, dest)
        .with_context(|| format!("cannot copy {} to {}", built.display(), dest.display()))?;
    Ok(dest.to_path_buf())
}

/// Reads the build identity of `binary` and checks it against the tree and features it was
/// meant to be built from.
pub fn verify(binary: &Path, tree: &Tree, features: &[String]) -> anyhow::Result<BuildInfo> {
    // In the binary's own directory: a dhat build writes its profile where it runs.
    let output = Command::new(binary)
        .arg("build-info")
        .current_dir(binary.parent().unwrap_or(Path::new(".")))
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !output.status.success() {
        bail!(
            "{} has no `build-info` command (a build from before build identities): it cannot \
             be shown to be the code of {}, so it is not compared",
            binary.display(),
            tree.dir.display()
        );
    }
    let info = BuildInfo::parse(&String::from_utf8_lossy(&output.stdout))
        .with_context(|| format!("reading the build identity of {}", binary.display()))?;
    let manifest = std::fs::read_to_string(tree.dir.join(FEATURES_MANIFEST))
        .with_context(|| format!("cannot read {}", tree.dir.join(FEATURES_MANIFEST).display()))?;
    let expected = BuildInfo {
        revision: tree
            .revision
            .clone()
            .or_else(|| git(&tree.dir, &["rev-parse", "HEAD"])),
        dirty: tree.revision.is_none() && info.dirty,
        source_hash: source_hash(&tree.dir)
            .with_context(|| format!("cannot hash the sources of {}", tree.dir.display()))?,
        features: feature_closure(&manifest, features),
        rustc: info.rustc.clone(),
        profile: info.profile.clone(),
    };
    if info != expected {
        bail!(
            "{} is not the build it should be, so nothing was measured.\n\
             expected (the tree {}):\n{}\nthe binary says:\n{}",
            binary.display(),
            tree.dir.display(),
            indent(&expected.to_text()),
            indent(&info.to_text())
        );
    }
    Ok(info)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// The crates of the workspace: their compiled units are never copied between trees.
const WORKSPACE_CRATES: [&str; 9] = [
    "ddsplit",
    "ddsplit-build-info",
    "ddsplit-benches",
    "diag",
    "diag-memtrace",
    "diag-preload",
    "diag-syscount",
    "diag-fixtures",
    "xtask",
];

/// Gives a new worktree's target directory the compiled dependencies of the workspace's own
/// (`cp -a` keeps the file times cargo's freshness checks read), less every unit of the
/// workspace's crates, which the worktree must build from its own sources. A revision side then
/// compiles the workspace's crates only, not every dependency.
pub fn seed_target(from: &Path, to: &Path, profile_name: &str) -> anyhow::Result<()> {
    let profile = from.join(profile_dir(profile_name));
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    if !profile.is_dir() {
        return Ok(());
    }
    let status = Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(&profile)
        .arg(to)
        .status()
        .context("cannot run cp")?;
    if !status.success() {
        bail!("copying {} to {} failed", profile.display(), to.display());
    }
    let copied = to.join(profile_dir(profile_name));
    for sub in [".fingerprint", "build", "deps", "incremental"] {
        remove_workspace_units(&copied.join(sub))?;
    }
    for entry in std::fs::read_dir(&copied)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

fn remove_workspace_units(dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name.strip_prefix("lib").unwrap_or(&name);
        let ours = WORKSPACE_CRATES.iter().any(|krate| {
            [krate.to_string(), krate.replace('-', "_")]
                .iter()
                .any(|k| {
                    stem.strip_prefix(k.as_str())
                        .is_some_and(|r| r.starts_with('-'))
                })
        });
        if ours {
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// The directory of a profile's output in a target directory (`dev` builds go to `debug`).
fn profile_dir(profile: &str) -> &str {
    if profile == "dev" { "debug" } else { profile }
}

/// A worktree of `revision` under [`WORKTREES_DIR`], made once.
fn worktree(root: &Path, revision: &str, say: &dyn Fn(&str)) -> anyhow::Result<PathBuf> {
    let dir = root
        .join(WORKTREES_DIR)
        .join(&revision[..revision.len().min(12)]);
    if dir.join("Cargo.toml").is_file() {
        mark_used(&dir);
        return Ok(dir);
    }
    remove_least_used_worktrees(root, WORKTREES_KEPT - 1, say)?;
    say(&format!("checking out {revision} in {}", dir.display()));
    let _ = Command::new("git")
        .current_dir(root)
        .args(["worktree", "prune"])
        .status();
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

/// Revision worktrees kept, each with its own target directory (1–2 GB built): the least
/// recently used go first when a new one is made, so a series of compares or the zoo does not
/// fill the disk.
pub const WORKTREES_KEPT: usize = 6;

/// Records that a cached directory (a worktree, a side's binaries) was used now: its
/// modification time.
fn mark_used(dir: &Path) {
    let _ = std::fs::File::open(dir).and_then(|d| d.set_modified(std::time::SystemTime::now()));
}

/// Removes the least recently used revision worktrees until at most `keep` are left.
fn remove_least_used_worktrees(root: &Path, keep: usize, say: &dyn Fn(&str)) -> anyhow::Result<()> {
    for dir in least_used(&root.join(WORKTREES_DIR), keep) {
        say(&format!(
            "removing the least recently used worktree {}",
            dir.display()
        ));
        let _ = Command::new("git")
            .current_dir(root)
            .args(["worktree", "remove", "--force"])
            .arg(&dir)
            .status();
        // Cleaning up is no reason to fail the build it makes room for.
        if dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            say(&format!("could not remove {}: {e}", dir.display()));
        }
    }
    Ok(())
}

/// The directories in `parent` beyond the `keep` most recently used (by [`mark_used`]), least
/// recently used first; none when `parent` cannot be read.
fn least_used(parent: &Path, keep: usize) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let used = e.metadata().and_then(|m| m.modified());
            (used.unwrap_or(std::time::UNIX_EPOCH), e.path())
        })
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(keep);
    dirs.into_iter().take(excess).map(|(_, dir)| dir).collect()
}

/// True when the ddsplit package of `tree` declares `feature`.
pub fn has_feature(tree: &Path, feature: &str) -> bool {
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
        blocking_profile: help.contains("--blocking-profile"),
        console_record: help.contains("--console-record"),
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
mod build_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_worktrees_go_first() {
        let root = tempfile::tempdir().unwrap();
        let dirs = root.path().join(WORKTREES_DIR);
        let day = std::time::Duration::from_secs(86_400);
        let now = std::time::SystemTime::now();
        for (name, days_ago) in [("old", 3), ("newest", 0), ("older", 5), ("recent", 1)] {
            let dir = dirs.join(name);
            std::fs::create_dir_all(dir.join("target")).unwrap();
            std::fs::File::open(&dir)
                .unwrap()
                .set_modified(now - day * days_ago)
                .unwrap();
        }
        mark_used(&dirs.join("older"));
        remove_least_used_worktrees(root.path(), 2, &|_| {}).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&dirs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["newest", "older"]);
    }

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

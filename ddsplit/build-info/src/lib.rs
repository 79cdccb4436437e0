//! The identity of a `ddsplit` build, shared by the writer (ddsplit's build script, which embeds
//! it in the binary) and the readers (`cargo xtask profile`, `compare` and `gate`, which check
//! that a binary they run was built from the tree they mean).
//!
//! The identity's strongest part is [`source_hash`]: a hash of every file that goes into the
//! binary, computed the same way from a checkout, so a stale or mistaken build is caught
//! whatever git or cargo believe. The hash is FNV-1a: it tells builds apart, it is not a defence
//! against someone forging a collision.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Files and directories, relative to the workspace root, whose contents make the `ddsplit`
/// binary: the ddsplit and diag packages' sources and manifests, this crate and the report's, the workspace
/// manifest, the lock file and cargo's configuration. Tests, fuzz targets, examples and
/// fixtures are left out: they are not in the binary.
pub const SOURCE_INPUTS: [&str; 12] = [
    "Cargo.toml",
    "Cargo.lock",
    ".cargo/config.toml",
    "ddsplit/Cargo.toml",
    "ddsplit/build.rs",
    "ddsplit/src",
    "ddsplit/build-info/Cargo.toml",
    "ddsplit/build-info/src",
    "ddsplit/report/Cargo.toml",
    "ddsplit/report/src",
    "diag/Cargo.toml",
    "diag/src",
];

/// The manifest whose `[features]` the build reports.
pub const FEATURES_MANIFEST: &str = "ddsplit/Cargo.toml";

/// Every file of [`SOURCE_INPUTS`] under `root` that exists, sorted, as paths relative to root.
pub fn source_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in SOURCE_INPUTS {
        collect(root, Path::new(input), &mut files)?;
    }
    files.sort();
    Ok(files)
}

fn collect(root: &Path, relative: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let path = root.join(relative);
    let Ok(meta) = std::fs::metadata(&path) else {
        return Ok(());
    };
    if meta.is_file() {
        files.push(relative.to_path_buf());
    } else if meta.is_dir() {
        for entry in std::fs::read_dir(&path)? {
            let name = entry?.file_name();
            collect(root, &relative.join(name), files)?;
        }
    }
    Ok(())
}

/// The hash of the sources under `root`: each file's relative path and contents, in path order,
/// as 16 hex digits.
pub fn source_hash(root: &Path) -> std::io::Result<String> {
    let mut hash = Fnv1a::new();
    for file in source_files(root)? {
        let contents = std::fs::read(root.join(&file))?;
        // Paths with `/` on every platform, so a checkout hashes the same anywhere.
        let name = file.to_string_lossy().replace('\\', "/");
        hash.write(name.as_bytes());
        hash.write(&[0]);
        hash.write(&(contents.len() as u64).to_le_bytes());
        hash.write(&contents);
    }
    Ok(format!("{:016x}", hash.0))
}

/// 64-bit FNV-1a: dependency-free, and stable across versions of Rust (unlike `DefaultHasher`).
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The features a build of ddsplit has when `requested` are asked for: the requested ones and
/// every feature they turn on, following the `[features]` table of `manifest` (the text of
/// `ddsplit/Cargo.toml`). `dep:` entries and features of dependencies are not ddsplit's own and
/// are left out; so is `default` itself.
pub fn feature_closure(manifest: &str, requested: &[String]) -> BTreeSet<String> {
    let table = features_table(manifest);
    let mut enabled = BTreeSet::new();
    let mut todo: Vec<String> = requested.to_vec();
    if let Some((_, defaults)) = table.iter().find(|(name, _)| name == "default") {
        todo.extend(defaults.iter().cloned());
    }
    while let Some(feature) = todo.pop() {
        if feature.contains(':') || feature.contains('/') || !enabled.insert(feature.clone()) {
            continue;
        }
        if let Some((_, implied)) = table.iter().find(|(name, _)| *name == feature) {
            todo.extend(implied.iter().cloned());
        }
    }
    enabled.remove("default");
    enabled
}

/// The names declared in the `[features]` table of `manifest`.
pub fn declared_features(manifest: &str) -> BTreeSet<String> {
    features_table(manifest)
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name != "default")
        .collect()
}

/// `name = ["a", "dep:b"]` lines of the `[features]` table (one line per feature, as cargo
/// writes and this workspace keeps them).
fn features_table(manifest: &str) -> Vec<(String, Vec<String>)> {
    let mut in_features = false;
    let mut table = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_features = line == "[features]";
            continue;
        }
        if !in_features || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let implied = value
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        table.push((name.trim().to_string(), implied));
    }
    table
}

/// Which build a binary is: what `ddsplit build-info` prints, one `key: value` per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// The git revision of the tree, when it was a git checkout.
    pub revision: Option<String>,
    /// True when the source inputs differed from that revision.
    pub dirty: bool,
    /// [`source_hash`] of the tree it was built from.
    pub source_hash: String,
    /// ddsplit's features that were on (implied ones included), sorted.
    pub features: BTreeSet<String>,
    /// `rustc --version` of the compiler.
    pub rustc: String,
    /// The cargo profile (`release`, `profiling`, `dev`...).
    pub profile: String,
}

/// Why a text is not a [`BuildInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a build identity: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

impl BuildInfo {
    /// The `key: value` lines.
    pub fn to_text(&self) -> String {
        let features: Vec<&str> = self.features.iter().map(String::as_str).collect();
        format!(
            "revision: {}\ndirty: {}\nsource-hash: {}\nfeatures: {}\nrustc: {}\nprofile: {}\n",
            self.revision.as_deref().unwrap_or("unknown"),
            self.dirty,
            self.source_hash,
            features.join(","),
            self.rustc,
            self.profile,
        )
    }

    /// Reads [`BuildInfo::to_text`]'s lines back; every key must be there.
    pub fn parse(text: &str) -> Result<BuildInfo, ParseError> {
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
                .map(str::trim)
                .ok_or_else(|| ParseError(format!("no `{key}:` line")))
        };
        let revision = value("revision")?;
        let dirty = match value("dirty")? {
            "true" => true,
            "false" => false,
            other => return Err(ParseError(format!("dirty is {other:?}"))),
        };
        let source_hash = value("source-hash")?.to_string();
        if source_hash.len() != 16 || !source_hash.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ParseError(format!("source-hash {source_hash:?}")));
        }
        Ok(BuildInfo {
            revision: (revision != "unknown").then(|| revision.to_string()),
            dirty,
            source_hash,
            features: value("features")?
                .split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect(),
            rustc: value("rustc")?.to_string(),
            profile: value("profile")?.to_string(),
        })
    }

    /// One line for `--version`: `rev 64c0a82e761e (dirty), sources 1f2e..., features story`.
    pub fn summary(&self) -> String {
        let revision = self
            .revision
            .as_deref()
            .map_or("unknown revision".to_string(), |r| {
                format!("rev {}", &r[..r.len().min(12)])
            });
        let dirty = if self.dirty { " (dirty)" } else { "" };
        let features: Vec<&str> = self.features.iter().map(String::as_str).collect();
        let features = if features.is_empty() {
            "default features".to_string()
        } else {
            format!("features {}", features.join(","))
        };
        format!(
            "{revision}{dirty}, sources {}, {features}, {} profile, {}",
            self.source_hash, self.profile, self.rustc
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "[package]\nname = \"x\"\n\n[features]\ndefault = []\n\
        # comment\nstory-a = [\"dep:async-trait\"]\nstory-b = []\nstory = [\"story-a\", \"story-b\"]\n\
        console = [\"diag/console\"]\n\n[dependencies]\nfoo = \"1\"\n";

    #[test]
    fn features_close_over_what_they_imply() {
        let closure = feature_closure(MANIFEST, &["story".into()]);
        assert_eq!(
            closure.into_iter().collect::<Vec<_>>(),
            ["story", "story-a", "story-b"]
        );
        assert!(feature_closure(MANIFEST, &[]).is_empty());
        assert_eq!(
            declared_features(MANIFEST).into_iter().collect::<Vec<_>>(),
            ["console", "story", "story-a", "story-b"]
        );
    }

    #[test]
    fn identities_read_back_what_they_wrote() {
        let info = BuildInfo {
            revision: Some("64c0a82e761e0123456789abcdef012345678901".into()),
            dirty: true,
            source_hash: "0123456789abcdef".into(),
            features: ["story".to_string(), "story-a".to_string()].into(),
            rustc: "rustc 1.95.0 (59807616e 2026-04-14)".into(),
            profile: "profiling".into(),
        };
        assert_eq!(BuildInfo::parse(&info.to_text()).unwrap(), info);
        let unknown = BuildInfo {
            revision: None,
            features: BTreeSet::new(),
            ..info.clone()
        };
        assert_eq!(BuildInfo::parse(&unknown.to_text()).unwrap(), unknown);
        let err = BuildInfo::parse("revision: abc\n").unwrap_err();
        assert!(err.to_string().contains("no `dirty:` line"), "{err}");
    }

    #[test]
    fn the_source_hash_changes_with_any_input_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("build-info-test-{}", std::process::id()));
        let src = dir.join("ddsplit/src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(dir.join("ddsplit/tests")).unwrap();
        std::fs::write(dir.join("Cargo.toml"), "[workspace]\n").unwrap();
        std::fs::write(src.join("lib.rs"), "fn a() {}\n").unwrap();
        let first = source_hash(&dir).unwrap();
        assert_eq!(source_hash(&dir).unwrap(), first, "the hash repeats");
        std::fs::write(dir.join("ddsplit/tests/t.rs"), "#[test] fn t() {}\n").unwrap();
        assert_eq!(source_hash(&dir).unwrap(), first, "tests are not inputs");
        std::fs::write(src.join("lib.rs"), "fn b() {}\n").unwrap();
        let second = source_hash(&dir).unwrap();
        assert_ne!(second, first, "an edit changes it");
        std::fs::write(src.join("more.rs"), "").unwrap();
        assert_ne!(source_hash(&dir).unwrap(), second, "a new file changes it");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Type, enum, future and stack-frame sizes read from a binary's DWARF debug info.
//!
//! ```no_run
//! let report = diag::sizes::SizesReport::from_binary("target/profiling/ddsplit".as_ref())?;
//! for t in report.types.iter().take(10) {
//!     println!("{:>10} {}", t.size, t.name);
//! }
//! # Ok::<(), diag::sizes::SizesError>(())
//! ```

mod analysis;
mod arena;
mod collect;
mod diff;
mod frames;
mod impls;
mod names;
mod render;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use analysis::{IMBALANCE_RATIO_MIN, IMBALANCE_VARIANT_BYTES_MIN};
pub use collect::STRUCT_FIELDS_BYTES_MIN;
pub use diff::{SizeChange, SizesDiff, TypeSize};
pub use frames::FRAME_BYTES_REPORT_MIN;
pub use names::{is_future_name, last_segment, parent_path, without_generic_arguments};
pub use render::{RenderOptions, bytes as render_bytes, render_diff, render_report};

use crate::binary::{BinaryError, DEBUG_INFO_HINT, DwarfData, MappedBinary};

/// The sizes report's JSON format version; bump on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// Errors building a sizes report.
#[derive(Debug, thiserror::Error)]
pub enum SizesError {
    /// The binary could not be read or parsed.
    #[error(transparent)]
    Binary(#[from] BinaryError),
    /// The binary has no DWARF type info.
    #[error("{path} {reason}: {DEBUG_INFO_HINT}")]
    NoDebugInfo {
        /// The binary's path.
        path: PathBuf,
        /// What is missing.
        reason: &'static str,
    },
    /// The DWARF could not be parsed.
    #[error("malformed DWARF: {0}")]
    Dwarf(#[from] gimli::Error),
    /// A saved JSON report could not be read.
    #[error("cannot read the sizes report {path}: {error}")]
    ReadJson {
        /// The report's path.
        path: PathBuf,
        /// What went wrong.
        error: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What a type is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeKind {
    /// A struct or tuple.
    Struct,
    /// A Rust enum with data (a `DW_TAG_variant_part`): `Result`, `Option`, user enums.
    Enum,
    /// A field-less enum (`DW_TAG_enumeration_type`).
    CEnum,
    /// A union.
    Union,
    /// The state machine of an `async fn` or async block.
    Future,
    /// A closure's captured environment.
    Closure,
}

/// One type of the binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeInfo {
    /// Qualified name as DWARF spells it, e.g. `core::result::Result<a::Ok, a::Err>`.
    pub name: String,
    /// `size_of` in bytes.
    pub size: u64,
    /// `align_of` in bytes, when the debug info says.
    pub align: Option<u64>,
    /// What the type is.
    pub kind: TypeKind,
    /// The variants of an enum or future (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<VariantInfo>,
    /// The fields of a struct of at least [`STRUCT_FIELDS_BYTES_MIN`] bytes (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldInfo>,
}

impl TypeInfo {
    /// The largest field of a struct, or of an enum's largest variant: what makes it large.
    pub fn largest_field(&self) -> Option<&FieldInfo> {
        let variant_fields = self
            .variants
            .iter()
            .max_by_key(|v| v.size)
            .map(|v| v.fields.as_slice())
            .unwrap_or_default();
        self.fields
            .iter()
            .chain(variant_fields)
            .max_by_key(|f| f.size)
    }

    /// True when the name starts with `prefix` or names a path starting with `prefix` among its
    /// generic arguments (so `ddsplit` matches `core::result::Result<ddsplit::A, ddsplit::B>`).
    pub fn mentions(&self, prefix: &str) -> bool {
        mentions(&self.name, prefix)
    }
}

/// One variant of an enum or future.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantInfo {
    /// The variant's name (`Err`, `Suspend0`...).
    pub name: String,
    /// Bytes of its fields, added up (excluding padding and the tag).
    pub size: u64,
    /// Its fields.
    pub fields: Vec<FieldInfo>,
}

/// One field of a variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldInfo {
    /// The field's name (`__0` for tuple fields, `__awaitee` for an awaited future).
    pub name: String,
    /// The field's type.
    pub type_name: String,
    /// The field's size in bytes.
    pub size: u64,
    /// Offset in the enclosing type.
    pub offset: u64,
    /// True when the field is itself a future (an awaited `async fn` or block).
    pub is_future: bool,
}

/// An enum whose largest variant is much bigger than the next: every value pays for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumImbalance {
    /// The enum's name.
    pub name: String,
    /// `size_of` the enum.
    pub size: u64,
    /// The largest variant.
    pub variant: String,
    /// Bytes of the largest variant's fields.
    pub variant_size: u64,
    /// The next largest variant's name (`None` when the enum has one variant).
    pub next_variant: Option<String>,
    /// Bytes of the next largest variant's fields.
    pub next_size: u64,
    /// What to try.
    pub suggestion: String,
}

/// The future of an `async fn` or async block, and what it holds across awaits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FutureInfo {
    /// The future's type name, e.g. `app::handler::{async_fn_env#0}`.
    pub name: String,
    /// The function (or enclosing function, for a block) it belongs to.
    pub function: String,
    /// `size_of` the future.
    pub size: u64,
    /// Fields held across an await (members of the `SuspendN` variants), largest first.
    pub held: Vec<HeldField>,
}

/// A value a future holds across an await.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldField {
    /// The await point (`Suspend0`, ...).
    pub suspend: String,
    /// The field (local variable, `__awaitee` for the awaited future).
    pub name: String,
    /// Its type.
    pub type_name: String,
    /// Its size in bytes.
    pub size: u64,
    /// True when the field is itself a future being awaited.
    pub is_future: bool,
}

/// A function's stack frame size, from the unwind info.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackFrame {
    /// The function (demangled, without hash), or its address when it has no symbol.
    pub function: String,
    /// Address of the function in the file.
    pub address: u64,
    /// Bytes the function reserves below its return address.
    pub frame_bytes: u64,
    /// Where the number comes from: `cfi` (`.eh_frame` CFA offsets) or `prologue` (a
    /// `sub rsp, N` read from the code of a frame-pointer function).
    pub source: String,
}

/// The stack frames section of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackFrames {
    /// Why frame sizes are missing or partial, if they are.
    pub note: Option<String>,
    /// Functions with frames of at least [`FRAME_BYTES_REPORT_MIN`] bytes, largest first.
    pub functions: Vec<StackFrame>,
}

/// Everything the sizes report knows about one binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizesReport {
    /// [`FORMAT_VERSION`] of the JSON.
    pub format_version: u32,
    /// The binary the report was read from.
    pub binary: String,
    /// Every named struct, enum, union, future and closure type, largest first.
    pub types: Vec<TypeInfo>,
    /// Enums whose largest variant dwarfs the rest, most wasted bytes first.
    pub imbalanced_enums: Vec<EnumImbalance>,
    /// Futures of `async fn`s and blocks, largest first.
    pub futures: Vec<FutureInfo>,
    /// Large stack frames.
    pub stack_frames: StackFrames,
}

impl SizesReport {
    /// Reads the DWARF of the binary at `path`.
    ///
    /// Fails with [`SizesError::NoDebugInfo`] (which says how to build one) when the binary has
    /// no debug info.
    pub fn from_binary(path: &Path) -> Result<Self, SizesError> {
        let mapped = MappedBinary::open(path)?;
        let object = mapped.object()?;
        let data = DwarfData::load(&object);
        if !data.has_debug_info() {
            return Err(SizesError::NoDebugInfo {
                path: path.to_path_buf(),
                reason: "has no debug info (.debug_info is missing, empty or compressed)",
            });
        }
        let dwarf = data.dwarf();
        let mut types = collect::collect_types(&dwarf)?;
        if types.is_empty() {
            return Err(SizesError::NoDebugInfo {
                path: path.to_path_buf(),
                reason: "has debug info without types (built with `debug = \"line-tables-only\"`?)",
            });
        }
        sort_types(&mut types);
        let imbalanced_enums = analysis::imbalanced_enums(&types);
        let futures = analysis::futures(&types);
        let stack_frames = frames::stack_frames(&object);
        Ok(Self {
            format_version: FORMAT_VERSION,
            binary: path.display().to_string(),
            types,
            imbalanced_enums,
            futures,
            stack_frames,
        })
    }

    /// Reads a report saved as JSON (by [`SizesReport::to_json`] or `cargo xtask sizes --json`).
    pub fn from_json_file(path: &Path) -> Result<Self, SizesError> {
        let err = |error: Box<dyn std::error::Error + Send + Sync>| SizesError::ReadJson {
            path: path.to_path_buf(),
            error,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.into()))?;
        serde_json::from_str(&text).map_err(|e| err(e.into()))
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report holds only strings and numbers")
    }

    /// The type named exactly `name`.
    pub fn type_named(&self, name: &str) -> Option<&TypeInfo> {
        self.types.iter().find(|t| t.name == name)
    }

    /// The future of the function `function` (its first `{async_fn_env#N}`).
    pub fn future_of(&self, function: &str) -> Option<&FutureInfo> {
        self.futures.iter().find(|f| f.function == function)
    }

    /// Every type whose size is exactly `size` bytes, most specific first: futures and user
    /// types before the standard library's wrappers. Used to say what a copy of `size` bytes was.
    pub fn lookup_by_size(&self, size: u64) -> Vec<&TypeInfo> {
        // Types are sorted by size (descending): find the run of equal sizes by binary search.
        let start = self.types.partition_point(|t| t.size > size);
        let end = self.types.partition_point(|t| t.size >= size);
        let mut found: Vec<&TypeInfo> = self.types[start..end].iter().collect();
        found.sort_by_key(|t| (std_rank(&t.name), t.name.len()));
        found
    }

    /// A copy of the report keeping only the types (and the enums and futures) that mention
    /// `prefix` (see [`TypeInfo::mentions`]).
    pub fn filtered(&self, prefix: &str) -> Self {
        let mut out = self.clone();
        out.types.retain(|t| t.mentions(prefix));
        out.imbalanced_enums.retain(|e| mentions(&e.name, prefix));
        out.futures.retain(|f| mentions(&f.name, prefix));
        out.stack_frames
            .functions
            .retain(|f| mentions(&f.function, prefix));
        out
    }

    /// What changed from `self` (the baseline) to `other` (the candidate).
    pub fn diff(&self, other: &SizesReport) -> SizesDiff {
        diff::diff(self, other)
    }
}

/// Standard library paths rank after the program's own types when several share a size.
fn std_rank(name: &str) -> u8 {
    let std_prefixes = ["core::", "alloc::", "std::"];
    if std_prefixes.iter().any(|p| name.starts_with(p)) {
        // A `Result`/`Option` of user types is still more telling than a bare std type.
        if std_prefixes
            .iter()
            .any(|p| name[name.find('<').unwrap_or(name.len())..].contains(p))
            || !name.contains('<')
        {
            2
        } else {
            1
        }
    } else {
        0
    }
}

fn sort_types(types: &mut [TypeInfo]) {
    types.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name)));
}

fn mentions(name: &str, prefix: &str) -> bool {
    if prefix.is_empty() || name.starts_with(prefix) {
        return true;
    }
    name.match_indices(prefix).any(|(i, _)| {
        matches!(
            name[..i].chars().next_back(),
            Some('<' | ' ' | '&' | '(' | '[' | '*')
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_matches_prefix_and_generic_arguments() {
        assert!(mentions("ddsplit::error::DistriErr", "ddsplit"));
        assert!(mentions(
            "core::result::Result<ddsplit::A, ddsplit::B>",
            "ddsplit::"
        ));
        assert!(mentions("core::option::Option<&ddsplit::A>", "ddsplit"));
        assert!(!mentions(
            "core::result::Result<u8, notddsplit::B>",
            "ddsplit"
        ));
        assert!(mentions("anything", ""));
    }

    #[test]
    fn std_rank_puts_user_types_first() {
        assert_eq!(std_rank("app::Big"), 0);
        assert_eq!(std_rank("core::result::Result<app::A, app::B>"), 1);
        assert_eq!(
            std_rank("core::result::Result<u8, alloc::string::String>"),
            2
        );
        assert_eq!(std_rank("alloc::string::String"), 2);
    }
}

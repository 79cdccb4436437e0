//! Symbolizing call sites against a binary's debug info: the chain of inlined frames, each
//! with its function (demangled, without hash), file and line.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::binary::{DwarfData, MappedBinary};

use super::MovesError;

/// One frame of a call site: a function and where in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFrame {
    /// The function, demangled without hash (`?` when unknown).
    pub function: String,
    /// Source file, when the line tables say.
    pub file: Option<String>,
    /// Line, when the line tables say.
    pub line: Option<u32>,
}

impl SourceFrame {
    /// `file:line`, or `?`.
    pub fn location(&self) -> String {
        match (&self.file, self.line) {
            (Some(f), Some(l)) => format!("{f}:{l}"),
            (Some(f), None) => f.clone(),
            _ => "?".to_string(),
        }
    }

    /// True for functions of the standard library (`core`, `alloc`, `std`): by name, or by
    /// the file for the generic impls whose names start with a type parameter
    /// (`<T as alloc::slice::..::ConvertVec>::to_vec`).
    pub fn is_std(&self) -> bool {
        let f = self.function.trim_start_matches('<');
        let std_name = ["core::", "alloc::", "std::"]
            .iter()
            .any(|p| f.starts_with(p));
        let std_file = self.file.as_deref().is_some_and(|file| {
            ["library/core/", "library/alloc/", "library/std/"]
                .iter()
                .any(|dir| file.contains(dir))
        });
        std_name || std_file
    }
}

/// Symbolizes each of `addresses` (file addresses of return addresses) in the binary at `path`:
/// for each, the frames from innermost (inlined) to outermost. Empty when nothing is known.
pub fn symbolize(path: &Path, addresses: &[u64]) -> Result<Vec<Vec<SourceFrame>>, MovesError> {
    let mapped = MappedBinary::open(path)?;
    let object = mapped.object()?;
    let data = DwarfData::load(&object);
    let context = addr2line::Context::from_dwarf(data.dwarf()).map_err(MovesError::Dwarf)?;
    let symbols = object_symbols(&object);
    let mut out = Vec::with_capacity(addresses.len());
    for &address in addresses {
        // A return address points after the call: step back into the call instruction.
        let probe = address.saturating_sub(1);
        let mut frames = Vec::new();
        if let Ok(mut iter) = context.find_frames(probe).skip_all_loads() {
            while let Ok(Some(frame)) = iter.next() {
                let function = frame
                    .function
                    .as_ref()
                    .and_then(|f| f.raw_name().ok())
                    .map_or_else(|| "?".to_string(), |n| demangle(&n));
                let file = frame
                    .location
                    .as_ref()
                    .and_then(|l| l.file)
                    .map(str::to_string);
                let line = frame.location.as_ref().and_then(|l| l.line);
                frames.push(SourceFrame {
                    function,
                    file,
                    line,
                });
            }
        }
        if frames.iter().all(|f| f.function == "?")
            && let Some(name) = symbol_at(&symbols, probe)
        {
            frames = vec![SourceFrame {
                function: name,
                file: None,
                line: None,
            }];
        }
        out.push(frames);
    }
    Ok(out)
}

/// Demangles a Rust symbol without its hash; other names are returned as they are.
pub fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

fn object_symbols(object: &object::File<'_>) -> Vec<(u64, u64, String)> {
    use object::{Object, ObjectSymbol};
    let mut symbols: Vec<(u64, u64, String)> = object
        .symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
        .filter_map(|s| Some((s.address(), s.size(), demangle(s.name().ok()?))))
        .collect();
    symbols.sort_by_key(|s| s.0);
    symbols
}

fn symbol_at(symbols: &[(u64, u64, String)], address: u64) -> Option<String> {
    let i = symbols.partition_point(|s| s.0 <= address).checked_sub(1)?;
    let (start, size, name) = &symbols[i];
    (address < start + (*size).max(1)).then(|| name.clone())
}

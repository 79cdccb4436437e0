//! Where large values are copied: runs a program under the `diag-memtrace` preload library,
//! reads its trace, symbolizes the call sites and says which type each copy moved.
//!
//! ```no_run
//! use diag::moves::{MovesReport, TraceRun};
//! let run = TraceRun::new("target/release/libdiag_memtrace.so", "target/profiling/app");
//! let traced = run.run()?;
//! let report = MovesReport::build(&traced.trace, "target/profiling/app".as_ref(), None)?;
//! print!("{}", report.render(20));
//! # Ok::<(), diag::moves::MovesError>(())
//! ```

mod check;
mod render;
mod run;
mod symbolize;
mod trace;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use check::check_program;
pub use run::{DEFAULT_THRESHOLD_BYTES, TraceRun, Traced};
pub use symbolize::{SourceFrame, demangle, symbolize};
pub use trace::{RawSite, SiteTotal, TRACE_FORMAT_VERSION, Trace, exe_file_address};

use crate::binary::BinaryError;
use crate::sizes::SizesReport;

/// How many type names are given for one copy size.
const TYPES_PER_SITE_MAX: usize = 3;

/// Errors tracing copies or reading a trace.
#[derive(Debug, thiserror::Error)]
pub enum MovesError {
    /// Not x86-64 Linux.
    #[error("the copy tracer works on x86-64 Linux only (this is {os} on {arch})")]
    UnsupportedPlatform {
        /// `std::env::consts::OS`.
        os: &'static str,
        /// `std::env::consts::ARCH`.
        arch: &'static str,
    },
    /// The program cannot load a preload library.
    #[error(
        "{path} has no PT_INTERP program header: it is statically linked (or not an executable), so \
         LD_PRELOAD cannot interpose its memcpy. Build it dynamically linked (the default for the *-linux-gnu targets, not musl or \
         `-C target-feature=+crt-static`)"
    )]
    StaticBinary {
        /// The program.
        path: PathBuf,
    },
    /// The program is not an x86-64 ELF executable.
    #[error("{path} is not an x86-64 ELF executable")]
    NotElf {
        /// The program.
        path: PathBuf,
    },
    /// The program was not found on PATH.
    #[error("program {0:?} not found (not a path, and not on PATH)")]
    ProgramNotFound(String),
    /// The binary could not be read.
    #[error(transparent)]
    Binary(#[from] BinaryError),
    /// The DWARF could not be parsed.
    #[error("malformed DWARF: {0}")]
    Dwarf(gimli::Error),
    /// A trace line could not be parsed.
    #[error("trace line {line}: {message}")]
    Trace {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// Running the program or reading its trace failed.
    #[error("{context}: {error}")]
    Io {
        /// What was being done.
        context: String,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The program ran but wrote no trace.
    #[error(
        "the program wrote no trace at {0}: it did not exit normally (killed, `_exit`, or exec'd), \
         or the preload library was not loaded"
    )]
    NoTrace(PathBuf),
}

/// Large copies from one call site of one size, symbolized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopySite {
    /// Return address of the copy call, in the executable's file (`None`: in a shared library).
    pub address: Option<u64>,
    /// The runtime return address.
    pub runtime_address: u64,
    /// Bytes per copy (0 for a row of various sizes, see `size_range`).
    pub size: u64,
    /// For the copies of a site that have no exact-size row (the site copied too many
    /// different sizes): the smallest and largest size. `None` for an exact-size row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_range: Option<(u64, u64)>,
    /// Copies.
    pub count: u64,
    /// Total bytes copied.
    pub bytes: u64,
    /// Inlined frames at the call, innermost first; the last is the function that was compiled.
    pub frames: Vec<SourceFrame>,
    /// Types of exactly `size` bytes (from the sizes report), most specific first.
    pub types: Vec<String>,
}

impl CopySite {
    /// The innermost frame (where the copy is written in source, often a std function).
    pub fn innermost(&self) -> Option<&SourceFrame> {
        self.frames.first()
    }

    /// The outermost frame: the function the copy was compiled into.
    pub fn outermost(&self) -> Option<&SourceFrame> {
        self.frames.last()
    }

    /// The innermost frame outside the standard library: the program's own code that asked for
    /// the copy (a `Vec::push` inlined into it, a return by value...).
    pub fn user_frame(&self) -> Option<&SourceFrame> {
        self.frames
            .iter()
            .find(|f| !f.is_std())
            .or(self.outermost())
    }
}

/// The copy report of one traced run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovesReport {
    /// The binary the sites were symbolized against.
    pub binary: String,
    /// The trace's header and histogram (its raw sites are in `sites`, symbolized).
    pub trace: Trace,
    /// Large copies by site and size, most bytes first.
    pub sites: Vec<CopySite>,
    /// Caveats: no debug info, no sizes report, dropped records.
    pub notes: Vec<String>,
}

impl MovesReport {
    /// Symbolizes `trace` against `binary` and, with `sizes`, names the types copied. Without
    /// `sizes`, the report is read from `binary` when it has debug info.
    pub fn build(
        trace: &Trace,
        binary: &Path,
        sizes: Option<&SizesReport>,
    ) -> Result<Self, MovesError> {
        let mut notes = Vec::new();
        let owned_sizes;
        let sizes = match sizes {
            Some(s) => Some(s),
            None => match SizesReport::from_binary(binary) {
                Ok(s) => {
                    owned_sizes = s;
                    Some(&owned_sizes)
                }
                Err(e) => {
                    notes.push(format!("copies are not attributed to types: {e}"));
                    None
                }
            },
        };
        let rows = rows(trace);
        // Symbolize each distinct address once.
        let mut addresses: Vec<u64> = rows
            .iter()
            .filter_map(|r| trace.file_address(r.address))
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        let frames: HashMap<u64, Vec<SourceFrame>> = addresses
            .iter()
            .copied()
            .zip(symbolize(binary, &addresses)?)
            .collect();
        let mut sites: Vec<CopySite> = rows
            .into_iter()
            .map(|row| {
                let address = trace.file_address(row.address);
                CopySite {
                    address,
                    runtime_address: row.address,
                    size: row.size,
                    size_range: row.size_range,
                    count: row.count,
                    bytes: row.bytes,
                    frames: address
                        .and_then(|a| frames.get(&a).cloned())
                        .unwrap_or_default(),
                    types: match (sizes, row.size_range) {
                        (Some(s), None) => s
                            .lookup_by_size(row.size)
                            .into_iter()
                            .take(TYPES_PER_SITE_MAX)
                            .map(|t| t.name.clone())
                            .collect(),
                        _ => Vec::new(),
                    },
                }
            })
            .collect();
        sites.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then_with(|| a.runtime_address.cmp(&b.runtime_address))
        });
        if trace.dropped > 0 {
            notes.push(format!(
                "{} large copies were not recorded: the per-site table was full",
                trace.dropped
            ));
        }
        if trace.dropped_exact > 0 {
            notes.push(format!(
                "{} large copies are counted by site only (rows of various sizes): their sites \
                 copied too many different sizes for the exact-size table",
                trace.dropped_exact
            ));
        }
        if sites.iter().any(|s| s.address.is_none()) {
            notes.push("some copies were made from shared libraries, not symbolized".into());
        }
        Ok(Self {
            binary: binary.display().to_string(),
            trace: trace.clone(),
            sites,
            notes,
        })
    }

    /// Reads a trace file and builds the report against `binary` (default: the trace's `exe`).
    pub fn from_trace_file(trace_path: &Path, binary: Option<&Path>) -> Result<Self, MovesError> {
        let text = std::fs::read_to_string(trace_path).map_err(|error| MovesError::Io {
            context: format!("cannot read the trace {}", trace_path.display()),
            error,
        })?;
        let trace = Trace::parse(&text)?;
        let exe = PathBuf::from(&trace.exe);
        Self::build(&trace, binary.unwrap_or(&exe), None)
    }

    /// Large copies in total.
    pub fn large_copies(&self) -> u64 {
        self.sites.iter().map(|s| s.count).sum()
    }

    /// Bytes of large copies in total.
    pub fn large_bytes(&self) -> u64 {
        self.sites.iter().map(|s| s.bytes).sum()
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report holds only strings and numbers")
    }

    /// The report as text: histogram, then the top `top` sites.
    pub fn render(&self, top: usize) -> String {
        render::render(self, top)
    }
}

/// One row before symbolization: an exact-size entry, or the rest of a site's total.
struct Row {
    address: u64,
    size: u64,
    size_range: Option<(u64, u64)>,
    count: u64,
    bytes: u64,
}

/// The exact-size entries, plus for each site whose total holds more copies than its exact
/// entries, a row of various sizes with the remainder.
fn rows(trace: &Trace) -> Vec<Row> {
    let mut exact: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut rows: Vec<Row> = trace
        .sites
        .iter()
        .map(|s| {
            let e = exact.entry(s.address).or_default();
            e.0 += s.count;
            e.1 += s.bytes;
            Row {
                address: s.address,
                size: s.size,
                size_range: None,
                count: s.count,
                bytes: s.bytes,
            }
        })
        .collect();
    for total in &trace.totals {
        let (count, bytes) = exact.get(&total.address).copied().unwrap_or_default();
        if total.count > count {
            rows.push(Row {
                address: total.address,
                size: 0,
                size_range: Some((total.size_min, total.size_max)),
                count: total.count - count,
                bytes: total.bytes.saturating_sub(bytes),
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_total_beyond_its_exact_rows_becomes_a_row_of_various_sizes() {
        let trace = Trace {
            sites: vec![RawSite {
                address: 0x10,
                size: 2048,
                count: 3,
                bytes: 6144,
            }],
            totals: vec![
                SiteTotal {
                    address: 0x10,
                    count: 5,
                    bytes: 9144,
                    size_min: 1024,
                    size_max: 2048,
                },
                SiteTotal {
                    address: 0x20,
                    count: 1,
                    bytes: 4096,
                    size_min: 4096,
                    size_max: 4096,
                },
            ],
            ..Trace::default()
        };
        let rows = rows(&trace);
        let summary: Vec<_> = rows
            .iter()
            .map(|r| (r.address, r.size, r.size_range, r.count, r.bytes))
            .collect();
        assert_eq!(
            summary,
            vec![
                (0x10, 2048, None, 3, 6144),
                (0x10, 0, Some((1024, 2048)), 2, 3000),
                (0x20, 0, Some((4096, 4096)), 1, 4096),
            ]
        );
    }

    #[test]
    fn the_user_frame_skips_the_standard_library_by_name_and_by_file() {
        let frame = |function: &str, file: &str| SourceFrame {
            function: function.into(),
            file: Some(file.into()),
            line: Some(1),
        };
        let site = CopySite {
            address: Some(0x10),
            runtime_address: 0x10,
            frames: vec![
                frame(
                    "<T as alloc::slice::<impl [T]>::to_vec_in::ConvertVec>::to_vec",
                    "/rustc/abc/library/alloc/src/slice.rs",
                ),
                frame("alloc::vec::Vec<T>::push", "library/alloc/src/vec/mod.rs"),
                frame("app::query::answer", "app/src/query.rs"),
            ],
            size: 4096,
            size_range: None,
            count: 1,
            bytes: 4096,
            types: Vec::new(),
        };
        assert_eq!(site.user_frame().unwrap().function, "app::query::answer");
    }
}

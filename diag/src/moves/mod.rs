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

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use check::check_program;
pub use run::{DEFAULT_THRESHOLD_BYTES, TraceRun, Traced};
pub use symbolize::{SourceFrame, demangle, symbolize};
pub use trace::{RawSite, TRACE_FORMAT_VERSION, Trace};

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
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// What the OS said.
        source: std::io::Error,
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
    /// Bytes per copy.
    pub size: u64,
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
        let file_addresses: Vec<Option<u64>> = trace
            .sites
            .iter()
            .map(|s| trace.file_address(s.address))
            .collect();
        let probes: Vec<u64> = file_addresses.iter().map(|a| a.unwrap_or(0)).collect();
        let frames = symbolize(binary, &probes)?;
        let mut sites: Vec<CopySite> = trace
            .sites
            .iter()
            .zip(file_addresses)
            .zip(frames)
            .map(|((raw, address), frames)| CopySite {
                address,
                runtime_address: raw.address,
                size: raw.size,
                count: raw.count,
                bytes: raw.bytes,
                frames: if address.is_some() {
                    frames
                } else {
                    Vec::new()
                },
                types: sizes.map_or_else(Vec::new, |s| {
                    s.lookup_by_size(raw.size)
                        .into_iter()
                        .take(TYPES_PER_SITE_MAX)
                        .map(|t| t.name.clone())
                        .collect()
                }),
            })
            .collect();
        sites.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then_with(|| a.runtime_address.cmp(&b.runtime_address))
        });
        if trace.dropped > 0 {
            notes.push(format!(
                "{} large copies were not recorded: the site table was full",
                trace.dropped
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
        let text = std::fs::read_to_string(trace_path).map_err(|source| MovesError::Io {
            context: format!("cannot read the trace {}", trace_path.display()),
            source,
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

//! CPU figures from folded stacks: samples per category (copies, allocator, system calls,
//! executor, user code) and per function, with the function that asked for the work rather
//! than the C library routine that did it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Most functions kept per snapshot, by samples.
pub const CPU_FUNCTIONS_MAX: usize = 200;

/// Frames above the leaf searched for an allocator routine: `malloc` calls a few helpers of its
/// own (`_int_malloc`, `sysmalloc`...) and is called through the global allocator's wrappers.
const ALLOCATOR_DEPTH_MAX: usize = 6;

/// Where a sample's CPU time went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuCategory {
    /// Inside `memcpy`/`memmove`/`memset`: moving or clearing bytes.
    Copy,
    /// Inside the allocator (`malloc`, `free`, the global allocator's wrappers).
    Alloc,
    /// Inside a system call wrapper made by the program's code (reads, writes, fsync).
    Syscall,
    /// Inside the async runtime itself: scheduling, parking, the I/O driver.
    Executor,
    /// The program's own code and the libraries it calls.
    User,
}

impl CpuCategory {
    /// Every category, in display order.
    pub const ALL: [CpuCategory; 5] = [
        CpuCategory::User,
        CpuCategory::Copy,
        CpuCategory::Alloc,
        CpuCategory::Syscall,
        CpuCategory::Executor,
    ];

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            CpuCategory::Copy => "memcpy/memmove/memset",
            CpuCategory::Alloc => "allocator",
            CpuCategory::Syscall => "system calls",
            CpuCategory::Executor => "executor",
            CpuCategory::User => "user code",
        }
    }
}

/// Samples attributed to one function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionSamples {
    /// The function that did or asked for the work (C library routines are charged to their
    /// caller).
    pub function: String,
    /// Its file and line, when the profile says.
    pub location: Option<String>,
    /// Samples.
    pub samples: u64,
    /// Of those, samples inside the allocator on its behalf.
    #[serde(default)]
    pub alloc_samples: u64,
    /// Of those, samples inside `memset` on its behalf: memory filled, nearly always with
    /// zeroes (`calloc` and `vec![0; n]`, `resize`, `fill(0)`).
    #[serde(default)]
    pub zeroing_samples: u64,
    /// The program's function nearest above it in most of its samples' stacks: with it, a
    /// comparison tells code that moved between a function and its caller (a helper
    /// extracted, a callee inlined) from new work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
}

/// CPU samples in one system call wrapper (a C function at the leaf: `__libc_sendto`,
/// `__GI___libc_write`), charged to the program function that called it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallCaller {
    /// The wrapper at the leaf of the stacks.
    pub wrapper: String,
    /// The program's function that made the call.
    pub function: String,
    /// Its file and line.
    pub location: Option<String>,
    /// Samples.
    pub samples: u64,
}

/// One part of a CPU pass: its operations and samples, and the samples charged to each
/// function (the kept functions' names, as [`FunctionSamples::function`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuPart {
    /// Operations of the part's run.
    pub ops: u64,
    /// Samples in all.
    pub samples: u64,
    /// Samples per function.
    pub functions: BTreeMap<String, u64>,
}

impl CpuPart {
    /// Samples per operation charged to any of `names`.
    pub fn per_op(&self, names: &[&str]) -> f64 {
        let samples: u64 = names.iter().filter_map(|n| self.functions.get(*n)).sum();
        super::per_op(samples, self.ops)
    }
}

/// A CPU profile, summarized.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuFigures {
    /// Operations of the profiled run.
    pub ops: u64,
    /// Sampling frequency.
    pub hz: u32,
    /// Samples in total.
    pub samples: u64,
    /// Samples per category.
    pub categories: BTreeMap<CpuCategory, u64>,
    /// The functions with the most samples (at most [`CPU_FUNCTIONS_MAX`]), most first.
    pub functions: Vec<FunctionSamples>,
    /// Samples in system call wrappers by wrapper and caller (at most [`CPU_FUNCTIONS_MAX`]),
    /// most first: who makes the system calls that a count of them says grew.
    #[serde(default)]
    pub syscall_callers: Vec<SyscallCaller>,
    /// Samples inside each allocator, by [`allocator_family`] (`glibc malloc`, `jemalloc`,
    /// `mimalloc`...): which global allocator the program's allocation time went to.
    #[serde(default)]
    pub allocators: BTreeMap<String, u64>,
    /// The samples of each part of the pass, when it ran in parts (A B B A across the two
    /// sides of a comparison): a change of the program shows in both pairs of parts, a
    /// machine that slowed down for a minute in one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<CpuPart>,
    /// The folded stacks, relative to the snapshot directory.
    pub folded_file: String,
    /// The folded stacks rooted at task kinds, when the program wrote them.
    pub tasks_folded_file: Option<String>,
    /// The flamegraph, when one was drawn.
    pub flamegraph_file: Option<String>,
}

impl CpuFigures {
    /// Summarizes folded stacks (`root;...;leaf COUNT` per line) of a run of `ops` operations
    /// sampled at `hz`. Lines that do not parse are skipped.
    pub fn from_folded(folded: &str, ops: u64, hz: u32) -> CpuFigures {
        let mut categories: BTreeMap<CpuCategory, u64> = BTreeMap::new();
        let mut functions: HashMap<(String, Option<String>), Charged> = HashMap::new();
        let mut callers: HashMap<(String, String, Option<String>), u64> = HashMap::new();
        let mut above: HashMap<(String, Option<String>), HashMap<String, u64>> = HashMap::new();
        let mut allocators: BTreeMap<String, u64> = BTreeMap::new();
        let mut samples = 0;
        for (frames, count) in folded_stacks(folded) {
            samples += count;
            let category = classify_stack(&frames);
            *categories.entry(category).or_default() += count;
            if category == CpuCategory::Alloc {
                *allocators
                    .entry(allocator_family(&frames).to_string())
                    .or_default() += count;
            }
            let (function, location) = charged_function(&frames);
            if category == CpuCategory::Syscall
                && let Some(leaf) = frames.last()
            {
                let wrapper = parse_frame(leaf).0.to_string();
                *callers
                    .entry((wrapper, function.clone(), location.clone()))
                    .or_default() += count;
            }
            if let Some(caller) = caller_above(&frames, &function) {
                *above
                    .entry((function.clone(), location.clone()))
                    .or_default()
                    .entry(caller.to_string())
                    .or_default() += count;
            }
            let charged = functions.entry((function, location)).or_default();
            charged.samples += count;
            if category == CpuCategory::Alloc {
                charged.alloc += count;
            }
            if category == CpuCategory::Copy && is_fill(&frames) {
                charged.zeroing += count;
            }
        }
        let mut syscall_callers: Vec<SyscallCaller> = callers
            .into_iter()
            .map(|((wrapper, function, location), samples)| SyscallCaller {
                wrapper,
                function,
                location,
                samples,
            })
            .collect();
        syscall_callers.sort_by(|a, b| {
            b.samples
                .cmp(&a.samples)
                .then_with(|| a.function.cmp(&b.function))
                .then_with(|| a.wrapper.cmp(&b.wrapper))
        });
        syscall_callers.truncate(CPU_FUNCTIONS_MAX);
        let mut functions: Vec<FunctionSamples> = functions
            .into_iter()
            .map(|((function, location), charged)| FunctionSamples {
                caller: above
                    .remove(&(function.clone(), location.clone()))
                    .and_then(|callers| {
                        callers
                            .into_iter()
                            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
                    })
                    .map(|(caller, _)| caller),
                function,
                location,
                samples: charged.samples,
                alloc_samples: charged.alloc,
                zeroing_samples: charged.zeroing,
            })
            .collect();
        functions.sort_by(|a, b| {
            b.samples
                .cmp(&a.samples)
                .then_with(|| a.function.cmp(&b.function))
        });
        functions.truncate(CPU_FUNCTIONS_MAX);
        CpuFigures {
            ops,
            hz,
            samples,
            categories,
            functions,
            syscall_callers,
            allocators,
            parts: Vec::new(),
            folded_file: String::new(),
            tasks_folded_file: None,
            flamegraph_file: None,
        }
    }

    /// Keeps each part's samples per function: `parts` are the folded stacks and operations of
    /// the runs whose sum these figures are. Only the kept functions are counted.
    pub fn attach_parts(&mut self, parts: &[(&str, u64)]) {
        let kept: std::collections::HashSet<&str> =
            self.functions.iter().map(|f| f.function.as_str()).collect();
        self.parts = parts
            .iter()
            .map(|&(folded, ops)| {
                let mut part = CpuPart {
                    ops,
                    ..CpuPart::default()
                };
                for (frames, count) in folded_stacks(folded) {
                    part.samples += count;
                    let (function, _) = charged_function(&frames);
                    if kept.contains(function.as_str()) {
                        *part.functions.entry(function).or_default() += count;
                    }
                }
                part
            })
            .collect();
    }

    /// CPU nanoseconds per operation in `category` (all categories with `None`).
    pub fn ns_per_op(&self, category: Option<CpuCategory>) -> f64 {
        let samples = match category {
            Some(c) => self.categories.get(&c).copied().unwrap_or(0),
            None => self.samples,
        };
        self.samples_to_ns_per_op(samples as f64)
    }

    /// CPU nanoseconds per operation that `samples` samples stand for.
    pub fn samples_to_ns_per_op(&self, samples: f64) -> f64 {
        if self.ops == 0 || self.hz == 0 {
            return 0.0;
        }
        samples * 1e9 / self.hz as f64 / self.ops as f64
    }

    /// Samples charged to `function` (0 when it is not among the kept functions); without
    /// those inside the allocator when `without_alloc`.
    pub fn function_samples(&self, function: &str, without_alloc: bool) -> u64 {
        self.functions
            .iter()
            .filter(|f| f.function == function)
            .map(|f| match without_alloc {
                true => f.samples - f.alloc_samples.min(f.samples),
                false => f.samples,
            })
            .sum()
    }
}

/// The stacks of folded text (`root;...;leaf COUNT` per line), frames from the root, with
/// their counts. Lines that do not parse are skipped.
pub(crate) fn folded_stacks(folded: &str) -> impl Iterator<Item = (Vec<&str>, u64)> {
    folded.lines().filter_map(|line| {
        let (stack, count) = line.rsplit_once(' ')?;
        let count = count.trim().parse::<u64>().ok()?;
        Some((stack.split(';').collect(), count))
    })
}

/// Splits a folded frame `function (file:line)` or `function (file)` into the function and its
/// location; frames without a location come back whole.
pub fn parse_frame(frame: &str) -> (&str, Option<&str>) {
    if let Some(body) = frame.strip_suffix(')')
        && let Some(open) = body.rfind(" (")
    {
        let location = &body[open + 2..];
        let has_line = location
            .rsplit(':')
            .next()
            .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
        // A frame symbolized without a line still names its file.
        let is_file = location.ends_with(".rs") && !location.contains(' ');
        if has_line || is_file {
            return (&body[..open], Some(location));
        }
    }
    (frame, None)
}

/// The category of one stack, frames from the root to the leaf.
pub fn classify_stack(frames: &[&str]) -> CpuCategory {
    let Some(leaf) = frames.last() else {
        return CpuCategory::User;
    };
    let leaf = parse_frame(leaf).0;
    if is_copy_routine(leaf) {
        return CpuCategory::Copy;
    }
    if frames
        .iter()
        .rev()
        .take(ALLOCATOR_DEPTH_MAX)
        .map(|f| parse_frame(f).0)
        .take_while(|f| !is_program_frame(f) || is_allocator_routine(f))
        .any(is_allocator_routine)
    {
        return CpuCategory::Alloc;
    }
    // From the leaf towards the root, past library plumbing, the first frame that is either the
    // runtime's machinery or the program's own code decides: a system call made by the I/O
    // driver or a parked worker is the executor's, one made by a handler is the program's.
    for (f, location) in frames.iter().rev().map(|f| parse_frame(f)) {
        if is_executor_frame(f) {
            return CpuCategory::Executor;
        }
        if is_own_code(f, location) {
            break;
        }
    }
    if !leaf.contains("::") {
        return CpuCategory::Syscall;
    }
    CpuCategory::User
}

/// The function a stack's time is charged to: the innermost frame of the program's own code
/// (C library routines, the standard library and the runtime are charged to their caller).
pub(crate) fn charged_function(frames: &[&str]) -> (String, Option<String>) {
    let parsed: Vec<(&str, Option<&str>)> = frames.iter().map(|f| parse_frame(f)).collect();
    let pick = parsed
        .iter()
        .rev()
        .find(|(f, l)| is_own_code(f, *l))
        .or_else(|| parsed.iter().rev().find(|(f, _)| f.contains("::")))
        .or(parsed.last());
    match pick {
        Some((f, l)) => (f.to_string(), l.map(str::to_string)),
        None => ("?".to_string(), None),
    }
}

/// The program's own frame nearest above the innermost frame of `charged` in `frames`, when
/// it is another function. The program's implementations of the standard value traits
/// (`Debug`, `Clone`, `PartialEq`...) are passed over: generic code calls them on behalf of
/// whoever formats, clones or compares, and that caller decided the work.
fn caller_above<'f>(frames: &[&'f str], charged: &str) -> Option<&'f str> {
    let parsed: Vec<(&str, Option<&str>)> = frames.iter().map(|&f| parse_frame(f)).collect();
    let at = parsed.iter().rposition(|(n, _)| *n == charged)?;
    parsed[..at]
        .iter()
        .rev()
        .find(|(n, l)| is_own_code(n, *l) && *n != charged && !is_value_trait_impl(n))
        .map(|(n, _)| *n)
}

/// Standard traits whose implementations are called by generic code for their caller.
const VALUE_TRAITS: [&str; 4] = [
    " as core::fmt::",
    " as core::clone::",
    " as core::cmp::",
    " as core::hash::",
];

/// Whether a function is a method of one of the [`VALUE_TRAITS`] (`<T as core::fmt::Debug>::fmt`).
fn is_value_trait_impl(function: &str) -> bool {
    function.starts_with('<') && VALUE_TRAITS.iter().any(|t| function.contains(t))
}

/// One function's samples while folded stacks are read: all of them, those in the allocator and
/// those in `memset`.
#[derive(Default)]
struct Charged {
    samples: u64,
    alloc: u64,
    zeroing: u64,
}

/// Whether a stack's leaf is `memset` (any CPU-specific variant): filling memory, not copying.
fn is_fill(frames: &[&str]) -> bool {
    frames
        .last()
        .is_some_and(|leaf| parse_frame(leaf).0.contains("memset"))
}

/// `memcpy`, `memmove`, `memset` and their CPU-specific variants: moving and filling bytes.
fn is_copy_routine(function: &str) -> bool {
    !function.contains("::")
        && (function.contains("memcpy")
            || function.contains("memmove")
            || function.contains("memset"))
}

/// The C library allocator's routines (glibc's, without its `__GI_` alias prefix).
const GLIBC_ROUTINES: [&str; 12] = [
    "malloc",
    "free",
    "cfree",
    "realloc",
    "calloc",
    "_int_malloc",
    "_int_free",
    "_int_realloc",
    "malloc_consolidate",
    "sysmalloc",
    "unlink_chunk",
    "posix_memalign",
];

/// The C allocator, alternative allocators, and Rust's allocation shims.
pub(crate) fn is_allocator_routine(function: &str) -> bool {
    const PREFIXES: [&str; 14] = [
        "__libc_malloc",
        "__libc_free",
        "__libc_realloc",
        "__libc_calloc",
        "tcache_",
        "__rust_alloc",
        "__rust_dealloc",
        "__rust_realloc",
        "__rdl_",
        "mi_",
        "_mi_",
        "je_",
        "_rjem_",
        "tikv_jemalloc",
    ];
    let f = function.trim_start_matches('<');
    let f = f.strip_prefix("__rustc::").unwrap_or(f);
    let f = f.strip_prefix("__GI_").unwrap_or(f);
    GLIBC_ROUTINES.contains(&f)
        || PREFIXES.iter().any(|p| f.starts_with(p))
        || f.starts_with("alloc::alloc::")
        || f.starts_with("diag::alloc::")
        || f.contains("as core::alloc::global::GlobalAlloc>")
        || f.starts_with("dhat::")
}

/// Which allocator an allocator stack ran in, from its innermost frame that only one allocator
/// has (an allocator's internals, `pac_dalloc_impl` or `tcache_*`, need not say whose they
/// are; its entry points do: `_rjem_sdallocx`, `mi_free`, `__libc_free`): `glibc malloc`,
/// `jemalloc`, `mimalloc`, `dhat`, or `other`.
pub fn allocator_family(frames: &[&str]) -> &'static str {
    frames
        .iter()
        .rev()
        .find_map(|f| family_of(parse_frame(f).0))
        .unwrap_or("other")
}

fn family_of(function: &str) -> Option<&'static str> {
    let f = function.trim_start_matches('<');
    // glibc's internal aliases: `__GI___libc_free` is `__libc_free`.
    let f = f.strip_prefix("__GI_").unwrap_or(f);
    let family = if ["je_", "_rjem_", "tikv_jemalloc"]
        .iter()
        .any(|p| f.starts_with(p))
    {
        "jemalloc"
    } else if ["mi_", "_mi_", "libmimalloc", "mimalloc::"]
        .iter()
        .any(|p| f.starts_with(p))
    {
        "mimalloc"
    } else if f.starts_with("dhat::") {
        "dhat"
    } else if GLIBC_ROUTINES.contains(&f)
        || (f.starts_with("__libc_") && f.contains("alloc"))
        || f.starts_with("__libc_free")
    {
        "glibc malloc"
    } else {
        return None;
    };
    Some(family)
}

/// Frames of the async runtime's own machinery (not the futures it polls, nor the sockets
/// the program reads and writes through it).
fn is_executor_frame(function: &str) -> bool {
    let f = function.trim_start_matches(['<', '&']);
    [
        "tokio::runtime::scheduler",
        "tokio::runtime::park",
        "tokio::runtime::driver",
        "tokio::runtime::io::driver",
        "tokio::runtime::time",
        "tokio::runtime::blocking",
        "tokio::runtime::task",
        "tokio::runtime::context",
        "tokio::runtime::runtime",
        "tokio::loom::",
        "tokio::park::",
        // Waiting for readiness; a socket's own read or write (`mio::net`, and mio's
        // `IoSourceState::do_io` around it) is the program's I/O.
        "mio::poll::Poll",
        "mio::sys::unix::selector::epoll",
        "std::thread::park",
        "parking_lot",
        "crossbeam",
    ]
    .iter()
    .any(|p| f.starts_with(p))
}

/// A frame of the program's own code: Rust, and none of the libraries'. Where the frame's
/// source file is known (`location`, a shortened path with its line), the file decides too: a
/// function in the standard library's or a registry crate's sources is a library's whatever
/// its name (`rand_core::impls::fill_bytes_via_next`, or a trait's default method called on a
/// program type). Without a file, the name alone decides.
pub(crate) fn is_own_code(function: &str, location: Option<&str>) -> bool {
    is_program_frame(function)
        && !is_library_frame(function)
        && !location.is_some_and(is_library_file)
}

/// Whether a shortened source path (see `diag::cpu`'s frames) is a library's: the standard
/// library's (`library/core/src/...`), a registry crate's, whose directory carries its version
/// (`rand_core-0.6.4/src/...`), or one left absolute because it is in no crate directory.
fn is_library_file(location: &str) -> bool {
    if location.starts_with("library/") || location.starts_with('/') {
        return true;
    }
    let crate_dir = location.split('/').next().unwrap_or_default();
    crate::cpu::registry_crate_name(crate_dir).is_some()
}

/// A Rust frame (it has a path) rather than a C library routine.
fn is_program_frame(function: &str) -> bool {
    function.contains("::")
}

/// Rust frames that are plumbing rather than the program's own work: std, core, alloc, the
/// runtime, futures combinators, common data-structure crates, and trait methods implemented
/// for such types (`<u8 as SpecFromElem>::from_elem`, `<&mut T as AsyncRead>::poll_read`).
fn is_library_frame(function: &str) -> bool {
    const LIBRARIES: [&str; 22] = [
        "core::",
        "alloc::",
        "std::",
        "tokio::",
        "tokio_metrics::",
        "mio::",
        "futures_util::",
        "futures_core::",
        "futures::",
        "tracing::",
        "tracing_core::",
        "diag::",
        "parking_lot",
        "lock_api::",
        "bytes::",
        "crossbeam",
        "hashbrown::",
        "pin_project_lite::",
        "__rustc::",
        "hdrhistogram::",
        "serde",
        "pprof::",
    ];
    let f = function.trim_start_matches(['<', '&']);
    let f = f.strip_prefix("mut ").unwrap_or(f);
    // `<u64>::rotate_left`: an inherent method of a primitive type.
    if let Some((self_type, _)) = f.split_once(">::")
        && !self_type.contains("::")
        && !self_type.contains(" as ")
    {
        return true;
    }
    // `X as Trait>::method`: whose is it? The self type decides; a primitive or a generic
    // parameter (no path) is the trait's.
    let owner = match f.split_once(" as ") {
        Some((self_type, rest)) if !self_type.contains("::") => rest,
        Some((self_type, _)) => self_type,
        None => f,
    };
    LIBRARIES.iter().any(|p| owner.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hot_spots_caller_is_who_asked_for_the_formatting_not_the_impls_between() {
        let folded = "main;app::node::Handler::handle (app/src/node.rs:50);alloc::fmt::format;\
                      <app::wire::Response as core::fmt::Debug>::fmt (app/src/wire.rs:131);\
                      <&T as core::fmt::Debug>::fmt (library/core/src/fmt/mod.rs:2865);\
                      <app::codec::Fragment as core::fmt::Debug>::fmt (app/src/codec.rs:183);\
                      core::fmt::write 40\n";
        let figures = CpuFigures::from_folded(folded, 10, 1000);
        let hot = &figures.functions[0];
        assert_eq!(
            hot.function,
            "<app::codec::Fragment as core::fmt::Debug>::fmt"
        );
        assert_eq!(hot.caller.as_deref(), Some("app::node::Handler::handle"));
    }

    #[test]
    fn frames_split_into_function_and_location() {
        assert_eq!(
            parse_frame("ddsplit::store::call (src/store.rs:140)"),
            ("ddsplit::store::call", Some("src/store.rs:140"))
        );
        assert_eq!(
            parse_frame("<(A, B) as T>::f"),
            ("<(A, B) as T>::f", None),
            "parentheses inside a name are not a location"
        );
        assert_eq!(parse_frame("memcpy"), ("memcpy", None));
        assert_eq!(
            parse_frame("ddsplit::conn::read (ddsplit/src/conn.rs)"),
            ("ddsplit::conn::read", Some("ddsplit/src/conn.rs")),
            "a file without a line is still a location"
        );
    }

    #[test]
    fn stacks_are_classified_by_what_the_leaf_is_and_who_called_it() {
        let stack = |s: &str| classify_stack(&s.split(';').collect::<Vec<_>>());
        assert_eq!(
            stack("main;ddsplit::store::call;__memmove_avx_unaligned_erms"),
            CpuCategory::Copy
        );
        assert_eq!(
            stack(
                "main;ddsplit::codec::split;alloc::raw_vec::grow;__rust_alloc;malloc;_int_malloc"
            ),
            CpuCategory::Alloc
        );
        assert_eq!(
            stack(
                "tokio::runtime::scheduler::multi_thread::worker::run;mio::poll::Poll::poll;epoll_wait"
            ),
            CpuCategory::Executor
        );
        assert_eq!(
            stack("tokio::runtime::task::harness::poll;ddsplit::store::log::write;fdatasync"),
            CpuCategory::Syscall
        );
        assert_eq!(
            stack("tokio::runtime::task::harness::poll;ddsplit::codec::checksum (src/codec.rs:9)"),
            CpuCategory::User
        );
        // A handler writing to its socket: the program's I/O, though it goes through tokio and
        // std on the way.
        assert_eq!(
            stack(
                "tokio::runtime::task::harness::poll;ddsplit::conn::Conn::call;tokio::net::tcp::stream::TcpStream::poll_write;<&std::net::tcp::TcpStream as std::io::Write>::write;std::sys::net::send;__libc_send"
            ),
            CpuCategory::Syscall
        );
        assert_eq!(
            stack(
                "tokio::runtime::blocking::pool::Inner::run;parking_lot_core::thread_parker::imp::ThreadParker::futex_wait;syscall"
            ),
            CpuCategory::Executor
        );
        assert_eq!(
            stack("main;ddsplit::x;__memset_avx2_unaligned_erms"),
            CpuCategory::Copy
        );
        assert_eq!(
            stack(
                "main;ddsplit::x;__rustc::__rust_dealloc (ddsplit/src/bin/ddsplit/allocator.rs:50)"
            ),
            CpuCategory::Alloc
        );
    }

    #[test]
    fn library_trait_impls_are_plumbing_and_program_ones_are_not() {
        assert!(is_library_frame(
            "<u8 as alloc::vec::spec_from_elem::SpecFromElem>::from_elem"
        ));
        assert!(is_library_frame(
            "<&mut T as tokio::io::async_read::AsyncRead>::poll_read"
        ));
        assert!(is_library_frame(
            "<&std::net::tcp::TcpStream as std::io::Write>::write"
        ));
        assert!(!is_library_frame(
            "<ddsplit::store::RemoteStore as ddsplit::store::FragmentStore>::get_fragment"
        ));
        assert!(!is_library_frame("ddsplit::codec::split"));
        assert!(is_library_frame("<u64>::rotate_left"));
    }

    #[test]
    fn a_frame_in_a_library_file_is_a_library_frame_whatever_its_name() {
        // A registry crate the name list does not know.
        assert!(!is_own_code(
            "rand_core::impls::fill_bytes_via_next",
            Some("rand_core-0.6.4/src/impls.rs:60")
        ));
        // A trait's default method called on a program type runs the standard library's code.
        assert!(!is_own_code(
            "<ddsplit::wire::Sink as std::io::Write>::write_all",
            Some("library/std/src/io/mod.rs:1800")
        ));
        assert!(is_own_code(
            "ddsplit::load::Worker::run::{{closure}}",
            Some("ddsplit/src/load.rs:210")
        ));
        // A workspace crate whose directory has a dash but no version.
        assert!(is_own_code(
            "ddsplit_benches::floor::serve",
            Some("ddsplit-benches/src/floor.rs:12")
        ));
        // Without a file, the name decides.
        assert!(is_own_code("rand_core::impls::fill_bytes_via_next", None));
        assert!(!is_own_code("tokio::io::split", None));
        let (charged, location) = charged_function(&[
            "main",
            "ddsplit::load::Worker::run (ddsplit/src/load.rs:20)",
            "rand_core::impls::fill_bytes_via_next (rand_core-0.6.4/src/impls.rs:60)",
        ]);
        assert_eq!(charged, "ddsplit::load::Worker::run");
        assert_eq!(location.as_deref(), Some("ddsplit/src/load.rs:20"));
    }

    #[test]
    fn library_routines_are_charged_to_the_program_function_that_called_them() {
        let folded = "\
main;ddsplit::store::call (src/store.rs:140);core::ptr::write;__memmove_avx_unaligned_erms 30
main;ddsplit::codec::split (src/codec.rs:20) 10
tokio::runtime::park;epoll_wait 5
";
        let cpu = CpuFigures::from_folded(folded, 100, 100);
        assert_eq!(cpu.samples, 45);
        assert_eq!(cpu.categories[&CpuCategory::Copy], 30);
        assert_eq!(cpu.categories[&CpuCategory::User], 10);
        assert_eq!(cpu.categories[&CpuCategory::Executor], 5);
        assert_eq!(cpu.functions[0].function, "ddsplit::store::call");
        assert_eq!(
            cpu.functions[0].location.as_deref(),
            Some("src/store.rs:140")
        );
        assert_eq!(cpu.function_samples("ddsplit::codec::split", false), 10);
        // 30 samples at 100 Hz over 100 ops: 3 ms per op.
        assert_eq!(cpu.ns_per_op(Some(CpuCategory::Copy)), 3_000_000.0);
    }

    #[test]
    fn allocator_time_is_counted_by_allocator_and_apart_in_its_caller() {
        let folded = "\
main;ddsplit::codec::split (src/codec.rs:20);__rust_alloc;__GI___libc_malloc;tcache_get 7
main;ddsplit::codec::split (src/codec.rs:20);__rust_dealloc;_rjem_sdallocx;pac_dalloc_impl 2
main;ddsplit::codec::split (src/codec.rs:20);__rust_alloc;mi_malloc_aligned;_mi_malloc_generic 4
main;ddsplit::codec::split (src/codec.rs:20);__rust_alloc 1
main;ddsplit::codec::split (src/codec.rs:20) 10
";
        let cpu = CpuFigures::from_folded(folded, 100, 100);
        let by_allocator: Vec<(&str, u64)> = cpu
            .allocators
            .iter()
            .map(|(a, n)| (a.as_str(), *n))
            .collect();
        assert_eq!(
            by_allocator,
            [
                ("glibc malloc", 7),
                ("jemalloc", 2),
                ("mimalloc", 4),
                ("other", 1)
            ]
        );
        assert_eq!(cpu.function_samples("ddsplit::codec::split", false), 24);
        assert_eq!(cpu.function_samples("ddsplit::codec::split", true), 10);
    }
}

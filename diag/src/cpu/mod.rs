//! CPU profiles: `pprof` sampling of the whole process, symbolized to function, source file and
//! line; folded stacks, `inferno` flamegraphs, the pprof protobuf (gzip'd, as Go serves it), and
//! an async-aware view ([`TaskView`]) that roots every stack at the kind of task that ran it and
//! tells the executor's share from the program's.
//!
//! ```no_run
//! use diag::cpu::{CpuProfiler, TaskView, DEFAULT_HZ};
//! let profiler = CpuProfiler::start(DEFAULT_HZ)?;
//! // ... the work to profile ...
//! let profile = profiler.stop()?;
//! let view = TaskView::new(["myapp"]).rule("myapp::handlers::upload", "upload");
//! std::fs::write("cpu.folded", profile.folded())?;
//! std::fs::write("cpu-tasks.folded", profile.tasks_folded(&view))?;
//! std::fs::write("flamegraph.svg", profile.flamegraph_svg("myapp", &profile.folded())?)?;
//! println!("{:?}", profile.summary(&view));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The sampler is `setitimer(ITIMER_PROF)` and a `SIGPROF` handler that unwinds the interrupted
//! thread: samples are spread over threads by the CPU time they use, and one profile at a time
//! can run in a process ([`CpuError::Busy`] otherwise).

mod encode;
mod view;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

pub use encode::PPROF_CONTENT_TYPE;
pub use pprof::protos;
pub use view::{CPU_SUMMARY_VERSION, CpuSummary, ExecutorSamples, TaskRule, TaskView};

/// Default sampling frequency: 99 Hz, not 100, so that sampling does not run in lockstep with
/// work that repeats every 10 ms (timers, tickers) and sees only one phase of it. At 99 Hz a
/// sample costs one signal and one unwind, well under 1% of a core.
pub const DEFAULT_HZ: u32 = 99;

/// Highest sampling frequency accepted: `ITIMER_PROF` ticks are kernel jiffies-bound, and above
/// about 1 kHz the unwinding in the signal handler becomes a visible part of the profile itself.
pub const HZ_MAX: u32 = 1000;

/// Set while a profile runs: the sampler (timer and signal handler) is one per process.
static BUSY: AtomicBool = AtomicBool::new(false);

/// Libraries whose code a sample may not start in: unwinding from inside the unwinder itself
/// (`libgcc_s`) can deadlock, and the vDSO's unwind tables are wrong on some distributions.
/// Samples landing there (a small share: `clock_gettime`, panics) are dropped.
const BLOCKLIST: [&str; 2] = ["libgcc", "vdso"];

/// Errors of the CPU profiler.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    /// Another profile is running in this process.
    #[error(
        "a CPU profile is already being taken in this process; the sampler is process-wide, so \
         only one runs at a time: wait for it to finish"
    )]
    Busy,
    /// The sampling frequency is out of range.
    #[error("sampling frequency {hz} Hz is out of range 1..={HZ_MAX}")]
    Frequency {
        /// The frequency asked for.
        hz: u32,
    },
    /// The sampler could not start or report.
    #[error("CPU sampler: {0}")]
    Sampler(#[from] pprof::Error),
    /// Writing a report failed.
    #[error("writing the CPU profile: {0}")]
    Io(#[from] std::io::Error),
}

/// A running CPU profile of the whole process. [`stop`](CpuProfiler::stop) ends sampling and
/// symbolizes what was collected; dropping it ends sampling and discards the samples.
pub struct CpuProfiler {
    guard: Option<pprof::ProfilerGuard<'static>>,
    hz: u32,
}

impl std::fmt::Debug for CpuProfiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuProfiler")
            .field("hz", &self.hz)
            .finish_non_exhaustive()
    }
}

impl CpuProfiler {
    /// Starts sampling every thread of the process `hz` times per second of CPU time.
    pub fn start(hz: u32) -> Result<CpuProfiler, CpuError> {
        if hz == 0 || hz > HZ_MAX {
            return Err(CpuError::Frequency { hz });
        }
        if BUSY.swap(true, Ordering::AcqRel) {
            return Err(CpuError::Busy);
        }
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(hz as i32)
            .blocklist(&BLOCKLIST)
            .build();
        match guard {
            Ok(guard) => Ok(CpuProfiler {
                guard: Some(guard),
                hz,
            }),
            Err(e) => {
                BUSY.store(false, Ordering::Release);
                Err(match e {
                    pprof::Error::Running => CpuError::Busy,
                    e => CpuError::Sampler(e),
                })
            }
        }
    }

    /// Does the sampler's one-time setup now: its first start captures and symbolizes a
    /// backtrace, which loads the binary's debug info (a few hundred milliseconds for a large
    /// binary). A program that times what it profiles calls this beforehand, so that the
    /// profile's start does not slow the measured work. Does nothing while a profile runs.
    pub fn prepare() {
        if let Ok(profiler) = CpuProfiler::start(1) {
            drop(profiler);
        }
    }

    /// Whether a profile is running in this process.
    pub fn is_running() -> bool {
        BUSY.load(Ordering::Acquire)
    }

    /// Stops sampling and symbolizes the samples (function, file and line of every frame,
    /// inlined frames included). Symbolizing reads the binary's debug info: it can take a
    /// second or more, so async callers run it on a blocking thread.
    pub fn stop(mut self) -> Result<CpuProfile, CpuError> {
        let guard = self
            .guard
            .take()
            .expect("the guard is only taken here, and `stop` consumes the profiler");
        let unresolved = guard.report().build_unresolved();
        // Sampling ends here, before the symbolizing below, which would otherwise profile itself.
        drop(guard);
        BUSY.store(false, Ordering::Release);
        let unresolved = unresolved?;
        let timing = unresolved.timing.clone();
        let mut symbols = Symbolizer::default();
        let mut merged: HashMap<(String, Vec<Frame>), u64> = HashMap::new();
        for (frames, count) in unresolved.data {
            if count <= 0 {
                continue;
            }
            let resolved = pprof::Frames::from(frames);
            let mut stack = Vec::with_capacity(resolved.frames.len() * 2);
            // pprof gives the leaf first, and for each address the innermost inlined function
            // first: reverse both for root-first stacks.
            for address in resolved.frames.iter().rev() {
                for symbol in address.iter().rev() {
                    stack.push(symbols.frame(symbol));
                }
            }
            // The signal handler unwinds from inside itself: its own frames (pprof's, the
            // unwinder's) are the leaf end of every stack, and none of the program's.
            while stack.last().is_some_and(is_sampler_frame) {
                stack.pop();
            }
            *merged
                .entry((resolved.thread_name_or_id(), stack))
                .or_default() += count as u64;
        }
        let mut stacks: Vec<Stack> = merged
            .into_iter()
            .map(|((thread, frames), samples)| Stack {
                thread,
                frames,
                samples,
            })
            .collect();
        stacks.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.frames.cmp(&b.frames)));
        Ok(CpuProfile {
            stacks,
            hz: self.hz,
            duration: timing.duration,
            start_time: timing.start_time,
        })
    }
}

impl Drop for CpuProfiler {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            drop(guard);
            BUSY.store(false, Ordering::Release);
        }
    }
}

/// One frame of a stack: a function (demangled, without its hash), and where in the source.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    /// The function, e.g. `ddsplit::gateway::Gateway::put::{{closure}}` (an async fn's body
    /// is its `{{closure}}`).
    pub function: String,
    /// The source file, shortened: from the crate's directory (`ddsplit/src/server.rs`,
    /// `tokio-1.54.1/src/...`), from `library/` for the standard library, else relative to the
    /// current directory.
    pub file: Option<String>,
    /// The line in `file`: of the sampled instruction for the innermost frame, of the call for
    /// the others.
    pub line: Option<u32>,
}

impl Frame {
    /// `function (file:line)`, or just the function when the source is not known. Semicolons
    /// (the folded format's separator, which appears in array types) become commas.
    pub fn label(&self) -> String {
        let function = self.function.replace(';', ",");
        match (&self.file, self.line) {
            (Some(file), Some(line)) => format!("{function} ({file}:{line})"),
            (Some(file), None) => format!("{function} ({file})"),
            _ => function,
        }
    }

    /// The crate the function belongs to: the first path segment, after any `<` of a trait
    /// impl (`<ddsplit::store::LocalStore as ...>::get` is `ddsplit`'s). A bare name without a
    /// path (an inlined function, in a build whose debug info has line tables only) is placed
    /// by its source file: `tokio-1.54.1/src/...` is `tokio`'s, `library/core/...` is `core`'s,
    /// `ddsplit/src/...` is `ddsplit`'s.
    pub fn crate_name(&self) -> Cow<'_, str> {
        let name = self
            .function
            .trim_start_matches(['<', '&', '*', '('])
            .trim_start_matches("mut ")
            .trim_start_matches("dyn ");
        let end = name.find([':', '<', ' ', '>', '(']).unwrap_or(name.len());
        if !name[end..].starts_with("::")
            && let Some(krate) = self.file.as_deref().and_then(crate_of_file)
        {
            return krate;
        }
        Cow::Borrowed(&name[..end])
    }
}

/// The crate of a Rust source file, from its shortened path (see [`Frame::file`]).
fn crate_of_file(file: &str) -> Option<Cow<'_, str>> {
    if !file.ends_with(".rs") || file.starts_with('/') {
        return None;
    }
    if let Some(rest) = file.strip_prefix("library/") {
        return rest.split('/').next().map(Cow::Borrowed);
    }
    // `src/main.rs` relative to a crate's own directory: the crate is not in the path.
    let first = file.split('/').next().filter(|first| *first != "src")?;
    let name = registry_crate_name(first).unwrap_or(first);
    Some(if name.contains('-') {
        Cow::Owned(name.replace('-', "_"))
    } else {
        Cow::Borrowed(name)
    })
}

/// The crate of a registry crate's directory, which carries its version (`rand_core-0.6.4` is
/// `rand_core`); `None` for any other directory (a workspace crate's).
pub(crate) fn registry_crate_name(dir: &str) -> Option<&str> {
    let (name, version) = dir.rsplit_once('-')?;
    let versioned = version.starts_with(|c: char| c.is_ascii_digit()) && version.contains('.');
    (versioned && !name.is_empty()).then_some(name)
}

/// A distinct stack and how many samples landed on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stack {
    /// The sampled thread's name (or id, when it has none).
    pub thread: String,
    /// Root first, leaf last.
    pub frames: Vec<Frame>,
    /// Samples on this stack.
    pub samples: u64,
}

/// A symbolized CPU profile.
#[derive(Clone, Debug)]
pub struct CpuProfile {
    /// The stacks, most samples first.
    pub stacks: Vec<Stack>,
    /// Sampling frequency, Hz of CPU time.
    pub hz: u32,
    /// Wall time sampled.
    pub duration: Duration,
    /// When sampling started.
    pub start_time: SystemTime,
}

impl CpuProfile {
    /// All samples.
    pub fn samples(&self) -> u64 {
        self.stacks.iter().map(|s| s.samples).sum()
    }

    /// Folded stacks (`thread;root;...;leaf count`, one line per stack, sorted), the input of
    /// `inferno-flamegraph` and `flamegraph.pl`; frames as `function (file:line)`.
    pub fn folded(&self) -> String {
        let mut lines: Vec<String> = self
            .stacks
            .iter()
            .map(|s| {
                let mut line = s.thread.replace([';', ' '], "_");
                for frame in &s.frames {
                    line.push(';');
                    line.push_str(&frame.label());
                }
                format!("{line} {}", s.samples)
            })
            .collect();
        lines.sort();
        let mut out = lines.join("\n");
        out.push('\n');
        out
    }

    /// The async-aware folded stacks of `view`: see [`TaskView`].
    pub fn tasks_folded(&self, view: &TaskView) -> String {
        view.folded(&self.stacks)
    }

    /// Sample counts: executor against program, per task kind.
    pub fn summary(&self, view: &TaskView) -> CpuSummary {
        view.summary(self)
    }

    /// An SVG flamegraph of `folded` (the output of [`folded`](CpuProfile::folded) or
    /// [`tasks_folded`](CpuProfile::tasks_folded)).
    pub fn flamegraph_svg(&self, title: &str, folded: &str) -> Result<Vec<u8>, CpuError> {
        flamegraph_svg(
            &format!(
                "{title}: {} samples at {} Hz over {:.1} s",
                self.samples(),
                self.hz,
                self.duration.as_secs_f64()
            ),
            folded,
        )
    }

    /// The profile in pprof's protobuf format (`profile.proto`), gzip'd: what Go's
    /// `/debug/pprof/profile` serves and `go tool pprof` reads.
    pub fn pprof_gzip(&self) -> Result<Vec<u8>, CpuError> {
        encode::pprof_gzip(self)
    }

    /// The profile in pprof's protobuf message types.
    pub fn to_pprof(&self) -> protos::Profile {
        encode::to_pprof(self)
    }
}

/// CPU time of the calling thread so far, nanoseconds: what a probe or a benchmark charges
/// itself, not counting other programs on the machine. Async-signal-safe (`clock_gettime`);
/// 0 if the clock cannot be read.
pub fn thread_cpu_ns() -> u64 {
    cpu_clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of the whole process so far, every thread's, nanoseconds (0 if unreadable).
pub fn process_cpu_ns() -> u64 {
    cpu_clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to; the clock ids are the platform's constants.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// An SVG flamegraph of folded stacks, with `title`.
pub fn flamegraph_svg(title: &str, folded: &str) -> Result<Vec<u8>, CpuError> {
    flamegraph_svg_of(title, folded, "samples")
}

/// An SVG flamegraph of folded stacks whose counts are `count_name` (`samples`, `µs`...).
pub fn flamegraph_svg_of(title: &str, folded: &str, count_name: &str) -> Result<Vec<u8>, CpuError> {
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_string();
    options.count_name = count_name.to_string();
    // Only lines that carry samples: an idle process's profile can be blank lines or zero
    // counts, which inferno refuses ("No stack counts found").
    let lines: Vec<&str> = folded
        .lines()
        .filter(|l| {
            l.rsplit_once(' ')
                .and_then(|(_, n)| n.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        })
        .collect();
    if lines.is_empty() {
        // inferno refuses empty input; an empty profile is still a valid (empty) picture.
        let title = title
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        return Ok(format!(
            "<?xml version=\"1.0\" standalone=\"no\"?>\n\
             <svg version=\"1.1\" width=\"1200\" height=\"60\" xmlns=\"http://www.w3.org/2000/svg\">\n\
             <text x=\"600\" y=\"24\" text-anchor=\"middle\">{title}</text>\n\
             <text x=\"600\" y=\"48\" text-anchor=\"middle\">no {count_name}</text>\n</svg>\n"
        )
        .into_bytes());
    }
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, lines, &mut svg)?;
    Ok(svg)
}

/// Turns symbols (pprof's, or the blocking sampler's) into [`Frame`]s, caching per raw name
/// and path.
#[derive(Default)]
pub(crate) struct Symbolizer {
    names: HashMap<Vec<u8>, String>,
    files: HashMap<std::path::PathBuf, String>,
    cwd: Option<std::path::PathBuf>,
}

impl Symbolizer {
    fn frame(&mut self, symbol: &pprof::Symbol) -> Frame {
        self.frame_of(symbol.raw_name(), symbol.filename.as_deref(), symbol.lineno)
    }

    /// The frame of a raw (mangled) name, its source file and line.
    pub(crate) fn frame_of(&mut self, raw: &[u8], path: Option<&Path>, line: Option<u32>) -> Frame {
        let function = match self.names.get(raw) {
            Some(name) => name.clone(),
            None => {
                let name = demangle(&String::from_utf8_lossy(raw));
                self.names.insert(raw.to_vec(), name.clone());
                name
            }
        };
        let file = path.map(|path| {
            if let Some(short) = self.files.get(path) {
                return short.clone();
            }
            let cwd = self
                .cwd
                .get_or_insert_with(|| std::env::current_dir().unwrap_or_default());
            let short = short_path(path, cwd);
            self.files.insert(path.to_path_buf(), short.clone());
            short
        });
        Frame {
            function,
            file,
            line,
        }
    }
}

/// Frames of the sampler itself, found at the leaf end of each stack.
pub(crate) fn is_sampler_frame(frame: &Frame) -> bool {
    matches!(frame.crate_name().as_ref(), "pprof" | "backtrace")
        || frame.function.starts_with("_Unwind_")
        || frame.function.starts_with("uw_")
}

/// A demangled Rust name without its hash (`{:#}`), or the name as it is (C functions).
pub fn demangle(raw: &str) -> String {
    match rustc_demangle::try_demangle(raw) {
        Ok(name) => format!("{name:#}"),
        Err(_) => raw.to_string(),
    }
}

/// Shortens a source path for reading: dependencies from the cargo registry start at their
/// crate directory, the standard library at `library/`, and the program's own files are
/// relative to `cwd`.
pub(crate) fn short_path(path: &Path, cwd: &Path) -> String {
    let text = path.to_string_lossy();
    if let Some(at) = text.find("/registry/src/") {
        // .../registry/src/<index>/<crate>-<version>/src/...
        let rest = &text[at + "/registry/src/".len()..];
        if let Some(slash) = rest.find('/') {
            return rest[slash + 1..].to_string();
        }
    }
    if let Some(rest) = text.strip_prefix("/rustc/")
        && let Some(slash) = rest.find('/')
    {
        return rest[slash + 1..].to_string();
    }
    // A crate of the program's own, absolute: from the crate's directory on
    // (`/home/dev/ddsplit/ddsplit/src/server.rs` is `ddsplit/src/server.rs`), so that profiles of two
    // checkouts of the same code name the same files.
    if path.is_absolute()
        && let Some(at) = text.rfind("/src/")
    {
        let crate_dir = text[..at].rfind('/').map_or(0, |slash| slash + 1);
        return text[crate_dir..].to_string();
    }
    match path.strip_prefix(cwd) {
        Ok(relative) => relative.to_string_lossy().into_owned(),
        Err(_) => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_shortened() {
        let cwd = Path::new("/home/dev/checkout");
        assert_eq!(
            short_path(
                Path::new(
                    "/home/dev/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/runtime/park.rs"
                ),
                cwd
            ),
            "tokio-1.54.1/src/runtime/park.rs"
        );
        assert_eq!(
            short_path(
                Path::new("/rustc/59807616e/library/core/src/ptr/mod.rs"),
                cwd
            ),
            "library/core/src/ptr/mod.rs"
        );
        assert_eq!(
            short_path(Path::new("/home/dev/checkout/ddsplit/src/codec.rs"), cwd),
            "ddsplit/src/codec.rs"
        );
        assert_eq!(
            short_path(
                Path::new("/elsewhere/checkout/ddsplit/src/node/log.rs"),
                cwd
            ),
            "ddsplit/src/node/log.rs"
        );
        assert_eq!(
            short_path(Path::new("/home/dev/checkout/diag/tests/it/cpu.rs"), cwd),
            "diag/tests/it/cpu.rs"
        );
        assert_eq!(
            short_path(Path::new("/elsewhere/x.rs"), cwd),
            "/elsewhere/x.rs"
        );
    }

    #[test]
    fn crate_names_and_labels() {
        let frame = |function: &str| Frame {
            function: function.to_string(),
            file: Some("src/a.rs".into()),
            line: Some(3),
        };
        assert_eq!(
            frame("<ddsplit::store::LocalStore as ddsplit::store::FragmentStore>::get")
                .crate_name(),
            "ddsplit"
        );
        assert_eq!(
            frame("tokio::runtime::park::Inner::park").crate_name(),
            "tokio"
        );
        assert_eq!(
            frame("__memmove_avx_unaligned").crate_name(),
            "__memmove_avx_unaligned"
        );
        assert_eq!(
            frame("<[u8; 16] as core::fmt::Debug>::fmt").label(),
            "<[u8, 16] as core::fmt::Debug>::fmt (src/a.rs:3)"
        );
    }

    #[test]
    fn demangles_without_hash() {
        assert_eq!(
            demangle("_ZN7ddsplit7gateway7Gateway3put17h0123456789abcdefE"),
            "ddsplit::gateway::Gateway::put"
        );
        assert_eq!(demangle("epoll_wait"), "epoll_wait");
    }

    #[test]
    fn empty_profiles_still_draw() {
        let svg = flamegraph_svg("nothing", "").unwrap();
        assert!(String::from_utf8(svg).unwrap().contains("<svg"));
    }
}

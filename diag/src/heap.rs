//! Heap profiles with `dhat`: every allocation is recorded with its backtrace, and the profile is
//! written as `dhat-heap.json`, the file valgrind's DHAT viewer (`dh_view.html`) opens.
//!
//! A heavy mode: each allocation takes a lock and unwinds its stack, so a program runs several
//! times slower. Install [`DhatAlloc`] as the global allocator *instead of* the counting one, and
//! never combine it with another heavy probe (a CPU profile would show dhat, and tokio-console's
//! instrumentation allocates on every poll: together they were seen to be over 100x slower).
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: diag::heap::DhatAlloc = diag::heap::DhatAlloc;
//!
//! fn main() -> Result<(), diag::heap::HeapError> {
//!     diag::heap::start("dhat-heap.json".into())?;
//!     // ... the work to profile ...
//!     let path = diag::heap::finish()?; // writes the file
//!     println!("heap profile in {}", path.display());
//!     Ok(())
//! }
//! ```

use std::path::PathBuf;
use std::sync::Mutex;

/// The dhat global allocator (allocations go to the system allocator, recorded while a profile
/// runs).
pub use dhat::Alloc as DhatAlloc;

/// The dhat file name the viewer expects by default.
pub const DHAT_FILE_NAME: &str = "dhat-heap.json";

/// Frames kept per allocation site. dhat's default (10) stops inside the runtime's polling
/// frames of an async program, before the request handler that allocated; 32 reaches it.
pub const BACKTRACE_FRAMES_MAX: usize = 32;

/// Errors of the heap profiler.
#[derive(Debug, thiserror::Error)]
pub enum HeapError {
    /// A profile already runs.
    #[error("a heap profile is already running in this process")]
    Running,
    /// No profile runs.
    #[error(
        "no heap profile is running: it starts with the program when it is built with the heap-profile feature"
    )]
    NotRunning,
}

struct Running {
    profiler: dhat::Profiler,
    file: PathBuf,
}

static PROFILE: Mutex<Option<Running>> = Mutex::new(None);

fn build(file: &PathBuf) -> dhat::Profiler {
    dhat::Profiler::builder()
        .file_name(file)
        .trim_backtraces(Some(BACKTRACE_FRAMES_MAX))
        .build()
}

/// Starts recording the heap; [`finish`] writes the profile to `file`. The global allocator
/// must be [`DhatAlloc`] for anything to be recorded.
pub fn start(file: PathBuf) -> Result<(), HeapError> {
    let mut profile = PROFILE.lock().unwrap_or_else(|e| e.into_inner());
    if profile.is_some() {
        return Err(HeapError::Running);
    }
    let profiler = build(&file);
    *profile = Some(Running { profiler, file });
    Ok(())
}

/// Whether a heap profile is running.
pub fn is_running() -> bool {
    PROFILE.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// The profile recorded so far, as dhat JSON; recording then starts afresh, so each call (and
/// the file [`finish`] writes) covers the time since the previous call or the start. Blocks
/// still live keep being tracked only if allocated after the restart: memory allocated before
/// and freed after is not counted as freed.
pub fn take_json() -> Result<String, HeapError> {
    let mut profile = PROFILE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(running) = profile.as_mut() else {
        return Err(HeapError::NotRunning);
    };
    let json = running.profiler.drop_and_get_memory_output();
    // `drop_and_get_memory_output` already ended this profiler: dropping it again would end it
    // twice (dhat panics on that), so it is forgotten; `dhat::Profiler` owns no memory.
    let ended = std::mem::replace(&mut running.profiler, build(&running.file));
    std::mem::forget(ended);
    Ok(json)
}

/// Ends the profile and writes it to the file given to [`start`]; returns that path.
pub fn finish() -> Result<PathBuf, HeapError> {
    let running = PROFILE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or(HeapError::NotRunning)?;
    // Dropping the profiler writes the file.
    drop(running.profiler);
    Ok(running.file)
}

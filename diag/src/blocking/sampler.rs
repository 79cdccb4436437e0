//! The sampler thread, the stack signal's handler, and the symbolized profile.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::slots::{
    ACTIVE, EVER_SAMPLED, SLOTS, STACK_DEPTH_MAX, STACK_FILLED, STACK_IDLE, STACK_REQUESTED,
    THREADS_MAX, UNSAMPLED_THREADS, add_blocked_ns, gettid, kind_name,
};
use super::{Blocked, BlockingSummary, SamplerCost};
use crate::cpu::{Frame, Symbolizer, process_cpu_ns, thread_cpu_ns};

/// Default ticks per second: 1 kHz. A tick reads the state of each thread inside a poll (a
/// `pread` of a few hundred bytes from procfs, about 2 µs), so with two workers the sampler
/// costs well under 1% of a core, and a poll that blocks 1 ms is seen about once.
pub const DEFAULT_HZ: u32 = 1000;

/// Most ticks per second: the sampler sleeps between ticks, and the kernel's timer slack
/// (50 µs) makes shorter periods meaningless.
pub const HZ_MAX: u32 = 10_000;

/// The signal that asks a blocked thread for its stack. `SIGURG` is ignored by default, so a
/// request that arrives after the profile ended does nothing, and no runtime uses it.
pub const STACK_SIGNAL: libc::c_int = libc::SIGURG;

/// Set while a profiler exists: one per process, like the CPU profiler.
static BUSY: AtomicBool = AtomicBool::new(false);

/// CPU time the stack signal's handlers spent in the running profile, nanoseconds.
static HANDLER_CPU_NS: AtomicU64 = AtomicU64::new(0);

/// Errors of the blocking profiler.
#[derive(Debug, thiserror::Error)]
pub enum BlockingError {
    /// Another blocking profile runs in this process.
    #[error("a blocking profile is already being taken in this process: one runs at a time")]
    Busy,
    /// The tick rate is out of range.
    #[error("blocking sampler rate {hz} Hz is out of range 1..={HZ_MAX}")]
    Frequency {
        /// The rate asked for.
        hz: u32,
    },
    /// The signal handler could not be installed.
    #[error("installing the stack signal's handler: {0}")]
    Signal(std::io::Error),
    /// The sampler thread could not start.
    #[error("starting the blocking sampler thread: {0}")]
    Thread(std::io::Error),
}

/// A running blocking profile; [`stop`](BlockingProfiler::stop) ends it and symbolizes.
#[derive(Debug)]
pub struct BlockingProfiler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Tally>>,
    hz: u32,
    started: Instant,
    process_cpu_at_start: u64,
    previous_action: libc::sigaction,
}

impl BlockingProfiler {
    /// Starts sampling the threads inside polls `hz` times a second.
    pub fn start(hz: u32) -> Result<BlockingProfiler, BlockingError> {
        if hz == 0 || hz > HZ_MAX {
            return Err(BlockingError::Frequency { hz });
        }
        if BUSY.swap(true, Ordering::AcqRel) {
            return Err(BlockingError::Busy);
        }
        let previous_action = match install_handler() {
            Ok(previous) => previous,
            Err(e) => {
                BUSY.store(false, Ordering::Release);
                return Err(BlockingError::Signal(e));
            }
        };
        HANDLER_CPU_NS.store(0, Ordering::Relaxed);
        let process_cpu_at_start = process_cpu_ns();
        ACTIVE.store(true, Ordering::Release);
        EVER_SAMPLED.store(true, Ordering::Release);
        let stop = Arc::new(AtomicBool::new(false));
        let period = Duration::from_secs(1) / hz;
        let thread = std::thread::Builder::new()
            .name("diag-blocking".into())
            .spawn({
                let stop = stop.clone();
                move || sample_until(&stop, period)
            });
        let thread = match thread {
            Ok(thread) => thread,
            Err(e) => {
                ACTIVE.store(false, Ordering::Release);
                restore_handler(&previous_action);
                BUSY.store(false, Ordering::Release);
                return Err(BlockingError::Thread(e));
            }
        };
        Ok(BlockingProfiler {
            stop,
            thread: Some(thread),
            hz,
            started: Instant::now(),
            process_cpu_at_start,
            previous_action,
        })
    }

    /// Stops sampling and symbolizes the stacks (reads debug info: run it off the runtime).
    pub fn stop(mut self) -> BlockingProfile {
        let tally = self.finish();
        let mut symbolizer = Symbolizer::default();
        let mut stacks: Vec<BlockedStack> = tally
            .stacks
            .into_iter()
            .map(|((kind, ips), t)| BlockedStack {
                kind: kind_name(kind).to_string(),
                frames: symbolize(&mut symbolizer, &ips),
                ticks: t.ticks,
                ns: t.ns,
            })
            .collect();
        stacks.sort_by(|a, b| b.ns.cmp(&a.ns).then(a.frames.cmp(&b.frames)));
        BlockingProfile {
            hz: self.hz,
            duration_ns: self.started.elapsed().as_nanos() as u64,
            kinds: tally
                .kinds
                .into_iter()
                .map(|(kind, t)| (kind_name(kind).to_string(), t))
                .collect(),
            stacks,
            unknown_stack_ns: tally.unknown_stack_ns,
            threads_unsampled: UNSAMPLED_THREADS.load(Ordering::Relaxed) as u64,
            cost: tally.cost,
        }
    }

    fn finish(&mut self) -> Tally {
        self.stop.store(true, Ordering::Release);
        let tally = self
            .thread
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        ACTIVE.store(false, Ordering::Release);
        restore_handler(&self.previous_action);
        BUSY.store(false, Ordering::Release);
        let mut tally = tally;
        tally.cost.handler_cpu_ns = HANDLER_CPU_NS.load(Ordering::Relaxed);
        tally.cost.process_cpu_ns = process_cpu_ns().saturating_sub(self.process_cpu_at_start);
        tally
    }
}

impl Drop for BlockingProfiler {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.finish();
        }
    }
}

/// A stack that was blocked inside a poll, and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockedStack {
    /// The task kind being polled.
    pub kind: String,
    /// Root first, leaf (the blocking call) last.
    pub frames: Vec<Frame>,
    /// Ticks that found it blocked.
    pub ticks: u64,
    /// Wall time off the CPU, nanoseconds.
    pub ns: u64,
}

/// A symbolized blocking profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockingProfile {
    /// Ticks per second.
    pub hz: u32,
    /// Wall time sampled, nanoseconds.
    pub duration_ns: u64,
    /// Blocked time per task kind.
    pub kinds: BTreeMap<String, Blocked>,
    /// Blocked stacks, most time first.
    pub stacks: Vec<BlockedStack>,
    /// Blocked time whose stack never arrived (the thread exited first).
    pub unknown_stack_ns: u64,
    /// Threads that were inside polls but found no free slot (see [`super::THREADS_MAX`]).
    pub threads_unsampled: u64,
    /// The CPU the profile spent on itself, against the process's.
    pub cost: SamplerCost,
}

impl BlockingProfile {
    /// Folded stacks `kind;root;...;leaf µs`, frames as `function (file:line)`; the counts are
    /// microseconds blocked, so a flamegraph of them is drawn to wall time.
    pub fn folded(&self) -> String {
        let mut lines: Vec<String> = self
            .stacks
            .iter()
            .filter(|s| s.ns >= 1000)
            .map(|s| {
                let mut line = s.kind.replace([';', ' '], "_");
                for frame in &s.frames {
                    line.push(';');
                    line.push_str(&frame.label());
                }
                format!("{line} {}", s.ns / 1000)
            })
            .collect();
        lines.sort();
        let mut out = lines.join("\n");
        out.push('\n');
        out
    }

    /// The summary written beside the folded stacks (`blocking.json`).
    pub fn summary(&self) -> BlockingSummary {
        BlockingSummary {
            version: super::BLOCKING_SUMMARY_VERSION,
            hz: self.hz,
            duration_ns: self.duration_ns,
            kinds: self.kinds.clone(),
            unknown_stack_ns: self.unknown_stack_ns,
            threads_unsampled: self.threads_unsampled,
            cost: Some(self.cost),
        }
    }

    /// A flamegraph of [`folded`](BlockingProfile::folded), widths in µs blocked.
    pub fn flamegraph_svg(&self, title: &str) -> Result<Vec<u8>, crate::cpu::CpuError> {
        let total_ms: u64 = self.kinds.values().map(|b| b.ns).sum::<u64>() / 1_000_000;
        crate::cpu::flamegraph_svg_of(
            &format!(
                "{title}: {total_ms} ms blocked inside polls over {:.1} s (the sampler used \
                 {:.2}% of the process's CPU)",
                self.duration_ns as f64 / 1e9,
                self.cost.share() * 100.0
            ),
            &self.folded(),
            "µs",
        )
    }
}

/// What the sampler thread counted.
#[derive(Debug, Default)]
struct Tally {
    kinds: HashMap<u32, Blocked>,
    stacks: HashMap<(u32, Vec<usize>), Blocked>,
    unknown_stack_ns: u64,
    cost: SamplerCost,
}

/// Time charged to a slot while its stack is on its way.
#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    tid: i32,
    kind: u32,
    blocked: Blocked,
}

fn sample_until(stop: &AtomicBool, period: Duration) -> Tally {
    let mut tally = Tally::default();
    let mut pending = vec![Pending::default(); THREADS_MAX];
    let mut states = ThreadStates::default();
    let pid = std::process::id() as libc::pid_t;
    let mut last = Instant::now();
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(period);
        let now = Instant::now();
        let tick_ns = now.duration_since(last).as_nanos() as u64;
        last = now;
        for (slot, pending) in SLOTS.iter().zip(pending.iter_mut()) {
            let tid = slot.tid.load(Ordering::Acquire);
            take_stack(slot, tid, pending, &mut tally);
            let kind = slot.kind.load(Ordering::Acquire);
            if tid == 0 || kind == 0 || !states.is_blocked(tid) {
                continue;
            }
            tally.kinds.entry(kind - 1).or_default().add(tick_ns);
            add_blocked_ns(kind - 1, tick_ns);
            if pending.blocked.ticks == 0 {
                *pending = Pending {
                    tid,
                    kind: kind - 1,
                    blocked: Blocked::default(),
                };
            }
            pending.blocked.add(tick_ns);
            request_stack(slot, pid, tid);
        }
    }
    for pending in pending.iter().filter(|p| p.blocked.ticks > 0) {
        tally.unknown_stack_ns += pending.blocked.ns;
    }
    tally.cost.sampler_cpu_ns = thread_cpu_ns();
    tally
}

/// Charges a slot's pending time to the stack its handler published, or to "unknown" when
/// the thread that owed it is gone.
fn take_stack(slot: &super::slots::Slot, tid: i32, pending: &mut Pending, tally: &mut Tally) {
    if pending.blocked.ticks == 0 {
        return;
    }
    if slot.stack_state.load(Ordering::Acquire) == STACK_FILLED {
        // SAFETY: the handler published FILLED with Release; it does not touch the buffer
        // again until the state is REQUESTED.
        let ips = unsafe { slot.filled_frames() };
        tally
            .stacks
            .entry((pending.kind, ips))
            .or_default()
            .merge(pending.blocked);
        *pending = Pending::default();
        slot.stack_state.store(STACK_IDLE, Ordering::Release);
    } else if tid != pending.tid {
        tally.unknown_stack_ns += pending.blocked.ns;
        *pending = Pending::default();
        slot.stack_state.store(STACK_IDLE, Ordering::Release);
    }
}

fn request_stack(slot: &super::slots::Slot, pid: libc::pid_t, tid: i32) {
    if slot
        .stack_state
        .compare_exchange(
            STACK_IDLE,
            STACK_REQUESTED,
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
    {
        // SAFETY: tgkill with this process's id and a thread id of it; a thread that has just
        // exited makes it fail with ESRCH, which leaves the request to be dropped.
        unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, STACK_SIGNAL) };
    }
}

/// Open `/proc/self/task/TID/stat` files, re-read at offset 0 at every tick.
#[derive(Default)]
struct ThreadStates {
    files: HashMap<i32, File>,
    buffer: Vec<u8>,
}

impl ThreadStates {
    /// Whether the thread sleeps (`S`) or waits uninterruptibly (`D`): off the CPU.
    fn is_blocked(&mut self, tid: i32) -> bool {
        let file = match self.files.entry(tid) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                match File::open(format!("/proc/self/task/{tid}/stat")) {
                    Ok(file) => e.insert(file),
                    Err(_) => return false,
                }
            }
        };
        self.buffer.resize(512, 0);
        let Ok(n) = file.read_at(&mut self.buffer, 0) else {
            self.files.remove(&tid);
            return false;
        };
        // `pid (comm) S ...`: the state follows the last `)` (comm may hold spaces and parens).
        let text = &self.buffer[..n];
        let Some(close) = text.iter().rposition(|&b| b == b')') else {
            return false;
        };
        matches!(text.get(close + 2), Some(b'S' | b'D'))
    }
}

fn install_handler() -> std::io::Result<libc::sigaction> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler only
    // uses async-signal-safe operations (atomics, gettid, the unwinder without allocation).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_stack_signal as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        let mut previous: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(STACK_SIGNAL, &action, &mut previous) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(previous)
    }
}

fn restore_handler(previous: &libc::sigaction) {
    // SAFETY: `previous` came from sigaction itself.
    unsafe { libc::sigaction(STACK_SIGNAL, previous, std::ptr::null_mut()) };
}

/// Unwinds the interrupted thread into its slot, if the sampler asked for its stack.
extern "C" fn on_stack_signal(
    _signal: libc::c_int,
    _info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    // SAFETY: errno is thread-local; the handler must leave it as the interrupted code had it.
    let errno = unsafe { *libc::__errno_location() };
    let tid = gettid();
    if let Some(slot) = SLOTS.iter().find(|s| s.tid.load(Ordering::Relaxed) == tid)
        && slot.stack_state.load(Ordering::Acquire) == STACK_REQUESTED
    {
        let started = thread_cpu_ns();
        // SAFETY: this is the slot's own thread and the state is REQUESTED.
        let frames = unsafe { slot.frames_for_handler() };
        let mut depth = 0;
        // SAFETY: unwinding without the library's lock, as pprof's handler does: this thread
        // was blocked in a system call, not inside the unwinder.
        unsafe {
            backtrace::trace_unsynchronized(|frame| {
                frames[depth] = frame.ip() as usize;
                depth += 1;
                depth < STACK_DEPTH_MAX
            })
        };
        slot.depth.store(depth, Ordering::Relaxed);
        HANDLER_CPU_NS.fetch_add(thread_cpu_ns().saturating_sub(started), Ordering::Relaxed);
        slot.stack_state.store(STACK_FILLED, Ordering::Release);
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Root-first frames of a leaf-first list of instruction addresses, without the handler's
/// own frames: the unwinder's, the handler's, and the signal trampoline just past it.
fn symbolize(symbolizer: &mut Symbolizer, ips: &[usize]) -> Vec<Frame> {
    let per_ip: Vec<Vec<Frame>> = ips.iter().map(|&ip| resolve(symbolizer, ip)).collect();
    let handler = per_ip.iter().position(|inlined| {
        inlined
            .iter()
            .any(|f| f.function.contains("on_stack_signal"))
    });
    let interrupted = handler.map_or(0, |at| at + 2);
    per_ip
        .into_iter()
        .skip(interrupted)
        .rev()
        // backtrace gives the innermost inlined function first.
        .flat_map(|inlined| inlined.into_iter().rev())
        .collect()
}

fn resolve(symbolizer: &mut Symbolizer, ip: usize) -> Vec<Frame> {
    let mut inlined = Vec::new();
    backtrace::resolve(ip as *mut libc::c_void, |symbol| {
        let raw = symbol.name().map(|n| n.as_bytes().to_vec());
        inlined.push(symbolizer.frame_of(
            raw.as_deref().unwrap_or(b"?"),
            symbol.filename(),
            symbol.lineno(),
        ));
    });
    if inlined.is_empty() {
        inlined.push(Frame {
            function: format!("{ip:#x}"),
            file: None,
            line: None,
        });
    }
    inlined
}

//! Which thread is inside a poll of which task kind, for the blocking sampler: a fixed table of
//! thread slots, written by the polling thread and read by the sampler thread and by the signal
//! handler, with atomics only (the handler may not lock or allocate).

use std::cell::{Cell, UnsafeCell};
use std::sync::Mutex;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

/// Most threads that can be seen inside a poll at once: a runtime's workers plus the threads
/// that block on futures of their own. A thread past the limit is not sampled (and says so in
/// the profile's `threads_unsampled`).
pub const THREADS_MAX: usize = 256;

/// Deepest stack kept per sample; deeper stacks lose their root end (the runtime's frames).
pub const STACK_DEPTH_MAX: usize = 128;

/// Most distinct task kind names (each [`crate::tasks::TaskKind`] interns its name once).
pub const KIND_NAMES_MAX: usize = 4096;

/// Set while a blocking profile runs; off (and [`MARKING`] off), a poll scope costs two
/// relaxed loads.
pub(crate) static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Set while a probe other than the sampler asks which kind a thread polls ([`polling_kind`]).
static MARKING: AtomicBool = AtomicBool::new(false);

/// Marks every poll of an instrumented future with its task kind while it lives, so that
/// [`polling_kind`] can say on which kind's behalf a thread works (the console's wait layer
/// charges a wait to the kind that started it). At most one at a time is meaningful.
#[derive(Debug)]
pub struct PollMarks {
    _private: (),
}

/// Starts marking polls with their task kinds until the returned guard drops.
pub fn mark_polls() -> PollMarks {
    MARKING.store(true, Ordering::Release);
    PollMarks { _private: () }
}

impl Drop for PollMarks {
    fn drop(&mut self) {
        MARKING.store(false, Ordering::Release);
    }
}

/// The task kind the calling thread is polling now, while polls are marked ([`mark_polls`],
/// or a blocking profile); `None` outside an instrumented poll.
pub fn polling_kind() -> Option<&'static str> {
    let kind = my_slot()?.kind.load(Ordering::Acquire);
    (kind > 0).then(|| kind_name(kind - 1))
}

/// Set when the first blocking profile of the process starts. Before that no kind's blocked
/// time was measured, and [`blocked_ns`] says so rather than report a zero.
pub(crate) static EVER_SAMPLED: AtomicBool = AtomicBool::new(false);

/// Wall time off the CPU inside polls, nanoseconds, per interned kind id: what every blocking
/// profile of the process charged, for the task probes to show live.
static BLOCKED_NS: [AtomicU64; KIND_NAMES_MAX] = [const { AtomicU64::new(0) }; KIND_NAMES_MAX];

/// Charges `ns` of blocked time to a kind id (the sampler, once per tick and blocked thread).
#[cfg(feature = "cpu")]
pub(crate) fn add_blocked_ns(kind_id: u32, ns: u64) {
    if let Some(total) = BLOCKED_NS.get(kind_id as usize) {
        total.fetch_add(ns, Ordering::Relaxed);
    }
}

/// A kind id's blocked time so far, counted while blocking profiles ran; `None` when none has
/// run in this process.
pub(crate) fn blocked_ns(kind_id: u32) -> Option<u64> {
    if !EVER_SAMPLED.load(Ordering::Acquire) {
        return None;
    }
    Some(BLOCKED_NS.get(kind_id as usize)?.load(Ordering::Relaxed))
}

/// Threads that wanted a slot when all [`THREADS_MAX`] were taken.
pub(crate) static UNSAMPLED_THREADS: AtomicUsize = AtomicUsize::new(0);

/// A stack request's states: the sampler asks, the handler fills, the sampler takes.
pub(crate) const STACK_IDLE: u8 = 0;
pub(crate) const STACK_REQUESTED: u8 = 1;
pub(crate) const STACK_FILLED: u8 = 2;

/// One thread's slot.
pub(crate) struct Slot {
    /// Kernel thread id; 0 when the slot is free.
    pub tid: AtomicI32,
    /// The task kind being polled on the thread: its interned id + 1, 0 outside any poll.
    pub kind: AtomicU32,
    /// [`STACK_IDLE`], [`STACK_REQUESTED`] or [`STACK_FILLED`].
    pub stack_state: AtomicU8,
    /// Frames written by the handler while the state is `REQUESTED`.
    pub depth: AtomicUsize,
    frames: UnsafeCell<[usize; STACK_DEPTH_MAX]>,
}

// SAFETY: `frames` is written only by the slot's own thread (in the signal handler) while the
// state is `REQUESTED`, and read only by the sampler after the handler published `FILLED` with
// Release ordering; the state machine gives each side exclusive access in turn.
unsafe impl Sync for Slot {}

impl Slot {
    const fn new() -> Slot {
        Slot {
            tid: AtomicI32::new(0),
            kind: AtomicU32::new(0),
            stack_state: AtomicU8::new(STACK_IDLE),
            depth: AtomicUsize::new(0),
            frames: UnsafeCell::new([0; STACK_DEPTH_MAX]),
        }
    }

    /// The frame buffer, for the signal handler of the slot's own thread.
    ///
    /// # Safety
    /// Only the slot's thread may call this, and only while the state is `REQUESTED`.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn frames_for_handler(&self) -> &mut [usize; STACK_DEPTH_MAX] {
        // SAFETY: the caller holds the exclusive side of the state machine.
        unsafe { &mut *self.frames.get() }
    }

    /// The frames the handler published.
    ///
    /// # Safety
    /// Only the sampler may call this, after loading `FILLED` with Acquire ordering.
    pub(crate) unsafe fn filled_frames(&self) -> Vec<usize> {
        let depth = self.depth.load(Ordering::Relaxed).min(STACK_DEPTH_MAX);
        // SAFETY: the handler is done with the buffer until the state is `REQUESTED` again.
        unsafe { (&*self.frames.get())[..depth].to_vec() }
    }
}

pub(crate) static SLOTS: [Slot; THREADS_MAX] = [const { Slot::new() }; THREADS_MAX];

/// The names behind the kind ids; only registration and the end of a profile lock it.
static KIND_NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// The id of a task kind's name, interned once per name (a kind built twice shares its id).
pub(crate) fn intern_kind(name: &'static str) -> u32 {
    let mut names = KIND_NAMES.lock().expect("never held across a panic");
    if let Some(at) = names.iter().position(|n| *n == name) {
        return at as u32;
    }
    if names.len() >= KIND_NAMES_MAX {
        // Past the limit every further kind shares the last id's name; the limit is far above
        // what a registry can hold (`TASK_KINDS_MAX`).
        return (names.len() - 1) as u32;
    }
    names.push(name);
    (names.len() - 1) as u32
}

/// The name of an interned kind id.
pub(crate) fn kind_name(id: u32) -> &'static str {
    KIND_NAMES
        .lock()
        .expect("never held across a panic")
        .get(id as usize)
        .copied()
        .unwrap_or("?")
}

/// The kernel id of the calling thread.
pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// The calling thread's claim on a slot, given back when the thread exits.
struct Claim {
    slot: Cell<Option<&'static Slot>>,
    tried: Cell<bool>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.get() {
            slot.kind.store(0, Ordering::Release);
            slot.tid.store(0, Ordering::Release);
        }
    }
}

thread_local! {
    static CLAIM: Claim = const { Claim { slot: Cell::new(None), tried: Cell::new(false) } };
}

fn my_slot() -> Option<&'static Slot> {
    CLAIM
        .try_with(|claim| {
            if !claim.tried.get() {
                claim.tried.set(true);
                claim.slot.set(claim_free_slot(gettid()));
            }
            claim.slot.get()
        })
        .ok()
        .flatten()
}

fn claim_free_slot(tid: i32) -> Option<&'static Slot> {
    let found = SLOTS.iter().find(|slot| {
        slot.tid
            .compare_exchange(0, tid, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    });
    if found.is_none() {
        UNSAMPLED_THREADS.fetch_add(1, Ordering::Relaxed);
    }
    found
}

/// Marks the calling thread as polling a kind until dropped (nested polls restore the outer
/// kind). Costs one relaxed load when no blocking profile runs.
pub(crate) struct PollScope {
    slot: Option<&'static Slot>,
    outer: u32,
}

impl PollScope {
    #[inline]
    pub(crate) fn enter(kind_id: u32) -> PollScope {
        if !ACTIVE.load(Ordering::Relaxed) && !MARKING.load(Ordering::Relaxed) {
            return PollScope {
                slot: None,
                outer: 0,
            };
        }
        let slot = my_slot();
        let outer = slot.map_or(0, |s| s.kind.swap(kind_id + 1, Ordering::AcqRel));
        PollScope { slot, outer }
    }
}

impl Drop for PollScope {
    #[inline]
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            slot.kind.store(self.outer, Ordering::Release);
        }
    }
}

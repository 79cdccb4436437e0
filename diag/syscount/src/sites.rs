//! Where the calls come from: every [`SAMPLE_EVERY`]th call of a system call on a thread is
//! unwound, and its stack (return addresses) counted in a lock-free table, so the report can say
//! which function of the program makes the calls, by count, not by CPU time. A stack costs a
//! few microseconds to unwind (2.4 µs here); one call in 128 keeps that near 20 ns a call.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use diag_preload::{FdWriter, Num};

use crate::counts::NAMES;

/// One call in this many (per thread and system call) has its stack taken, by default.
pub const SAMPLE_EVERY: u64 = 128;

/// The sampling period in use (`DIAG_SYSCALLS_SAMPLE_EVERY`; 0 takes no stacks).
pub static PERIOD: AtomicU64 = AtomicU64::new(SAMPLE_EVERY);

/// Set once the constructor has run: no stack is taken while the program is being loaded.
pub static READY: AtomicBool = AtomicBool::new(false);

/// Return addresses kept per stack: deep enough to pass the runtime's and the standard
/// library's frames and reach the program's.
pub const FRAMES_MAX: usize = 48;

/// Distinct (system call, stack) pairs the table holds; a power of two.
pub const STACK_SLOTS: usize = 4096;

/// How many slots an insertion probes before it counts the stack as dropped.
const PROBES_MAX: usize = 64;

/// One (system call, stack) pair and how many sampled calls took it.
struct Slot {
    /// The pair's hash, never 0 once claimed.
    key: AtomicU64,
    call: AtomicU64,
    count: AtomicU64,
    depth: AtomicU64,
    frames: [AtomicU64; FRAMES_MAX],
}

static SLOTS: [Slot; STACK_SLOTS] = [const {
    Slot {
        key: AtomicU64::new(0),
        call: AtomicU64::new(0),
        count: AtomicU64::new(0),
        depth: AtomicU64::new(0),
        frames: [const { AtomicU64::new(0) }; FRAMES_MAX],
    }
}; STACK_SLOTS];

/// Sampled stacks not kept: the table was full around their slot.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Whether the call that made a system call's per-thread count `count_before` is sampled.
#[inline(always)]
pub fn sampled(count_before: u64) -> bool {
    let period = PERIOD.load(Ordering::Relaxed);
    period != 0 && count_before.is_multiple_of(period) && READY.load(Ordering::Relaxed)
}

/// Unwinds the calling thread and counts its stack under system call `call`.
#[cold]
#[inline(never)]
pub fn take(call: usize) {
    let mut stack = Stack {
        frames: [0; FRAMES_MAX],
        depth: 0,
    };
    // SAFETY: the callback only writes into `stack`, which outlives the call.
    unsafe { _Unwind_Backtrace(on_frame, (&raw mut stack).cast()) };
    record(call, &stack.frames[..stack.depth]);
}

struct Stack {
    frames: [u64; FRAMES_MAX],
    depth: usize,
}

#[repr(C)]
struct UnwindContext {
    _private: [u8; 0],
}

/// `_URC_NO_REASON`: go on unwinding; `_URC_END_OF_STACK`: stop.
const URC_NO_REASON: i32 = 0;
const URC_END_OF_STACK: i32 = 5;

unsafe extern "C" {
    fn _Unwind_Backtrace(
        trace: unsafe extern "C" fn(*mut UnwindContext, *mut core::ffi::c_void) -> i32,
        data: *mut core::ffi::c_void,
    ) -> i32;
    fn _Unwind_GetIP(context: *mut UnwindContext) -> usize;
}

unsafe extern "C" fn on_frame(context: *mut UnwindContext, data: *mut core::ffi::c_void) -> i32 {
    // SAFETY: `data` is the `Stack` that `take` passed.
    let stack = unsafe { &mut *data.cast::<Stack>() };
    // SAFETY: the unwinder passes a valid context.
    let ip = unsafe { _Unwind_GetIP(context) } as u64;
    if ip == 0 || stack.depth == FRAMES_MAX {
        return URC_END_OF_STACK;
    }
    stack.frames[stack.depth] = ip;
    stack.depth += 1;
    URC_NO_REASON
}

fn record(call: usize, frames: &[u64]) {
    let key = hash(call, frames);
    let mask = STACK_SLOTS - 1;
    let mut i = (key >> 20) as usize & mask;
    for _ in 0..PROBES_MAX {
        let slot = &SLOTS[i];
        match slot
            .key
            .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                for (cell, &ip) in slot.frames.iter().zip(frames) {
                    cell.store(ip, Ordering::Relaxed);
                }
                slot.depth.store(frames.len() as u64, Ordering::Relaxed);
                slot.call.store(call as u64, Ordering::Relaxed);
                slot.count.fetch_add(1, Ordering::Release);
                return;
            }
            Err(current) if current == key => {
                slot.count.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(_) => i = (i + 1) & mask,
        }
    }
    DROPPED.fetch_add(1, Ordering::Relaxed);
}

/// FNV-1a over the call and the frames; never 0.
fn hash(call: usize, frames: &[u64]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in core::iter::once(call as u64).chain(frames.iter().copied()) {
        h = (h ^ v).wrapping_mul(0x0100_0000_01b3);
    }
    h | 1
}

/// Writes `sample_every N`, `stacks_dropped N` and one `stack COUNT 0xIP,0xIP,... NAME` line
/// per sampled stack (innermost frame first; `-` when the unwinder found none).
pub fn write_stacks(out: &mut FdWriter) {
    out.line(
        &[b"sample_every "],
        Some(Num::Dec(PERIOD.load(Ordering::Relaxed))),
    );
    out.line(
        &[b"stacks_dropped "],
        Some(Num::Dec(DROPPED.load(Ordering::Relaxed))),
    );
    for slot in &SLOTS {
        let count = slot.count.load(Ordering::Acquire);
        let call = slot.call.load(Ordering::Relaxed) as usize;
        if count == 0 || call >= NAMES.len() {
            continue;
        }
        out.text(b"stack ");
        out.num(Num::Dec(count));
        let depth = (slot.depth.load(Ordering::Relaxed) as usize).min(FRAMES_MAX);
        if depth == 0 {
            out.text(b" -");
        }
        for (i, cell) in slot.frames[..depth].iter().enumerate() {
            out.text(if i == 0 { b" " } else { b"," });
            out.num(Num::Hex(cell.load(Ordering::Relaxed)));
        }
        out.line(&[b" ", NAMES[call].as_bytes()], None);
    }
}

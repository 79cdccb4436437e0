//! The counters: calls and errors per system call, in shards by thread so that two threads
//! never write one cache line; and what each descriptor is (an eventfd, a TCP socket with or
//! without Nagle's algorithm), where a call is counted by what it is made on.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use diag_preload::{IO_SYSCALLS, TCP_WRITES_NAGLE, TCP_WRITES_NODELAY};

use crate::sites;

/// Calls counted beside the I/O calls: an eventfd's reads, writes and closes (one thread waking
/// another), its creation, and the runtime's waits for events; and the writes to TCP sockets,
/// by whether Nagle's algorithm is on (counted in addition to the write's own call).
const OTHER_CALLS: [&str; 7] = [
    "read (eventfd)",
    "write (eventfd)",
    "close (eventfd)",
    "eventfd2",
    "epoll_wait",
    TCP_WRITES_NAGLE,
    TCP_WRITES_NODELAY,
];

/// The system calls counted, by index, named as `strace` names them.
pub const NAMES: [&str; IO_SYSCALLS.len() + OTHER_CALLS.len()] = {
    let mut names = [""; IO_SYSCALLS.len() + OTHER_CALLS.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = if i < IO_SYSCALLS.len() {
            IO_SYSCALLS[i]
        } else {
            OTHER_CALLS[i - IO_SYSCALLS.len()]
        };
        i += 1;
    }
    names
};

/// The index of `name` in [`NAMES`]; call it in a `const` block, where it costs nothing and a
/// name not in the list fails the build.
pub const fn index(name: &str) -> usize {
    let mut i = 0;
    while i < NAMES.len() {
        if eq(NAMES[i].as_bytes(), name.as_bytes()) {
            return i;
        }
        i += 1;
    }
    panic!("a system call that is not in NAMES");
}

const fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Shards of the counters; a power of two. Threads map to shards by their id, so a runtime's
/// few worker threads rarely share one.
pub const SHARDS: usize = 16;

/// One shard's counters, on cache lines of its own.
#[repr(align(128))]
pub struct Shard {
    calls: [AtomicU64; NAMES.len()],
    errors: [AtomicU64; NAMES.len()],
    wall_ns: [AtomicU64; NAMES.len()],
}

static COUNTS: [Shard; SHARDS] = [const {
    Shard {
        calls: [const { AtomicU64::new(0) }; NAMES.len()],
        errors: [const { AtomicU64::new(0) }; NAMES.len()],
        wall_ns: [const { AtomicU64::new(0) }; NAMES.len()],
    }
}; SHARDS];

/// The calls whose wall time is measured too: each waits for the disk, for milliseconds, so
/// their count alone does not say what they cost, and two clock reads (tens of nanoseconds)
/// are nothing beside them.
pub const TIMED_CALLS: [&str; 3] = ["fsync", "fdatasync", "sync_file_range"];

/// Whether call `call`'s wall time is measured; call it in a `const` block.
pub const fn is_timed(call: usize) -> bool {
    let mut i = 0;
    while i < TIMED_CALLS.len() {
        if eq(TIMED_CALLS[i].as_bytes(), NAMES[call].as_bytes()) {
            return true;
        }
        i += 1;
    }
    false
}

/// The monotonic clock, nanoseconds (the vDSO's: no system call).
#[inline(always)]
pub fn now_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock and a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
    (now.tv_sec as u64).wrapping_mul(1_000_000_000) + now.tv_nsec as u64
}

/// Adds `ns` of wall time to call `call`.
#[inline(always)]
pub fn add_wall(call: usize, ns: u64) {
    COUNTS[this_shard()].wall_ns[call].fetch_add(ns, Ordering::Relaxed);
}

/// Wall nanoseconds in call `call`, summed over the shards (0 for calls not timed).
pub fn total_wall(call: usize) -> u64 {
    COUNTS
        .iter()
        .map(|shard| shard.wall_ns[call].load(Ordering::Relaxed))
        .sum()
}

/// Counts one call of system call `call`, and its error when it `failed`; takes its stack when
/// it is a sampled one (see [`sites`]).
#[inline(always)]
pub fn record(call: usize, failed: bool) {
    let shard = &COUNTS[this_shard()];
    let before = shard.calls[call].fetch_add(1, Ordering::Relaxed);
    if failed {
        shard.errors[call].fetch_add(1, Ordering::Relaxed);
    }
    if sites::sampled(before) {
        sites::take(call);
    }
}

#[inline(always)]
fn this_shard() -> usize {
    // The thread pointer (what `pthread_self` returns on x86-64, read without a call): the
    // address of the thread's control block, pages apart from another's; mix its bits down.
    let id: u64;
    // SAFETY: `fs:0` holds the thread pointer in every thread of an x86-64 Linux process.
    unsafe {
        core::arch::asm!("mov {}, fs:0", out(reg) id, options(nostack, readonly, preserves_flags));
    }
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize & (SHARDS - 1)
}

/// Calls and errors of system call `call`, summed over the shards.
pub fn total(call: usize) -> (u64, u64) {
    COUNTS.iter().fold((0, 0), |(calls, errors), shard| {
        (
            calls + shard.calls[call].load(Ordering::Relaxed),
            errors + shard.errors[call].load(Ordering::Relaxed),
        )
    })
}

/// Descriptors below this have their kind remembered ([`FdKind`]); a higher one is counted as a
/// file's, and its writes are not told apart by socket.
pub const TRACKED_FDS: usize = 1 << 16;

/// What a descriptor is, as far as counting its calls goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FdKind {
    /// Not looked at since it was last closed (or ever).
    Unknown = 0,
    /// A file, a pipe, a socket other than TCP.
    Other = 1,
    /// An eventfd the program created.
    EventFd = 2,
    /// A TCP socket with Nagle's algorithm on.
    TcpNagle = 3,
    /// A TCP socket with `TCP_NODELAY` set.
    TcpNoDelay = 4,
}

static FD_KINDS: [AtomicU8; TRACKED_FDS] = [const { AtomicU8::new(0) }; TRACKED_FDS];

/// Remembers what `fd` is (`Unknown` once it is closed, or its options change).
pub fn set_kind(fd: libc::c_int, kind: FdKind) {
    if let Some(slot) = slot(fd) {
        slot.store(kind as u8, Ordering::Relaxed);
    }
}

/// What `fd` was last found to be; `Other` beyond [`TRACKED_FDS`] (never looked at).
#[inline(always)]
pub fn kind(fd: libc::c_int) -> FdKind {
    match slot(fd).map_or(1, |s| s.load(Ordering::Relaxed)) {
        1 => FdKind::Other,
        2 => FdKind::EventFd,
        3 => FdKind::TcpNagle,
        4 => FdKind::TcpNoDelay,
        _ => FdKind::Unknown,
    }
}

/// Whether `fd` is an eventfd the program created.
#[inline(always)]
pub fn is_eventfd(fd: libc::c_int) -> bool {
    kind(fd) == FdKind::EventFd
}

#[inline(always)]
fn slot(fd: libc::c_int) -> Option<&'static AtomicU8> {
    let fd = usize::try_from(fd).ok().filter(|&fd| fd < TRACKED_FDS)?;
    Some(&FD_KINDS[fd])
}

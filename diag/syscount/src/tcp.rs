//! Writes to TCP sockets told apart by Nagle's algorithm: a socket left with it on (no
//! `TCP_NODELAY`) may hold a small write until the peer acknowledges the previous segment, and
//! the peer delays acknowledgements (40 ms on Linux), so a request-response protocol waits with
//! idle CPUs. Each descriptor is asked once, with `getsockopt`, at its first write after it was
//! opened or its `TCP_NODELAY` was set; the answer is kept in the descriptor table of
//! [`crate::counts`] until it is closed.

use core::ffi::{c_int, c_void};

use diag_preload::{TCP_WRITES_NAGLE, TCP_WRITES_NODELAY};
use libc::socklen_t;

use crate::counts::{FdKind, index, kind, record, set_kind};
use crate::real::Real;

/// Counts a write to `fd` (that `failed` or not) under [`TCP_WRITES_NAGLE`] or
/// [`TCP_WRITES_NODELAY`] when `fd` is a TCP socket.
#[inline(always)]
pub fn count_write(fd: c_int, failed: bool) {
    let found = match kind(fd) {
        FdKind::Unknown => ask(fd),
        known => known,
    };
    match found {
        FdKind::TcpNagle => record(const { index(TCP_WRITES_NAGLE) }, failed),
        FdKind::TcpNoDelay => record(const { index(TCP_WRITES_NODELAY) }, failed),
        _ => {}
    }
}

/// Forgets what `fd` was when a `setsockopt` changed its `TCP_NODELAY`: asked again at its next
/// write.
pub fn options_set(fd: c_int, level: c_int, name: c_int) {
    if level == libc::IPPROTO_TCP && name == libc::TCP_NODELAY {
        set_kind(fd, FdKind::Unknown);
    }
}

/// Asks the kernel whether `fd` is a TCP socket and whether `TCP_NODELAY` is set (any other
/// descriptor fails the question), and remembers the answer. The caller's `errno` is kept: the
/// write before may have failed, and the program reads why.
#[cold]
fn ask(fd: c_int) -> FdKind {
    static GETSOCKOPT: Real = Real::new(c"getsockopt");
    let f = GETSOCKOPT.get();
    if f.is_null() {
        return FdKind::Other;
    }
    // SAFETY: the C library's `getsockopt`, of this signature.
    let f = unsafe {
        core::mem::transmute::<
            *mut c_void,
            unsafe extern "C" fn(c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int,
        >(f)
    };
    // SAFETY: __errno_location returns this thread's errno.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: as above.
    let saved = unsafe { *errno };
    let mut on: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: `on` and `len` are valid for the call; the kernel writes at most `len` bytes.
    let asked = unsafe {
        f(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&raw mut on).cast(),
            &raw mut len,
        )
    };
    // SAFETY: as above.
    unsafe { *errno = saved };
    let found = match (asked, on) {
        (0, 0) => FdKind::TcpNagle,
        (0, _) => FdKind::TcpNoDelay,
        _ => FdKind::Other,
    };
    set_kind(fd, found);
    found
}

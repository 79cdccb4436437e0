//! LD_PRELOAD library that counts a program's I/O system calls: the C library's wrappers
//! (`read`, `pwritev`, `openat`, `sendto`, `fsync`, `connect`...) are interposed, each call adds
//! one to its count (and to its errors when it returns -1), then the C library's function,
//! found with `dlsym(RTLD_NEXT, ..)`, makes it. An increment of a counter of the calling
//! thread's shard costs a few nanoseconds against the microsecond of a system call, where
//! `strace` stops the process twice per call.
//!
//! ```text
//! LD_PRELOAD=target/release/libdiag_syscount.so DIAG_SYSCALLS_OUT=calls.%p.txt ./program
//! ```
//!
//! Calls are counted under the system call the wrapper makes, as `strace` names it (`open`,
//! `open64` and `openat` are all `openat`; `send` is `sendto`). A `read`, `write` or `close` of
//! an eventfd (one thread waking another: it follows the timing of the run, not the code) is
//! counted apart, as `write (eventfd)`: the library remembers the descriptors `eventfd`
//! returned. Calls the C library makes inside itself, and system calls made without its
//! wrappers (`syscall(2)`, inline assembly) are not seen: the report says what it counts.
//!
//! Environment:
//! - `DIAG_SYSCALLS_OUT`: where to write the counts; `%p` becomes the process id. Default
//!   `diag-syscalls.%p.txt` in the working directory.
//! - `DIAG_SYSCALLS_SIGNAL`: `0` to not install the `SIGUSR2` handler.
//!
//! The counts are written when the program exits normally and each time it receives `SIGUSR2`
//! (async-signal-safe: raw system calls, no allocation). The format (parsed by
//! `diag::snapshot::SyscallFigures::from_syscount`):
//!
//! ```text
//! diag-syscalls 1
//! reason exit|signal
//! pid PID
//! call CALLS ERRORS NAME   (one per call made at least once; NAME may hold a space)
//! ```
//!
//! On other platforms than x86-64 Linux the library is empty.

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod counts;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod init;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod interpose;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod real;

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
//! returned. Writes to a TCP socket are counted a second time, as `write to TCP (Nagle on)`
//! or `write to TCP (TCP_NODELAY)`: the library asks each socket once, at its first write,
//! whether `TCP_NODELAY` is set. Calls the C library makes inside itself, and system calls made without its
//! wrappers (`syscall(2)`, inline assembly) are not seen: the report says what it counts.
//!
//! Environment:
//! - `DIAG_SYSCALLS_OUT`: where to write the counts; `%p` becomes the process id. Default
//!   `diag-syscalls.%p.txt` in the working directory.
//! - `DIAG_SYSCALLS_SIGNAL`: `0` to not install the `SIGUSR2` handler.
//! - `DIAG_SYSCALLS_SAMPLE_EVERY`: one call in this many, per thread and system call, has its
//!   stack taken (default 128; 0 takes none).
//!
//! The counts are written when the program exits normally and each time it receives `SIGUSR2`
//! (async-signal-safe: raw system calls, no allocation). The format (parsed by
//! `diag::snapshot::SyscallFigures::from_syscount`):
//!
//! ```text
//! diag-syscalls 1
//! reason exit|signal
//! pid PID
//! exe PATH
//! exe_base 0xHEX          (load bias of the executable: subtract from addresses for PIE)
//! exe_range 0xHEX 0xHEX   (its mapped addresses)
//! call CALLS ERRORS NAME  (one per call made at least once; NAME may hold a space)
//! wall NS NAME            (wall time in the call, for fsync, fdatasync and sync_file_range)
//! sample_every N
//! stacks_dropped N
//! stack COUNT 0xIP,0xIP,... NAME   (sampled calls by stack, innermost return address first)
//! ```
//!
//! Sampled calls say where calls come from: the stacks of every 128th call of each system call
//! on each thread are unwound (`_Unwind_Backtrace`) and counted.
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
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod sites;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod tcp;

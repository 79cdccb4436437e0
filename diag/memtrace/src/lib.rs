//! LD_PRELOAD library that counts memcpy/memmove sizes and records the call sites of large copies.
//!
//! Load it into a dynamically linked program on x86-64 Linux:
//!
//! ```text
//! LD_PRELOAD=target/release/libdiag_memtrace.so DIAG_MOVES_OUT=moves.%p.txt ./program
//! ```
//!
//! It defines `memcpy`, `memmove` and `__memcpy_chk`. Every call adds one to a power-of-two
//! size histogram (one relaxed atomic increment); a call copying at least the threshold also
//! records its call site (the return address) and size in a fixed-size lock-free table. The
//! copy itself is done by the C library's function, found with `dlsym(RTLD_NEXT, ..)`; until
//! that is resolved (and while `dlsym` itself copies), a `rep movsb` loop does it.
//!
//! Environment:
//! - `DIAG_MOVES_OUT`: where to write the trace; `%p` becomes the process id. Default
//!   `diag-moves.%p.txt` in the working directory.
//! - `DIAG_MOVES_THRESHOLD`: bytes from which a copy's call site is recorded. Default 1024.
//! - `DIAG_MOVES_SIGNAL`: `0` to not install the `SIGUSR2` handler.
//!
//! The trace is written when the program exits normally (a `.fini_array` destructor, which runs
//! after `atexit` handlers, both on return from `main` and on `exit`), and each time the process
//! receives `SIGUSR2`: the handler writes the trace itself, using only async-signal-safe calls
//! (`open`, `write`, `close`, `getpid`), so a server can be asked for a snapshot with
//! `kill -USR2 PID`. The last write wins: the file always holds the counts since start.
//!
//! On other platforms the library is empty.

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod entry;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod init;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod real;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod table;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod write;

//! What the `LD_PRELOAD` libraries of `diag` (`diag-memtrace`, `diag-syscount`) share.
//!
//! Everything here may run in a signal handler or at process exit, inside a program whose C
//! library calls are interposed: no allocation, no lock, and the file is written with raw
//! system calls (`openat`, `write`, `close` through `syscall(2)`), so an interposed `write`
//! never sees the report being written.

#[cfg(target_os = "linux")]
mod env;
#[cfg(target_os = "linux")]
mod exe;
#[cfg(target_os = "linux")]
mod out;

#[cfg(target_os = "linux")]
pub use env::{env_bytes, env_u64, on_signal};
#[cfg(target_os = "linux")]
pub use exe::{find_executable, write_executable};
#[cfg(target_os = "linux")]
pub use out::{FdWriter, InitOnce, Num, OutPath, PATH_BYTES_MAX};

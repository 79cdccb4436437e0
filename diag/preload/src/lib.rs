//! What the `LD_PRELOAD` libraries of `diag` (`diag-memtrace`, `diag-syscount`) share, and the
//! names of the system calls they and `diag` speak of.
//!
//! Everything here may run in a signal handler or at process exit, inside a program whose C
//! library calls are interposed: no allocation, no lock, and the file is written with raw
//! system calls (`openat`, `write`, `close` through `syscall(2)`), so an interposed `write`
//! never sees the report being written.

mod calls;
#[cfg(target_os = "linux")]
mod env;
#[cfg(target_os = "linux")]
mod exe;
#[cfg(target_os = "linux")]
mod out;

pub use calls::{IO_SYSCALLS, TCP_WRITES_NAGLE, TCP_WRITES_NODELAY};
#[cfg(target_os = "linux")]
pub use env::{env_bytes, env_u64, on_signal};
#[cfg(target_os = "linux")]
pub use exe::{find_executable, write_executable};
#[cfg(target_os = "linux")]
pub use out::{FdWriter, InitOnce, Num, OutPath, PATH_BYTES_MAX};

/// Runs `$load` when the library is loaded (before the program's `main`) and `$unload` when the
/// program exits normally (after its `atexit` handlers), through the ELF `.init_array` and
/// `.fini_array`: both `extern "C" fn()`.
#[macro_export]
macro_rules! on_load_and_exit {
    ($load:path, $unload:path) => {
        #[used]
        #[unsafe(link_section = ".init_array")]
        static CONSTRUCTOR: extern "C" fn() = $load;

        #[used]
        #[unsafe(link_section = ".fini_array")]
        static DESTRUCTOR: extern "C" fn() = $unload;
    };
}

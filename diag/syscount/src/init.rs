//! Start and end of the counted process: the constructor resolves the C library's functions
//! and reads the environment; the counts are written at exit and on `SIGUSR2`.

use diag_preload::{FdWriter, Num, OutPath, env_bytes, on_signal};

use crate::counts::{NAMES, total};

/// The default output path; `%p` becomes the process id.
const DEFAULT_OUT: &[u8] = b"diag-syscalls.%p.txt";

/// The format version written on the first line.
const FORMAT_VERSION: u64 = 1;

static OUT: OutPath = OutPath::new();

#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn() = on_load;

#[used]
#[unsafe(link_section = ".fini_array")]
static DESTRUCTOR: extern "C" fn() = on_unload;

extern "C" fn on_load() {
    // SAFETY: the constructor, before the program's threads.
    unsafe { OUT.init(env_bytes(c"DIAG_SYSCALLS_OUT"), DEFAULT_OUT) };
    if env_bytes(c"DIAG_SYSCALLS_SIGNAL") != Some(b"0") {
        on_signal(libc::SIGUSR2, on_snapshot_signal);
    }
}

extern "C" fn on_unload() {
    OUT.write(|out, pid| write_counts(out, b"exit", pid));
}

extern "C" fn on_snapshot_signal(_signal: libc::c_int) {
    OUT.write(|out, pid| write_counts(out, b"signal", pid));
}

fn write_counts(out: &mut FdWriter, reason: &[u8], pid: u64) {
    out.line(&[b"diag-syscalls "], Some(Num::Dec(FORMAT_VERSION)));
    out.line(&[b"reason ", reason], None);
    out.line(&[b"pid "], Some(Num::Dec(pid)));
    for (call, name) in NAMES.iter().enumerate() {
        let (calls, errors) = total(call);
        if calls > 0 {
            out.text(b"call ");
            out.num(Num::Dec(calls));
            out.text(b" ");
            out.num(Num::Dec(errors));
            out.line(&[b" ", name.as_bytes()], None);
        }
    }
}

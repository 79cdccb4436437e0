//! Start and end of the counted process: the constructor resolves the C library's functions
//! and reads the environment; the counts are written at exit and on `SIGUSR2`.

use std::sync::atomic::Ordering;

use diag_preload::{FdWriter, Num, OutPath, env_bytes, env_u64, on_signal};

use crate::counts::{NAMES, total, total_wall};
use crate::sites;

/// The default output path; `%p` becomes the process id.
const DEFAULT_OUT: &[u8] = b"diag-syscalls.%p.txt";

/// The format version written on the first line.
const FORMAT_VERSION: u64 = 1;

static OUT: OutPath = OutPath::new();

diag_preload::on_load_and_exit!(on_load, on_unload);

extern "C" fn on_load() {
    // SAFETY: the constructor, before the program's threads.
    unsafe { OUT.init(env_bytes(c"DIAG_SYSCALLS_OUT"), DEFAULT_OUT) };
    if env_bytes(c"DIAG_SYSCALLS_SIGNAL") != Some(b"0") {
        on_signal(libc::SIGUSR2, on_snapshot_signal);
    }
    if let Some(period) = env_u64(c"DIAG_SYSCALLS_SAMPLE_EVERY") {
        sites::PERIOD.store(period, Ordering::Relaxed);
    }
    diag_preload::find_executable();
    sites::READY.store(true, Ordering::Relaxed);
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
    diag_preload::write_executable(out);
    for (call, name) in NAMES.iter().enumerate() {
        let (calls, errors) = total(call);
        if calls > 0 {
            out.text(b"call ");
            out.num(Num::Dec(calls));
            out.text(b" ");
            out.num(Num::Dec(errors));
            out.line(&[b" ", name.as_bytes()], None);
        }
        let wall = total_wall(call);
        if wall > 0 {
            out.text(b"wall ");
            out.num(Num::Dec(wall));
            out.line(&[b" ", name.as_bytes()], None);
        }
    }
    sites::write_stacks(out);
}

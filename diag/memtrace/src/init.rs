//! Start and end of the traced process: reading the environment and finding the executable's
//! load address (a constructor), writing the trace at exit (a destructor) and on `SIGUSR2`.

use std::sync::atomic::Ordering;

use diag_preload::{env_bytes, env_u64, on_signal};

use crate::{real, table, write};

diag_preload::on_load_and_exit!(on_load, on_unload);

extern "C" fn on_load() {
    real::resolve();
    if let Some(threshold) = env_u64(c"DIAG_MOVES_THRESHOLD") {
        table::THRESHOLD_BYTES.store(threshold.max(1), Ordering::Relaxed);
    }
    write::init_paths();
    diag_preload::find_executable();
    if env_bytes(c"DIAG_MOVES_SIGNAL") != Some(b"0") {
        on_signal(libc::SIGUSR2, on_snapshot_signal);
    }
}

extern "C" fn on_unload() {
    write::write_trace(b"exit");
}

extern "C" fn on_snapshot_signal(_signal: libc::c_int) {
    write::write_trace(b"signal");
}

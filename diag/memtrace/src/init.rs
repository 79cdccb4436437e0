//! Start and end of the traced process: reading the environment and finding the executable's
//! load address (a constructor), writing the trace at exit (a destructor) and on `SIGUSR2`.

use std::sync::atomic::{AtomicU64, Ordering};

use diag_preload::{env_bytes, env_u64, on_signal};

use crate::{real, table, write};

/// The executable's load bias (`dlpi_addr`: 0 for a non-PIE executable).
pub static EXE_BASE: AtomicU64 = AtomicU64::new(0);
/// The lowest and highest addresses of the executable's loaded segments.
pub static EXE_START: AtomicU64 = AtomicU64::new(0);
pub static EXE_END: AtomicU64 = AtomicU64::new(0);

#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn() = on_load;

#[used]
#[unsafe(link_section = ".fini_array")]
static DESTRUCTOR: extern "C" fn() = on_unload;

extern "C" fn on_load() {
    real::resolve();
    if let Some(threshold) = env_u64(c"DIAG_MOVES_THRESHOLD") {
        table::THRESHOLD_BYTES.store(threshold.max(1), Ordering::Relaxed);
    }
    write::init_paths();
    find_executable();
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

/// Records the main executable's load bias and address range: `dl_iterate_phdr` lists it first.
fn find_executable() {
    unsafe extern "C" fn first_object(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        _data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid info whose `dlpi_phdr` has `dlpi_phnum` headers.
        let info = unsafe { &*info };
        let mut start = u64::MAX;
        let mut end = 0u64;
        for i in 0..usize::from(info.dlpi_phnum) {
            // SAFETY: i < dlpi_phnum, see above.
            let phdr = unsafe { &*info.dlpi_phdr.add(i) };
            if phdr.p_type == libc::PT_LOAD {
                start = start.min(info.dlpi_addr + phdr.p_vaddr);
                end = end.max(info.dlpi_addr + phdr.p_vaddr + phdr.p_memsz);
            }
        }
        EXE_BASE.store(info.dlpi_addr, Ordering::Relaxed);
        EXE_START.store(start, Ordering::Relaxed);
        EXE_END.store(end, Ordering::Relaxed);
        1 // stop after the first object: the executable
    }
    // SAFETY: the callback only reads the info it is given.
    unsafe {
        libc::dl_iterate_phdr(Some(first_object), core::ptr::null_mut());
    }
}

//! Start and end of the traced process: reading the environment and finding the executable's
//! load address (a constructor), writing the trace at exit (a destructor) and on `SIGUSR2`.

use std::sync::atomic::{AtomicU64, Ordering};

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
        install_signal_handler();
    }
}

extern "C" fn on_unload() {
    write::write_trace(b"exit");
}

extern "C" fn on_signal(_signal: libc::c_int) {
    write::write_trace(b"signal");
}

fn install_signal_handler() {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler is an
    // `extern "C" fn(c_int)` that only makes async-signal-safe calls.
    unsafe {
        let mut action: libc::sigaction = core::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGUSR2, &action, core::ptr::null_mut());
    }
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

/// The bytes of environment variable `name`, if set.
pub fn env_bytes(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: getenv with a NUL-terminated name; the result lives as long as the environment,
    // which the constructor reads before the program can change it.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: getenv returns a NUL-terminated string.
    Some(unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes())
}

fn env_u64(name: &core::ffi::CStr) -> Option<u64> {
    let bytes = env_bytes(name)?;
    let mut n = 0u64;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    (!bytes.is_empty()).then_some(n)
}

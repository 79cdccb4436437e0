//! The executable a preloaded library runs in: its path, load bias and mapped range, found by
//! the constructor and written into the report, so return addresses can be symbolized later.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::out::{FdWriter, InitOnce, Num, PATH_BYTES_MAX};

static EXE_PATH: InitOnce = InitOnce::new();
/// The executable's load bias (`dlpi_addr`: 0 for a non-PIE executable).
static EXE_BASE: AtomicU64 = AtomicU64::new(0);
/// The lowest and highest addresses of the executable's loaded segments.
static EXE_START: AtomicU64 = AtomicU64::new(0);
static EXE_END: AtomicU64 = AtomicU64::new(0);

/// Records the executable's path, load bias and address range. Call it from the library's
/// constructor only.
pub fn find_executable() {
    let mut exe = [0u8; PATH_BYTES_MAX];
    // SAFETY: readlink writes at most `exe.len()` bytes into the buffer.
    let n = unsafe {
        libc::readlink(
            c"/proc/self/exe".as_ptr(),
            exe.as_mut_ptr().cast(),
            exe.len(),
        )
    };
    let exe_len = usize::try_from(n).unwrap_or(0);
    // SAFETY: called from the constructor only.
    unsafe { EXE_PATH.set(&exe[..exe_len]) };
    // SAFETY: the callback only reads the info it is given.
    unsafe {
        libc::dl_iterate_phdr(Some(first_object), core::ptr::null_mut());
    }
}

/// `dl_iterate_phdr` lists the executable first: keep its bias and range, then stop.
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
    1
}

/// Writes `exe PATH`, `exe_base 0xHEX` (subtract it from a runtime address for PIE) and
/// `exe_range 0xHEX 0xHEX`.
pub fn write_executable(out: &mut FdWriter) {
    out.line(&[b"exe ", EXE_PATH.get()], None);
    out.line(
        &[b"exe_base "],
        Some(Num::Hex(EXE_BASE.load(Ordering::Relaxed))),
    );
    out.text(b"exe_range ");
    out.num(Num::Hex(EXE_START.load(Ordering::Relaxed)));
    out.text(b" ");
    out.num(Num::Hex(EXE_END.load(Ordering::Relaxed)));
    out.text(b"\n");
}

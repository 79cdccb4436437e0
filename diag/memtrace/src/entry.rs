//! The interposed `memcpy`, `memmove` and `__memcpy_chk`: naked entries that pass the caller's
//! return address to a Rust function as an extra argument, then the recording hot path.

use core::ffi::c_void;
use std::sync::atomic::Ordering;

use crate::{real, table};

/// `memcpy(dst, src, n)`: jumps to [`on_memcpy`] with the return address as fourth argument.
///
/// # Safety
/// The C contract of `memcpy`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void {
    // At entry [rsp] is the return address; rdi, rsi, rdx hold the arguments and rcx is free.
    core::arch::naked_asm!("mov rcx, [rsp]", "jmp {target}", target = sym on_memcpy)
}

/// `memmove(dst, src, n)`: jumps to [`on_memmove`] with the return address as fourth argument.
///
/// # Safety
/// The C contract of `memmove`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void {
    core::arch::naked_asm!("mov rcx, [rsp]", "jmp {target}", target = sym on_memmove)
}

/// `__memcpy_chk(dst, src, n, dst_len)`: jumps to [`on_memcpy_chk`] with the return address as
/// fifth argument.
///
/// # Safety
/// The C contract of `__memcpy_chk`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __memcpy_chk(
    dst: *mut c_void,
    src: *const c_void,
    n: usize,
    dst_len: usize,
) -> *mut c_void {
    core::arch::naked_asm!("mov r8, [rsp]", "jmp {target}", target = sym on_memcpy_chk)
}

/// Counts the copy, then copies with the C library's `memcpy`. The common case (small copy,
/// function resolved) is a histogram increment, two loads and a tail call; the rest is in
/// [`memcpy_slow`].
///
/// # Safety
/// The C contract of `memcpy`.
unsafe extern "C" fn on_memcpy(
    dst: *mut c_void,
    src: *const c_void,
    n: usize,
    site: usize,
) -> *mut c_void {
    if !table::count(n)
        && let Some(f) = real::memcpy_resolved()
    {
        // SAFETY: the caller upholds memcpy's contract; `f` is the C library's memcpy.
        return unsafe { f(dst, src, n) };
    }
    // SAFETY: the caller upholds memcpy's contract.
    unsafe { memcpy_slow(dst, src, n, site) }
}

/// A large copy, or one made before `memcpy` is resolved.
///
/// # Safety
/// The C contract of `memcpy`.
#[cold]
#[inline(never)]
unsafe fn memcpy_slow(dst: *mut c_void, src: *const c_void, n: usize, site: usize) -> *mut c_void {
    if n as u64 >= table::THRESHOLD_BYTES.load(Ordering::Relaxed) {
        table::record_site(site as u64, n as u64);
    }
    match real::memcpy() {
        // SAFETY: the caller upholds memcpy's contract; `f` is the C library's memcpy.
        Some(f) => unsafe { f(dst, src, n) },
        // SAFETY: same contract; the fallback copies forward byte by byte.
        None => unsafe { real::copy_forward(dst, src, n) },
    }
}

/// Counts the copy, then copies with the C library's `memmove` (same shape as [`on_memcpy`]).
///
/// # Safety
/// The C contract of `memmove`.
unsafe extern "C" fn on_memmove(
    dst: *mut c_void,
    src: *const c_void,
    n: usize,
    site: usize,
) -> *mut c_void {
    if !table::count(n)
        && let Some(f) = real::memmove_resolved()
    {
        // SAFETY: the caller upholds memmove's contract; `f` is the C library's memmove.
        return unsafe { f(dst, src, n) };
    }
    // SAFETY: the caller upholds memmove's contract.
    unsafe { memmove_slow(dst, src, n, site) }
}

/// A large move, or one made before `memmove` is resolved.
///
/// # Safety
/// The C contract of `memmove`.
#[cold]
#[inline(never)]
unsafe fn memmove_slow(dst: *mut c_void, src: *const c_void, n: usize, site: usize) -> *mut c_void {
    if n as u64 >= table::THRESHOLD_BYTES.load(Ordering::Relaxed) {
        table::record_site(site as u64, n as u64);
    }
    match real::memmove() {
        // SAFETY: the caller upholds memmove's contract; `f` is the C library's memmove.
        Some(f) => unsafe { f(dst, src, n) },
        // SAFETY: same contract; the fallback handles overlap.
        None => unsafe { real::copy_overlapping(dst, src, n) },
    }
}

/// Records the copy, then copies with the C library's `__memcpy_chk` (which aborts when
/// `n > dst_len`), or checks and copies itself when that is not resolved.
///
/// # Safety
/// The C contract of `__memcpy_chk`.
unsafe extern "C" fn on_memcpy_chk(
    dst: *mut c_void,
    src: *const c_void,
    n: usize,
    dst_len: usize,
    site: usize,
) -> *mut c_void {
    if table::count(n) {
        table::record_site(site as u64, n as u64);
    }
    match real::memcpy_chk() {
        // SAFETY: the caller upholds __memcpy_chk's contract; `f` is the C library's.
        Some(f) => unsafe { f(dst, src, n, dst_len) },
        None => {
            if n > dst_len {
                // The buffer overflow __memcpy_chk exists to stop.
                std::process::abort();
            }
            // SAFETY: the caller upholds memcpy's contract and n fits in the destination.
            unsafe { real::copy_forward(dst, src, n) }
        }
    }
}

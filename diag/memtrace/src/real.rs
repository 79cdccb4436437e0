//! The C library's copy functions, found with `dlsym(RTLD_NEXT, ..)`, and the fallbacks used
//! until they are (`dlsym` may copy, and calls our `memcpy` while we resolve it).

use core::ffi::c_void;
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

/// `memcpy` and `memmove`.
pub type CopyFn = unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> *mut c_void;
/// `__memcpy_chk`.
pub type CopyChkFn = unsafe extern "C" fn(*mut c_void, *const c_void, usize, usize) -> *mut c_void;

const UNRESOLVED: u8 = 0;
const RESOLVING: u8 = 1;
const RESOLVED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNRESOLVED);
static MEMCPY: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static MEMMOVE: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static MEMCPY_CHK: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// The C library's `memcpy`, or `None` while it is being resolved.
#[inline(always)]
pub fn memcpy() -> Option<CopyFn> {
    let p = load(&MEMCPY)?;
    // SAFETY: `p` came from dlsym("memcpy"), whose C signature is `CopyFn`.
    Some(unsafe { core::mem::transmute::<*mut c_void, CopyFn>(p) })
}

/// The C library's `memmove`, or `None` while it is being resolved.
#[inline(always)]
pub fn memmove() -> Option<CopyFn> {
    let p = load(&MEMMOVE)?;
    // SAFETY: `p` came from dlsym("memmove"), whose C signature is `CopyFn`.
    Some(unsafe { core::mem::transmute::<*mut c_void, CopyFn>(p) })
}

/// The C library's `__memcpy_chk`, or `None` while it is being resolved (or absent).
#[inline(always)]
pub fn memcpy_chk() -> Option<CopyChkFn> {
    let p = load(&MEMCPY_CHK)?;
    // SAFETY: `p` came from dlsym("__memcpy_chk"), whose C signature is `CopyChkFn`.
    Some(unsafe { core::mem::transmute::<*mut c_void, CopyChkFn>(p) })
}

/// The C library's `memcpy` if already resolved, without trying to resolve it: the hot path.
#[inline(always)]
pub fn memcpy_resolved() -> Option<CopyFn> {
    let p = MEMCPY.load(Ordering::Relaxed);
    // SAFETY: a non-null `p` came from dlsym("memcpy"), whose C signature is `CopyFn`; it was
    // stored once, before any reader could see it non-null.
    (!p.is_null()).then(|| unsafe { core::mem::transmute::<*mut c_void, CopyFn>(p) })
}

/// The C library's `memmove` if already resolved (see [`memcpy_resolved`]).
#[inline(always)]
pub fn memmove_resolved() -> Option<CopyFn> {
    let p = MEMMOVE.load(Ordering::Relaxed);
    // SAFETY: as for `memcpy_resolved`, with dlsym("memmove").
    (!p.is_null()).then(|| unsafe { core::mem::transmute::<*mut c_void, CopyFn>(p) })
}

#[inline(always)]
fn load(slot: &AtomicPtr<c_void>) -> Option<*mut c_void> {
    let p = slot.load(Ordering::Acquire);
    if !p.is_null() {
        return Some(p);
    }
    resolve();
    let p = slot.load(Ordering::Acquire);
    (!p.is_null()).then_some(p)
}

/// Resolves the three functions once. A call made while another is resolving (including the
/// copies `dlsym` itself makes) returns at once, and its caller uses the fallback.
#[cold]
pub fn resolve() {
    if STATE
        .compare_exchange(UNRESOLVED, RESOLVING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    // SAFETY: dlsym with RTLD_NEXT and NUL-terminated names; it returns null when absent.
    unsafe {
        MEMCPY.store(
            libc::dlsym(libc::RTLD_NEXT, c"memcpy".as_ptr()),
            Ordering::Release,
        );
        MEMMOVE.store(
            libc::dlsym(libc::RTLD_NEXT, c"memmove".as_ptr()),
            Ordering::Release,
        );
        MEMCPY_CHK.store(
            libc::dlsym(libc::RTLD_NEXT, c"__memcpy_chk".as_ptr()),
            Ordering::Release,
        );
    }
    STATE.store(RESOLVED, Ordering::Release);
}

/// Copies `n` bytes forward with `rep movsb` (never calls `memcpy`).
///
/// # Safety
/// `src` readable and `dst` writable for `n` bytes; if they overlap, `dst <= src`.
pub unsafe fn copy_forward(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void {
    // SAFETY: the caller guarantees the ranges; the direction flag is clear per the ABI.
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
    dst
}

/// Copies `n` bytes between possibly overlapping ranges with `rep movsb` (never calls
/// `memmove`).
///
/// # Safety
/// `src` readable and `dst` writable for `n` bytes.
pub unsafe fn copy_overlapping(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void {
    let (d, s) = (dst as usize, src as usize);
    if n == 0 || d <= s || d >= s + n {
        // SAFETY: no overlap that a forward copy would clobber.
        return unsafe { copy_forward(dst, src, n) };
    }
    // SAFETY: copies backward from the last byte with the direction flag set, then clears it
    // again as the ABI requires.
    unsafe {
        core::arch::asm!(
            "std",
            "rep movsb",
            "cld",
            inout("rcx") n => _,
            inout("rdi") d + n - 1 => _,
            inout("rsi") s + n - 1 => _,
            options(nostack)
        );
    }
    dst
}

//! The C library's functions behind the interposers, found with `dlsym(RTLD_NEXT, ..)`.

use core::ffi::{CStr, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

/// One C library function: its name and, once resolved, its address.
pub struct Real {
    name: &'static CStr,
    address: AtomicPtr<c_void>,
}

impl Real {
    pub const fn new(name: &'static CStr) -> Self {
        Self {
            name,
            address: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// The function's address, resolved on first use; null when the C library has none (the
    /// interposer then fails the call with `ENOSYS`).
    #[inline(always)]
    pub fn get(&self) -> *mut c_void {
        let p = self.address.load(Ordering::Relaxed);
        if !p.is_null() {
            return p;
        }
        self.resolve()
    }

    #[cold]
    fn resolve(&self) -> *mut c_void {
        // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name; null when absent. Two threads
        // resolving at once store the same address.
        let p = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr()) };
        self.address.store(p, Ordering::Relaxed);
        p
    }
}

/// Fails a call whose C library function is missing: `errno = ENOSYS`, -1.
#[cold]
pub fn missing<T: From<i8>>() -> T {
    // SAFETY: __errno_location returns this thread's errno.
    unsafe { *libc::__errno_location() = libc::ENOSYS };
    T::from(-1)
}

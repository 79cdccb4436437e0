//! The environment a preloaded library reads in its constructor, and its snapshot signal.

/// The bytes of environment variable `name`, if set.
pub fn env_bytes(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: getenv with a NUL-terminated name; the result lives as long as the environment,
    // which a constructor reads before the program can change it.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: getenv returns a NUL-terminated string.
    Some(unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes())
}

/// Environment variable `name` as a decimal number; `None` when unset, empty or not a number.
pub fn env_u64(name: &core::ffi::CStr) -> Option<u64> {
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

/// Calls `handler` on every `signal` (restarting interrupted calls). The handler must only make
/// async-signal-safe calls.
pub fn on_signal(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler is an
    // `extern "C" fn(c_int)`.
    unsafe {
        let mut action: libc::sigaction = core::mem::zeroed();
        action.sa_sigaction = handler as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, core::ptr::null_mut());
    }
}

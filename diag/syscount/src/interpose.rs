//! The interposed C library wrappers: each counts its call under the system call it makes, then
//! makes it with the C library's function.

use core::ffi::{c_char, c_int, c_uint, c_void};

use libc::{iovec, mmsghdr, msghdr, off_t, size_t, sockaddr, socklen_t, ssize_t, timespec};

use crate::counts::{FdKind, add_wall, index, is_eventfd, is_timed, now_ns, record, set_kind};
use crate::real::{Real, missing};
use crate::tcp;

/// A C string literal of an identifier, at compile time.
macro_rules! c_name {
    ($name:ident) => {
        match core::ffi::CStr::from_bytes_with_nul(concat!(stringify!($name), "\0").as_bytes()) {
            Ok(name) => name,
            Err(_) => panic!("an identifier holds no NUL"),
        }
    };
}

/// Defines each wrapper: `name(args) -> ret, counted as "call";`, or `counted as "call" or
/// "call (eventfd)" on fd;` for a call whose eventfd calls are counted apart, and `... and as a
/// write on fd;` for a write that is counted again when `fd` is a TCP socket ([`tcp`]); `, before
/// { ... }` runs just before the call and `, after |result| ...` just after it is counted. A call
/// returning -1 is an error. The wall time of the calls in [`crate::counts::TIMED_CALLS`] is
/// added up too. The counters' indices are constants: the hot path is a few loads, one
/// atomic increment and the call.
macro_rules! interpose {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty,
        counted as $call:literal $(or $on_eventfd:literal on $fd:ident)?
        $(and as a write on $written:ident)? $(, before $before:block)?
        $(, after $after:expr)?;)*) => {$(
        /// Counts the call, then makes it with the C library's function.
        ///
        /// # Safety
        /// The C contract of the function of that name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            static REAL: Real = Real::new(c_name!($name));
            let call = const { index($call) };
            $(let call = if is_eventfd($fd) { const { index($on_eventfd) } } else { call };)?
            let f = REAL.get();
            if f.is_null() {
                record(call, true);
                return missing();
            }
            // SAFETY: `f` is the C library's function of this name, whose C signature this is.
            let f = unsafe {
                core::mem::transmute::<*mut c_void, unsafe extern "C" fn($($ty),*) -> $ret>(f)
            };
            $($before)?
            let timed = const { is_timed(index($call)) };
            let started = if timed { now_ns() } else { 0 };
            // SAFETY: the caller upholds the function's contract.
            let result = unsafe { f($($arg),*) };
            if timed {
                add_wall(call, now_ns().wrapping_sub(started));
            }
            record(call, result as i64 == -1);
            $(tcp::count_write($written, result as i64 == -1);)?
            $(($after)(result);)?
            result
        }
    )*};
}

interpose! {
    read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t,
        counted as "read" or "read (eventfd)" on fd;
    write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t,
        counted as "write" or "write (eventfd)" on fd and as a write on fd;
    readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t, counted as "readv";
    writev(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t,
        counted as "writev" and as a write on fd;
    pread(fd: c_int, buf: *mut c_void, n: size_t, at: off_t) -> ssize_t,
        counted as "pread64";
    pread64(fd: c_int, buf: *mut c_void, n: size_t, at: off_t) -> ssize_t,
        counted as "pread64";
    pwrite(fd: c_int, buf: *const c_void, n: size_t, at: off_t) -> ssize_t,
        counted as "pwrite64";
    pwrite64(fd: c_int, buf: *const c_void, n: size_t, at: off_t) -> ssize_t,
        counted as "pwrite64";
    preadv(fd: c_int, iov: *const iovec, n: c_int, at: off_t) -> ssize_t,
        counted as "preadv";
    preadv64(fd: c_int, iov: *const iovec, n: c_int, at: off_t) -> ssize_t,
        counted as "preadv";
    pwritev(fd: c_int, iov: *const iovec, n: c_int, at: off_t) -> ssize_t,
        counted as "pwritev";
    pwritev64(fd: c_int, iov: *const iovec, n: c_int, at: off_t) -> ssize_t,
        counted as "pwritev";
    preadv2(fd: c_int, iov: *const iovec, n: c_int, at: off_t, flags: c_int) -> ssize_t,
        counted as "preadv2";
    preadv64v2(fd: c_int, iov: *const iovec, n: c_int, at: off_t, flags: c_int) -> ssize_t,
        counted as "preadv2";
    pwritev2(fd: c_int, iov: *const iovec, n: c_int, at: off_t, flags: c_int) -> ssize_t,
        counted as "pwritev2";
    pwritev64v2(fd: c_int, iov: *const iovec, n: c_int, at: off_t, flags: c_int) -> ssize_t,
        counted as "pwritev2";
    send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t,
        counted as "sendto" and as a write on fd;
    sendto(
        fd: c_int, buf: *const c_void, n: size_t, flags: c_int, to: *const sockaddr,
        to_len: socklen_t
    ) -> ssize_t, counted as "sendto" and as a write on fd;
    recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t,
        counted as "recvfrom";
    recvfrom(
        fd: c_int, buf: *mut c_void, n: size_t, flags: c_int, from: *mut sockaddr,
        from_len: *mut socklen_t
    ) -> ssize_t, counted as "recvfrom";
    sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t,
        counted as "sendmsg" and as a write on fd;
    recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t, counted as "recvmsg";
    sendmmsg(fd: c_int, msgs: *mut mmsghdr, n: c_uint, flags: c_int) -> c_int,
        counted as "sendmmsg" and as a write on fd;
    recvmmsg(
        fd: c_int, msgs: *mut mmsghdr, n: c_uint, flags: c_int, timeout: *mut timespec
    ) -> c_int, counted as "recvmmsg";
    fsync(fd: c_int) -> c_int, counted as "fsync";
    fdatasync(fd: c_int) -> c_int, counted as "fdatasync";
    sync_file_range(fd: c_int, at: off_t, n: off_t, flags: c_uint) -> c_int,
        counted as "sync_file_range";
    statx(dir: c_int, path: *const c_char, flags: c_int, mask: c_uint, out: *mut c_void) -> c_int,
        counted as "statx";
    stat(path: *const c_char, out: *mut c_void) -> c_int, counted as "newfstatat";
    stat64(path: *const c_char, out: *mut c_void) -> c_int, counted as "newfstatat";
    lstat(path: *const c_char, out: *mut c_void) -> c_int, counted as "newfstatat";
    lstat64(path: *const c_char, out: *mut c_void) -> c_int, counted as "newfstatat";
    fstatat(dir: c_int, path: *const c_char, out: *mut c_void, flags: c_int) -> c_int,
        counted as "newfstatat";
    fstatat64(dir: c_int, path: *const c_char, out: *mut c_void, flags: c_int) -> c_int,
        counted as "newfstatat";
    fstat(fd: c_int, out: *mut c_void) -> c_int, counted as "fstat";
    fstat64(fd: c_int, out: *mut c_void) -> c_int, counted as "fstat";
    lseek(fd: c_int, at: off_t, whence: c_int) -> off_t, counted as "lseek";
    lseek64(fd: c_int, at: off_t, whence: c_int) -> off_t, counted as "lseek";
    ftruncate(fd: c_int, len: off_t) -> c_int, counted as "ftruncate";
    ftruncate64(fd: c_int, len: off_t) -> c_int, counted as "ftruncate";
    fallocate(fd: c_int, mode: c_int, at: off_t, len: off_t) -> c_int,
        counted as "fallocate";
    fallocate64(fd: c_int, mode: c_int, at: off_t, len: off_t) -> c_int,
        counted as "fallocate";
    unlink(path: *const c_char) -> c_int, counted as "unlinkat";
    unlinkat(dir: c_int, path: *const c_char, flags: c_int) -> c_int,
        counted as "unlinkat";
    rename(from: *const c_char, to: *const c_char) -> c_int, counted as "renameat2";
    renameat(from_dir: c_int, from: *const c_char, to_dir: c_int, to: *const c_char) -> c_int,
        counted as "renameat2";
    renameat2(
        from_dir: c_int, from: *const c_char, to_dir: c_int, to: *const c_char, flags: c_uint
    ) -> c_int, counted as "renameat2";
    connect(fd: c_int, to: *const sockaddr, to_len: socklen_t) -> c_int,
        counted as "connect";
    accept(fd: c_int, from: *mut sockaddr, from_len: *mut socklen_t) -> c_int,
        counted as "accept4";
    accept4(fd: c_int, from: *mut sockaddr, from_len: *mut socklen_t, flags: c_int) -> c_int,
        counted as "accept4";
    socket(domain: c_int, kind: c_int, protocol: c_int) -> c_int, counted as "socket";
    shutdown(fd: c_int, how: c_int) -> c_int, counted as "shutdown";
    // A socket whose `TCP_NODELAY` it set is asked again at its next write ([`tcp`]).
    setsockopt(
        fd: c_int, level: c_int, name: c_int, value: *const c_void, len: socklen_t
    ) -> c_int, counted as "setsockopt", after |result: c_int| {
        if result == 0 {
            tcp::options_set(fd, level, name);
        }
    };
    getsockopt(
        fd: c_int, level: c_int, name: c_int, value: *mut c_void, len: *mut socklen_t
    ) -> c_int, counted as "getsockopt";
    getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int,
        counted as "getpeername";
    getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int,
        counted as "getsockname";
    epoll_wait(fd: c_int, events: *mut libc::epoll_event, n: c_int, timeout: c_int) -> c_int,
        counted as "epoll_wait";
    // The descriptor is remembered as an eventfd, whose calls are counted apart.
    eventfd(initval: c_uint, flags: c_int) -> c_int, counted as "eventfd2", after |fd: c_int| {
        if fd >= 0 {
            set_kind(fd, FdKind::EventFd);
        }
    };
    // What `fd` was is forgotten before the close: once closed, another thread may be given the
    // same number.
    close(fd: c_int) -> c_int, counted as "close" or "close (eventfd)" on fd, before {
        set_kind(fd, FdKind::Unknown);
    };
}

/// Defines the `open` family, whose last argument (the mode) is variadic: on x86-64 a variadic
/// argument travels in the register a fixed one would, so the mode is read as a fixed argument
/// (garbage when the caller gave none, and then unused by the C library too) and passed on
/// through the variadic signature.
macro_rules! interpose_open {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        /// Counted as `openat`, then made with the C library's function.
        ///
        /// # Safety
        /// The C contract of the function of that name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($arg: $ty,)* mode: c_uint) -> c_int {
            static REAL: Real = Real::new(c_name!($name));
            let call = const { index("openat") };
            let f = REAL.get();
            if f.is_null() {
                record(call, true);
                return missing();
            }
            // SAFETY: `f` is the C library's variadic function of this name.
            let f = unsafe {
                core::mem::transmute::<*mut c_void, unsafe extern "C" fn($($ty),*, ...) -> c_int>(f)
            };
            // SAFETY: the caller upholds the function's contract.
            let result = unsafe { f($($arg),*, mode) };
            record(call, result == -1);
            result
        }
    )*};
}

interpose_open! {
    open(path: *const c_char, flags: c_int);
    open64(path: *const c_char, flags: c_int);
    openat(dir: c_int, path: *const c_char, flags: c_int);
    openat64(dir: c_int, path: *const c_char, flags: c_int);
}

//! The system calls the libraries and their readers speak of, by the names `strace` gives them.

/// The system calls a program makes for I/O, files, connections and sockets: the ones whose
/// count says how the program talks to the kernel. `diag-syscount` counts them (`open` never: the
/// C library's `open` is the `openat` system call), and `diag`'s comparison compares them.
pub const IO_SYSCALLS: [&str; 38] = [
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendmmsg",
    "recvmmsg",
    "fsync",
    "fdatasync",
    "sync_file_range",
    "openat",
    "open",
    "close",
    "statx",
    "newfstatat",
    "fstat",
    "lseek",
    "ftruncate",
    "fallocate",
    "unlinkat",
    "renameat2",
    "connect",
    "accept4",
    "socket",
    "shutdown",
    "setsockopt",
    "getsockopt",
    "getpeername",
    "getsockname",
];

/// Writes (`write`, `writev`, `sendto`, `sendmsg`, `sendmmsg`) to a TCP socket with Nagle's
/// algorithm on (`TCP_NODELAY` not set): counted beside the write's own system call, as if it
/// were one. Such a write may wait in the kernel until the peer acknowledges the previous
/// segment, and the peer may delay its acknowledgement (40 ms on Linux): a request-response
/// protocol then waits without using the CPU.
pub const TCP_WRITES_NAGLE: &str = "write to TCP (Nagle on)";

/// Writes to a TCP socket with `TCP_NODELAY` set, counted the same way: the other part of the
/// program's TCP writes.
pub const TCP_WRITES_NODELAY: &str = "write to TCP (TCP_NODELAY)";

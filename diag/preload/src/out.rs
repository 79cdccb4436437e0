//! A report file written without allocating and with raw system calls only, so a signal
//! handler or an exit destructor of an interposing library can write it.

use core::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// Longest path kept (PATH_MAX on Linux), and the size of the write buffer.
pub const PATH_BYTES_MAX: usize = 4096;

/// A fixed buffer written once by a constructor, read-only afterwards.
#[derive(Debug)]
pub struct InitOnce {
    bytes: UnsafeCell<[u8; PATH_BYTES_MAX]>,
    len: UnsafeCell<usize>,
}

// SAFETY: written only by the constructor, before any other thread or signal handler exists
// that could read it; read-only afterwards.
unsafe impl Sync for InitOnce {}

impl InitOnce {
    pub const fn new() -> Self {
        Self {
            bytes: UnsafeCell::new([0; PATH_BYTES_MAX]),
            len: UnsafeCell::new(0),
        }
    }

    /// Keeps `value` (cut to the buffer).
    ///
    /// # Safety
    /// Only from the library's constructor (see the `Sync` impl).
    pub unsafe fn set(&self, value: &[u8]) {
        let n = value.len().min(PATH_BYTES_MAX - 1);
        // SAFETY: exclusive access per the caller's contract; n < the buffer's length.
        unsafe {
            (&mut *self.bytes.get())[..n].copy_from_slice(&value[..n]);
            *self.len.get() = n;
        }
    }

    pub fn get(&self) -> &[u8] {
        // SAFETY: read-only after the constructor (see the `Sync` impl).
        unsafe { &(&*self.bytes.get())[..*self.len.get()] }
    }
}

impl Default for InitOnce {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a report goes: a path template in which `%p` becomes the process id. The last write
/// wins, so the file always holds the counts since the start.
#[derive(Debug)]
pub struct OutPath {
    template: InitOnce,
    /// Set while a report is written, so the exit writer and a signal do not interleave.
    writing: AtomicBool,
}

impl OutPath {
    pub const fn new() -> Self {
        Self {
            template: InitOnce::new(),
            writing: AtomicBool::new(false),
        }
    }

    /// Keeps the template: `value` when set and not empty, else `default`.
    ///
    /// # Safety
    /// Only from the library's constructor.
    pub unsafe fn init(&self, value: Option<&[u8]>, default: &[u8]) {
        let template = value.filter(|p| !p.is_empty()).unwrap_or(default);
        // SAFETY: the caller's contract.
        unsafe { self.template.set(template) };
    }

    /// Writes the report `body` writes, to the template's path for this process.
    /// Async-signal-safe; a write that finds another under way does nothing.
    pub fn write(&self, body: impl FnOnce(&mut FdWriter, u64)) {
        if self.writing.swap(true, Ordering::Acquire) {
            return;
        }
        // SAFETY: getpid has no preconditions and no side effect.
        let pid = unsafe { libc::syscall(libc::SYS_getpid) } as u64;
        let mut path = Buf::new();
        expand_template(&mut path, self.template.get(), pid);
        path.push(&[0]);
        // SAFETY: a NUL-terminated path; the flags and mode are plain constants.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat,
                libc::AT_FDCWD,
                path.as_slice().as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                0o644,
            )
        };
        if fd >= 0 {
            let mut out = FdWriter {
                fd: fd as libc::c_int,
                buf: Buf::new(),
            };
            body(&mut out, pid);
            out.flush();
            // SAFETY: fd was opened above and is closed once.
            unsafe { libc::syscall(libc::SYS_close, fd) };
        }
        self.writing.store(false, Ordering::Release);
    }
}

impl Default for OutPath {
    fn default() -> Self {
        Self::new()
    }
}

fn expand_template(path: &mut Buf, template: &[u8], pid: u64) {
    let mut i = 0;
    while i < template.len() {
        if template[i] == b'%' && template.get(i + 1) == Some(&b'p') {
            path.push_num(Num::Dec(pid));
            i += 2;
        } else {
            path.push(&template[i..i + 1]);
            i += 1;
        }
    }
}

/// A number as the report writes it.
#[derive(Debug, Clone, Copy)]
pub enum Num {
    Dec(u64),
    /// With a `0x` prefix.
    Hex(u64),
}

/// A fixed-capacity byte buffer (no allocation).
#[derive(Debug)]
struct Buf {
    bytes: [u8; PATH_BYTES_MAX],
    len: usize,
}

impl Buf {
    fn new() -> Self {
        Self {
            bytes: [0; PATH_BYTES_MAX],
            len: 0,
        }
    }

    fn room(&self) -> usize {
        PATH_BYTES_MAX - self.len
    }

    /// Appends what fits.
    fn push(&mut self, data: &[u8]) {
        let n = data.len().min(self.room());
        for (dst, src) in self.bytes[self.len..self.len + n].iter_mut().zip(data) {
            *dst = *src;
        }
        self.len += n;
    }

    fn push_num(&mut self, num: Num) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let (mut v, base, prefix): (u64, u64, &[u8]) = match num {
            Num::Dec(v) => (v, 10, b""),
            Num::Hex(v) => (v, 16, b"0x"),
        };
        loop {
            i -= 1;
            digits[i] = b"0123456789abcdef"[(v % base) as usize];
            v /= base;
            if v == 0 {
                break;
            }
        }
        self.push(prefix);
        self.push(&digits[i..]);
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Buffers a report and writes it to its file descriptor when full.
#[derive(Debug)]
pub struct FdWriter {
    fd: libc::c_int,
    buf: Buf,
}

impl FdWriter {
    /// Room kept free for one number so a line's parts never split mid-number.
    const NUM_ROOM: usize = 24;

    pub fn text(&mut self, data: &[u8]) {
        for chunk in data.chunks(PATH_BYTES_MAX / 2) {
            if self.buf.room() < chunk.len() {
                self.flush();
            }
            self.buf.push(chunk);
        }
    }

    pub fn num(&mut self, num: Num) {
        if self.buf.room() < Self::NUM_ROOM {
            self.flush();
        }
        self.buf.push_num(num);
    }

    /// The parts, then the number if any, then a newline.
    pub fn line(&mut self, parts: &[&[u8]], num: Option<Num>) {
        for part in parts {
            self.text(part);
        }
        if let Some(n) = num {
            self.num(n);
        }
        self.text(b"\n");
    }

    fn flush(&mut self) {
        let mut done = 0;
        while done < self.buf.len {
            let rest = &self.buf.bytes[done..self.buf.len];
            // SAFETY: `rest` is a valid readable slice; fd is open.
            let n = unsafe { libc::syscall(libc::SYS_write, self.fd, rest.as_ptr(), rest.len()) };
            if n <= 0 {
                break;
            }
            done += n as usize;
        }
        self.buf.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_the_process_id_in_the_path_are_written_in_full() {
        let mut path = Buf::new();
        expand_template(&mut path, b"/tmp/calls.%p.txt", 4711);
        assert_eq!(path.as_slice(), b"/tmp/calls.4711.txt");
        let mut b = Buf::new();
        b.push_num(Num::Dec(0));
        b.push(b" ");
        b.push_num(Num::Dec(u64::MAX));
        b.push(b" ");
        b.push_num(Num::Hex(0xdead_beef));
        assert_eq!(b.as_slice(), b"0 18446744073709551615 0xdeadbeef");
    }
}

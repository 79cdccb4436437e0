//! Writing the trace file with async-signal-safe calls only (`open`, `write`, `close`,
//! `getpid`) and no allocation, so the `SIGUSR2` handler can do it.
//!
//! The format is line-based text, one record per line (parsed by `diag::moves`):
//!
//! ```text
//! diag-moves 1
//! reason exit|signal
//! pid PID
//! exe PATH
//! exe_base 0xHEX        (load bias of the executable: subtract from sites for PIE)
//! exe_range 0xHEX 0xHEX (its mapped addresses)
//! threshold BYTES
//! dropped COUNT        (large copies not recorded: the per-site table was full)
//! dropped_exact COUNT  (large copies in their site's total but without an exact size)
//! hist BUCKET COUNT     (one per non-empty bucket; bucket k counts sizes in [2^(k-1), 2^k))
//! site 0xADDR SIZE COUNT BYTES             (large copies by call site and exact size)
//! total 0xADDR COUNT BYTES SIZE_MIN SIZE_MAX (large copies by call site, all sizes)
//! ```

use core::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::init::{EXE_BASE, EXE_END, EXE_START, env_bytes};
use crate::table::{
    BUCKETS, DROPPED, DROPPED_EXACT, HISTOGRAM, SITE_TOTALS, SITES, THRESHOLD_BYTES,
};

/// Longest path kept for the output file and the executable (PATH_MAX on Linux).
const PATH_BYTES_MAX: usize = 4096;

/// The default output path; `%p` becomes the process id.
const DEFAULT_OUT: &[u8] = b"diag-moves.%p.txt";

/// The trace format version written on the first line.
const FORMAT_VERSION: u64 = 1;

/// A fixed buffer written once by the constructor, read-only afterwards.
struct InitOnce {
    bytes: UnsafeCell<[u8; PATH_BYTES_MAX]>,
    len: UnsafeCell<usize>,
}

// SAFETY: written only by the constructor, before any other thread or signal handler exists
// that could read it; read-only afterwards.
unsafe impl Sync for InitOnce {}

impl InitOnce {
    const fn new() -> Self {
        Self {
            bytes: UnsafeCell::new([0; PATH_BYTES_MAX]),
            len: UnsafeCell::new(0),
        }
    }

    /// # Safety
    /// Only from the constructor (see the `Sync` impl).
    unsafe fn set(&self, value: &[u8]) {
        let n = value.len().min(PATH_BYTES_MAX - 1);
        // SAFETY: exclusive access per the caller's contract; n < the buffer's length.
        unsafe {
            (&mut *self.bytes.get())[..n].copy_from_slice(&value[..n]);
            *self.len.get() = n;
        }
    }

    fn get(&self) -> &[u8] {
        // SAFETY: read-only after the constructor (see the `Sync` impl).
        unsafe { &(&*self.bytes.get())[..*self.len.get()] }
    }
}

static OUT_TEMPLATE: InitOnce = InitOnce::new();
static EXE_PATH: InitOnce = InitOnce::new();

/// Set while a trace is being written, so the exit writer and a signal do not interleave.
static WRITING: AtomicBool = AtomicBool::new(false);

/// Reads `DIAG_MOVES_OUT` and the executable's path. Called once, by the constructor.
pub fn init_paths() {
    let out = env_bytes(c"DIAG_MOVES_OUT")
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_OUT);
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
    unsafe {
        OUT_TEMPLATE.set(out);
        EXE_PATH.set(&exe[..exe_len]);
    }
}

/// Writes the trace to the output path. Async-signal-safe.
pub fn write_trace(reason: &[u8]) {
    if WRITING.swap(true, Ordering::Acquire) {
        return;
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u64;
    let mut path = Buf::new();
    expand_template(&mut path, OUT_TEMPLATE.get(), pid);
    path.push(&[0]);
    // SAFETY: a NUL-terminated path; the flags and mode are plain constants.
    let fd = unsafe {
        libc::open(
            path.as_slice().as_ptr().cast(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if fd >= 0 {
        let mut out = FdWriter {
            fd,
            buf: Buf::new(),
        };
        write_body(&mut out, reason, pid);
        out.flush();
        // SAFETY: fd was opened above and is closed once.
        unsafe { libc::close(fd) };
    }
    WRITING.store(false, Ordering::Release);
}

fn expand_template(path: &mut Buf, template: &[u8], pid: u64) {
    let mut i = 0;
    while i < template.len() {
        if template[i] == b'%' && template.get(i + 1) == Some(&b'p') {
            path.push_u64(pid);
            i += 2;
        } else {
            path.push(&template[i..i + 1]);
            i += 1;
        }
    }
}

fn write_body(out: &mut FdWriter, reason: &[u8], pid: u64) {
    out.line(&[b"diag-moves "], Some(Num::Dec(FORMAT_VERSION)));
    out.line(&[b"reason ", reason], None);
    out.line(&[b"pid "], Some(Num::Dec(pid)));
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
    out.line(
        &[b"threshold "],
        Some(Num::Dec(THRESHOLD_BYTES.load(Ordering::Relaxed))),
    );
    out.line(
        &[b"dropped "],
        Some(Num::Dec(DROPPED.load(Ordering::Relaxed))),
    );
    out.line(
        &[b"dropped_exact "],
        Some(Num::Dec(DROPPED_EXACT.load(Ordering::Relaxed))),
    );
    for (k, bucket) in HISTOGRAM.iter().enumerate().take(BUCKETS) {
        let count = bucket.load(Ordering::Relaxed);
        if count > 0 {
            out.text(b"hist ");
            out.num(Num::Dec(k as u64));
            out.text(b" ");
            out.num(Num::Dec(count));
            out.text(b"\n");
        }
    }
    for slot in &SITES {
        let site = slot.site.load(Ordering::Acquire);
        let size = slot.size.load(Ordering::Acquire);
        let count = slot.count.load(Ordering::Relaxed);
        if site == 0 || size == 0 || count == 0 {
            continue;
        }
        out.text(b"site ");
        out.num(Num::Hex(site));
        out.text(b" ");
        out.num(Num::Dec(size));
        out.text(b" ");
        out.num(Num::Dec(count));
        out.text(b" ");
        out.num(Num::Dec(slot.bytes.load(Ordering::Relaxed)));
        out.text(b"\n");
    }
    for slot in &SITE_TOTALS {
        let site = slot.site.load(Ordering::Acquire);
        let count = slot.count.load(Ordering::Relaxed);
        if site == 0 || count == 0 {
            continue;
        }
        out.text(b"total ");
        out.num(Num::Hex(site));
        for value in [&slot.count, &slot.bytes, &slot.size_min, &slot.size_max] {
            out.text(b" ");
            out.num(Num::Dec(value.load(Ordering::Relaxed)));
        }
        out.text(b"\n");
    }
}

#[derive(Clone, Copy)]
enum Num {
    Dec(u64),
    Hex(u64),
}

/// A fixed-capacity byte buffer (no allocation).
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

    fn push_u64(&mut self, v: u64) {
        self.push_num(Num::Dec(v));
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Buffers output and writes it to a file descriptor when full.
struct FdWriter {
    fd: libc::c_int,
    buf: Buf,
}

impl FdWriter {
    /// Room kept free for one number so a line's parts never split mid-number.
    const NUM_ROOM: usize = 24;

    fn text(&mut self, data: &[u8]) {
        for chunk in data.chunks(PATH_BYTES_MAX / 2) {
            if self.buf.room() < chunk.len() {
                self.flush();
            }
            self.buf.push(chunk);
        }
    }

    fn num(&mut self, num: Num) {
        if self.buf.room() < Self::NUM_ROOM {
            self.flush();
        }
        self.buf.push_num(num);
    }

    fn line(&mut self, parts: &[&[u8]], num: Option<Num>) {
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
            let n = unsafe { libc::write(self.fd, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                break;
            }
            done += n as usize;
        }
        self.buf.len = 0;
    }
}

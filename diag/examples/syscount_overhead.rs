//! What the system call counter (`diag-syscount`) costs per call: the C library's `pread64`
//! and `write` against the counter's own wrappers of them (the library loaded with `dlopen`,
//! its functions called directly, so one process measures both), on one thread and on two
//! calling at once, interleaved, medians of the threads' CPU time. At the end it checks that the
//! counter counted every call made through it.
//!
//! `cargo build --release -p diag-syscount && cargo run --release -p diag --example syscount_overhead`
//! (or give the library's path as the argument). With `--tcp` the writes go to a TCP connection
//! over the loopback (Nagle's algorithm on, read by another thread) instead of `/dev/null`: the
//! counter then also counts each as a write to TCP (`write to TCP (Nagle on)`).

use std::ffi::CString;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use diag::snapshot::{SyscallFigures, TCP_WRITES_NAGLE};

/// Calls of each function per thread per measurement.
const CALLS: usize = 200_000;
/// Interleaved measurements of each variant.
const REPETITIONS: usize = 9;

type PreadFn = unsafe extern "C" fn(i32, *mut libc::c_void, usize, i64) -> isize;
type WriteFn = unsafe extern "C" fn(i32, *const libc::c_void, usize) -> isize;

/// A `pread64` and a `write`: the C library's or the counter's.
#[derive(Clone, Copy)]
struct Calls {
    pread: PreadFn,
    write: WriteFn,
}

/// Loads the counter and returns its wrappers; its counts go to `out`.
fn counter(library: &Path, out: &Path) -> Calls {
    // SAFETY: no other thread runs yet to read the environment.
    unsafe {
        std::env::set_var("DIAG_SYSCALLS_OUT", out);
    }
    let path = CString::new(library.as_os_str().as_encoded_bytes()).expect("a path");
    // SAFETY: dlopen and dlsym with NUL-terminated strings; the library stays loaded.
    unsafe {
        let handle = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        assert!(
            !handle.is_null(),
            "cannot load {} (build it: cargo build --release -p diag-syscount)",
            library.display()
        );
        let pread = libc::dlsym(handle, c"pread64".as_ptr());
        let write = libc::dlsym(handle, c"write".as_ptr());
        assert!(
            !pread.is_null() && !write.is_null(),
            "the counter's wrappers"
        );
        Calls {
            pread: std::mem::transmute::<*mut libc::c_void, PreadFn>(pread),
            write: std::mem::transmute::<*mut libc::c_void, WriteFn>(write),
        }
    }
}

/// Calls of one batch: the two variants alternate batch by batch on each thread, so a slower
/// moment of the machine (system calls vary by a tenth from second to second here) falls on
/// both alike.
const BATCH: usize = 1_000;

/// CPU nanoseconds per call (a `pread64` of one byte of `file`, then a one-byte `write` to
/// `sink`) without and with the counter, averaged over `threads` threads.
fn measure(plain: Calls, counted: Calls, file: i32, sink: i32, threads: usize) -> (f64, f64) {
    let (without, with) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(move || alternate(plain, counted, file, sink)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("the caller does not panic"))
            .fold((0, 0), |(a, b), (x, y)| (a + x, b + y))
    });
    let calls = (CALLS * threads) as f64;
    (without as f64 / calls, with as f64 / calls)
}

/// This thread's CPU nanoseconds in `CALLS` calls of each variant, batch by batch.
fn alternate(plain: Calls, counted: Calls, file: i32, sink: i32) -> (u64, u64) {
    let (mut without, mut with) = (0, 0);
    for _ in 0..CALLS / BATCH {
        without += batch(plain, file, sink);
        with += batch(counted, file, sink);
    }
    (without, with)
}

/// CPU nanoseconds of one batch of calls.
fn batch(calls: Calls, file: i32, sink: i32) -> u64 {
    let mut byte = [0u8];
    let start = diag::cpu::thread_cpu_ns();
    for i in 0..BATCH / 2 {
        // SAFETY: valid descriptors and a one-byte buffer.
        unsafe {
            (calls.pread)(file, byte.as_mut_ptr().cast(), 1, (i % 64) as i64);
            (calls.write)(sink, byte.as_ptr().cast(), 1);
        }
    }
    diag::cpu::thread_cpu_ns() - start
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let tcp = std::env::args().skip(1).any(|a| a == "--tcp");
    let library = std::env::args().skip(1).find(|a| a != "--tcp").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/libdiag_syscount.so"),
        PathBuf::from,
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("counts.txt");
    let counted = counter(&library, &out);
    let plain = Calls {
        pread: libc::pread64,
        write: libc::write,
    };
    let file = tempfile::tempfile().expect("a temporary file");
    std::io::Write::write_all(&mut &file, &[7u8; 64]).expect("the file is written");
    let sink = if tcp { tcp_sink() } else { null_sink() };
    let (file, sink) = (file.as_raw_fd(), sink.as_raw_fd());
    let sink_name = if tcp { "a TCP socket" } else { "/dev/null" };
    measure(plain, counted, file, sink, 1);
    let mut through_counter = CALLS;
    for threads in [1, 2] {
        let (mut without, mut with, mut extra) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..REPETITIONS {
            let (a, b) = measure(plain, counted, file, sink, threads);
            without.push(a);
            with.push(b);
            extra.push(b - a);
            through_counter += CALLS * threads;
        }
        println!(
            "{threads} thread(s): {:.1} ns per call (pread64 or write to {sink_name}) without the \
             counter, {:.1} ns with; the difference, median of {REPETITIONS}: {:+.1} ns",
            median(without),
            median(with),
            median(extra)
        );
    }
    check_counted(&out, through_counter, tcp);
}

fn null_sink() -> OwnedFd {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null opens")
        .into()
}

/// The writing end of a loopback TCP connection, Nagle's algorithm left on; a thread reads
/// and drops whatever arrives, so writes never wait for room.
fn tcp_sink() -> OwnedFd {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let writer = TcpStream::connect(listener.local_addr().expect("its address")).expect("connects");
    let (mut reader, _) = listener.accept().expect("accepts");
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 1 << 16];
        while reader.read(&mut buffer).is_ok_and(|n| n > 0) {}
    });
    writer.into()
}

/// Asks the counter for its counts as a user would (`SIGUSR2`) and checks that every call made
/// through it was counted: the figures above measured the counter, not a wrapper that skipped it.
fn check_counted(out: &Path, calls: usize, tcp: bool) {
    // SAFETY: raise runs the counter's handler on this thread, which writes the counts.
    unsafe { libc::raise(libc::SIGUSR2) };
    let text = std::fs::read_to_string(out).expect("the counter wrote its counts");
    let figures = SyscallFigures::from_syscount(&text, 1).expect("counts");
    let counted = figures.calls.get("pread64").copied().unwrap_or(0)
        + figures.calls.get("write").copied().unwrap_or(0);
    assert!(
        counted >= calls as u64,
        "the counter counted {counted} of the {calls} calls made through it"
    );
    println!("the counter counted {counted} calls ({calls} made through it in the measurements)");
    if tcp {
        let to_tcp = figures.calls.get(TCP_WRITES_NAGLE).copied().unwrap_or(0);
        assert!(
            to_tcp >= calls as u64 / 2,
            "the counter counted {to_tcp} writes to TCP of the {} made",
            calls / 2
        );
        println!("of them, {to_tcp} writes to TCP with Nagle's algorithm on");
    }
}

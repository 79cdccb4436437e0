//! What the counting allocator costs per allocation and free, on one thread and on two
//! allocating at once: the same loop, with and without counting, interleaved, medians of the
//! threads' CPU time (not wall time: other programs on the machine do not count).
//!
//! `cargo run --release -p diag --example alloc_overhead`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diag::alloc::CountingAlloc;

/// Counting on or off at run time, so both are measured in one binary: both paths pay the same
/// predictable branch, and the difference is the counting.
struct Switch;

static COUNTING: AtomicBool = AtomicBool::new(false);
static COUNTED: CountingAlloc = CountingAlloc::system();

// SAFETY: every call goes unchanged to one of two allocators, and a pointer always goes back to
// the allocator that made it, since both hand the call to `System` in the end.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees are passed on.
        unsafe {
            if COUNTING.load(Ordering::Relaxed) {
                COUNTED.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above; both allocators free with `System`.
        unsafe {
            if COUNTING.load(Ordering::Relaxed) {
                COUNTED.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }
}

#[global_allocator]
static GLOBAL: Switch = Switch;

/// Allocation-and-free pairs per thread per measurement.
const PAIRS: usize = 5_000_000;
/// Interleaved measurements of each variant.
const REPETITIONS: usize = 9;

fn work(pairs: usize) {
    for i in 0..pairs / 2 {
        drop(std::hint::black_box(Box::new([i as u8; 48])));
        drop(std::hint::black_box(Vec::<u8>::with_capacity(
            200 + (i & 63),
        )));
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    Duration::from_nanos(diag::cpu::thread_cpu_ns())
}

/// CPU nanoseconds per allocation-and-free pair, averaged over `threads` threads.
fn measure(threads: usize) -> f64 {
    let cpu: Duration = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let start = thread_cpu();
                    work(PAIRS);
                    thread_cpu() - start
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("the worker does not panic"))
            .sum()
    });
    cpu.as_nanos() as f64 / (PAIRS * threads) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    work(100_000);
    for threads in [1, 2] {
        let (mut plain, mut counted) = (Vec::new(), Vec::new());
        for _ in 0..REPETITIONS {
            COUNTING.store(false, Ordering::Relaxed);
            plain.push(measure(threads));
            COUNTING.store(true, Ordering::Relaxed);
            counted.push(measure(threads));
        }
        let (plain, counted) = (median(plain), median(counted));
        println!(
            "{threads} thread(s): {plain:.1} ns per allocation and free without counting, {counted:.1} ns with ({:+.1} ns)",
            counted - plain
        );
    }
}

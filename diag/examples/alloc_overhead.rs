//! What the counting allocator costs per allocation and free, on one thread and on two
//! allocating at once: the same loop, with and without counting, interleaved, medians.
//!
//! `cargo run --release -p diag --example alloc_overhead`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
        drop(std::hint::black_box(Vec::<u8>::with_capacity(200 + (i & 63))));
    }
}

/// Nanoseconds per allocation-and-free pair, per thread.
fn measure(threads: usize) -> f64 {
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| work(PAIRS));
        }
    });
    started.elapsed().as_nanos() as f64 / PAIRS as f64
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

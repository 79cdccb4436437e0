//! What CPU profiling costs: the same busy work at the bottom of a deep stack (as deep as an
//! async server's), without a profile and under one at 999 Hz, interleaved; the difference in
//! the thread's CPU time divided by the samples taken is the cost of one sample, and the cost
//! at a given frequency is that times the samples per CPU-second.
//!
//! `cargo run --release -p diag --example cpu_overhead`

use std::time::Duration;

use diag::cpu::{CpuProfiler, DEFAULT_HZ, HZ_MAX};

/// Frames between the thread's start and the busy work: DDSplit's sampled stacks are 40 to 80
/// frames deep (runtime, connection, handler, store, codec).
const STACK_DEPTH: u32 = 64;
/// Busy work per measurement: about a second of CPU.
const WORK_UNITS: u64 = 1000;
/// Interleaved measurements of each variant.
const REPETITIONS: usize = 7;

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    Duration::from_nanos(diag::cpu::thread_cpu_ns())
}

#[inline(never)]
fn deep(depth: u32, units: u64) -> u64 {
    if depth == 0 {
        let mut x = 1u64;
        for i in 0..units * 1_000_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        x
    } else {
        std::hint::black_box(deep(depth - 1, units)).wrapping_add(1)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    CpuProfiler::prepare();
    let hz = HZ_MAX - 1;
    let (mut plain, mut profiled, mut per_sample) = (Vec::new(), Vec::new(), Vec::new());
    let mut rate = Vec::new();
    for _ in 0..REPETITIONS {
        let start = thread_cpu();
        std::hint::black_box(deep(STACK_DEPTH, WORK_UNITS));
        let without = (thread_cpu() - start).as_secs_f64();

        let profiler = CpuProfiler::start(hz).expect("no other profile runs");
        let start = thread_cpu();
        std::hint::black_box(deep(STACK_DEPTH, WORK_UNITS));
        let with = (thread_cpu() - start).as_secs_f64();
        let samples = profiler.stop().expect("the profile stops").samples();

        plain.push(without);
        profiled.push(with);
        per_sample.push((with - without) / samples.max(1) as f64);
        rate.push(samples as f64 / with);
    }
    let (plain, profiled, per_sample) = (median(plain), median(profiled), median(per_sample));
    // The kernel may deliver fewer signals than asked (ITIMER_PROF follows its tick).
    let rate = median(rate);
    println!(
        "{STACK_DEPTH}-frame stack: {plain:.3} s of CPU without a profile, {profiled:.3} s at {hz} Hz \
         asked, {rate:.0} samples per CPU-second taken ({:+.2}%); one sample costs {:.1} us, so \
         {DEFAULT_HZ} Hz costs {:.2}% of the CPU it samples",
        (profiled / plain - 1.0) * 100.0,
        per_sample * 1e6,
        per_sample * f64::from(DEFAULT_HZ) * 100.0,
    );
}

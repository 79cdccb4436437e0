//! What a task monitor costs: the same futures polled plain, through a kind whose probes are
//! off, through one whose probes are on, and on while a blocking profile runs (each poll then
//! marks its thread), interleaved, medians of the polling threads' CPU time (not wall time:
//! other programs on the machine do not count). Two threads poll futures of one kind at once,
//! as a runtime's workers do, so the shared counters' cache lines move between cores.
//!
//! With a `tasks.json` written by `ddsplit local --diag-out DIR` and its operation count, it
//! also prints what the monitors cost per operation of that run, from its futures and polls:
//!
//! `cargo run --release -p diag --example task_overhead -- [DIR/tasks.json OPS]`

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use diag::blocking::{BlockingProfiler, DEFAULT_HZ};
use diag::tasks::{TaskKind, TaskProbes};

/// Futures per thread per measurement.
const FUTURES: usize = 400_000;
/// Interleaved measurements of each variant.
const REPETITIONS: usize = 9;
/// Threads polling at once.
const THREADS: usize = 2;
/// Polls of the longer future: the cost of a poll beyond the first is the difference.
const LONG_POLLS: u32 = 4;

/// A future that asks to be polled again `left` times, as one that awaits I/O does.
struct Yields {
    left: u32,
}

impl Future for Yields {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.left == 0 {
            return Poll::Ready(());
        }
        self.left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Plain,
    Off,
    On,
    OnWhileBlockingProfiled,
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    Duration::from_nanos(diag::cpu::thread_cpu_ns())
}

fn run_to_end(future: impl Future<Output = ()>) {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    while future.as_mut().poll(&mut cx).is_pending() {}
}

fn poll_futures(variant: Variant, kind: &TaskKind, polls: u32) {
    for _ in 0..FUTURES {
        let future = Yields { left: polls - 1 };
        match variant {
            Variant::Plain => run_to_end(future),
            _ => run_to_end(kind.instrument(future)),
        }
    }
}

/// CPU nanoseconds per future of `polls` polls, averaged over the threads.
fn measure(variant: Variant, on: &TaskKind, off: &TaskKind, polls: u32) -> f64 {
    let kind = if variant == Variant::Off { off } else { on };
    let profile = (variant == Variant::OnWhileBlockingProfiled)
        .then(|| BlockingProfiler::start(DEFAULT_HZ).expect("no other blocking profile runs"));
    let cpu: Duration = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    let start = thread_cpu();
                    poll_futures(variant, kind, polls);
                    thread_cpu() - start
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("the poller does not panic"))
            .sum()
    });
    drop(profile.map(BlockingProfiler::stop));
    cpu.as_nanos() as f64 / (FUTURES * THREADS) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Per future of `polls` polls: the median CPU of each variant.
fn costs(on: &TaskKind, off: &TaskKind, polls: u32) -> [f64; 4] {
    let variants = [
        Variant::Plain,
        Variant::Off,
        Variant::On,
        Variant::OnWhileBlockingProfiled,
    ];
    let mut samples: [Vec<f64>; 4] = Default::default();
    for round in 0..REPETITIONS {
        // Rotate which variant goes first, so none always runs on a cold cache.
        for i in 0..variants.len() {
            let at = (i + round) % variants.len();
            samples[at].push(measure(variants[at], on, off, polls));
        }
    }
    samples.map(median)
}

/// The monitors' cost per operation of a run, from its `tasks.json`.
fn per_operation(tasks_json: &str, ops: f64, per_future_ns: f64, per_poll_ns: f64) {
    let text = std::fs::read_to_string(tasks_json).expect("the tasks.json given can be read");
    let value: serde_json::Value = serde_json::from_str(&text).expect("tasks.json is JSON");
    let tasks = value["tasks"]
        .as_object()
        .expect("tasks.json has its tasks");
    let (mut futures, mut polls) = (0.0, 0.0);
    for figures in tasks.values() {
        futures += figures["instrumented_count"].as_f64().unwrap_or(0.0);
        polls += figures["total_poll_count"].as_f64().unwrap_or(0.0);
    }
    let (futures, polls) = (futures / ops, polls / ops);
    let extra_polls = (polls - futures).max(0.0);
    println!(
        "{tasks_json}: {futures:.2} instrumented futures and {polls:.2} polls per operation: \
         the monitors cost {:.2} us per operation",
        (futures * per_future_ns + extra_polls * per_poll_ns) / 1000.0
    );
}

fn main() {
    let probes = TaskProbes::builder()
        .kind("bench")
        .without_runtime()
        .build()
        .expect("one valid kind");
    let on = probes.kind("bench").expect("the kind just registered");
    let off = TaskKind::off("bench-off");
    let one = costs(&on, &off, 1);
    let long = costs(&on, &off, LONG_POLLS);
    let names = ["plain", "probes off", "probes on", "on, blocking profiled"];
    for (i, name) in names.iter().enumerate() {
        println!(
            "{name:>22}: {:6.1} ns per future of 1 poll, {:6.1} ns per future of {LONG_POLLS} polls",
            one[i], long[i]
        );
    }
    let extra_poll = |i: usize| (long[i] - one[i]) / f64::from(LONG_POLLS - 1);
    let per_future = one[2] - one[0];
    let per_poll = extra_poll(2) - extra_poll(0);
    let marking = (long[3] - long[2]) / f64::from(LONG_POLLS);
    println!(
        "{THREADS} threads: a monitored future costs {per_future:+.1} ns (its first poll \
         included), each further poll {per_poll:+.1} ns; marking a poll for the blocking \
         profile {marking:+.1} ns per poll; probes off cost {:+.1} ns per future",
        one[1] - one[0]
    );
    let mut args = std::env::args().skip(1);
    if let (Some(tasks_json), Some(ops)) = (args.next(), args.next()) {
        let ops: f64 = ops.parse().expect("OPS is a number");
        per_operation(&tasks_json, ops, per_future, per_poll);
    }
}

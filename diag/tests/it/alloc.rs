//! The counting allocator: exact counts of known allocation patterns, measured by scopes while
//! other threads allocate, and by futures polled on several threads.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use diag::alloc::{AllocCounts, AllocScope, measure};

/// One allocation of 64 bytes, one of 40 that grows to 80 by a realloc, both freed.
#[inline(never)]
fn known_pattern() {
    let boxed = Box::new([7u8; 64]);
    let mut v: Vec<u32> = Vec::with_capacity(10);
    v.extend(0..10);
    v.reserve_exact(10); // 40 -> 80 bytes: a realloc
    v.push(std::hint::black_box(boxed[0]) as u32);
    drop(boxed);
    drop(v);
}

const KNOWN: AllocCounts = AllocCounts {
    allocations_total: 2,
    deallocations_total: 2,
    reallocations_total: 1,
    bytes_allocated_total: 64 + 40 + 40,
    bytes_deallocated_total: 64 + 80,
    peak_live_bytes: 64 + 80,
};

#[test]
fn a_known_pattern_gives_exact_counts_while_other_threads_allocate() {
    assert!(
        diag::alloc::is_counting(),
        "the test binary installs CountingAlloc"
    );
    let before = diag::alloc::process();
    // Noise: threads allocating all the time, in this test and beside it.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let measured = std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::black_box(vec![0u8; 1000]);
                }
            });
        }
        let measured: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let counts = (0..100)
                        .map(|_| {
                            let scope = AllocScope::new();
                            known_pattern();
                            scope.counts()
                        })
                        .collect::<Vec<_>>();
                    diag::alloc::flush();
                    counts
                })
            })
            .collect();
        let joined: Vec<_> = measured.into_iter().map(|h| h.join()).collect();
        // The scope waits for the noise threads: stop them before anything can fail.
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        joined
    });
    for counts in measured.into_iter().flat_map(|joined| joined.unwrap()) {
        assert_eq!(counts, KNOWN);
        assert_eq!(counts.live_bytes(), 0);
    }
    let grown = diag::alloc::process().since(&before);
    assert!(grown.allocations_total >= 8 * 100 * KNOWN.allocations_total);
    assert!(grown.reallocations_total >= 8 * 100 * KNOWN.reallocations_total);
    assert!(grown.bytes_allocated_total >= 8 * 100 * KNOWN.bytes_allocated_total);
}

#[test]
fn nested_scopes_see_their_own_part_and_the_outer_peak_includes_the_inner() {
    let outer = AllocScope::new();
    let kept = vec![0u8; 1000];
    {
        let inner = AllocScope::new();
        let big = vec![0u8; 5000];
        drop(big);
        assert_eq!(inner.counts().peak_live_bytes, 5000);
        assert_eq!(inner.counts().allocations_total, 1);
    }
    let counts = outer.counts();
    assert_eq!(counts.allocations_total, 2);
    assert_eq!(counts.peak_live_bytes, 6000);
    assert_eq!(counts.live_bytes(), 1000);
    drop(kept);
    assert_eq!(outer.counts().live_bytes(), 0);
}

/// Allocates `bytes` at each poll and keeps the first allocation until the end; pending
/// `polls - 1` times.
struct Work {
    polls: u32,
    bytes: usize,
    kept: Vec<Vec<u8>>,
}

impl Future for Work {
    type Output = usize;
    fn poll(mut self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<usize> {
        let v = vec![1u8; self.bytes];
        if self.kept.is_empty() {
            self.kept.reserve_exact(1);
            self.kept.push(v);
        }
        self.polls -= 1;
        if self.polls == 0 {
            Poll::Ready(self.kept.len())
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn a_measured_future_counts_its_polls_on_every_thread() {
    let work = Work {
        polls: 3,
        bytes: 100,
        kept: Vec::new(),
    };
    let mut measured = Box::pin(measure(work));
    let mut cx = Context::from_waker(Waker::noop());
    // First poll here, second on another thread, third here again.
    assert!(measured.as_mut().poll(&mut cx).is_pending());
    let mut measured = std::thread::scope(|s| {
        s.spawn(move || {
            let mut cx = Context::from_waker(Waker::noop());
            assert!(measured.as_mut().poll(&mut cx).is_pending());
            measured
        })
        .join()
        .unwrap()
    });
    assert_eq!(
        measured.counts().allocations_total,
        3,
        "100 B + kept vec + 100 B"
    );
    let Poll::Ready((kept, counts)) = measured.as_mut().poll(&mut cx) else {
        panic!("the third poll completes")
    };
    assert_eq!(kept, 1);
    // Three 100-byte buffers and the 24-byte `kept` slot; two buffers freed at the end of
    // their polls, the first kept.
    assert_eq!(counts.allocations_total, 4);
    assert_eq!(counts.bytes_allocated_total, 3 * 100 + 24);
    assert_eq!(counts.deallocations_total, 2);
    assert_eq!(counts.live_bytes(), 124);
    assert_eq!(counts.peak_live_bytes, 224);
}

#[test]
fn process_counts_are_published_in_batches_and_on_flush() {
    std::thread::spawn(|| {
        let mut kept = Vec::new();
        diag::alloc::flush();
        let before = diag::alloc::process();
        // Fewer calls and bytes than a batch: published by the flush below.
        for _ in 0..diag::alloc::FLUSH_EVENTS / 2 {
            kept.push(Box::new(0u64));
        }
        let scope = AllocScope::new();
        diag::alloc::flush();
        let after = diag::alloc::process().since(&before);
        assert!(after.allocations_total >= u64::from(diag::alloc::FLUSH_EVENTS / 2));
        assert_eq!(
            scope.counts().allocations_total,
            0,
            "flushing does not allocate"
        );
        // A large allocation is published at once (other threads only add to the counter).
        let before = diag::alloc::process().bytes_allocated_total;
        let big = vec![0u8; 4 * diag::alloc::FLUSH_BYTES as usize];
        let after = diag::alloc::process().bytes_allocated_total;
        assert!(after - before >= 4 * diag::alloc::FLUSH_BYTES);
        drop(big);
        drop(kept);
    })
    .join()
    .unwrap();
}

#[test]
fn intervals_subtract_counters_and_keep_the_later_peak() {
    let a = AllocCounts {
        allocations_total: 10,
        bytes_allocated_total: 100,
        peak_live_bytes: 50,
        ..AllocCounts::default()
    };
    let b = AllocCounts {
        allocations_total: 25,
        bytes_allocated_total: 400,
        peak_live_bytes: 70,
        ..AllocCounts::default()
    };
    let d = b.since(&a);
    assert_eq!(d.allocations_total, 15);
    assert_eq!(d.bytes_allocated_total, 300);
    assert_eq!(d.peak_live_bytes, 70);
    assert_eq!(d.allocations_per_op(5), 3.0);
    assert_eq!(d.bytes_allocated_per_op(0), 0.0);
}

#[test]
fn prometheus_text_has_every_metric_once() {
    let mut text = String::new();
    diag::alloc::render_prometheus("app", &diag::alloc::process(), &mut text);
    for metric in diag::alloc::METRICS {
        let name = format!("app_{}", metric.name);
        assert!(
            text.contains(&format!("# TYPE {name} {}\n", metric.kind)),
            "{text}"
        );
        let value_lines = text
            .lines()
            .filter(|l| l.starts_with(&format!("{name} ")))
            .count();
        assert_eq!(value_lines, 1, "{name} in {text}");
    }
    assert!(!text.contains("app_alloc_allocations_total 0\n"));
}

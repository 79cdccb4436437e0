//! Allocation counts: a counting global allocator cheap enough to leave on, process-wide counters,
//! and scopes that measure what one thread (or one future, across its polls) allocated.
//!
//! Install it in a binary (or a test binary) over the system allocator or any other:
//!
//! ```rust,standalone_crate
//! #[global_allocator]
//! static GLOBAL: diag::alloc::CountingAlloc = diag::alloc::CountingAlloc::system();
//!
//! fn main() {
//!     let scope = diag::alloc::AllocScope::new();
//!     let v: Vec<u64> = Vec::with_capacity(4);
//!     drop(v);
//!     let counts = scope.counts();
//!     assert_eq!(counts.allocations_total, 1);
//!     assert_eq!(counts.bytes_allocated_total, 32);
//!     assert_eq!(counts.deallocations_total, 1);
//!     diag::alloc::flush(); // publish this thread's counts now, not in a while
//!     assert!(diag::alloc::process().allocations_total >= 1);
//! }
//! ```
//!
//! Each thread keeps its own running totals in plain thread-local cells, which is what
//! [`AllocScope`] and [`Measured`] read, so a test or a request measures its own allocations
//! exactly while other threads allocate (the parallel test runner, other requests). Threads
//! publish their counts to the process-wide counters (relaxed atomics on one cache line) in
//! batches of [`FLUSH_EVENTS`] calls: [`process`] lags by less than that per thread, and no
//! allocation contends for a shared cache line. Nothing is counted unless the binary's
//! `#[global_allocator]` is a [`CountingAlloc`]: [`is_counting`] says whether it is.
//!
//! Definitions (a `realloc` is neither an allocation nor a deallocation, it is counted apart;
//! its growth counts as bytes allocated and its shrinkage as bytes deallocated):
//!
//! | metric | one sentence |
//! | --- | --- |
//! | [`allocations_total`](AllocCounts::allocations_total) | successful `alloc` and `alloc_zeroed` calls |
//! | [`deallocations_total`](AllocCounts::deallocations_total) | `dealloc` calls |
//! | [`reallocations_total`](AllocCounts::reallocations_total) | successful `realloc` calls |
//! | [`bytes_allocated_total`](AllocCounts::bytes_allocated_total) | bytes asked for by allocations, plus the growth of reallocations |
//! | [`bytes_deallocated_total`](AllocCounts::bytes_deallocated_total) | bytes given back by deallocations, plus the shrinkage of reallocations |
//! | [`live_bytes`](AllocCounts::live_bytes) | bytes allocated minus bytes deallocated |
//! | [`peak_live_bytes`](AllocCounts::peak_live_bytes) | the highest `live_bytes` seen |
//!
//! **Budgets.** An [`AllocBudget`] pins what one unit of work may allocate, so a change that
//! adds allocations to it fails a test that names the work:
//!
//! ```rust,standalone_crate
//! use diag::alloc::{AllocBudget, AllocScope};
//!
//! #[global_allocator]
//! static GLOBAL: diag::alloc::CountingAlloc = diag::alloc::CountingAlloc::system();
//!
//! const PARSE: AllocBudget = AllocBudget::new("parse a header", 1, 64);
//!
//! fn main() {
//!     let scope = AllocScope::new();
//!     let fields: Vec<u32> = Vec::with_capacity(8);
//!     drop(fields);
//!     PARSE.check(&scope.counts()).unwrap(); // one allocation of 32 bytes: within budget
//!     assert!(AllocBudget::new("nothing", 0, 0).check(&scope.counts()).is_err());
//! }
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write as _;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};

use serde::Serialize;

/// What one unit of work (a request of one kind, a parse) may allocate: at most
/// `allocations_max` allocations and `bytes_max` bytes, as counted by a scope around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocBudget {
    /// The work, for the message (`"gateway get of a 64 KiB record"`).
    pub what: &'static str,
    /// Most allocations.
    pub allocations_max: u64,
    /// Most bytes allocated.
    pub bytes_max: u64,
}

/// Work that allocated past its budget.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} allocated {allocations} times ({bytes} bytes); its budget is {allocations_max} \
     allocations and {bytes_max} bytes: find the new allocation with `cargo xtask compare` \
     (or raise the budget in the change that means to spend it)"
)]
pub struct BudgetExceeded {
    /// The work.
    pub what: &'static str,
    /// Allocations counted.
    pub allocations: u64,
    /// Bytes counted.
    pub bytes: u64,
    /// The budget's allocations.
    pub allocations_max: u64,
    /// The budget's bytes.
    pub bytes_max: u64,
}

impl AllocBudget {
    /// A budget for `what`.
    pub const fn new(what: &'static str, allocations_max: u64, bytes_max: u64) -> AllocBudget {
        AllocBudget {
            what,
            allocations_max,
            bytes_max,
        }
    }

    /// `Ok` when `counts` are within the budget.
    pub fn check(&self, counts: &AllocCounts) -> Result<(), BudgetExceeded> {
        if counts.allocations_total <= self.allocations_max
            && counts.bytes_allocated_total <= self.bytes_max
        {
            return Ok(());
        }
        Err(BudgetExceeded {
            what: self.what,
            allocations: counts.allocations_total,
            bytes: counts.bytes_allocated_total,
            allocations_max: self.allocations_max,
            bytes_max: self.bytes_max,
        })
    }
}

/// A global allocator that counts every allocation, deallocation and reallocation (and their
/// bytes) before handing the call to `A`.
///
/// The cost per call is a few thread-local cell updates, plus a batch of relaxed atomic
/// additions every [`FLUSH_EVENTS`] calls; see the overhead figures in the README.
///
/// ```rust,standalone_crate
/// use std::alloc::System;
/// use diag::alloc::CountingAlloc;
///
/// // Over the system allocator (the default type parameter)...
/// #[global_allocator]
/// static GLOBAL: CountingAlloc = CountingAlloc::system();
/// // ...or over another one: `CountingAlloc::new(mimalloc::MiMalloc)`.
/// static _OTHER: CountingAlloc<System> = CountingAlloc::new(System);
///
/// fn main() {
///     let _b = Box::new(7u32);
///     assert!(diag::alloc::is_counting());
/// }
/// ```
#[derive(Debug, Default)]
pub struct CountingAlloc<A = System> {
    inner: A,
}

impl<A> CountingAlloc<A> {
    /// Counts the calls made to `inner`.
    pub const fn new(inner: A) -> CountingAlloc<A> {
        CountingAlloc { inner }
    }

    /// The allocator the calls go to.
    pub fn inner(&self) -> &A {
        &self.inner
    }
}

impl CountingAlloc<System> {
    /// Counts the calls made to the system allocator.
    pub const fn system() -> CountingAlloc<System> {
        CountingAlloc { inner: System }
    }
}

// SAFETY: every call is forwarded unchanged to `inner`, which upholds `GlobalAlloc`'s contract;
// the counting around it neither allocates nor touches the memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees about `layout` are passed on unchanged.
        let ptr = unsafe { self.inner.alloc(layout) };
        if !ptr.is_null() {
            record_alloc(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { self.inner.alloc_zeroed(layout) };
        if !ptr.is_null() {
            record_alloc(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` was allocated by this allocator with `layout`,
        // and every allocation of this allocator comes from `inner`.
        unsafe { self.inner.dealloc(ptr, layout) };
        record_dealloc(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is checked by the caller.
        let new_ptr = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !new_ptr.is_null() {
            record_realloc(layout.size(), new_size);
        }
        new_ptr
    }
}

/// Allocation counts: of the whole process ([`process`]), of a thread between two points
/// ([`AllocScope::counts`]), or of a future across its polls ([`Measured`]). A `Copy` snapshot;
/// [`AllocCounts::since`] gives the interval between two of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AllocCounts {
    /// Successful `alloc` and `alloc_zeroed` calls.
    ///
    /// ```rust,standalone_crate
    /// # #[global_allocator]
    /// # static GLOBAL: diag::alloc::CountingAlloc = diag::alloc::CountingAlloc::system();
    /// # fn main() {
    /// let scope = diag::alloc::AllocScope::new();
    /// let a = Box::new(1u64);
    /// let b = vec![0u8; 100];
    /// assert_eq!(scope.counts().allocations_total, 2);
    /// # drop((a, b));
    /// # }
    /// ```
    pub allocations_total: u64,
    /// `dealloc` calls.
    ///
    /// ```rust,standalone_crate
    /// # #[global_allocator]
    /// # static GLOBAL: diag::alloc::CountingAlloc = diag::alloc::CountingAlloc::system();
    /// # fn main() {
    /// let a = Box::new(1u64);
    /// let scope = diag::alloc::AllocScope::new();
    /// drop(a);
    /// assert_eq!(scope.counts().deallocations_total, 1);
    /// assert_eq!(scope.counts().allocations_total, 0);
    /// # }
    /// ```
    pub deallocations_total: u64,
    /// Successful `realloc` calls (a `Vec` growing in place or moving).
    ///
    /// ```rust,standalone_crate
    /// # #[global_allocator]
    /// # static GLOBAL: diag::alloc::CountingAlloc = diag::alloc::CountingAlloc::system();
    /// # fn main() {
    /// let mut v: Vec<u8> = Vec::with_capacity(16);
    /// let scope = diag::alloc::AllocScope::new();
    /// v.reserve_exact(64); // 16 -> 64 bytes: one realloc
    /// assert_eq!(scope.counts().reallocations_total, 1);
    /// assert_eq!(scope.counts().allocations_total, 0);
    /// # }
    /// ```
    pub reallocations_total: u64,
    /// Bytes asked for by allocations, plus the growth of reallocations.
    ///
    /// ```rust,standalone_crate
    /// # #[global_allocator]
    /// # static GLOBAL: diag::alloc::CountingAlloc = diag::alloc::CountingAlloc::system();
    /// # fn main() {
    /// let scope = diag::alloc::AllocScope::new();
    /// let mut v: Vec<u8> = Vec::with_capacity(16); // 16 bytes
    /// v.reserve_exact(64);                          // grows by 48
    /// assert_eq!(scope.counts().bytes_allocated_total, 64);
    /// # }
    /// ```
    pub bytes_allocated_total: u64,
    /// Bytes given back by deallocations, plus the shrinkage of reallocations.
    ///
    /// ```rust,standalone_crate
    /// # #[global_allocator]
    /// # static GLOBAL: diag::alloc::CountingAlloc = diag::alloc::CountingAlloc::system();
    /// # fn main() {
    /// let mut v: Vec<u8> = Vec::with_capacity(100);
    /// v.push(1);
    /// let scope = diag::alloc::AllocScope::new();
    /// v.shrink_to(40); // gives back 60
    /// drop(v);         // gives back the other 40
    /// assert_eq!(scope.counts().bytes_deallocated_total, 100);
    /// # }
    /// ```
    pub bytes_deallocated_total: u64,
    /// The highest [`live_bytes`](AllocCounts::live_bytes) seen: since the process started (or
    /// the last [`reset_peak`]) for [`process`], since the scope began for a scope, over all its
    /// polls for a [`Measured`] future. Not a counter: [`since`](AllocCounts::since) keeps the
    /// later value.
    ///
    /// ```rust,standalone_crate
    /// # #[global_allocator]
    /// # static GLOBAL: diag::alloc::CountingAlloc = diag::alloc::CountingAlloc::system();
    /// # fn main() {
    /// let scope = diag::alloc::AllocScope::new();
    /// let a = vec![0u8; 1000];
    /// let b = vec![0u8; 500];
    /// drop(a);
    /// drop(b);
    /// let counts = scope.counts();
    /// assert_eq!(counts.peak_live_bytes, 1500);
    /// assert_eq!(counts.live_bytes(), 0);
    /// # }
    /// ```
    pub peak_live_bytes: u64,
}

impl AllocCounts {
    /// Bytes allocated minus bytes deallocated. Negative for a scope that freed more than it
    /// allocated (memory allocated before it began, or on another thread).
    ///
    /// ```rust,standalone_crate
    /// # #[global_allocator]
    /// # static GLOBAL: diag::alloc::CountingAlloc = diag::alloc::CountingAlloc::system();
    /// # fn main() {
    /// let old = vec![0u8; 10];
    /// let scope = diag::alloc::AllocScope::new();
    /// let kept = vec![0u8; 30];
    /// drop(old);
    /// assert_eq!(scope.counts().live_bytes(), 20);
    /// # drop(kept);
    /// # }
    /// ```
    pub fn live_bytes(&self) -> i64 {
        self.bytes_allocated_total as i64 - self.bytes_deallocated_total as i64
    }

    /// The counts between `earlier` and `self` (counters subtracted; `peak_live_bytes` is
    /// `self`'s, since a peak cannot be subtracted).
    pub fn since(&self, earlier: &AllocCounts) -> AllocCounts {
        AllocCounts {
            allocations_total: self
                .allocations_total
                .saturating_sub(earlier.allocations_total),
            deallocations_total: self
                .deallocations_total
                .saturating_sub(earlier.deallocations_total),
            reallocations_total: self
                .reallocations_total
                .saturating_sub(earlier.reallocations_total),
            bytes_allocated_total: self
                .bytes_allocated_total
                .saturating_sub(earlier.bytes_allocated_total),
            bytes_deallocated_total: self
                .bytes_deallocated_total
                .saturating_sub(earlier.bytes_deallocated_total),
            peak_live_bytes: self.peak_live_bytes,
        }
    }

    /// Allocations per operation, for `ops` operations (0 when `ops` is 0).
    pub fn allocations_per_op(&self, ops: u64) -> f64 {
        per(self.allocations_total, ops)
    }

    /// Bytes allocated per operation, for `ops` operations (0 when `ops` is 0).
    pub fn bytes_allocated_per_op(&self, ops: u64) -> f64 {
        per(self.bytes_allocated_total, ops)
    }

    /// Adds `other`'s counters to these; the peak is the larger of the two.
    pub fn add(&mut self, other: &AllocCounts) {
        self.allocations_total += other.allocations_total;
        self.deallocations_total += other.deallocations_total;
        self.reallocations_total += other.reallocations_total;
        self.bytes_allocated_total += other.bytes_allocated_total;
        self.bytes_deallocated_total += other.bytes_deallocated_total;
        self.peak_live_bytes = self.peak_live_bytes.max(other.peak_live_bytes);
    }
}

fn per(count: u64, ops: u64) -> f64 {
    if ops == 0 {
        0.0
    } else {
        count as f64 / ops as f64
    }
}

/// The counts of the whole process since it started (all zero unless the global allocator is a
/// [`CountingAlloc`]).
///
/// Each thread publishes its counts in batches, so the figures lag each thread by fewer than
/// [`FLUSH_EVENTS`] calls and [`FLUSH_BYTES`] live bytes ([`flush`] publishes the current
/// thread's at once): over a load run of millions of allocations the error is a few hundred
/// per thread at most. The counters are read one after the other while other threads allocate,
/// so a snapshot is not one instant either.
pub fn process() -> AllocCounts {
    AllocCounts {
        allocations_total: GLOBAL.allocations_total.load(Ordering::Relaxed),
        deallocations_total: GLOBAL.deallocations_total.load(Ordering::Relaxed),
        reallocations_total: GLOBAL.reallocations_total.load(Ordering::Relaxed),
        bytes_allocated_total: GLOBAL.bytes_allocated_total.load(Ordering::Relaxed),
        bytes_deallocated_total: GLOBAL.bytes_deallocated_total.load(Ordering::Relaxed),
        peak_live_bytes: GLOBAL.peak_live_bytes.load(Ordering::Relaxed).max(0) as u64,
    }
}

/// Whether the process's global allocator is a [`CountingAlloc`]: this thread or a published
/// one has counted an allocation (every Rust program allocates before `main`).
pub fn is_counting() -> bool {
    GLOBAL.allocations_total.load(Ordering::Relaxed) > 0
        || LOCAL.with(|t| t.totals().allocations_total > 0)
}

/// Restarts the process-wide peak at the current live bytes, so that
/// [`AllocCounts::peak_live_bytes`] of [`process`] is the peak of a phase (e.g. a load run).
pub fn reset_peak() {
    GLOBAL
        .peak_live_bytes
        .store(GLOBAL.live_bytes.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Measures the allocations made by the current thread from its creation to the moment
/// [`counts`](AllocScope::counts) is called. Scopes nest; they are not `Send` (the counts are
/// the thread's). Allocations made for this work on other threads (a spawned task, a blocking
/// pool, another thread's writer) are not counted: use [`Measured`] for a future that moves
/// between worker threads.
///
/// ```rust,standalone_crate
/// # #[global_allocator]
/// # static GLOBAL: diag::alloc::CountingAlloc = diag::alloc::CountingAlloc::system();
/// # fn main() {
/// let outer = diag::alloc::AllocScope::new();
/// let a = Box::new([0u8; 64]);
/// {
///     let inner = diag::alloc::AllocScope::new();
///     let b = Box::new([0u8; 32]);
///     assert_eq!(inner.counts().bytes_allocated_total, 32);
///     # drop(b);
/// }
/// assert_eq!(outer.counts().bytes_allocated_total, 96);
/// # drop(a);
/// # }
/// ```
#[derive(Debug)]
pub struct AllocScope {
    start: ThreadTotals,
    /// The thread's peak before this scope began: restored (maxed) when the scope ends so an
    /// enclosing scope still sees this one's peak.
    saved_peak_net_bytes: i64,
    _not_send: PhantomData<*const ()>,
}

impl AllocScope {
    /// Begins measuring this thread's allocations.
    #[allow(clippy::new_without_default)] // a scope begins at a moment: `default` would hide it
    pub fn new() -> AllocScope {
        LOCAL.with(|t| {
            let start = t.totals();
            let saved_peak_net_bytes = t.peak_net_bytes.get();
            t.peak_net_bytes.set(start.net_bytes);
            AllocScope {
                start,
                saved_peak_net_bytes,
                _not_send: PhantomData,
            }
        })
    }

    /// This thread's allocations since the scope began.
    pub fn counts(&self) -> AllocCounts {
        LOCAL.with(|t| {
            let now = t.totals();
            let peak = t.peak_net_bytes.get() - self.start.net_bytes;
            AllocCounts {
                allocations_total: now.allocations_total - self.start.allocations_total,
                deallocations_total: now.deallocations_total - self.start.deallocations_total,
                reallocations_total: now.reallocations_total - self.start.reallocations_total,
                bytes_allocated_total: now.bytes_allocated_total - self.start.bytes_allocated_total,
                bytes_deallocated_total: now.bytes_deallocated_total
                    - self.start.bytes_deallocated_total,
                peak_live_bytes: peak.max(0) as u64,
            }
        })
    }
}

impl Drop for AllocScope {
    fn drop(&mut self) {
        LOCAL.with(|t| {
            t.peak_net_bytes
                .set(t.peak_net_bytes.get().max(self.saved_peak_net_bytes));
        });
    }
}

/// A future whose allocations are counted across all its polls, on whatever thread polls it
/// (an [`AllocScope`] is active around each poll). Made by [`measure`]. Allocations of tasks it
/// spawns, or of work it hands to other threads, are theirs, not its.
///
/// ```rust,standalone_crate
/// # #[global_allocator]
/// # static GLOBAL: diag::alloc::CountingAlloc = diag::alloc::CountingAlloc::system();
/// # fn main() {
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::{Context, Poll, Waker};
///
/// let mut first = true;
/// let work = std::future::poll_fn(move |_| {
///     let v = vec![0u8; 100]; // allocated (and freed) at every poll
///     drop(v);
///     if std::mem::take(&mut first) { Poll::Pending } else { Poll::Ready(7) }
/// });
/// let mut measured = pin!(diag::alloc::measure(work));
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(measured.as_mut().poll(&mut cx).is_pending());
/// // The second poll could be on any thread; the counts follow the future.
/// let Poll::Ready((out, counts)) = measured.as_mut().poll(&mut cx) else { panic!() };
/// assert_eq!(out, 7);
/// assert_eq!(counts.allocations_total, 2);
/// assert_eq!(counts.bytes_allocated_total, 200);
/// assert_eq!(counts.peak_live_bytes, 100);
/// # }
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Measured<F> {
    future: F,
    counts: AllocCounts,
}

/// Wraps `future` so that its allocations are counted across its polls: it yields its output
/// with the [`AllocCounts`] of all its polls.
pub fn measure<F: Future>(future: F) -> Measured<F> {
    Measured {
        future,
        counts: AllocCounts::default(),
    }
}

impl<F> Measured<F> {
    /// The counts of the polls so far.
    pub fn counts(&self) -> AllocCounts {
        self.counts
    }
}

impl<F: Future> Future for Measured<F> {
    type Output = (F::Output, AllocCounts);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned (never moved out of `self`, and `Measured`
        // has no `Drop` or `Unpin` impl that would move it); `counts` is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let scope = AllocScope::new();
        let polled = future.poll(cx);
        let poll = scope.counts();
        drop(scope);
        // The future's highest live bytes in this poll: its live bytes before the poll plus
        // the poll's own peak above its start.
        let peak_in_poll = this.counts.live_bytes() + poll.peak_live_bytes as i64;
        let peak = this.counts.peak_live_bytes.max(peak_in_poll.max(0) as u64);
        this.counts.add(&poll);
        this.counts.peak_live_bytes = peak;
        match polled {
            Poll::Ready(output) => Poll::Ready((output, this.counts)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// One allocation metric for a Prometheus exposition: `name` is the family name without the
/// program's prefix (e.g. `alloc_allocations_total`).
#[derive(Clone, Copy, Debug)]
pub struct AllocMetric {
    /// Family name without a prefix; the unit is last.
    pub name: &'static str,
    /// `counter` or `gauge`.
    pub kind: &'static str,
    /// The one-sentence definition (`# HELP`).
    pub help: &'static str,
    /// Reads this metric from a snapshot.
    pub value: fn(&AllocCounts) -> u64,
}

/// The allocation metrics, in the order they are exposed.
pub const METRICS: [AllocMetric; 7] = [
    AllocMetric {
        name: "alloc_allocations_total",
        kind: "counter",
        help: "Successful alloc and alloc_zeroed calls of the global allocator.",
        value: |c| c.allocations_total,
    },
    AllocMetric {
        name: "alloc_deallocations_total",
        kind: "counter",
        help: "dealloc calls of the global allocator.",
        value: |c| c.deallocations_total,
    },
    AllocMetric {
        name: "alloc_reallocations_total",
        kind: "counter",
        help: "Successful realloc calls of the global allocator.",
        value: |c| c.reallocations_total,
    },
    AllocMetric {
        name: "alloc_allocated_bytes_total",
        kind: "counter",
        help: "Bytes asked for by allocations, plus the growth of reallocations.",
        value: |c| c.bytes_allocated_total,
    },
    AllocMetric {
        name: "alloc_deallocated_bytes_total",
        kind: "counter",
        help: "Bytes given back by deallocations, plus the shrinkage of reallocations.",
        value: |c| c.bytes_deallocated_total,
    },
    AllocMetric {
        name: "alloc_live_bytes",
        kind: "gauge",
        help: "Bytes allocated and not yet deallocated.",
        value: |c| c.live_bytes().max(0) as u64,
    },
    AllocMetric {
        name: "alloc_peak_live_bytes",
        kind: "gauge",
        help: "The highest live bytes seen since the process started or the last peak reset.",
        value: |c| c.peak_live_bytes,
    },
];

/// Appends `counts` as Prometheus text (exposition format 0.0.4), each family named
/// `{prefix}_{metric}` (e.g. `myapp_alloc_allocations_total`).
///
/// ```
/// let counts = diag::alloc::AllocCounts { allocations_total: 3, ..Default::default() };
/// let mut text = String::new();
/// diag::alloc::render_prometheus("myapp", &counts, &mut text);
/// assert!(text.contains("# TYPE myapp_alloc_allocations_total counter\nmyapp_alloc_allocations_total 3\n"));
/// ```
pub fn render_prometheus(prefix: &str, counts: &AllocCounts, out: &mut String) {
    for metric in &METRICS {
        let name = format!("{prefix}_{}", metric.name);
        let _ = writeln!(out, "# HELP {name} {}", metric.help);
        let _ = writeln!(out, "# TYPE {name} {}", metric.kind);
        let _ = writeln!(out, "{name} {}", (metric.value)(counts));
    }
}

// ---------------------------------------------------------------------------------------------
// The counters.

/// A thread publishes its counts to the process-wide counters every this many calls: the
/// handful of atomic additions of a publication then cost a fraction of a nanosecond per call,
/// instead of several contended atomic operations on every call (measured at about 100 ns per
/// allocation and free with two threads allocating; see the README).
pub const FLUSH_EVENTS: u32 = 64;

/// ...or as soon as its unpublished live bytes move by this much, so that [`process`]'s live
/// and peak bytes are never off by more than this per thread (a large allocation is published
/// at once).
pub const FLUSH_BYTES: u64 = 64 * 1024;

/// The process-wide counters, on one cache line: a publication touches one line, not several.
#[repr(align(64))]
struct GlobalCounters {
    allocations_total: AtomicU64,
    deallocations_total: AtomicU64,
    reallocations_total: AtomicU64,
    bytes_allocated_total: AtomicU64,
    bytes_deallocated_total: AtomicU64,
    live_bytes: AtomicI64,
    peak_live_bytes: AtomicI64,
}

static GLOBAL: GlobalCounters = GlobalCounters {
    allocations_total: AtomicU64::new(0),
    deallocations_total: AtomicU64::new(0),
    reallocations_total: AtomicU64::new(0),
    bytes_allocated_total: AtomicU64::new(0),
    bytes_deallocated_total: AtomicU64::new(0),
    live_bytes: AtomicI64::new(0),
    peak_live_bytes: AtomicI64::new(0),
};

/// One thread's running totals (exact, read by scopes) and what of them it has published.
/// Plain cells: only the owning thread touches them. No destructor and a const initializer, so
/// the allocator can use them at any time, even while the thread exits, without allocating.
struct ThreadCounters {
    totals: Cell<ThreadTotals>,
    published: Cell<ThreadTotals>,
    unpublished_events: Cell<u32>,
    /// The highest `net_bytes` since the innermost [`AllocScope`] began.
    peak_net_bytes: Cell<i64>,
}

#[derive(Clone, Copy, Debug)]
struct ThreadTotals {
    allocations_total: u64,
    deallocations_total: u64,
    reallocations_total: u64,
    bytes_allocated_total: u64,
    bytes_deallocated_total: u64,
    /// Bytes allocated minus deallocated by this thread (negative when it frees what others
    /// allocated).
    net_bytes: i64,
}

impl ThreadTotals {
    const ZERO: ThreadTotals = ThreadTotals {
        allocations_total: 0,
        deallocations_total: 0,
        reallocations_total: 0,
        bytes_allocated_total: 0,
        bytes_deallocated_total: 0,
        net_bytes: 0,
    };
}

impl ThreadCounters {
    const fn new() -> ThreadCounters {
        ThreadCounters {
            totals: Cell::new(ThreadTotals::ZERO),
            published: Cell::new(ThreadTotals::ZERO),
            unpublished_events: Cell::new(0),
            peak_net_bytes: Cell::new(0),
        }
    }

    fn totals(&self) -> ThreadTotals {
        self.totals.get()
    }

    /// Records one call: `change` updates the totals.
    #[inline]
    fn record(&self, change: impl FnOnce(&mut ThreadTotals)) {
        let mut totals = self.totals.get();
        change(&mut totals);
        self.totals.set(totals);
        if totals.net_bytes > self.peak_net_bytes.get() {
            self.peak_net_bytes.set(totals.net_bytes);
        }
        let events = self.unpublished_events.get() + 1;
        let moved = totals.net_bytes.abs_diff(self.published.get().net_bytes);
        if events >= FLUSH_EVENTS || moved >= FLUSH_BYTES {
            self.publish();
        } else {
            self.unpublished_events.set(events);
        }
    }

    /// Adds what this thread counted since its last publication to the process-wide counters.
    fn publish(&self) {
        let now = self.totals.get();
        let then = self.published.get();
        let add = |counter: &AtomicU64, now: u64, then: u64| {
            if now != then {
                counter.fetch_add(now - then, Ordering::Relaxed);
            }
        };
        add(
            &GLOBAL.allocations_total,
            now.allocations_total,
            then.allocations_total,
        );
        add(
            &GLOBAL.deallocations_total,
            now.deallocations_total,
            then.deallocations_total,
        );
        add(
            &GLOBAL.reallocations_total,
            now.reallocations_total,
            then.reallocations_total,
        );
        add(
            &GLOBAL.bytes_allocated_total,
            now.bytes_allocated_total,
            then.bytes_allocated_total,
        );
        add(
            &GLOBAL.bytes_deallocated_total,
            now.bytes_deallocated_total,
            then.bytes_deallocated_total,
        );
        let net = now.net_bytes - then.net_bytes;
        if net != 0 {
            let live = GLOBAL.live_bytes.fetch_add(net, Ordering::Relaxed) + net;
            // A load first: the peak moves rarely, and a load does not take the line exclusively.
            if live > GLOBAL.peak_live_bytes.load(Ordering::Relaxed) {
                GLOBAL.peak_live_bytes.fetch_max(live, Ordering::Relaxed);
            }
        }
        self.published.set(now);
        self.unpublished_events.set(0);
    }
}

thread_local! {
    static LOCAL: ThreadCounters = const { ThreadCounters::new() };
}

/// Publishes the current thread's counts to the process-wide counters now (they are otherwise
/// published every [`FLUSH_EVENTS`] calls or [`FLUSH_BYTES`] bytes). For a thread about to
/// end, or before reading [`process`] for an exact figure of a quiet program.
pub fn flush() {
    LOCAL.with(ThreadCounters::publish);
}

#[inline]
fn record_alloc(size: usize) {
    LOCAL.with(|t| {
        t.record(|c| {
            c.allocations_total += 1;
            c.bytes_allocated_total += size as u64;
            c.net_bytes += size as i64;
        })
    });
}

#[inline]
fn record_dealloc(size: usize) {
    LOCAL.with(|t| {
        t.record(|c| {
            c.deallocations_total += 1;
            c.bytes_deallocated_total += size as u64;
            c.net_bytes -= size as i64;
        })
    });
}

#[inline]
fn record_realloc(old_size: usize, new_size: usize) {
    LOCAL.with(|t| {
        t.record(|c| {
            c.reallocations_total += 1;
            if new_size >= old_size {
                c.bytes_allocated_total += (new_size - old_size) as u64;
            } else {
                c.bytes_deallocated_total += (old_size - new_size) as u64;
            }
            c.net_bytes += new_size as i64 - old_size as i64;
        })
    });
}

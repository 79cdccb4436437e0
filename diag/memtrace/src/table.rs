//! The counters: a histogram of copy sizes and a lock-free table of large copies by call site.

use std::sync::atomic::{AtomicU64, Ordering};

/// Histogram buckets: bucket 0 counts zero-byte copies, bucket `k` counts sizes in
/// `[2^(k-1), 2^k)`.
pub const BUCKETS: usize = 65;

/// Distinct (call site, size) pairs the table can hold; a power of two. 16 Ki pairs cost
/// 512 KiB of zeroed memory and cover the large-copy sites of a big service many times over.
pub const SITE_SLOTS: usize = 1 << 14;

/// How many slots a record probes before it counts the copy as dropped.
const PROBES_MAX: usize = 64;

/// Default bytes from which a copy's call site is recorded.
pub const DEFAULT_THRESHOLD_BYTES: u64 = 1024;

/// Copies by size bucket.
pub static HISTOGRAM: [AtomicU64; BUCKETS] = [const { AtomicU64::new(0) }; BUCKETS];

/// Copies at or above this size record their call site.
pub static THRESHOLD_BYTES: AtomicU64 = AtomicU64::new(DEFAULT_THRESHOLD_BYTES);

/// Large copies not recorded because the table was full around their slot.
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// One (call site, size) pair. `site` and `size` are each set once, by compare-and-swap from
/// zero; a slot belongs to a pair once both are set. A recorder whose site matches a slot with
/// no size yet may complete it with its own size, so two threads never need a lock.
pub struct Slot {
    pub site: AtomicU64,
    pub size: AtomicU64,
    pub count: AtomicU64,
    pub bytes: AtomicU64,
}

/// The large-copy table.
pub static SITES: [Slot; SITE_SLOTS] = [const {
    Slot {
        site: AtomicU64::new(0),
        size: AtomicU64::new(0),
        count: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    }
}; SITE_SLOTS];

/// The histogram bucket of a copy of `n` bytes.
#[inline(always)]
pub fn bucket(n: usize) -> usize {
    (usize::BITS - n.leading_zeros()) as usize
}

/// Counts a copy of `n` bytes in the histogram; true when it is large enough that its call
/// site must be recorded too (with [`record_site`]).
#[inline(always)]
pub fn count(n: usize) -> bool {
    HISTOGRAM[bucket(n)].fetch_add(1, Ordering::Relaxed);
    n as u64 >= THRESHOLD_BYTES.load(Ordering::Relaxed)
}

/// Records a large copy of `size` bytes made from `site` (a return address).
#[cold]
pub fn record_site(site: u64, size: u64) {
    let mask = SITE_SLOTS - 1;
    let hash = (site ^ size.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut i = (hash >> 40) as usize & mask;
    for _ in 0..PROBES_MAX {
        let slot = &SITES[i];
        if claim(&slot.site, site) && claim(&slot.size, size) {
            slot.count.fetch_add(1, Ordering::Relaxed);
            slot.bytes.fetch_add(size, Ordering::Relaxed);
            return;
        }
        i = (i + 1) & mask;
    }
    DROPPED.fetch_add(1, Ordering::Relaxed);
}

/// True when `cell` holds `value`, setting it if it was zero.
#[inline(always)]
fn claim(cell: &AtomicU64, value: u64) -> bool {
    let current = cell.load(Ordering::Acquire);
    if current == value {
        return true;
    }
    if current != 0 {
        return false;
    }
    match cell.compare_exchange(0, value, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => true,
        Err(actual) => actual == value,
    }
}

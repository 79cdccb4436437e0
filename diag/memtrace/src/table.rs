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

/// Large copies not recorded at all because the per-site table was full around their slot.
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Large copies counted in their site's total but without an exact-size entry, because the
/// (site, size) table was full around their slot (a site copying many different sizes).
pub static DROPPED_EXACT: AtomicU64 = AtomicU64::new(0);

/// Distinct call sites of large copies whose totals are kept; a power of two.
pub const SITE_TOTAL_SLOTS: usize = 1 << 13;

/// Totals of one call site, whatever the sizes: complete even when a site copies so many
/// different sizes that the exact (site, size) table cannot hold them.
pub struct SiteTotal {
    pub site: AtomicU64,
    pub count: AtomicU64,
    pub bytes: AtomicU64,
    pub size_min: AtomicU64,
    pub size_max: AtomicU64,
}

/// The per-site totals table.
pub static SITE_TOTALS: [SiteTotal; SITE_TOTAL_SLOTS] = [const {
    SiteTotal {
        site: AtomicU64::new(0),
        count: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        size_min: AtomicU64::new(u64::MAX),
        size_max: AtomicU64::new(0),
    }
}; SITE_TOTAL_SLOTS];

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

/// Records a large copy of `size` bytes made from `site` (a return address): in the site's
/// totals, and under its exact size.
#[cold]
pub fn record_site(site: u64, size: u64) {
    if !record_total(site, size) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mask = SITE_SLOTS - 1;
    let mut i = slot_of(site ^ size.rotate_left(32)) & mask;
    for _ in 0..PROBES_MAX {
        let slot = &SITES[i];
        if claim(&slot.site, site) && claim(&slot.size, size) {
            slot.count.fetch_add(1, Ordering::Relaxed);
            slot.bytes.fetch_add(size, Ordering::Relaxed);
            return;
        }
        i = (i + 1) & mask;
    }
    DROPPED_EXACT.fetch_add(1, Ordering::Relaxed);
}

fn record_total(site: u64, size: u64) -> bool {
    let mask = SITE_TOTAL_SLOTS - 1;
    let mut i = slot_of(site) & mask;
    for _ in 0..PROBES_MAX {
        let slot = &SITE_TOTALS[i];
        if claim(&slot.site, site) {
            slot.count.fetch_add(1, Ordering::Relaxed);
            slot.bytes.fetch_add(size, Ordering::Relaxed);
            slot.size_min.fetch_min(size, Ordering::Relaxed);
            slot.size_max.fetch_max(size, Ordering::Relaxed);
            return true;
        }
        i = (i + 1) & mask;
    }
    false
}

#[inline(always)]
fn slot_of(key: u64) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize
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

//! Writing the trace file with async-signal-safe calls only (raw `openat`, `write`, `close`,
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

use diag_preload::{FdWriter, Num, OutPath, env_bytes, write_executable};
use std::sync::atomic::Ordering;

use crate::table::{
    BUCKETS, DROPPED, DROPPED_EXACT, HISTOGRAM, SITE_TOTALS, SITES, THRESHOLD_BYTES,
};

/// The default output path; `%p` becomes the process id.
const DEFAULT_OUT: &[u8] = b"diag-moves.%p.txt";

/// The trace format version written on the first line.
const FORMAT_VERSION: u64 = 1;

static OUT: OutPath = OutPath::new();

/// Reads `DIAG_MOVES_OUT`. Called once, by the constructor.
pub fn init_paths() {
    // SAFETY: called from the constructor only.
    unsafe { OUT.init(env_bytes(c"DIAG_MOVES_OUT"), DEFAULT_OUT) };
}

/// Writes the trace to the output path. Async-signal-safe.
pub fn write_trace(reason: &[u8]) {
    OUT.write(|out, pid| write_body(out, reason, pid));
}

fn write_body(out: &mut FdWriter, reason: &[u8], pid: u64) {
    out.line(&[b"diag-moves "], Some(Num::Dec(FORMAT_VERSION)));
    out.line(&[b"reason ", reason], None);
    out.line(&[b"pid "], Some(Num::Dec(pid)));
    write_executable(out);
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

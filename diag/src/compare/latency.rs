//! The tail latency finding: the p99 grew past its threshold beyond the noise of the pairs, and
//! beyond what the throughput change alone explains.

use super::{Context, Evidence, Finding, FindingKind, WallVerdict, fmt_us};

/// A finding when the p99 latency grew past its threshold, beyond the noise of the pairs.
pub(crate) fn finding(cx: &Context<'_>) -> Option<Finding> {
    let (w, thresholds) = (cx.wall?, cx.thresholds);
    if !w.p99.grew_beyond(thresholds.p99_growth) {
        return None;
    }
    // With throughput down, every latency grows by the slowdown (a closed loop: latency is
    // connections over throughput); the tail is a finding of its own only when it grew past
    // the threshold beyond that.
    if w.verdict == WallVerdict::Slower && w.p99.ratio * w.ratio < 1.0 + thresholds.p99_growth {
        return None;
    }
    let (b, c) = (w.baseline_latency_us, w.candidate_latency_us);
    Some(Finding {
        kind: FindingKind::Latency,
        title: format!(
            "p99 latency grew {:+.0}% (from {} to {}) with throughput {:+.1}%",
            (w.p99.ratio - 1.0) * 100.0,
            fmt_us(b.1 * 1e3),
            fmt_us(c.1 * 1e3),
            w.change() * 100.0
        ),
        evidence: vec![
            Evidence::new("latency p50", fmt_us(b.0 * 1e3), fmt_us(c.0 * 1e3)),
            Evidence::new("latency p99", fmt_us(b.1 * 1e3), fmt_us(c.1 * 1e3)),
            Evidence::new(
                "p99 ratio over the pairs (median, standard error)",
                "",
                format!("{:.2} ± {:.1}%", w.p99.ratio, w.p99.standard_error * 100.0),
            ),
        ],
        sites: Vec::new(),
        functions: Vec::new(),
        cost_ns_per_op: None,
        share: None,
        fix: "find the kind that waits in the task kinds' scheduled and idle times below: some \
              requests wait where others do not (a lock or semaphore held across an `.await`, a \
              queue in front of a shared resource, a blocking call on a runtime thread)"
            .into(),
        regression: true,
        symptom: false,
        blocked_call: None,
        counts_per_op: None,
    })
}

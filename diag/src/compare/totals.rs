//! The whole-process totals as thresholds of their own: allocations, bytes allocated and bytes
//! in large copies per operation. The site findings say *where*; these say *that*, so a growth
//! past a documented threshold fails even when it is spread over sites no single one of which
//! crosses its own (many small new allocations, copies moved between functions).
//!
//! A total yields a finding only when no finding of its kind already crossed a threshold: the
//! total is then the evidence of that finding, not a second cause.

use super::claims::{Claims, Stage};
use super::{
    ALLOC_BYTES_CHANGE_PER_OP_MIN, ALLOC_CHANGE_PER_OP_MIN, COPY_CHANGE_BYTES_PER_OP_MIN, Context,
    Evidence, Finding, FindingKind, fmt_bytes, fmt_count,
};
use crate::snapshot::{AllocFigures, CpuCategory, MoveFigures};

/// One total of both sides, with the threshold that applies to it.
struct Total {
    what: &'static str,
    before: f64,
    after: f64,
    growth: f64,
    change_min: f64,
    kinds: &'static [FindingKind],
    category: CpuCategory,
    bytes: bool,
    fix: &'static str,
}

impl Total {
    fn crossed(&self) -> bool {
        let delta = self.after - self.before;
        delta >= self.change_min && (self.before == 0.0 || delta / self.before >= self.growth)
    }

    fn show(&self, v: f64) -> String {
        if self.bytes {
            fmt_bytes(v)
        } else {
            fmt_count(v)
        }
    }
}

/// The totals stage, after every site finding: the totals that crossed their threshold while no
/// finding of their kinds did.
pub(crate) fn findings(cx: &Context<'_>, claims: &Claims) -> Stage {
    let (b, c) = (cx.baseline.snapshot, cx.candidate.snapshot);
    let mut totals = Vec::new();
    if let (Some(ba), Some(ca)) = (&b.alloc, &c.alloc) {
        totals.extend(alloc_totals(cx, ba, ca));
    }
    if let (Some(bm), Some(cm)) = (&b.moves, &c.moves) {
        totals.push(copy_total(cx, bm, cm));
    }
    totals
        .into_iter()
        .filter(|t| t.crossed())
        .filter(|t| !claims.crossed.iter().any(|k| t.kinds.contains(k)))
        .map(|t| total_finding(cx, &t))
        .collect::<Vec<_>>()
        .into()
}

/// Allocations and bytes allocated per operation.
fn alloc_totals(cx: &Context<'_>, ba: &AllocFigures, ca: &AllocFigures) -> [Total; 2] {
    let count = Total {
        what: "allocations per operation",
        before: ba.allocations_per_op(),
        after: ca.allocations_per_op(),
        growth: cx.thresholds.alloc_growth,
        change_min: ALLOC_CHANGE_PER_OP_MIN,
        kinds: &[
            FindingKind::Allocations,
            FindingKind::BoxedFuture,
            FindingKind::TaskPerCall,
        ],
        category: CpuCategory::Alloc,
        bytes: false,
        fix: "the heap profile's sites say where; without one, run `cargo xtask compare` \
              with the heap pass",
    };
    // As many blocks, larger ones: when a type grew, it is that type living on the heap (a
    // spawned task's future, a boxed value), and the type's finding explains the bytes.
    let larger_blocks: &'static [FindingKind] = if count.crossed() {
        &[
            FindingKind::Allocations,
            FindingKind::BoxedFuture,
            FindingKind::TaskPerCall,
        ]
    } else {
        &[
            FindingKind::Allocations,
            FindingKind::BoxedFuture,
            FindingKind::TaskPerCall,
            FindingKind::TypeGrew,
        ]
    };
    let bytes = Total {
        what: "bytes allocated per operation",
        before: ba.bytes_per_op(),
        after: ca.bytes_per_op(),
        growth: cx.thresholds.alloc_bytes_growth,
        change_min: ALLOC_BYTES_CHANGE_PER_OP_MIN,
        kinds: larger_blocks,
        category: CpuCategory::Alloc,
        bytes: true,
        fix: "read the heap profile's sites (bytes per allocation) for which: larger buffers \
              or values on the heap",
    };
    [count, bytes]
}

/// Bytes in large copies per operation.
fn copy_total(cx: &Context<'_>, bm: &MoveFigures, cm: &MoveFigures) -> Total {
    Total {
        what: "bytes in large copies per operation",
        before: bm.large_bytes_per_op(),
        after: cm.large_bytes_per_op(),
        growth: cx.thresholds.copy_growth,
        change_min: COPY_CHANGE_BYTES_PER_OP_MIN,
        // A spawn per call explains the copies of its futures into their tasks.
        kinds: &[
            FindingKind::Copies,
            FindingKind::TypeGrew,
            FindingKind::TaskPerCall,
        ],
        category: CpuCategory::Copy,
        bytes: true,
        fix: "read the copy tracer's sites (`moves/moves.txt` of each side) for where: values \
              moved by value or buffers copied",
    }
}

/// The finding of a total that crossed: it costs the extra CPU of its category.
fn total_finding(cx: &Context<'_>, t: &Total) -> Finding {
    Finding {
        kind: t.kinds[0],
        title: format!(
            "{} grew from {} to {}",
            t.what,
            t.show(t.before),
            t.show(t.after)
        ),
        evidence: vec![Evidence::new(t.what, t.show(t.before), t.show(t.after))],
        sites: Vec::new(),
        functions: Vec::new(),
        cost_ns_per_op: cx.cpu.map(|cpu| cpu.delta(t.category).max(0.0)),
        share: None,
        fix: t.fix.into(),
        regression: true,
        symptom: false,
        blocked_call: None,
        counts_per_op: None,
    }
}

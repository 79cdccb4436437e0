//! The overview: the per-operation figures of every probe on both sides, as the reports' first
//! table.

use super::{Context, Figure, WallComparison};

/// The per-operation figures of the overview table.
pub(crate) fn figures(context: &Context<'_>, wall: Option<&WallComparison>) -> Vec<Figure> {
    let (b, c) = (context.baseline.snapshot, context.candidate.snapshot);
    let mut out = Vec::new();
    let mut push = |what: &str, baseline: f64, candidate: f64, unit: &str| {
        out.push(Figure {
            what: what.into(),
            baseline,
            candidate,
            unit: unit.into(),
        })
    };
    if let Some(w) = wall {
        push("throughput", w.baseline.median, w.candidate.median, "ops/s");
        push(
            "latency p50",
            w.baseline_latency_us.0,
            w.candidate_latency_us.0,
            "µs",
        );
        push(
            "latency p99",
            w.baseline_latency_us.1,
            w.candidate_latency_us.1,
            "µs",
        );
    }
    if let Some(cpu) = context.cpu {
        push(
            "CPU per operation",
            cpu.total.0 / 1e3,
            cpu.total.1 / 1e3,
            "µs",
        );
        for (category, bv, cv) in &cpu.categories {
            push(
                &format!("  in {}", category.name()),
                bv / 1e3,
                cv / 1e3,
                "µs",
            );
        }
    }
    if let (Some(ba), Some(ca)) = (&b.alloc, &c.alloc) {
        push(
            "allocations per operation",
            ba.allocations_per_op(),
            ca.allocations_per_op(),
            "",
        );
        push(
            "bytes allocated per operation",
            ba.bytes_per_op(),
            ca.bytes_per_op(),
            "B",
        );
        push(
            "peak live heap",
            ba.peak_live_bytes as f64,
            ca.peak_live_bytes as f64,
            "B",
        );
    }
    if let (Some(bs), Some(cs)) = (&b.syscalls, &c.syscalls) {
        let io = |s: &crate::snapshot::SyscallFigures| {
            crate::snapshot::IO_SYSCALLS
                .iter()
                .map(|n| s.per_op(n))
                .sum::<f64>()
        };
        push("I/O system calls per operation", io(bs), io(cs), "");
    }
    if let (Some(bm), Some(cm)) = (&b.moves, &c.moves) {
        push(
            "memcpy/memmove calls per operation",
            crate::snapshot::per_op(bm.copies, bm.ops),
            crate::snapshot::per_op(cm.copies, cm.ops),
            "",
        );
        push(
            "bytes in large copies per operation",
            bm.large_bytes_per_op(),
            cm.large_bytes_per_op(),
            "B",
        );
    }
    out
}

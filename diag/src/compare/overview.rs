//! The overview: the per-operation figures of every probe on both sides, as the reports' first
//! table.

use super::{Context, CpuComparison, Figure, ProbeCost, WallComparison};
use crate::snapshot::{AllocFigures, IO_SYSCALLS, MoveFigures, Snapshot, SyscallFigures, per_op};

/// The per-operation figures of the overview table, probe by probe (those both sides have).
pub(crate) fn figures(context: &Context<'_>, wall: Option<&WallComparison>) -> Vec<Figure> {
    let (b, c) = (context.baseline.snapshot, context.candidate.snapshot);
    let mut out = Vec::new();
    if let Some(w) = wall {
        out.extend(wall_figures(w));
    }
    if let Some(cpu) = context.cpu {
        out.extend(cpu_figures(cpu));
    }
    if let (Some(ba), Some(ca)) = (&b.alloc, &c.alloc) {
        out.extend(alloc_figures(ba, ca));
    }
    if let (Some(bs), Some(cs)) = (&b.syscalls, &c.syscalls) {
        let io = |s: &SyscallFigures| IO_SYSCALLS.iter().map(|n| s.per_op(n)).sum::<f64>();
        out.push(figure("I/O system calls per operation", io(bs), io(cs), ""));
    }
    if let (Some(bm), Some(cm)) = (&b.moves, &c.moves) {
        out.extend(move_figures(bm, cm));
    }
    out
}

fn figure(what: &str, baseline: f64, candidate: f64, unit: &str) -> Figure {
    Figure {
        what: what.into(),
        baseline,
        candidate,
        unit: unit.into(),
    }
}

/// Throughput and latency (median of the runs). The candidate's throughput is the baseline's
/// times the median of the pairs' ratios, the change the verdict reads: the two sides' own
/// medians can come from different pairs, and once read −3.0% beside a verdict of +1.9%.
fn wall_figures(w: &WallComparison) -> [Figure; 3] {
    let (b, c) = (w.baseline_latency_us, w.candidate_latency_us);
    [
        figure(
            "throughput",
            w.baseline.median,
            w.baseline.median * w.ratio,
            "ops/s",
        ),
        figure("latency p50", b.0, c.0, "µs"),
        figure("latency p99", b.1, c.1, "µs"),
    ]
}

/// CPU per operation, in all and by category, microseconds.
fn cpu_figures(cpu: &CpuComparison) -> Vec<Figure> {
    let mut out = vec![figure(
        "CPU per operation",
        cpu.total.0 / 1e3,
        cpu.total.1 / 1e3,
        "µs",
    )];
    for (category, bv, cv) in &cpu.categories {
        let what = format!("  in {}", category.name());
        out.push(figure(&what, bv / 1e3, cv / 1e3, "µs"));
    }
    out
}

/// Allocations and bytes allocated per operation, and the peak live heap.
fn alloc_figures(ba: &AllocFigures, ca: &AllocFigures) -> [Figure; 3] {
    [
        figure(
            "allocations per operation",
            ba.allocations_per_op(),
            ca.allocations_per_op(),
            "",
        ),
        figure(
            "bytes allocated per operation",
            ba.bytes_per_op(),
            ca.bytes_per_op(),
            "B",
        ),
        figure(
            "peak live heap",
            ba.peak_live_bytes as f64,
            ca.peak_live_bytes as f64,
            "B",
        ),
    ]
}

/// Copies of every size and bytes in large copies per operation.
fn move_figures(bm: &MoveFigures, cm: &MoveFigures) -> [Figure; 2] {
    [
        figure(
            "memcpy/memmove calls per operation",
            per_op(bm.copies, bm.ops),
            per_op(cm.copies, cm.ops),
            "",
        ),
        figure(
            "bytes in large copies per operation",
            bm.large_bytes_per_op(),
            cm.large_bytes_per_op(),
            "B",
        ),
    ]
}

/// The probes' own costs, where a side measured them (the blocking sampler does).
pub(crate) fn probe_costs(b: &Snapshot, c: &Snapshot) -> Vec<ProbeCost> {
    let blocking = |s: &Snapshot| Some(s.blocking.as_ref()?.cost?.share());
    let share = (blocking(b), blocking(c));
    if share == (None, None) {
        return Vec::new();
    }
    vec![ProbeCost {
        probe: "blocking pass: the sampler thread and its stack signals".into(),
        share,
    }]
}

/// A probe that took more than this share of the process's CPU disturbed what it measured
/// enough to say so: the passes' goal is at most 3% each.
pub(crate) const PROBE_COST_NOTE_MIN: f64 = 0.03;

/// Notes for the probes that cost more than [`PROBE_COST_NOTE_MIN`] on a side.
pub(crate) fn costly_probes(costs: &[ProbeCost]) -> Vec<String> {
    let mut notes = Vec::new();
    for cost in costs {
        for (side, share) in [("baseline", cost.share.0), ("candidate", cost.share.1)] {
            if let Some(share) = share.filter(|s| *s > PROBE_COST_NOTE_MIN) {
                notes.push(format!(
                    "the {side}'s {} took {:.1}% of its CPU: that pass's figures are disturbed \
                     by more than its {:.0}% goal",
                    cost.probe,
                    share * 100.0,
                    PROBE_COST_NOTE_MIN * 100.0
                ));
            }
        }
    }
    notes
}

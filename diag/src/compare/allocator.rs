//! A change of the global allocator: the two sides spent their allocation time in different
//! allocators (glibc's malloc, jemalloc, mimalloc...).
//!
//! Evidence needed: the CPU profiles of both sides, each with at least
//! [`ALLOCATOR_SAMPLES_MIN`] samples inside allocator routines, of which one allocator holds at
//! least [`ALLOCATOR_MAJORITY`]; the allocator holding them differs between the sides. A size
//! or count of allocations that changed is not evidence (that is the heap stage's), nor is time
//! in the same allocator that grew (that is a hot spot). Its cost is the change of the CPU time
//! inside the allocator per operation.

use super::claims::{Claims, Stage};
use super::{Context, Evidence, Finding, FindingKind, fmt_us};
use crate::snapshot::{CpuCategory, CpuFigures};

/// Allocator samples a side needs before its allocator is named.
pub const ALLOCATOR_SAMPLES_MIN: u64 = 20;

/// Share of a side's allocator samples one allocator must hold to be that side's.
pub const ALLOCATOR_MAJORITY: f64 = 0.6;

/// The allocator stage: the finding when the sides ran different global allocators, which
/// claims the time inside the allocator.
pub(crate) fn findings(cx: &Context<'_>) -> Stage {
    let Some(finding) = finding(cx) else {
        return Stage::default();
    };
    Stage {
        findings: vec![finding],
        claims: Claims {
            allocator: true,
            ..Claims::default()
        },
    }
}

fn finding(cx: &Context<'_>) -> Option<Finding> {
    let (b, c) = (
        cx.baseline.snapshot.cpu.as_ref()?,
        cx.candidate.snapshot.cpu.as_ref()?,
    );
    let (before, after) = (main_allocator(b)?, main_allocator(c)?);
    if before == after {
        return None;
    }
    let (cost_b, cost_c) = (
        b.ns_per_op(Some(CpuCategory::Alloc)),
        c.ns_per_op(Some(CpuCategory::Alloc)),
    );
    let change = cost_c - cost_b;
    let direction = if change >= 0.0 { "more" } else { "less" };
    Some(Finding {
        kind: FindingKind::AllocatorChanged,
        title: format!(
            "the global allocator changed from {before} to {after}: {} {direction} CPU per \
             operation in it",
            fmt_us(change.abs())
        ),
        evidence: vec![
            Evidence::new("allocator", before, after),
            Evidence::new(
                "CPU per operation inside the allocator",
                fmt_us(cost_b),
                fmt_us(cost_c),
            ),
        ],
        sites: vec![format!("the global allocator ({before} → {after})")],
        functions: Vec::new(),
        cost_ns_per_op: cx.cpu.map(|cpu| cpu.delta(CpuCategory::Alloc).max(0.0)),
        share: None,
        fix: format!(
            "the candidate allocates through {after} (a `#[global_allocator]`, or a dependency's \
             feature that sets one): for this workload keep {before}, or tune {after} (its \
             arenas, caches and how soon it returns memory to the system) and compare again"
        ),
        // It explains a change; the wall time and CPU say whether it is a regression.
        regression: false,
        symptom: false,
        blocked_call: None,
        counts_per_op: None,
    })
}

/// The allocator that holds most of a side's allocator samples, when it holds enough of them.
fn main_allocator(cpu: &CpuFigures) -> Option<&str> {
    let total: u64 = cpu.allocators.values().sum();
    let (name, &most) = cpu.allocators.iter().max_by_key(|(_, n)| **n)?;
    let enough = total >= ALLOCATOR_SAMPLES_MIN && most as f64 >= ALLOCATOR_MAJORITY * total as f64;
    (enough && name != "other").then_some(name.as_str())
}

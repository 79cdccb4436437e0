//! Instructions findings: the fixed pieces of work (callgrind's cases) that execute more
//! instructions than before: the same for the same binary and input whatever the machine does.

use super::{Context, Evidence, Finding, FindingKind};

/// Instruction counts that grew past the threshold.
pub(crate) fn findings(cx: &Context<'_>) -> Vec<Finding> {
    let (Some(b), Some(c)) = (
        &cx.baseline.snapshot.instructions,
        &cx.candidate.snapshot.instructions,
    ) else {
        return Vec::new();
    };
    c.cases
        .iter()
        .filter_map(|(case, &after)| {
            let before = *b.cases.get(case)?;
            let growth = after as f64 / before.max(1) as f64 - 1.0;
            (growth > cx.thresholds.instructions_growth).then(|| Finding {
                kind: FindingKind::Instructions,
                title: format!("`{case}` executes {:.1}% more instructions", growth * 100.0),
                evidence: vec![Evidence::new(
                    "instructions (callgrind)",
                    crate::sizes::render_bytes(before),
                    crate::sizes::render_bytes(after),
                )],
                sites: Vec::new(),
                functions: Vec::new(),
                cost_ns_per_op: None,
                share: None,
                fix: format!(
                    "run `valgrind --tool=callgrind` on the `{case}` work of both builds and compare \
                     the functions with `callgrind_annotate`"
                ),
                regression: true,
                symptom: false,
                blocked_call: None,
                counts_per_op: None,
            })
        })
        .collect()
}

//! Copies findings: the functions whose large copies per operation grew, for the copies no
//! grown type or boxed future explains (those stages claim theirs first).

use std::collections::HashMap;

use super::claims::{Claims, Stage};
use super::names::short_name;
use super::types::site_key;
use super::{
    COPY_CHANGE_BYTES_PER_OP_MIN, Context, Evidence, Finding, FindingKind, fmt_bytes, fmt_count,
    site_size,
};
use crate::snapshot::{CpuCategory, per_op};

/// Copy findings of functions no other finding explains, at most.
const COPY_FINDINGS_MAX: usize = 3;

/// The copies stage, after types and heap: copies that grew at sites no earlier finding
/// claimed, by function (leaving out the functions whose every copy a type explains).
pub(crate) fn findings(cx: &Context<'_>, claims: &Claims) -> Stage {
    let (claimed, claimed_functions) = (&claims.sites, &claims.copy_functions);
    let (Some(bm), Some(cm)) = (&cx.baseline.snapshot.moves, &cx.candidate.snapshot.moves) else {
        return Stage::default();
    };
    // Per function: the baseline's bytes and the candidate's bytes not explained elsewhere,
    // from the complete totals by function where the snapshots have them.
    let mut by_function: HashMap<&str, (f64, f64, Vec<String>)> = HashMap::new();
    if cm.functions.is_empty() {
        for s in cm.sites.iter().filter(|s| !claimed.contains(&site_key(s))) {
            by_function.entry(&s.function).or_default().1 += per_op(s.bytes, cm.ops);
        }
    } else {
        for f in cm
            .functions
            .iter()
            .filter(|f| !claimed_functions.contains(&f.function))
        {
            by_function.entry(&f.function).or_default().1 += per_op(f.bytes, cm.ops);
        }
        for s in cm.sites.iter().filter(|s| claimed.contains(&site_key(s))) {
            if let Some(e) = by_function.get_mut(s.function.as_str()) {
                e.1 -= per_op(s.bytes, cm.ops);
            }
        }
    }
    for s in cm.sites.iter().filter(|s| !claimed.contains(&site_key(s))) {
        if let Some(e) = by_function.get_mut(s.function.as_str()) {
            e.2.push(format!(
                "{} ({} × {}/op)",
                s.location,
                site_size(s),
                fmt_count(per_op(s.count, cm.ops))
            ));
        }
    }
    if bm.functions.is_empty() {
        for s in &bm.sites {
            if let Some(e) = by_function.get_mut(s.function.as_str()) {
                e.0 += per_op(s.bytes, bm.ops);
            }
        }
    } else {
        for f in &bm.functions {
            if let Some(e) = by_function.get_mut(f.function.as_str()) {
                e.0 += per_op(f.bytes, bm.ops);
            }
        }
    }
    let large_delta = (cm.large_bytes_per_op() - bm.large_bytes_per_op()).max(0.0);
    let claimed_per_op: f64 = cm
        .sites
        .iter()
        .filter(|s| claimed.contains(&site_key(s)) && !claimed_functions.contains(&s.function))
        .map(|s| per_op(s.bytes, cm.ops))
        .chain(
            cm.functions
                .iter()
                .filter(|f| claimed_functions.contains(&f.function))
                .map(|f| per_op(f.bytes, cm.ops)),
        )
        .sum();
    // Two builds that inline differently charge the same copies to different functions: a
    // function's growth counts only up to the growth of all the copies no finding explains.
    let unexplained = (large_delta - claimed_per_op).max(0.0);
    let mut grown: Vec<(&str, f64, f64, Vec<String>)> = by_function
        .into_iter()
        .map(|(f, (b, c, sites))| (f, b, c, sites))
        .filter(|(_, b, c, _)| {
            let growth = (c - b).min(unexplained);
            growth >= COPY_CHANGE_BYTES_PER_OP_MIN
                && (*b == 0.0 || growth / b >= cx.thresholds.copy_growth)
        })
        .collect();
    grown.sort_by(|a, b| (b.2 - b.1).total_cmp(&(a.2 - a.1)));
    grown
        .into_iter()
        .take(COPY_FINDINGS_MAX)
        .map(|(function, before, after, sites)| {
            let name = short_name(function);
            Finding {
                kind: FindingKind::Copies,
                functions: vec![function.to_string()],
                title: format!(
                    "`{name}` copies {} per operation (was {})",
                    fmt_bytes(after),
                    fmt_bytes(before)
                ),
                evidence: vec![Evidence::new(
                    "bytes copied per operation",
                    fmt_bytes(before),
                    fmt_bytes(after),
                )],
                sites: sites
                    .into_iter()
                    .take(3)
                    .map(|s| format!("`{name}` {s}"))
                    .collect(),
                cost_ns_per_op: cx.cpu.and_then(|cpu| {
                    (large_delta > 0.0).then(|| {
                        cpu.delta(CpuCategory::Copy).max(0.0)
                            * ((after - before) / large_delta).min(1.0)
                    })
                }),
                share: None,
                fix: copy_fix(function).into(),
                regression: true,
                symptom: false,
                blocked_call: None,
            }
        })
        .collect::<Vec<_>>()
        .into()
}

/// Functions that copy bytes of data from one buffer to another (I/O buffers, a slice copied
/// into a new `Vec` or `Bytes`): their copies are data passing through, not values moved.
const DATA_COPY_FUNCTIONS: [&str; 9] = [
    "ReadBuf::",
    "BufWriter",
    "BufReader",
    "BytesMut",
    "Bytes::copy_from_slice",
    "as bytes::buf::",
    "AsyncWrite",
    "AsyncRead",
    "extend_from_slice",
];

/// Whether `function` copies data between buffers.
fn is_data_copy(function: &str) -> bool {
    DATA_COPY_FUNCTIONS.iter().any(|f| function.contains(f))
}

/// The fix to try for copies that grew in `function`.
fn copy_fix(function: &str) -> &'static str {
    if is_data_copy(function) {
        "bytes of data are copied from one buffer to another here (an I/O buffer, or a slice \
         copied into a new `Vec` or `Bytes`): more of them per operation means larger or more \
         messages, or the same data copied twice; keep one buffer and share it (`Bytes`, `Arc`), \
         write large payloads straight from their own buffer, and check that both sides ran the \
         same workload"
    } else {
        "a large value is moved here (returned, pushed or passed by value): pass a reference, \
         box the large part, or build the value in place"
    }
}

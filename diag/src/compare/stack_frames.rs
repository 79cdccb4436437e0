//! Stack frames findings: functions whose stack frames grew, from the unwind info of the sizes
//! reports.

use std::collections::{BTreeSet, HashMap};

use super::names::short_name;
use super::{Context, Evidence, Finding, FindingKind, fmt_bytes, size_or_absent};
use crate::sizes::SizesReport;

/// Functions whose stack frame grew by at least this much: a frame that size is a value kept on
/// the stack (a large `Result` or future being polled), and the thread's stack pays for it.
const STACK_FRAME_GROWTH_BYTES_MIN: u64 = 16 * 1024;

/// Stack frames named in the finding, at most.
const STACK_FRAMES_SHOWN_MAX: usize = 4;

/// Functions whose stack frames grew (from the unwind info of the sizes reports): one finding,
/// the largest frame first.
pub(crate) fn findings(cx: &Context<'_>) -> Vec<Finding> {
    let (Some(b), Some(c)) = (cx.baseline.sizes, cx.candidate.sizes) else {
        return Vec::new();
    };
    let grown = grown_frames(b, c);
    let Some(&(_, _, largest)) = grown.first() else {
        return Vec::new();
    };
    vec![Finding {
        kind: FindingKind::StackFrames,
        title: title(&grown),
        evidence: evidence(&grown),
        sites: Vec::new(),
        functions: grown.iter().map(|(f, _, _)| f.to_string()).collect(),
        cost_ns_per_op: None,
        share: None,
        fix: "a large value lives in these frames while they poll (a `Result` or future kept on \
              the stack): shrink or box it; until then the threads need a larger stack \
              (`thread_stack_size`, `RUST_MIN_STACK`), or they overflow"
            .into(),
        regression: largest >= cx.thresholds.stack_frame_fail_bytes,
        symptom: false,
        blocked_call: None,
        counts_per_op: None,
    }]
}

/// The candidate's frames that grew by at least [`STACK_FRAME_GROWTH_BYTES_MIN`] (function,
/// baseline's size or 0, candidate's size), largest first.
fn grown_frames<'a>(b: &SizesReport, c: &'a SizesReport) -> Vec<(&'a str, u64, u64)> {
    let before: HashMap<&str, u64> = b
        .stack_frames
        .functions
        .iter()
        .map(|f| (f.function.as_str(), f.frame_bytes))
        .collect();
    // A function the candidate does not have may have been renamed: a new frame of exactly a
    // vanished frame's size is that one (each stands in once).
    let in_candidate: std::collections::HashSet<&str> = c
        .stack_frames
        .functions
        .iter()
        .map(|f| f.function.as_str())
        .collect();
    let mut vanished: Vec<u64> = b
        .stack_frames
        .functions
        .iter()
        .filter(|f| !in_candidate.contains(f.function.as_str()))
        .map(|f| f.frame_bytes)
        .collect();
    let mut grown: Vec<(&str, u64, u64)> = c
        .stack_frames
        .functions
        .iter()
        .map(|f| {
            let old = before.get(f.function.as_str()).copied().unwrap_or_else(|| {
                match vanished.iter().position(|size| *size == f.frame_bytes) {
                    Some(i) => vanished.swap_remove(i),
                    None => 0,
                }
            });
            (f.function.as_str(), old, f.frame_bytes)
        })
        .filter(|(_, old, new)| new.saturating_sub(*old) >= STACK_FRAME_GROWTH_BYTES_MIN)
        .collect();
    grown.sort_by_key(|(_, _, new)| std::cmp::Reverse(*new));
    grown
}

/// `N stack frames grew; the largest, `f`'s, from A to B`.
fn title(grown: &[(&str, u64, u64)]) -> String {
    let (largest, old, new) = grown[0];
    format!(
        "{} stack frame{} grew; the largest, `{}`'s, {}",
        grown.len(),
        if grown.len() == 1 { "" } else { "s" },
        short_name(largest),
        if old == 0 {
            format!(
                "{} in a function the baseline does not have",
                fmt_bytes(new as f64)
            )
        } else {
            format!(
                "from {} to {}",
                fmt_bytes(old as f64),
                fmt_bytes(new as f64)
            )
        }
    )
}

/// The largest frames' sizes on both sides.
fn evidence(grown: &[(&str, u64, u64)]) -> Vec<Evidence> {
    // Instances of one generic function share a short name: show each name once.
    let mut shown = BTreeSet::new();
    grown
        .iter()
        .filter(|(f, _, _)| shown.insert(short_name(f)))
        .take(STACK_FRAMES_SHOWN_MAX)
        .map(|(f, old, new)| {
            Evidence::new(
                format!("stack frame of `{}`", short_name(f)),
                size_or_absent(*old),
                fmt_bytes(*new as f64),
            )
        })
        .collect()
}

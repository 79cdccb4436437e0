//! The remaining findings: copies that no grown type explains, instruction counts, functions
//! whose CPU per operation grew beyond the sampling noise; and the task kinds' poll times.

use std::collections::{BTreeSet, HashMap};

use super::names::short_name;
use super::types::site_key;
use super::{
    COPY_CHANGE_BYTES_PER_OP_MIN, Context, Evidence, Finding, FindingKind, TaskChange, fmt_bytes,
    fmt_count, fmt_us, function_identity, site_size, size_or_absent,
};
use crate::snapshot::{CpuCategory, CpuFigures, per_op};

/// Copy findings of functions no other finding explains, at most.
const COPY_FINDINGS_MAX: usize = 3;

/// CPU hot spots reported, at most.
const HOT_SPOTS_MAX: usize = 3;

/// A function's CPU change is reported only beyond this many standard deviations of the
/// sampling noise (samples are Poisson: the variance of a count is the count).
const HOT_SPOT_SIGMAS: f64 = 4.0;

/// ... and only when it is at least this share of the baseline's CPU per operation: smaller
/// changes do not explain a throughput change worth a finding.
const HOT_SPOT_SHARE_MIN: f64 = 0.02;

/// Poll time per operation below this change is never notable: 1 µs.
const POLL_CHANGE_NS_PER_OP_MIN: f64 = 1_000.0;

/// Copies that grew at sites no other finding claimed, by function (`claimed_functions`: those
/// whose every copy another finding explains).
pub(crate) fn copy_findings(
    cx: &Context<'_>,
    claimed: &[String],
    claimed_functions: &[String],
) -> Vec<Finding> {
    let (Some(bm), Some(cm)) = (&cx.baseline.snapshot.moves, &cx.candidate.snapshot.moves) else {
        return Vec::new();
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
            }
        })
        .collect()
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

/// Instruction counts that grew past the threshold.
pub(crate) fn instruction_findings(cx: &Context<'_>) -> Vec<Finding> {
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
            })
        })
        .collect()
}

/// Functions whose stack frame grew by at least this much: a frame that size is a value kept on
/// the stack (a large `Result` or future being polled), and the thread's stack pays for it.
const STACK_FRAME_GROWTH_BYTES_MIN: u64 = 16 * 1024;

/// Stack frames named in the finding, at most.
const STACK_FRAMES_SHOWN_MAX: usize = 4;

/// Functions whose stack frames grew (from the unwind info of the sizes reports).
pub(crate) fn stack_frame_findings(cx: &Context<'_>) -> Vec<Finding> {
    let (Some(b), Some(c)) = (cx.baseline.sizes, cx.candidate.sizes) else {
        return Vec::new();
    };
    let before: HashMap<&str, u64> = b
        .stack_frames
        .functions
        .iter()
        .map(|f| (f.function.as_str(), f.frame_bytes))
        .collect();
    let mut grown: Vec<(&str, u64, u64)> = c
        .stack_frames
        .functions
        .iter()
        .map(|f| {
            let old = before.get(f.function.as_str()).copied().unwrap_or(0);
            (f.function.as_str(), old, f.frame_bytes)
        })
        .filter(|(_, old, new)| new.saturating_sub(*old) >= STACK_FRAME_GROWTH_BYTES_MIN)
        .collect();
    if grown.is_empty() {
        return Vec::new();
    }
    grown.sort_by_key(|(_, _, new)| std::cmp::Reverse(*new));
    let (largest, old, new) = grown[0];
    Some(Finding {
        kind: FindingKind::StackFrames,
        title: format!(
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
        ),
        evidence: {
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
        },
        sites: Vec::new(),
        functions: grown.iter().map(|(f, _, _)| f.to_string()).collect(),
        cost_ns_per_op: None,
        share: None,
        fix: "a large value lives in these frames while they poll (a `Result` or future kept on \
              the stack): shrink or box it; until then the threads need a larger stack \
              (`thread_stack_size`, `RUST_MIN_STACK`), or they overflow"
            .into(),
        regression: new >= cx.thresholds.stack_frame_fail_bytes,
        symptom: false,
    })
    .into_iter()
    .collect()
}

/// Functions whose CPU per operation grew beyond the sampling noise, except those already
/// named by another finding (`named` holds their functions).
pub(crate) fn cpu_findings(cx: &Context<'_>, named: &[String]) -> Vec<Finding> {
    let (Some(b), Some(c)) = (&cx.baseline.snapshot.cpu, &cx.candidate.snapshot.cpu) else {
        return Vec::new();
    };
    if b.ops == 0 || c.ops == 0 {
        return Vec::new();
    }
    let functions: BTreeSet<&str> = c.functions.iter().map(|f| f.function.as_str()).collect();
    let base_total = b.ns_per_op(None);
    let mut grown: Vec<(&str, f64, f64)> = functions
        .into_iter()
        .filter_map(|f| {
            let (nb, nc) = (b.function_samples(f) as f64, c.function_samples(f) as f64);
            let (rb, rc) = (b.samples_to_ns_per_op(nb), c.samples_to_ns_per_op(nc));
            // Standard deviation of each rate from the Poisson noise of its count.
            let sd = (b.samples_to_ns_per_op(nb.sqrt()).powi(2)
                + c.samples_to_ns_per_op(nc.sqrt()).powi(2))
            .sqrt();
            let significant =
                rc - rb > HOT_SPOT_SIGMAS * sd && rc - rb > HOT_SPOT_SHARE_MIN * base_total;
            (significant && share_grew(nb, nc, b.samples as f64, c.samples as f64))
                .then_some((f, rb, rc))
        })
        .filter(|(f, _, _)| {
            let id = function_identity(f);
            !named.iter().any(|n| function_identity(n) == id)
        })
        .collect();
    grown.sort_by(|a, b| (b.2 - b.1).total_cmp(&(a.2 - a.1)));
    grown
        .into_iter()
        .take(HOT_SPOTS_MAX)
        .map(|(function, before, after)| {
            let location = location_of(c, function);
            Finding {
                kind: FindingKind::HotSpot,
                title: format!(
                    "`{}` uses {} more CPU per operation",
                    short_name(function),
                    fmt_us(after - before)
                ),
                evidence: vec![Evidence::new(
                    "CPU per operation",
                    fmt_us(before),
                    fmt_us(after),
                )],
                sites: vec![format!("`{}` ({})", short_name(function), location)],
                functions: vec![function.to_string()],
                cost_ns_per_op: Some(after - before),
                share: None,
                fix: if crate::snapshot::is_allocator_routine(function) {
                    "this is the global allocator itself: the candidate's allocator spends more \
                     per operation here than the baseline's (zeroing or searching memory it \
                     reuses, where another hands out fresh pages); keep the faster allocator, or \
                     allocate less (reuse buffers)"
                        .into()
                } else {
                    "open the differential flamegraph at this function: the red frames above it \
                     are what grew"
                        .into()
                },
                // A hot spot explains a slowdown; on its own it is not a threshold.
                regression: false,
                symptom: false,
            }
        })
        .collect()
}

/// Whether a function's share of its side's samples grew beyond the noise: the machine can
/// run everything slower during one side's CPU pass (another program, a lower clock), which
/// raises every function's CPU per operation alike. Under no change, each of the function's
/// `nb + nc` samples falls on the candidate's side with the probability of the candidate's
/// share of all samples; more than [`HOT_SPOT_SIGMAS`] binomial deviations above that is a
/// change of share.
fn share_grew(nb: f64, nc: f64, total_b: f64, total_c: f64) -> bool {
    if total_b <= 0.0 || total_c <= 0.0 {
        return false;
    }
    let n = nb + nc;
    let p = total_c / (total_b + total_c);
    let sd = (n * p * (1.0 - p)).sqrt().max(1.0);
    (nc - n * p) / sd > HOT_SPOT_SIGMAS
}

fn location_of(cpu: &CpuFigures, function: &str) -> String {
    cpu.functions
        .iter()
        .find(|f| f.function == function && f.location.is_some())
        .and_then(|f| f.location.clone())
        .unwrap_or_else(|| "?".into())
}

/// A kind's blocked time per operation on both sides, when both have a blocking profile.
fn blocked_pair(cx: &Context<'_>, kind: &str) -> Option<(f64, f64)> {
    let b = cx.baseline.snapshot.blocking.as_ref()?;
    let c = cx.candidate.snapshot.blocking.as_ref()?;
    Some((b.kind_ns_per_op(kind), c.kind_ns_per_op(kind)))
}

/// Every task kind of either side, with how its polls changed.
pub(crate) fn task_changes(cx: &Context<'_>) -> Vec<TaskChange> {
    let (Some(b), Some(c)) = (&cx.baseline.snapshot.tasks, &cx.candidate.snapshot.tasks) else {
        return Vec::new();
    };
    let kinds: BTreeSet<&String> = b.kinds.keys().chain(c.kinds.keys()).collect();
    kinds
        .into_iter()
        .map(|kind| {
            let pair = |name: &str| (b.per_op(kind, name), c.per_op(kind, name));
            let poll = pair("total_poll_duration_ns");
            let notable = poll.1 - poll.0 >= POLL_CHANGE_NS_PER_OP_MIN
                && (poll.0 == 0.0 || (poll.1 - poll.0) / poll.0 >= cx.thresholds.poll_growth);
            TaskChange {
                kind: kind.clone(),
                polls_per_op: pair("total_poll_count"),
                poll_ns_per_op: poll,
                scheduled_ns_per_op: pair("total_scheduled_duration_ns"),
                slow_polls_per_op: pair("total_slow_poll_count"),
                idle_ns_per_op: pair("total_idle_duration_ns"),
                blocked_ns_per_op: blocked_pair(cx, kind),
                notable,
            }
        })
        .collect()
}

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
use crate::snapshot::{
    CpuCategory, LibraryCaller, MoveFigures, MoveSite, file_of, is_own_code, per_op,
};

/// Copy findings of functions no other finding explains, at most.
const COPY_FINDINGS_MAX: usize = 3;

/// The copies stage, after types and heap: copies that grew at sites no earlier finding
/// claimed, by function (leaving out the functions whose every copy a type explains).
pub(crate) fn findings(cx: &Context<'_>, claims: &Claims) -> Stage {
    let (Some(bm), Some(cm)) = (&cx.baseline.snapshot.moves, &cx.candidate.snapshot.moves) else {
        return Stage::default();
    };
    let mut by_function = unclaimed_by_function(cm, claims);
    add_baseline_bytes(bm, &mut by_function);
    let large_delta = (cm.large_bytes_per_op() - bm.large_bytes_per_op()).max(0.0);
    // Two builds that inline differently charge the same copies to different functions: a
    // function's growth counts only up to the growth of all the copies no finding explains.
    let unexplained = (large_delta - claimed_bytes_per_op(cm, claims)).max(0.0);
    let mut grown: Vec<(&str, FunctionCopies)> = by_function
        .into_iter()
        .filter(|(function, f)| {
            let growth = (f.after - f.before).min(unexplained);
            growth >= COPY_CHANGE_BYTES_PER_OP_MIN
                && (f.before == 0.0 || growth / f.before >= cx.thresholds.copy_growth)
                && !(f.before == 0.0 && only_just_over_the_threshold(cm, function))
        })
        .collect();
    grown.sort_by(|a, b| (b.1.after - b.1.before).total_cmp(&(a.1.after - a.1.before)));
    grown
        .into_iter()
        .take(COPY_FINDINGS_MAX)
        .map(|(function, copies)| copy_finding(cx, function, copies, large_delta))
        .collect::<Vec<_>>()
        .into()
}

/// Whether every copy site of `function` is under twice the tracer's threshold: a function
/// that copied nothing before and now copies only such values most likely copies the same
/// values as before, grown a little past the threshold (a future of 1,000 B that became
/// 1,120 B), which the baseline's trace could not record. A type that grew by itself is the
/// type stage's; what grew it is the finding to rank (it was: a 24-byte `Vec` held across an
/// await made three wrappers' copies "new", ranked above the copy of every payload).
fn only_just_over_the_threshold(cm: &MoveFigures, function: &str) -> bool {
    let mut sizes = cm
        .sites
        .iter()
        .filter(|s| s.function == function)
        .map(|s| s.size)
        .peekable();
    sizes.peek().is_some() && sizes.all(|size| size > 0 && size < 2 * cm.threshold_bytes)
}

/// One function's large copies per operation on both sides, not explained by another finding,
/// with its unclaimed sites' lines.
#[derive(Debug, Default)]
struct FunctionCopies {
    before: f64,
    after: f64,
    sites: Vec<String>,
}

/// The candidate's copies per function that no finding claimed: from the complete totals by
/// function where the snapshot has them (less the claimed sites), else from the sites.
fn unclaimed_by_function<'a>(
    cm: &'a MoveFigures,
    claims: &Claims,
) -> HashMap<&'a str, FunctionCopies> {
    let claimed = |s: &MoveSite| claims.sites.contains(&site_key(s));
    let mut by_function: HashMap<&str, FunctionCopies> = HashMap::new();
    if cm.functions.is_empty() {
        for s in cm.sites.iter().filter(|s| !claimed(s)) {
            by_function.entry(&s.function).or_default().after += per_op(s.bytes, cm.ops);
        }
    } else {
        for f in cm
            .functions
            .iter()
            .filter(|f| !claims.copy_functions.contains(&f.function))
        {
            by_function.entry(&f.function).or_default().after += per_op(f.bytes, cm.ops);
        }
        for s in cm.sites.iter().filter(|s| claimed(s)) {
            if let Some(e) = by_function.get_mut(s.function.as_str()) {
                e.after -= per_op(s.bytes, cm.ops);
            }
        }
    }
    for s in cm.sites.iter().filter(|s| !claimed(s)) {
        if let Some(e) = by_function.get_mut(s.function.as_str()) {
            e.sites.push(format!(
                "{} ({} × {}/op)",
                s.location,
                site_size(s),
                fmt_count(per_op(s.count, cm.ops))
            ));
        }
    }
    by_function
}

/// The baseline's copies of the same functions, from its totals by function where it has
/// them, else from its sites.
fn add_baseline_bytes(bm: &MoveFigures, by_function: &mut HashMap<&str, FunctionCopies>) {
    let mut add = |function: &str, bytes: u64| {
        if let Some(e) = by_function.get_mut(function) {
            e.before += per_op(bytes, bm.ops);
        }
    };
    if bm.functions.is_empty() {
        for s in &bm.sites {
            add(&s.function, s.bytes);
        }
    } else {
        for f in &bm.functions {
            add(&f.function, f.bytes);
        }
    }
}

/// The candidate's bytes per operation that earlier findings explain: their sites (outside
/// the functions claimed whole) and the functions claimed whole.
fn claimed_bytes_per_op(cm: &MoveFigures, claims: &Claims) -> f64 {
    let sites = cm
        .sites
        .iter()
        .filter(|s| {
            claims.sites.contains(&site_key(s)) && !claims.copy_functions.contains(&s.function)
        })
        .map(|s| per_op(s.bytes, cm.ops));
    let functions = cm
        .functions
        .iter()
        .filter(|f| claims.copy_functions.contains(&f.function))
        .map(|f| per_op(f.bytes, cm.ops));
    sites.chain(functions).sum()
}

/// The finding of one function whose copies grew; its cost is its share of the growth of
/// large copies, of the extra CPU in `memcpy`.
fn copy_finding(
    cx: &Context<'_>,
    function: &str,
    copies: FunctionCopies,
    large_delta: f64,
) -> Finding {
    let name = short_name(function);
    let (before, after) = (copies.before, copies.after);
    let mut finding = Finding {
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
        sites: copies
            .sites
            .into_iter()
            .take(3)
            .map(|s| format!("`{name}` {s}"))
            .collect(),
        cost_ns_per_op: cx.cpu.and_then(|cpu| {
            (large_delta > 0.0).then(|| {
                cpu.delta(CpuCategory::Copy).max(0.0) * ((after - before) / large_delta).min(1.0)
            })
        }),
        share: None,
        fix: copy_fix(function, moves_values(cx, function)).into(),
        regression: true,
        symptom: false,
        blocked_call: None,
        counts_per_op: Some((before, after)),
    };
    let location = cx
        .candidate
        .snapshot
        .moves
        .as_ref()
        .and_then(|m| m.location_of(function));
    if !is_own_code(function, location)
        && let Some(caller) = grown_caller(cx, function)
    {
        name_the_caller(&mut finding, &name, &caller);
    }
    finding
}

/// Fewest CPU samples under a library function from one caller for the caller to be named
/// when the profile saw it called from several.
const CALLER_SAMPLES_MIN: u64 = 3;

/// The program's function whose calls into a library function grew most, by both sides' CPU
/// profiles (samples under the library function per 1,000 operations; the baseline's are 0
/// where it had none).
struct CallerChange<'a> {
    caller: &'a LibraryCaller,
    before: f64,
    after: f64,
}

fn grown_caller<'a>(cx: &Context<'a>, library: &str) -> Option<CallerChange<'a>> {
    let rate = |m: &MoveFigures, c: &LibraryCaller| {
        per_op(c.samples, m.library_callers_ops.max(1)) * 1000.0
    };
    let cm = cx.candidate.snapshot.moves.as_ref()?;
    let bm = cx.baseline.snapshot.moves.as_ref();
    let same = |a: &LibraryCaller, b: &LibraryCaller| {
        a.library == b.library
            && a.caller == b.caller
            && a.location.as_deref().map(file_of) == b.location.as_deref().map(file_of)
    };
    let seen: Vec<&LibraryCaller> = cm
        .library_callers
        .iter()
        .filter(|c| c.library == library)
        .collect();
    // One caller seen is who asked, however few its samples: there is no other to choose.
    let only_one = seen.len() == 1;
    seen.into_iter()
        .filter(|c| only_one || c.samples >= CALLER_SAMPLES_MIN)
        .map(|c| {
            let before = bm.map_or(0.0, |bm| {
                bm.library_callers
                    .iter()
                    .filter(|b| same(b, c))
                    .map(|b| rate(bm, b))
                    .sum()
            });
            CallerChange {
                caller: c,
                before,
                after: rate(cm, c),
            }
        })
        .filter(|c| only_one || c.after > c.before)
        .max_by(|a, b| (a.after - a.before).total_cmp(&(b.after - b.before)))
}

/// Names the program's function that copies through the library function `library`: the
/// finding's title, its first site and evidence.
fn name_the_caller(f: &mut Finding, library: &str, c: &CallerChange<'_>) {
    let caller = short_name(&c.caller.caller);
    let location = c.caller.location.as_deref().unwrap_or("?");
    f.title = f
        .title
        .replacen(
            &format!("`{library}` copies"),
            &format!("`{caller}` copies"),
            1,
        )
        .replacen(" (was", &format!(" through `{library}` (was"), 1);
    f.sites
        .insert(0, format!("`{caller}` ({location}) via `{library}`"));
    f.evidence.push(Evidence::new(
        format!("CPU samples under `{library}` from `{caller}`, per 1,000 operations"),
        fmt_count(c.before),
        fmt_count(c.after),
    ));
    f.functions.push(c.caller.caller.clone());
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

/// Whether the candidate's copy sites in `function` move values: some site copies exactly the
/// size of a type the program has. Copies of sizes no type has (a shard of a record, a frame
/// of a message) are data, whatever the function is called.
fn moves_values(cx: &Context<'_>, function: &str) -> bool {
    cx.candidate.snapshot.moves.as_ref().is_some_and(|m| {
        m.sites
            .iter()
            .any(|s| s.function == function && s.size > 0 && !s.types.is_empty())
    })
}

/// The fix to try for copies that grew in `function`, given whether they move values.
fn copy_fix(function: &str, moves_values: bool) -> &'static str {
    if is_data_copy(function) || !moves_values {
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

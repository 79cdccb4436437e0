//! Waits for the disk that the runtime's threads do not see: a sync call (`fsync`,
//! `fdatasync`, `sync_file_range`) made on a thread of its own (a log writer) costs no runtime
//! thread any CPU or blocked time, yet every operation that awaits its answer waits for the
//! disk. The counter times those calls; the time that grew per operation, less what the
//! blocking pass saw the runtime's threads block for, is the system call finding's cost, and
//! the waits it explains become its symptoms.
//!
//! Evidence needed: the counter's wall time in the sync calls on both sides, and the blocking
//! pass's blocked time. What would fool it: syncs on a thread no operation waits for (a
//! background flush) beside an unrelated wait of the same size: the wait would be charged to
//! them.

use super::{Context, Evidence, Finding, FindingKind, blocking, fmt_us, make_symptom};
use crate::snapshot::SyscallFigures;

/// What a line of evidence of the disk's wall time is called: what [`mark_symptoms`] reads.
pub const DISK_WAIT_EVIDENCE: &str =
    "wall time per operation in these calls, off the runtime's threads";

/// A wait is explained by the disk when the sync calls' extra wall time per operation off the
/// runtime's threads is at least this share of it: each put waits for its batch's sync, and a
/// sync serves a batch, so the calls' time per operation is smaller than the wait they cause.
pub const DISK_EXPLAINS_WAIT_SHARE: f64 = 0.25;

/// The extra wall time per operation in `names`' calls, off the runtime's threads: the evidence
/// line and the cost (nanoseconds per operation). `None` when the counter timed none of them on
/// the candidate (strace's counts; calls that do not wait for the disk).
pub(crate) fn off_runtime_wall(
    cx: &Context<'_>,
    b: &SyscallFigures,
    c: &SyscallFigures,
    names: &[&str],
) -> Option<(Evidence, f64)> {
    let wall = |side: &SyscallFigures| -> Option<f64> {
        names
            .iter()
            .filter_map(|n| side.wall_per_op(n))
            .reduce(|x, y| x + y)
    };
    let after = wall(c)?;
    let calls = |side: &SyscallFigures| names.iter().map(|n| side.per_op(n)).sum::<f64>();
    // A baseline counted before the calls were timed: its calls taken to last as long as the
    // candidate's, not to have taken no time.
    let before = wall(b).unwrap_or_else(|| after * calls(b) / calls(c).max(f64::MIN_POSITIVE));
    let blocked = blocking::total_delta(cx).unwrap_or(0.0).max(0.0);
    let cost = (after - before - blocked).max(0.0);
    let evidence = Evidence::new(DISK_WAIT_EVIDENCE, fmt_us(before), fmt_us(after - blocked));
    Some((evidence, cost))
}

/// Waiting, resource waits and a longer tail become symptoms of the system call finding whose
/// disk time off the runtime's threads explains them (see [`DISK_EXPLAINS_WAIT_SHARE`]).
pub(crate) fn mark_symptoms(findings: &mut [Finding]) {
    let Some((cost, title)) = findings
        .iter()
        .filter(|f| f.kind == FindingKind::Syscalls && f.regression && !f.symptom)
        .filter(|f| f.evidence.iter().any(|e| e.what == DISK_WAIT_EVIDENCE))
        .filter_map(|f| Some((f.cost_ns_per_op?, f.title.clone())))
        .max_by(|x, y| x.0.total_cmp(&y.0))
    else {
        return;
    };
    let explained = |f: &Finding| {
        matches!(f.kind, FindingKind::Waiting | FindingKind::ResourceWait)
            && !f.symptom
            && f.cost_ns_per_op
                .is_some_and(|w| cost >= DISK_EXPLAINS_WAIT_SHARE * w)
    };
    let mut any = false;
    for f in findings.iter_mut().filter(|f| explained(f)) {
        make_symptom(
            f,
            &title,
            "the operations wait for the disk on another thread",
        );
        any = true;
    }
    if any {
        for f in findings
            .iter_mut()
            .filter(|f| f.kind == FindingKind::Latency && !f.symptom)
        {
            make_symptom(
                f,
                &title,
                "the operations wait for the disk on another thread",
            );
        }
    }
}

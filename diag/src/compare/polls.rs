//! Polls findings: a task kind polled many more times per operation, and the executor paying
//! for it. Every poll is a trip through the scheduler (a wake, a queue, a context switch of
//! the future's state), so a future that wakes itself (`yield_now` in a loop, a waker called
//! before returning `Pending`), an await per item where one per batch would do, or a `select!`
//! that rebuilds its futures makes the executor's share grow with no function of the program
//! to show for it.
//!
//! Evidence needed: the kind's polls per operation on both sides (counted by its task monitor,
//! steady between runs of one build: within 5% across the zoo's candidates that do not touch
//! polling), grown by [`POLL_GROWTH_MIN`] and [`POLLS_CHANGE_PER_OP_MIN`]. It crosses a
//! threshold only when the executor's CPU per operation, and its share of the CPU samples,
//! grew beyond the sampling noise too ([`EXECUTOR_SIGMAS`]): more polls the executor does not
//! pay for (a task that now waits once more for a lock) are shown, and the waiting stage says
//! what they wait for.

use super::hot_spots::share_grew_by;
use super::{Context, Evidence, Finding, FindingKind, TaskChange, fmt_count, fmt_us};
use crate::snapshot::CpuCategory;

/// Growth of a kind's polls per operation that can name it: +50%...
pub const POLL_GROWTH_MIN: f64 = 0.5;

/// ... and at least this many more polls per operation.
pub const POLLS_CHANGE_PER_OP_MIN: f64 = 1.0;

/// Poll findings reported, at most.
const POLL_FINDINGS_MAX: usize = 2;

/// The executor's extra CPU, and its share of the samples, must each grow by more than this
/// many standard deviations of their sampling noise for the finding to cross a threshold.
pub const EXECUTOR_SIGMAS: f64 = 2.0;

/// The kinds polled much more per operation; each is charged the executor's extra CPU (when
/// there is any) in proportion to its extra polls.
pub(crate) fn findings(cx: &Context<'_>, tasks: &[TaskChange]) -> Vec<Finding> {
    let executor = executor_change(cx);
    let mut grown: Vec<&TaskChange> = tasks.iter().filter(|t| polls_grew(t)).collect();
    let extra = |t: &TaskChange| t.polls_per_op.1 - t.polls_per_op.0;
    let all_extra: f64 = grown.iter().map(|t| extra(t)).sum();
    grown.sort_by(|a, b| extra(b).total_cmp(&extra(a)));
    grown
        .into_iter()
        .take(POLL_FINDINGS_MAX)
        .map(|t| finding(t, extra(t) / all_extra, executor))
        .collect()
}

/// The executor's CPU per operation on both sides, and whether it grew beyond the noise.
#[derive(Clone, Copy)]
struct ExecutorChange {
    before: f64,
    after: f64,
    grew: bool,
}

fn executor_change(cx: &Context<'_>) -> Option<ExecutorChange> {
    let b = cx.baseline.snapshot.cpu.as_ref()?;
    let c = cx.candidate.snapshot.cpu.as_ref()?;
    let samples = |side: &crate::snapshot::CpuFigures| {
        side.categories
            .get(&CpuCategory::Executor)
            .copied()
            .unwrap_or(0) as f64
    };
    let (nb, nc) = (samples(b), samples(c));
    let (before, after) = (b.samples_to_ns_per_op(nb), c.samples_to_ns_per_op(nc));
    // Poisson noise of each side's count, in ns per operation.
    let sd = (b.samples_to_ns_per_op(nb.sqrt()).powi(2)
        + c.samples_to_ns_per_op(nc.sqrt()).powi(2))
    .sqrt();
    // A machine slower during one side's CPU pass raises every category alike: the
    // executor's share of the samples must grow too.
    let share_grew = share_grew_by(nb, nc, b.samples as f64, c.samples as f64, EXECUTOR_SIGMAS);
    Some(ExecutorChange {
        before,
        after,
        grew: after - before > EXECUTOR_SIGMAS * sd && share_grew,
    })
}

fn polls_grew(t: &TaskChange) -> bool {
    let (before, after) = t.polls_per_op;
    after - before >= POLLS_CHANGE_PER_OP_MIN
        && (before == 0.0 || (after - before) / before >= POLL_GROWTH_MIN)
}

fn finding(t: &TaskChange, share: f64, executor: Option<ExecutorChange>) -> Finding {
    let (before, after) = t.polls_per_op;
    let grew = executor.is_some_and(|e| e.grew);
    let mut evidence = vec![Evidence::new(
        "polls per operation",
        fmt_count(before),
        fmt_count(after),
    )];
    if let Some(e) = executor {
        evidence.push(Evidence::new(
            "executor CPU per operation (every kind)",
            fmt_us(e.before),
            fmt_us(e.after),
        ));
    }
    Finding {
        kind: FindingKind::Polls,
        title: format!(
            "task kind `{}` is polled {} times per operation (was {}){}",
            t.kind,
            fmt_count(after),
            fmt_count(before),
            if grew {
                ", and the executor's CPU grew with it"
            } else {
                ""
            }
        ),
        evidence,
        sites: vec![format!("task kind `{}`", t.kind)],
        functions: Vec::new(),
        cost_ns_per_op: executor.map(|e| (e.after - e.before).max(0.0) * share),
        share: None,
        fix: "look in this kind's handler for a future that wakes itself (`yield_now` in a \
              loop, a waker called before returning `Pending`), an `.await` per item where one \
              per batch would do, or a `select!` in a loop that rebuilds its futures each time: \
              each poll is a trip through the executor"
            .into(),
        regression: grew,
        symptom: false,
        blocked_call: None,
        counts_per_op: Some((before, after)),
    }
}

/// A task spawned per call wakes the task that awaits it when it ends: that task is polled
/// once more per spawn, and the executor runs the spawned tasks too. With a spawn-per-call
/// regression, a polls finding is its symptom.
pub(crate) fn mark_symptoms(findings: &mut [Finding]) {
    let Some(cause) = findings
        .iter()
        .find(|f| f.kind == FindingKind::TaskPerCall && f.regression && !f.symptom)
        .map(|f| f.title.clone())
    else {
        return;
    };
    super::mark_symptoms_of(
        findings,
        FindingKind::Polls,
        &cause,
        "each spawned task wakes the task that awaits it",
    );
}

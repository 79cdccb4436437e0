//! Polls findings: a task kind polled many more times per operation, and the executor paying
//! for it. Every poll is a trip through the scheduler (a wake, a queue, a context switch of
//! the future's state), so a future that wakes itself (`yield_now` in a loop, a waker called
//! before returning `Pending`), an await per item where one per batch would do, or a `select!`
//! that rebuilds its futures makes the executor's share grow with no function of the program
//! to show for it.
//!
//! Evidence needed: the kind's polls per operation on both sides (counted by its task monitor,
//! steady between runs of one build: within 5% across the zoo's candidates that do not touch
//! polling), grown by [`POLL_GROWTH_MIN`] and [`POLLS_CHANGE_PER_OP_MIN`]; and the executor's
//! CPU per operation grown in the CPU profiles. More polls with no extra executor time (a task
//! that now waits once more for a lock) are the waiting stage's, not this one's.

use super::{Context, Evidence, Finding, FindingKind, TaskChange, fmt_count, fmt_us};
use crate::snapshot::CpuCategory;

/// Growth of a kind's polls per operation that can name it: +50%...
pub const POLL_GROWTH_MIN: f64 = 0.5;

/// ... and at least this many more polls per operation.
pub const POLLS_CHANGE_PER_OP_MIN: f64 = 1.0;

/// Poll findings reported, at most.
const POLL_FINDINGS_MAX: usize = 2;

/// The kinds polled much more per operation while the executor's CPU per operation grew; each
/// is charged the executor's extra CPU in proportion to its extra polls.
pub(crate) fn findings(cx: &Context<'_>, tasks: &[TaskChange]) -> Vec<Finding> {
    let Some(cpu) = cx.cpu else {
        return Vec::new();
    };
    let executor_delta = cpu.delta(CpuCategory::Executor);
    if executor_delta <= 0.0 {
        return Vec::new();
    }
    let mut grown: Vec<&TaskChange> = tasks.iter().filter(|t| polls_grew(t)).collect();
    let extra = |t: &TaskChange| t.polls_per_op.1 - t.polls_per_op.0;
    let all_extra: f64 = grown.iter().map(|t| extra(t)).sum();
    grown.sort_by(|a, b| extra(b).total_cmp(&extra(a)));
    grown
        .into_iter()
        .take(POLL_FINDINGS_MAX)
        .map(|t| {
            finding(
                t,
                executor_delta * extra(t) / all_extra,
                cpu.executor_pair(),
            )
        })
        .collect()
}

fn polls_grew(t: &TaskChange) -> bool {
    let (before, after) = t.polls_per_op;
    after - before >= POLLS_CHANGE_PER_OP_MIN
        && (before == 0.0 || (after - before) / before >= POLL_GROWTH_MIN)
}

fn finding(t: &TaskChange, cost: f64, executor: (f64, f64)) -> Finding {
    let (before, after) = t.polls_per_op;
    Finding {
        kind: FindingKind::Polls,
        title: format!(
            "task kind `{}` is polled {} times per operation (was {}), and the executor's CPU \
             grew with it",
            t.kind,
            fmt_count(after),
            fmt_count(before)
        ),
        evidence: vec![
            Evidence::new("polls per operation", fmt_count(before), fmt_count(after)),
            Evidence::new(
                "executor CPU per operation (every kind)",
                fmt_us(executor.0),
                fmt_us(executor.1),
            ),
        ],
        sites: vec![format!("task kind `{}`", t.kind)],
        functions: Vec::new(),
        cost_ns_per_op: Some(cost),
        share: None,
        fix: "each poll is a trip through the executor: look in this kind's handler for a \
              future that wakes itself (`yield_now` in a loop, a waker called before returning \
              `Pending`), an `.await` per item where one per batch would do, or a `select!` in \
              a loop that rebuilds its futures each time"
            .into(),
        regression: true,
        symptom: false,
        blocked_call: None,
    }
}

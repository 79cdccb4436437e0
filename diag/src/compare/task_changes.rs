//! Task changes: how each task kind's polls changed per operation (an observation for the
//! reports and the waiting stage, not a finding).

use std::collections::BTreeSet;

use super::{Context, TaskChange};
use crate::snapshot::TaskRunFigures;

/// Poll time per operation below this change is never notable: 1 µs.
const POLL_CHANGE_NS_PER_OP_MIN: f64 = 1_000.0;

/// A kind's blocked time per operation on both sides, when both have a blocking profile.
fn blocked_pair(cx: &Context<'_>, kind: &str) -> Option<(f64, f64)> {
    let b = cx.baseline.snapshot.blocking.as_ref()?;
    let c = cx.candidate.snapshot.blocking.as_ref()?;
    Some((b.kind_ns_per_op(kind), c.kind_ns_per_op(kind)))
}

/// Every task kind of either side, with how its polls changed.
pub(crate) fn every_kind(cx: &Context<'_>) -> Vec<TaskChange> {
    let (Some(b), Some(c)) = (&cx.baseline.snapshot.tasks, &cx.candidate.snapshot.tasks) else {
        return Vec::new();
    };
    let kinds: BTreeSet<&String> = b.kinds.keys().chain(c.kinds.keys()).collect();
    kinds
        .into_iter()
        .map(|kind| {
            // A kind absent on one side did not run there: its figures count as 0 on that side.
            let pair = |figure: fn(&crate::tasks::TaskFigures) -> u64| {
                let of = |side: &TaskRunFigures| side.per_op(kind, figure).unwrap_or(0.0);
                (of(b), of(c))
            };
            let poll = pair(|k| k.total_poll_duration_ns);
            let notable = poll.1 - poll.0 >= POLL_CHANGE_NS_PER_OP_MIN
                && (poll.0 == 0.0 || (poll.1 - poll.0) / poll.0 >= cx.thresholds.poll_growth);
            TaskChange {
                kind: kind.clone(),
                polls_per_op: pair(|k| k.total_poll_count),
                tasks_per_op: pair(|k| k.instrumented_count),
                poll_ns_per_op: poll,
                scheduled_ns_per_op: pair(|k| k.total_scheduled_duration_ns),
                slow_polls_per_op: pair(|k| k.total_slow_poll_count),
                idle_ns_per_op: pair(|k| k.total_idle_duration_ns),
                blocked_ns_per_op: blocked_pair(cx, kind),
                notable,
            }
        })
        .collect()
}

//! Waiting findings: the operations got slower (throughput or tail latency) while neither CPU
//! nor blocking inside polls explains it, and one task kind now waits longer between its polls
//! (idle: a lock or semaphore held across an `.await`, a queue, a timer, a slower peer).
//!
//! Evidence needed: the wall verdict (slower, or a p99 beyond its threshold), the task kinds'
//! idle time per operation on both sides, and, to rule out a busier machine, the runtime-thread
//! time per operation (CPU and blocked) of both sides. Idle time grows in every slowdown that
//! makes a task's peers slower, so the finding is made only when the extra runtime-thread time
//! explains less than half of the wall-time change. A kind that waits at new awaits (polled
//! more, idle longer, no more CPU in its polls: a lock held across an await, a new timer) makes
//! the runtime run a wake per wait and set its timers: that extra CPU is the waiting's, not an
//! explanation of it, so new waits are measured against the costs of the causes found before
//! them instead. A CPU regression makes the same awaits wait longer, and adds no polls.

use super::{
    Context, Evidence, Finding, FindingKind, TaskChange, WallComparison, WallVerdict, fmt_count,
    fmt_us,
};

/// Growth of a kind's idle time per operation that can name it: +50%...
pub const IDLE_GROWTH_MIN: f64 = 0.5;

/// ... and at least this much per operation, nanoseconds (20 µs).
pub const IDLE_CHANGE_NS_PER_OP_MIN: f64 = 20_000.0;

/// Share of the wall-time change the extra runtime-thread time may explain for waiting to be
/// the cause: below half, CPU and blocking are not what slowed the operations.
pub const EXPLAINED_SHARE_MAX: f64 = 0.5;

/// The waiting finding, when the wall time regressed and a kind waits longer: unexplained by
/// the threads' time, or, for new waits (see [`waits_anew`]), by the causes found so far.
pub(crate) fn finding(
    cx: &Context<'_>,
    tasks: &[TaskChange],
    worker_delta: Option<f64>,
    causes_so_far: f64,
) -> Option<Finding> {
    let w = cx.wall?;
    let slower = w.verdict == WallVerdict::Slower;
    let tail = w.p99.grew_beyond(cx.thresholds.p99_growth);
    let most_idle = |a: &&TaskChange, b: &&TaskChange| idle_delta(a).total_cmp(&idle_delta(b));
    let anew = tasks.iter().filter(|t| waits_anew(t)).max_by(most_idle);
    // New waits are counted (polls per operation of a seeded workload), so they are shown even
    // when the wall time cannot tell a slowdown from the noise; only a slowdown or a longer tail
    // makes waiting a regression.
    if !slower && !tail && anew.is_none() {
        return None;
    }
    // New waits make the runtime work for them (a wake and a poll each, a timer to set): that
    // CPU is part of the waiting, not a cause that explains it away. What explains them is
    // what the stages before found, at their cost.
    let explained = match anew {
        Some(_) => Some(causes_so_far),
        None => worker_delta,
    };
    let unexplained = unexplained_worker_ns(cx, w, explained);
    if slower && unexplained.is_none() {
        return None;
    }
    let kind = anew.or_else(|| tasks.iter().filter(|t| idle_grew(t)).max_by(most_idle))?;
    let (before, after) = kind.idle_ns_per_op;
    let title = match anew {
        Some(t) => format!(
            "task kind `{}` waits {} more per operation between its polls, at {} more awaits \
             per operation that had to wait",
            t.kind,
            fmt_us(after - before),
            fmt_count(t.polls_per_op.1 - t.polls_per_op.0)
        ),
        None => format!(
            "task kind `{}` waits {} more per operation between its polls, which CPU and \
             blocking do not explain",
            kind.kind,
            fmt_us(after - before)
        ),
    };
    // A slowdown costs what the threads' time leaves unexplained; a longer tail with the
    // throughput flat costs the operations the wait they see, which ranks it against CPU causes
    // in the same unit (time per operation) rather than after all of them.
    let cost = if slower {
        unexplained
    } else {
        tail.then_some(after - before).filter(|&ns| ns > 0.0)
    };
    Some(Finding {
        kind: FindingKind::Waiting,
        title,
        evidence: evidence(kind, w),
        sites: vec![format!("task kind `{}`", kind.kind)],
        functions: Vec::new(),
        cost_ns_per_op: cost,
        share: None,
        fix: "look at the code that awaits in this kind's handler: its tasks wait longer for \
              something (a timer such as a `sleep`, an interval or a retry's back-off; an async \
              lock or semaphore another task holds across an `.await`, to be held only around \
              the state it guards, never across I/O; a bounded queue or pool that is now too \
              small; or a slower peer)"
            .into(),
        regression: slower || tail,
        symptom: false,
        blocked_call: None,
        counts_per_op: anew.map(|t| t.polls_per_op),
    })
}

/// What the findings so far explain, runtime-thread time per operation: the costs of every
/// cause but the waiting's own signs (more polls, a longer tail).
pub(crate) fn explained_by(findings: &[Finding]) -> f64 {
    findings
        .iter()
        .filter(|f| !f.symptom && !matches!(f.kind, FindingKind::Polls | FindingKind::Latency))
        .filter_map(|f| f.cost_ns_per_op)
        .filter(|c| *c > 0.0)
        .sum()
}

/// Extra polls per operation that make a kind's polls "waits anew"...
pub const NEW_WAITS_PER_OP_MIN: f64 = 0.5;

/// ... while its time on the CPU in polls per operation grew by at most this share ...
pub const CPU_IN_POLLS_GROWTH_MAX: f64 = 0.25;

/// ... and its idle time per operation by at least this share (and
/// [`IDLE_CHANGE_NS_PER_OP_MIN`]). Idle time follows the machine's load as well as the code,
/// hence [`IDLE_GROWTH_MIN`] where it is the only evidence; beside new polls, which are
/// counted, it needs only to confirm that the new polls followed waits (a 500 µs sleep per get
/// on a loaded machine: 0.73 more polls per operation, idle 1,511 → 2,221 µs, +47%).
pub const NEW_WAITS_IDLE_GROWTH_MIN: f64 = 0.2;

/// Whether a kind waits at awaits that did not wait before: it is polled more per operation,
/// its idle time grew with its polls, and its time on the CPU in polls did not. Each await that
/// pends ends in a wake and one more poll, which does the little work left; a future that
/// wakes itself or works in more, smaller pieces adds polls that use the CPU instead, and a
/// slower peer makes the same awaits wait longer without adding polls. The executor's extra
/// CPU (it runs the wakes) then does not explain the change away.
fn waits_anew(t: &TaskChange) -> bool {
    let (polls_before, polls_after) = t.polls_per_op;
    let ((cpu_before, cpu_after), _) = t.poll_split();
    idle_grew_by(t, NEW_WAITS_IDLE_GROWTH_MIN)
        && polls_after - polls_before >= NEW_WAITS_PER_OP_MIN
        && cpu_after <= cpu_before * (1.0 + CPU_IN_POLLS_GROWTH_MAX)
}

fn evidence(kind: &TaskChange, w: &WallComparison) -> Vec<Evidence> {
    let (before, after) = kind.idle_ns_per_op;
    vec![
        Evidence::new(
            "idle time per operation (waiting to be woken)",
            fmt_us(before),
            fmt_us(after),
        ),
        Evidence::new(
            "poll time per operation",
            fmt_us(kind.poll_ns_per_op.0),
            fmt_us(kind.poll_ns_per_op.1),
        ),
        throughput(w),
        Evidence::new(
            "latency p99",
            fmt_us(w.baseline_latency_us.1 * 1e3),
            fmt_us(w.candidate_latency_us.1 * 1e3),
        ),
    ]
}

/// The median throughput of both sides, as a line of evidence.
pub(crate) fn throughput(w: &WallComparison) -> Evidence {
    Evidence::new(
        "throughput",
        format!("{:.0} ops/s", w.baseline.median),
        format!("{:.0} ops/s", w.candidate.median),
    )
}

/// The wall-time change not explained by extra runtime-thread time, as runtime-thread time per
/// operation (what the change would cost if every worker were busy), when it is most of it.
fn unexplained_worker_ns(
    cx: &Context<'_>,
    w: &WallComparison,
    worker_delta: Option<f64>,
) -> Option<f64> {
    let wall_equivalent = wall_equivalent(cx, w)?;
    let explained = worker_delta?.max(0.0);
    (wall_equivalent > 0.0 && explained < EXPLAINED_SHARE_MAX * wall_equivalent)
        .then_some(wall_equivalent - explained)
}

/// The wall-time change per operation as runtime-thread time: the extra wall time per
/// operation of the whole system times the runtime's workers (negative: faster).
pub(crate) fn wall_equivalent(cx: &Context<'_>, w: &WallComparison) -> Option<f64> {
    let workers = cx
        .candidate
        .snapshot
        .tasks
        .as_ref()
        .and_then(|t| t.workers())
        .filter(|&n| n >= 1)? as f64;
    if w.baseline.median <= 0.0 || w.candidate.median <= 0.0 {
        return None;
    }
    let wall_ns_per_op = 1e9 / w.candidate.median - 1e9 / w.baseline.median;
    Some(wall_ns_per_op * workers)
}

fn idle_delta(t: &TaskChange) -> f64 {
    t.idle_ns_per_op.1 - t.idle_ns_per_op.0
}

fn idle_grew(t: &TaskChange) -> bool {
    idle_grew_by(t, IDLE_GROWTH_MIN)
}

fn idle_grew_by(t: &TaskChange, growth: f64) -> bool {
    let (before, after) = t.idle_ns_per_op;
    after - before >= IDLE_CHANGE_NS_PER_OP_MIN
        && (before == 0.0 || (after - before) / before >= growth)
}

/// Waits at new awaits each end in a wake and a poll: a kind polled more per operation, and
/// the executor's extra work for it, are how they show.
pub(crate) fn mark_polls_symptoms(findings: &mut [Finding]) {
    let Some(cause) = findings
        .iter()
        .find(|f| f.kind == FindingKind::Waiting && !f.symptom && f.counts_per_op.is_some())
        .map(|f| f.title.clone())
    else {
        return;
    };
    // Only the waiting kind's own polls: another kind polled more is a change of its own.
    for f in findings
        .iter_mut()
        .filter(|f| f.kind == FindingKind::Polls && !f.symptom && same_kind(f, &cause))
    {
        super::make_symptom(
            f,
            &cause,
            "each wait ends in a wake and a poll, and the executor runs them",
        );
    }
}

/// Whether a task kind's finding (its first site `task kind `K``) is about the kind `title`
/// names.
pub(crate) fn same_kind(f: &Finding, title: &str) -> bool {
    f.sites
        .first()
        .and_then(|s| s.strip_prefix("task kind "))
        .is_some_and(|kind| title.contains(kind))
}

/// A runtime thread blocked inside a poll stalls every task queued behind it, and the tasks it
/// would have woken: the tasks of other kinds wait longer between their polls, and more than
/// the blocked time the sampler sees (it counts the blocked thread, not the queue behind it).
/// With a blocking regression, a waiting finding is its symptom, shown after the causes; so it
/// is with tasks spawned per call, which the task that spawned them awaits.
pub(crate) fn mark_symptoms(findings: &mut [Finding]) {
    let cost = |f: &Finding| f.cost_ns_per_op.unwrap_or(0.0);
    let cause_of_kind = |kind: FindingKind| {
        findings
            .iter()
            .filter(|f| f.kind == kind && f.regression && !f.symptom)
            .max_by(|a, b| cost(a).total_cmp(&cost(b)))
            .map(|f| f.title.clone())
    };
    if let Some(cause) = cause_of_kind(FindingKind::Blocking) {
        super::mark_symptoms_of(
            findings,
            FindingKind::Waiting,
            &cause,
            "a runtime thread held off the CPU stalls the tasks queued behind it",
        );
    } else if let Some(cause) = cause_of_kind(FindingKind::TaskPerCall) {
        super::mark_symptoms_of(
            findings,
            FindingKind::Waiting,
            &cause,
            "a task that awaits the tasks it spawned waits for them to be scheduled and run",
        );
    }
}

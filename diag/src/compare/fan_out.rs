//! Fan-out findings: a task kind runs more times per operation. Both sides run the same seeded
//! workload, so the tasks of a kind per operation count the work the program asks for (a
//! request to a node, a query per item): more of them means an operation now asks for more (a
//! fan-out made wider, a retry, a cache that no longer answers, a query per item where one per
//! batch did). Everything those tasks do grows with them, so the system calls, allocations,
//! copies and polls that grew no faster than the tasks did are its symptoms, not more causes.
//!
//! Evidence needed: both sides' task counts per kind (instrumented futures per operation,
//! exact for a seeded workload: equal across every build of the zoo that does not change the
//! fan-out), the same workload, growth by [`TASKS_GROWTH_MIN`] and
//! [`TASKS_CHANGE_PER_OP_MIN`]. Its cost is the kind's extra time in polls per operation (on
//! the CPU and blocked). What would fool it: a count that follows the timing (timeouts that
//! bring in fallback requests); those come with errors or a slower peer, shown beside it.

use super::{Context, Evidence, Finding, FindingKind, TaskChange, fmt_count, fmt_us, make_symptom};

/// Growth of a kind's tasks per operation that can name it: +10%...
pub const TASKS_GROWTH_MIN: f64 = 0.1;

/// ... and at least this many more tasks per operation (one in ten operations).
pub const TASKS_CHANGE_PER_OP_MIN: f64 = 0.1;

/// A finding grown by at most this factor times the tasks' growth is explained by them: the
/// same work per task, a little more for what the tasks' callers do per task.
pub const SYMPTOM_GROWTH_SLACK: f64 = 1.25;

/// Fan-out findings reported, at most.
const FAN_OUT_FINDINGS_MAX: usize = 2;

/// The kinds that run more tasks per operation, most extra tasks first.
pub(crate) fn findings(cx: &Context<'_>, tasks: &[TaskChange]) -> Vec<Finding> {
    if cx.baseline.snapshot.workload != cx.candidate.snapshot.workload {
        return Vec::new();
    }
    let mut grown: Vec<&TaskChange> = tasks.iter().filter(|t| tasks_grew(t)).collect();
    let extra = |t: &TaskChange| t.tasks_per_op.1 - t.tasks_per_op.0;
    grown.sort_by(|a, b| extra(b).total_cmp(&extra(a)));
    grown
        .into_iter()
        .take(FAN_OUT_FINDINGS_MAX)
        .map(finding)
        .collect()
}

fn tasks_grew(t: &TaskChange) -> bool {
    let (before, after) = t.tasks_per_op;
    after - before >= TASKS_CHANGE_PER_OP_MIN
        && (before == 0.0 || (after - before) / before >= TASKS_GROWTH_MIN)
}

fn finding(t: &TaskChange) -> Finding {
    let (before, after) = t.tasks_per_op;
    let ((cpu_before, cpu_after), blocked) = t.poll_split();
    let (blocked_before, blocked_after) = blocked.unwrap_or((0.0, 0.0));
    let per_task = |polls: f64, tasks: f64| if tasks > 0.0 { polls / tasks } else { 0.0 };
    let mut evidence = vec![
        Evidence::new(
            "tasks of this kind per operation",
            fmt_count(before),
            fmt_count(after),
        ),
        Evidence::new(
            "polls per task",
            fmt_count(per_task(t.polls_per_op.0, before)),
            fmt_count(per_task(t.polls_per_op.1, after)),
        ),
        Evidence::new(
            "time in its polls per operation (on the CPU)",
            fmt_us(cpu_before),
            fmt_us(cpu_after),
        ),
    ];
    if blocked.is_some() {
        evidence.push(Evidence::new(
            "time in its polls per operation (blocked)",
            fmt_us(blocked_before),
            fmt_us(blocked_after),
        ));
    }
    let extra_poll_ns = t.poll_ns_per_op.1 - t.poll_ns_per_op.0;
    Finding {
        kind: FindingKind::FanOut,
        title: format!(
            "task kind `{}` runs {} times per operation (was {}): each operation asks for {}",
            t.kind,
            fmt_count(after),
            fmt_count(before),
            ratio(before, after)
        ),
        evidence,
        sites: vec![format!("task kind `{}`", t.kind)],
        functions: Vec::new(),
        cost_ns_per_op: (extra_poll_ns > 0.0).then_some(extra_poll_ns),
        share: None,
        fix: "look at the code that issues these tasks' requests for a fan-out made wider \
              (asking every replica where k answers do), a retry or fallback taken every time, \
              a cache that no longer answers, or one request per item where one per batch did: \
              an operation asks for more of this work than before"
            .into(),
        regression: true,
        symptom: false,
        blocked_call: None,
        counts_per_op: Some((before, after)),
    }
}

/// `1.50× as many` or `them for the first time`.
fn ratio(before: f64, after: f64) -> String {
    if before > 0.0 {
        format!("{:.2}× as many", after / before)
    } else {
        "them for the first time".into()
    }
}

/// The count findings (calls, allocations, copies, spawns, polls) that grew no faster than the
/// tasks of a kind that runs more per operation are what those extra tasks do: its symptoms.
pub(crate) fn mark_symptoms(findings: &mut [Finding]) {
    let Some((cause, cause_growth)) = findings
        .iter()
        .filter(|f| f.kind == FindingKind::FanOut && f.regression)
        .filter_map(|f| Some((f.title.clone(), growth(f.counts_per_op?)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
    else {
        return;
    };
    let mut shows = Vec::new();
    for f in findings.iter_mut().filter(|f| {
        f.kind != FindingKind::FanOut
            && !f.symptom
            && f.counts_per_op
                .and_then(growth)
                .is_some_and(|g| g <= cause_growth * SYMPTOM_GROWTH_SLACK)
    }) {
        make_symptom(f, &cause, "the extra tasks do this work");
        if let Some(site) = f.sites.first()
            && shows.len() < SHOWN_SITES_MAX
            && !shows.contains(site)
        {
            shows.push(site.clone());
        }
    }
    // The kind names the tasks, not the code that asks for them; the code doing their extra
    // work (the requests sent, their buffers) is where a reader starts.
    if let Some(fan_out) = findings
        .iter_mut()
        .find(|f| f.kind == FindingKind::FanOut && f.title == cause)
    {
        fan_out.sites.extend(
            shows
                .into_iter()
                .map(|site| format!("the extra work shows in {site}")),
        );
    }
}

/// Sites of a fan-out's symptoms listed under it, at most.
const SHOWN_SITES_MAX: usize = 3;

/// How many times the count grew (`None` from zero: a new count is no multiple of an old one).
fn growth((before, after): (f64, f64)) -> Option<f64> {
    (before > 0.0).then(|| after / before)
}

//! Resource findings, from the console pass: tasks that wait longer on a `tokio::sync`
//! resource or a timer, named by where it was created; and the console's lints that appear.
//!
//! Evidence needed: both sides' console recordings (a build with `--cfg tokio_unstable`, run at
//! the console's pace). A wait is a completed async operation on the resource (a `lock()`
//! until it got the lock, a `sleep` until it fired), so a timeout's timer that never fired
//! counts nothing. A site is named when its wait per operation grew by
//! [`RESOURCE_WAIT_CHANGE_NS_PER_OP_MIN`] and [`RESOURCE_WAIT_GROWTH_MIN`]; sites match across
//! builds by type and file (code added above a resource moves its line, not the resource).
//! What would fool it: a recording whose console layer dropped events (the waits it lost),
//! said in the evidence; a resource whose wait follows a slower peer (a `oneshot` answered by
//! a slower task) names where the task waits, and the fix says to look at who answers.
//!
//! Its cost is the wall-time change as runtime-thread time when the operations got slower,
//! else none (a longer tail with the throughput flat); the waiting and tail-latency findings
//! it explains become its symptoms.

use super::{
    Context, Evidence, Finding, FindingKind, ResourceChange, WallVerdict, fmt_count, fmt_us,
    make_symptom, mark_symptoms_of, waiting,
};
use crate::snapshot::{ConsoleFigures, ConsoleLint, Lint, ResourceWaits, Snapshot};

/// Growth of a resource site's wait per operation that names it: +50%...
pub const RESOURCE_WAIT_GROWTH_MIN: f64 = 0.5;

/// ... and at least this much per operation, nanoseconds (20 µs, as the waiting finding's).
pub const RESOURCE_WAIT_CHANGE_NS_PER_OP_MIN: f64 = 20_000.0;

/// Resource findings reported, at most.
const RESOURCE_FINDINGS_MAX: usize = 2;

/// The resource sites whose waits grew, most extra wait first.
pub(crate) fn findings(cx: &Context<'_>) -> Vec<Finding> {
    let (Some(b), Some(c)) = (
        &cx.baseline.snapshot.console,
        &cx.candidate.snapshot.console,
    ) else {
        return Vec::new();
    };
    if b.ops == 0 || c.ops == 0 {
        return Vec::new();
    }
    let (b_sites, c_sites) = (b.by_site(), c.by_site());
    let mut grown: Vec<(&ResourceWaits, Option<&ResourceWaits>, f64, f64)> = c_sites
        .iter()
        .map(|(key, r)| {
            let before = b_sites.get(key);
            (
                r,
                before,
                before.map_or(0.0, |br| per_op(br, b)),
                per_op(r, c),
            )
        })
        .filter(|&(_, _, before, after)| {
            after - before >= RESOURCE_WAIT_CHANGE_NS_PER_OP_MIN
                && (before == 0.0 || (after - before) / before >= RESOURCE_WAIT_GROWTH_MIN)
        })
        .collect();
    grown.sort_by(|x, y| (y.3 - y.2).total_cmp(&(x.3 - x.2)));
    // A wait at a site the baseline never waited on is the code's; a longer wait at a site
    // both sides wait on is timing, a regression only when the wall time or the tail says so
    // (a refactor measured beside a build had its log channel's waits 0.9 ms longer).
    let confirmed = cx.wall.is_some_and(|w| {
        w.verdict == WallVerdict::Slower || w.p99.grew_beyond(cx.thresholds.p99_growth)
    });
    let cost = cx
        .wall
        .filter(|w| w.verdict == WallVerdict::Slower)
        .and_then(|w| waiting::wall_equivalent(cx, w))
        .filter(|&ns| ns > 0.0);
    let mut out: Vec<Finding> = grown
        .into_iter()
        .take(RESOURCE_FINDINGS_MAX)
        .enumerate()
        .map(|(i, (r, base, before, after))| {
            // The costliest explains the slowdown; a second one is told apart by its size.
            let sides = Sides { b, c, base, r };
            let new_site = base.is_none_or(|br| br.waits == 0);
            let mut f = resource_finding(&sides, (before, after), if i == 0 { cost } else { None });
            f.regression = new_site || confirmed;
            f
        })
        .collect();
    out.extend(new_lints(b, c));
    out
}

/// One resource site on both sides, with both sides' figures.
#[derive(Clone, Copy)]
struct Sides<'a> {
    b: &'a ConsoleFigures,
    c: &'a ConsoleFigures,
    /// The site in the baseline, if it had it.
    base: Option<&'a ResourceWaits>,
    /// The site in the candidate.
    r: &'a ResourceWaits,
}

/// Resource sites shown in the report, at most.
const RESOURCES_SHOWN_MAX: usize = 10;

/// The waits on the resource sites either side waited on, most waited on first.
pub(crate) fn changes(b: &Snapshot, c: &Snapshot) -> Vec<ResourceChange> {
    let (Some(bc), Some(cc)) = (&b.console, &c.console) else {
        return Vec::new();
    };
    let (b_sites, c_sites) = (bc.by_site(), cc.by_site());
    let keys: std::collections::BTreeSet<&String> = b_sites
        .iter()
        .chain(&c_sites)
        .filter(|(_, r)| r.waits > 0)
        .map(|(k, _)| k)
        .collect();
    let figures = |r: Option<&ResourceWaits>, side: &ConsoleFigures| {
        r.map_or((0.0, 0.0), |r| {
            (r.waits as f64 / side.ops.max(1) as f64, per_op(r, side))
        })
    };
    let mut out: Vec<ResourceChange> = keys
        .into_iter()
        .map(|key| {
            let (rb, rc) = (b_sites.get(key), c_sites.get(key));
            let shown = rc.or(rb).expect("a key of either side");
            let (wb, nb) = figures(rb, bc);
            let (wc, nc) = figures(rc, cc);
            ResourceChange {
                concrete_type: shown.concrete_type.clone(),
                location: shown.location.clone(),
                waits_per_op: (wb, wc),
                wait_ns_per_op: (nb, nc),
            }
        })
        .collect();
    let most = |r: &ResourceChange| r.wait_ns_per_op.0.max(r.wait_ns_per_op.1);
    out.sort_by(|x, y| most(y).total_cmp(&most(x)));
    out.truncate(RESOURCES_SHOWN_MAX);
    out
}

/// Wait per operation at a site, nanoseconds.
fn per_op(r: &ResourceWaits, side: &ConsoleFigures) -> f64 {
    if side.ops == 0 {
        return 0.0;
    }
    r.wait_ns / side.ops as f64
}

fn resource_finding(sides: &Sides<'_>, (before, after): (f64, f64), cost: Option<f64>) -> Finding {
    let Sides { b, c, base, r } = *sides;
    let waits = |x: Option<&ResourceWaits>, side: &ConsoleFigures| {
        x.map_or(0.0, |x| x.waits as f64 / side.ops.max(1) as f64)
    };
    let mean = |x: Option<&ResourceWaits>| {
        x.filter(|x| x.waits > 0)
            .map_or(0.0, |x| x.wait_ns / x.waits as f64)
    };
    // The task kinds (the handlers) that waited name the waiters; the tokio task (a
    // connection runs many handlers) where no kind was marked.
    let kinds = r.waiting_kinds();
    let named = kinds
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let waiter = match (kinds.len(), r.top_task()) {
        (0, Some(task)) => format!("tasks `{task}` wait"),
        (0, None) => "tasks wait".to_string(),
        (1, Some(task)) => format!("task kind {named} (in tasks `{task}`) waits"),
        (1, None) => format!("task kind {named} waits"),
        (_, Some(task)) => format!("task kinds {named} (in tasks `{task}`) wait"),
        (_, None) => format!("task kinds {named} wait"),
    };
    let mut evidence = vec![
        Evidence::new(
            "waits per operation",
            fmt_count(waits(base, b)),
            fmt_count(waits(Some(r), c)),
        ),
        Evidence::new("wait per operation", fmt_us(before), fmt_us(after)),
        Evidence::new("mean wait", fmt_us(mean(base)), fmt_us(mean(Some(r)))),
    ];
    if b.dropped_events + c.dropped_events > 0 {
        evidence.push(Evidence::new(
            "console events dropped (waits missed)",
            b.dropped_events.to_string(),
            c.dropped_events.to_string(),
        ));
    }
    Finding {
        kind: FindingKind::ResourceWait,
        title: format!(
            "{waiter} {} more per operation on {}",
            fmt_us(after - before),
            resource_text(r)
        ),
        evidence,
        sites: vec![resource_text(r)],
        functions: Vec::new(),
        cost_ns_per_op: cost,
        share: None,
        fix: resource_fix(&r.concrete_type).into(),
        regression: true,
        symptom: false,
        blocked_call: None,
        counts_per_op: None,
    }
}

/// `the `Mutex` created at FILE:LINE`, or, for a resource tokio made no span for, what is known.
fn resource_text(r: &ResourceWaits) -> String {
    if r.location.starts_with('?') {
        format!(
            "a `{}` tokio cannot place (made with `const_new`, as a `static` is)",
            r.concrete_type
        )
    } else {
        format!("the `{}` created at {}", r.concrete_type, r.location)
    }
}

/// What to try for tasks that wait longer on a resource of this type.
fn resource_fix(concrete_type: &str) -> &'static str {
    match concrete_type {
        "Mutex" | "RwLock" => {
            "hold the lock only around the state it guards (copy what you need out, then release \
             it before awaiting), or split the state so that tasks do not share one lock: the \
             tasks queue for it because it is held across an `.await` (I/O, another lock) or for \
             long"
        }
        "Semaphore" => {
            "raise the limit, or release each permit sooner: the tasks wait for a permit because \
             the semaphore has too few for the load, or its permits are held across slow work"
        }
        "Sleep" | "Interval" => {
            "take the timer out of the request path or shorten it: the tasks wait on it (a \
             `sleep`, an interval's tick or a back-off) on every pass"
        }
        _ => {
            "look at what the answering task does before it answers: the tasks wait for another \
             task to answer through this resource (a channel, a barrier)"
        }
    }
}

/// The console's lints the candidate has and the baseline does not (by lint, task name and
/// file): a lost waker or a poll that never yields is a bug, the others worth a look.
fn new_lints(b: &ConsoleFigures, c: &ConsoleFigures) -> Vec<Finding> {
    let key = |l: &ConsoleLint| {
        (
            l.lint,
            l.task.clone(),
            crate::snapshot::file_of(&l.location).to_string(),
        )
    };
    c.lints
        .iter()
        .filter(|l| !b.lints.iter().any(|bl| key(bl) == key(l)))
        .map(lint_finding)
        .collect()
}

fn lint_finding(l: &ConsoleLint) -> Finding {
    let figure = match l.lint {
        Lint::LargeFuture | Lint::AutoBoxedFuture => format!(" ({} B)", l.value as u64),
        Lint::SelfWakes => format!(" ({:.0}% of its wakes)", l.value * 100.0),
        Lint::NeverYielded => format!(" ({})", fmt_us(l.value)),
        Lint::LostWaker => String::new(),
    };
    let bug = matches!(l.lint, Lint::LostWaker | Lint::NeverYielded);
    Finding {
        kind: FindingKind::ConsoleLint,
        title: format!(
            "task `{}` spawned at {} {}{figure} (tokio-console lint, {} tasks)",
            l.task,
            l.location,
            l.lint.says(),
            l.tasks
        ),
        evidence: Vec::new(),
        sites: vec![format!("task `{}` spawned at {}", l.task, l.location)],
        functions: Vec::new(),
        cost_ns_per_op: None,
        share: None,
        fix: lint_fix(l.lint).into(),
        regression: bug,
        symptom: false,
        blocked_call: None,
        counts_per_op: None,
    }
}

fn lint_fix(lint: Lint) -> &'static str {
    match lint {
        Lint::SelfWakes => {
            "the task wakes itself to be polled again (`yield_now` in a loop, a future that \
             calls its own waker): it spins on the runtime; wait on the event it polls for instead"
        }
        Lint::LostWaker => {
            "a future returned `Pending` without keeping the waker it was given: the task will \
             never run again. Store the waker where the event that completes it is raised"
        }
        Lint::NeverYielded => {
            "a poll runs for over a second: blocking or long work on a runtime thread; move it \
             to `spawn_blocking`, or yield inside the loop"
        }
        Lint::LargeFuture | Lint::AutoBoxedFuture => {
            "the task's future is large, and moved when spawned (tokio boxes the largest): see \
             what it holds across its awaits in the sizes report, and box or shrink that"
        }
    }
}

/// With a resource wait the regression's cause, the kinds that wait longer and the longer tail
/// are how it shows.
pub(crate) fn mark_symptoms(findings: &mut [Finding]) {
    let Some(cause) = findings
        .iter()
        .find(|f| f.kind == FindingKind::ResourceWait && f.regression && !f.symptom)
        .map(|f| f.title.clone())
    else {
        return;
    };
    for kind in [FindingKind::Waiting, FindingKind::Latency] {
        mark_symptoms_of(findings, kind, &cause, "the tasks wait on this resource");
    }
    // A kind that waits on it is woken and polled again after each wait.
    for f in findings
        .iter_mut()
        .filter(|f| f.kind == FindingKind::Polls && !f.symptom && waiting::same_kind(f, &cause))
    {
        make_symptom(f, &cause, "each wait ends in a wake and one more poll");
    }
}

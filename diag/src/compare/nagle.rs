//! The Nagle finding: more writes per operation go to TCP sockets with Nagle's algorithm on
//! (no `TCP_NODELAY`), and the operations got slower or their tail longer. Such a write waits
//! in the kernel while an earlier segment is unacknowledged, and the peer delays its
//! acknowledgement (up to 40 ms on Linux): the operations wait with the CPUs idle, which the
//! CPU and blocking passes cannot see and the waiting finding cannot name.
//!
//! Evidence needed: both sides' writes to TCP sockets counted by `diag-syscount` by whether
//! `TCP_NODELAY` was set (an older counter did not tell them apart: not compared); writes with
//! Nagle on grown like a system call's count ([`syscalls::grew`]); and a slower wall time or a
//! longer p99, the harm. Where: the functions whose sampled writes with Nagle on grew. Cost: the
//! waiting it causes, taken from the waiting and tail-latency findings, which become its
//! symptoms. What would fool it: a second cause of waiting in the same change (its wait is
//! charged here); more writes with Nagle on and no harm (a protocol that sends each message in
//! one write and awaits the answer is rarely held) is shown, not a regression.

use super::{
    Context, Evidence, Finding, FindingKind, WallVerdict, fmt_count, fmt_us, make_symptom, syscalls,
};
use crate::snapshot::{SyscallFigures, TCP_WRITES_NAGLE, TCP_WRITES_NODELAY};

/// The finding, when writes with Nagle on grew per operation.
pub(crate) fn finding(cx: &Context<'_>, notes: &mut Vec<String>) -> Option<Finding> {
    let (b, c) = (
        cx.baseline.snapshot.syscalls.as_ref()?,
        cx.candidate.snapshot.syscalls.as_ref()?,
    );
    if b.counter != c.counter {
        return None; // the system call findings say why
    }
    let (before, after) = (b.per_op(TCP_WRITES_NAGLE), c.per_op(TCP_WRITES_NAGLE));
    if !syscalls::grew(cx, b, c, TCP_WRITES_NAGLE, before, after) {
        return None;
    }
    if !tells_tcp_writes_apart(b) {
        notes.push(
            "the baseline's system call counter did not tell writes to TCP sockets apart by \
             TCP_NODELAY: Nagle's algorithm not compared. Profile it again with this xtask"
                .into(),
        );
        return None;
    }
    let harm = cx.wall.map(|w| {
        (
            w.verdict == WallVerdict::Slower,
            w.p99.grew_beyond(cx.thresholds.p99_growth),
        )
    });
    let writers = writers_that_grew(b, c);
    let sites = writers
        .iter()
        .map(|w| {
            let at = w
                .location
                .as_deref()
                .map(|l| format!(" ({l})"))
                .unwrap_or_default();
            format!(
                "`{}`{at}: {} → {} writes per operation",
                w.function,
                fmt_count(w.before),
                fmt_count(w.after)
            )
        })
        .collect();
    let functions = writers.iter().map(|w| w.function.clone()).collect();
    Some(Finding {
        kind: FindingKind::Nagle,
        title: format!(
            "{} more writes per operation to TCP sockets with Nagle's algorithm on ({} → {}){}",
            fmt_count(after - before),
            fmt_count(before),
            fmt_count(after),
            writers
                .first()
                .map(|w| format!(", from `{}`", super::short_name(&w.function)))
                .unwrap_or_default()
        ),
        evidence: evidence(cx, b, c),
        sites,
        functions,
        cost_ns_per_op: None,
        share: None,
        fix: "set TCP_NODELAY where these connections are made or accepted \
              (`TcpStream::set_nodelay(true)`): with Nagle's algorithm on, a small write waits \
              for the acknowledgement of the previous segment, which the peer delays up to \
              40 ms; or send each message in one write"
            .into(),
        regression: harm.is_some_and(|(slower, tail)| slower || tail),
        symptom: false,
        blocked_call: None,
        counts_per_op: Some((before, after)),
    })
}

/// Writing functions shown at most: a connection's two ends are usually two functions.
pub const NAGLE_WRITERS_MAX: usize = 3;

/// A function that makes more writes with Nagle on, by the counter's sampled stacks.
struct Writer {
    function: String,
    location: Option<String>,
    before: f64,
    after: f64,
}

/// The functions whose sampled writes with Nagle on grew per operation, most first (at most
/// [`NAGLE_WRITERS_MAX`]): each end of a connection left without `TCP_NODELAY` is a site.
fn writers_that_grew(b: &SyscallFigures, c: &SyscallFigures) -> Vec<Writer> {
    let mut writers: Vec<Writer> = c
        .sites
        .iter()
        .filter(|s| s.call == TCP_WRITES_NAGLE)
        .map(|s| Writer {
            function: s.function.clone(),
            location: s.location.clone(),
            before: b.site_per_op(TCP_WRITES_NAGLE, &s.function),
            after: c.site_per_op(TCP_WRITES_NAGLE, &s.function),
        })
        .filter(|w| w.after > w.before)
        .collect();
    writers.sort_by(|x, y| (y.after - y.before).total_cmp(&(x.after - x.before)));
    writers.truncate(NAGLE_WRITERS_MAX);
    writers
}

/// True when the counter told this side's writes to TCP sockets apart: it wrote either count.
fn tells_tcp_writes_apart(figures: &SyscallFigures) -> bool {
    [TCP_WRITES_NAGLE, TCP_WRITES_NODELAY]
        .iter()
        .any(|n| figures.calls.contains_key(*n))
}

fn evidence(cx: &Context<'_>, b: &SyscallFigures, c: &SyscallFigures) -> Vec<Evidence> {
    let nagle_share = |f: &SyscallFigures| {
        let (nagle, nodelay) = (f.per_op(TCP_WRITES_NAGLE), f.per_op(TCP_WRITES_NODELAY));
        let all = nagle + nodelay;
        if all > 0.0 {
            format!("{:.0}%", 100.0 * nagle / all)
        } else {
            "no TCP writes".into()
        }
    };
    let mut evidence = vec![
        Evidence::new(
            "writes to TCP with Nagle on per operation",
            fmt_count(b.per_op(TCP_WRITES_NAGLE)),
            fmt_count(c.per_op(TCP_WRITES_NAGLE)),
        ),
        Evidence::new(
            "writes to TCP with TCP_NODELAY per operation",
            fmt_count(b.per_op(TCP_WRITES_NODELAY)),
            fmt_count(c.per_op(TCP_WRITES_NODELAY)),
        ),
        Evidence::new(
            "share of TCP writes with Nagle on",
            nagle_share(b),
            nagle_share(c),
        ),
    ];
    if let Some(w) = cx.wall {
        evidence.push(super::waiting::throughput(w));
        evidence.push(Evidence::new(
            "latency p99",
            fmt_us(w.baseline_latency_us.1 * 1e3),
            fmt_us(w.candidate_latency_us.1 * 1e3),
        ));
    }
    evidence
}

/// A write held by Nagle's algorithm shows as waiting: the waiting and tail-latency findings
/// not yet explained by another cause become symptoms of a Nagle regression, which takes the
/// largest of their costs as its own.
pub(crate) fn mark_symptoms(findings: &mut [Finding]) {
    let Some(cause) = findings
        .iter()
        .position(|f| f.kind == FindingKind::Nagle && f.regression && !f.symptom)
    else {
        return;
    };
    let waits =
        |f: &Finding| matches!(f.kind, FindingKind::Waiting | FindingKind::Latency) && !f.symptom;
    let cost = findings
        .iter()
        .filter(|f| waits(f))
        .filter_map(|f| f.cost_ns_per_op)
        .fold(None, |max: Option<f64>, c| {
            Some(max.map_or(c, |m| m.max(c)))
        });
    let title = findings[cause].title.clone();
    if cost.is_some() {
        findings[cause].cost_ns_per_op = cost;
    }
    for f in findings.iter_mut().filter(|f| waits(f)) {
        make_symptom(
            f,
            &title,
            "a write held for the peer's delayed acknowledgement is time the operation waits",
        );
    }
}

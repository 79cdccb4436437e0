//! Blocking findings: a function of the program that holds a runtime thread off the CPU inside
//! a poll for longer per operation than before.
//!
//! Evidence needed: the blocking profile of both sides (wall-time ticks that found a thread
//! inside a poll sleeping or in uninterruptible wait, with the stack). A function is named when
//! its blocked time per operation grew by the threshold and by the relative growth, and beyond
//! the sampling noise (the ticks are counts: Poisson). What the call below it waits on (a
//! lock, `fsync`, a sleep, file I/O) is read from the library frames of the stack, and picks
//! the fix.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{
    Context, Evidence, Finding, FindingKind, WallVerdict, fmt_us, function_identity, short_name,
};
use crate::snapshot::{BlockingFigures, BlockingFunction, file_of};

/// Standard deviations of the tick counts' difference a change must exceed.
pub const BLOCKING_SIGMAS: f64 = 3.0;

/// The evidence line that says whether the call blocked in the baseline already.
const BLOCKED_BEFORE: &str = "this call blocked in the baseline too";

/// Most blocking findings in one report.
const BLOCKING_FINDINGS_MAX: usize = 5;

/// The blocking findings, most blocked time added first.
pub(crate) fn findings(cx: &Context<'_>) -> Vec<Finding> {
    let (Some(b), Some(c)) = (
        &cx.baseline.snapshot.blocking,
        &cx.candidate.snapshot.blocking,
    ) else {
        return Vec::new();
    };
    let keys: BTreeSet<(String, String, String)> =
        b.functions.iter().chain(&c.functions).map(key).collect();
    let mut grown: Vec<(f64, Finding)> = keys
        .iter()
        .filter_map(|k| {
            let after = find(c, k)?;
            let before = find(b, k).or_else(|| renamed_from(b, c, k));
            grew(cx, b, before, c, after)
                .map(|delta| (delta, finding(cx, b, before, c, after, delta)))
        })
        .collect();
    grown.sort_by(|x, y| y.0.total_cmp(&x.0));
    grown.truncate(BLOCKING_FINDINGS_MAX);
    grown.into_iter().map(|(_, f)| f).collect()
}

/// A lock that was already contended in the baseline waits longer whenever anything else slows
/// the threads that hold it, or the machine is busier. Its growth is a symptom, shown after the
/// causes and never a regression, when another regression costs more (a new sync, futures that
/// got larger to copy) or the wall time did not get slower; and it is no finding at all when
/// the wall time did not get slower and nothing else regressed (the waits moved with the
/// machine's load, not with the code). Runs over every stage's findings.
pub(crate) fn mark_symptoms(cx: &Context<'_>, findings: &mut Vec<Finding>) {
    let was_contended = |f: &Finding| f.blocked_call.is_some_and(|c| c.was_contended());
    let slower = cx.wall.is_some_and(|w| w.verdict == WallVerdict::Slower);
    let cost = |f: &Finding| f.cost_ns_per_op.unwrap_or(0.0);
    let cause = findings
        .iter()
        .filter(|f| f.regression && !was_contended(f))
        .max_by(|x, y| cost(x).total_cmp(&cost(y)))
        .map(|f| (cost(f), f.title.clone()));
    findings.retain(|f| slower || cause.is_some() || !was_contended(f));
    for f in findings.iter_mut().filter(|f| was_contended(f)) {
        f.fix = match &cause {
            Some((c, title)) if cost(f) < *c || !slower => {
                format!("likely a symptom of: {title}; fix that first, then compare again")
            }
            _ => continue,
        };
        f.regression = false;
        f.symptom = true;
        f.title
            .push_str(" (a lock contended before, waiting longer)");
    }
}

/// Extra blocked time per operation of both sides' every kind together (negative: less).
pub(crate) fn total_delta(cx: &Context<'_>) -> Option<f64> {
    let b = cx.baseline.snapshot.blocking.as_ref()?;
    let c = cx.candidate.snapshot.blocking.as_ref()?;
    Some(c.ns_per_op() - b.ns_per_op())
}

/// A function matched across builds by what it is: its name without closures and generics,
/// and its file (not its line).
fn key(f: &BlockingFunction) -> (String, String, String) {
    let file = f.location.as_deref().map(file_of).unwrap_or_default();
    let call = f
        .path
        .first()
        .map(|c| function_identity(c))
        .unwrap_or_default();
    (function_identity(&f.function), file.to_string(), call)
}

/// The baseline's function that a candidate function with no counterpart is, renamed (or
/// moved into a helper): the same file and the same call below it, and gone from the
/// candidate.
fn renamed_from<'a>(
    b: &'a BlockingFigures,
    c: &BlockingFigures,
    k: &(String, String, String),
) -> Option<&'a BlockingFunction> {
    b.functions.iter().find(|f| {
        let old = key(f);
        old.1 == k.1 && old.2 == k.2 && find(c, &old).is_none()
    })
}

fn find<'a>(
    side: &'a BlockingFigures,
    k: &(String, String, String),
) -> Option<&'a BlockingFunction> {
    side.functions.iter().find(|f| key(f) == *k)
}

/// A function's blocked time per operation on one side (0 when it did not block there).
fn ns_per_op(f: Option<&BlockingFunction>, side: &BlockingFigures) -> f64 {
    crate::snapshot::per_op(f.map_or(0, |f| f.ns), side.ops)
}

/// The growth of blocked ns per operation, when it is a finding.
fn grew(
    cx: &Context<'_>,
    b: &BlockingFigures,
    before: Option<&BlockingFunction>,
    c: &BlockingFigures,
    after: &BlockingFunction,
) -> Option<f64> {
    let (nb, nc) = (ns_per_op(before, b), ns_per_op(Some(after), c));
    let delta = nc - nb;
    let relative = nb == 0.0 || delta / nb >= cx.thresholds.blocked_growth;
    let big = delta >= cx.thresholds.blocked_ns_per_op;
    (relative && big && beyond_noise(before.map_or(0, |f| f.ticks), b.ops, after.ticks, c.ops))
        .then_some(delta)
}

/// Whether the candidate's tick rate per operation exceeds the baseline's by more than
/// [`BLOCKING_SIGMAS`] Poisson deviations.
fn beyond_noise(ticks_b: u64, ops_b: u64, ticks_c: u64, ops_c: u64) -> bool {
    if ops_b == 0 || ops_c == 0 {
        return false;
    }
    let (ob, oc) = (ops_b as f64, ops_c as f64);
    let (rb, rc) = (ticks_b as f64 / ob, ticks_c as f64 / oc);
    let sd = (ticks_b.max(1) as f64 / (ob * ob) + ticks_c.max(1) as f64 / (oc * oc)).sqrt();
    rc - rb > BLOCKING_SIGMAS * sd
}

/// The finding of one function that blocks longer: its cost is the blocked time added, and the
/// CPU of a new blocking call.
fn finding(
    cx: &Context<'_>,
    b: &BlockingFigures,
    before: Option<&BlockingFunction>,
    c: &BlockingFigures,
    after: &BlockingFunction,
    delta: f64,
) -> Finding {
    let wait = Wait::of(&after.path);
    let call = BlockedCall {
        wait,
        blocked_before: before.is_some_and(|f| f.ns > 0),
    };
    let name = short_name(&function_identity(&after.function));
    let location = after.location.as_deref().unwrap_or("?");
    let kinds = after.kinds[..after.kinds.len().min(3)].join(", ");
    let mut evidence = blocked_evidence(b, before, c, after, call);
    // A new blocking call also brings its CPU (a sync's journal work in the kernel): part of
    // the same cause. A call that blocked before keeps its CPU apart: the function's CPU may
    // have grown for any other reason.
    let cpu = cpu_growth(cx, &after.function).filter(|_| before.is_none_or(|f| f.ns == 0));
    if let Some((cb, cc)) = cpu {
        evidence.push(Evidence::new(
            "CPU per operation, this function",
            fmt_us(cb),
            fmt_us(cc),
        ));
    }
    let cost = delta + cpu.map_or(0.0, |(cb, cc)| (cc - cb).max(0.0));
    Finding {
        kind: FindingKind::Blocking,
        title: format!(
            "`{name}` blocks a runtime thread {} more per operation, {} (task kind {kinds})",
            fmt_us(delta),
            wait.what()
        ),
        evidence,
        sites: vec![format!("`{name}` ({location}){}", path_text(&after.path))],
        // The function's CPU is this finding's only when it took it as its cost (a new call);
        // otherwise a CPU hot spot of the same function stays a finding of its own.
        functions: if cpu.is_some() {
            vec![after.function.clone()]
        } else {
            Vec::new()
        },
        cost_ns_per_op: Some(cost),
        share: None,
        fix: wait.fix().into(),
        // A runtime thread held off the CPU stalls every task queued behind it.
        regression: true,
        symptom: false,
        blocked_call: Some(call),
        counts_per_op: None,
    }
}

/// The function's blocked time and every kind's on both sides, what it waits on, and whether it
/// blocked before.
fn blocked_evidence(
    b: &BlockingFigures,
    before: Option<&BlockingFunction>,
    c: &BlockingFigures,
    after: &BlockingFunction,
    call: BlockedCall,
) -> Vec<Evidence> {
    vec![
        Evidence::new(
            "blocked inside polls per operation, this function",
            fmt_us(ns_per_op(before, b)),
            fmt_us(ns_per_op(Some(after), c)),
        ),
        Evidence::new(
            "blocked inside polls per operation, every task kind",
            fmt_us(b.ns_per_op()),
            fmt_us(c.ns_per_op()),
        ),
        Evidence::new("waits on", "", call.wait.what()),
        Evidence::new(
            BLOCKED_BEFORE,
            if call.blocked_before { "yes" } else { "no" },
            "",
        ),
    ]
}

/// CPU per operation charged to `function` on both sides, when both have a CPU profile.
fn cpu_growth(cx: &Context<'_>, function: &str) -> Option<(f64, f64)> {
    let b = cx.baseline.snapshot.cpu.as_ref()?;
    let c = cx.candidate.snapshot.cpu.as_ref()?;
    let id = function_identity(function);
    let of = |side: &crate::snapshot::CpuFigures| {
        let samples: u64 = side
            .functions
            .iter()
            .filter(|f| function_identity(&f.function) == id)
            .map(|f| f.samples)
            .sum();
        side.samples_to_ns_per_op(samples as f64)
    };
    Some((of(b), of(c)))
}

/// Calls shown below the function: the first two and the blocking call.
const PATH_SHOWN: usize = 2;

/// ` via `a` → `b` → … → `leaf``: the calls below the function, short names.
fn path_text(path: &[String]) -> String {
    let Some((leaf, rest)) = path.split_last() else {
        return String::new();
    };
    let mut names: Vec<String> = rest
        .iter()
        .take(PATH_SHOWN)
        .map(|p| format!("`{}`", short_name(p)))
        .collect();
    if rest.len() > PATH_SHOWN {
        names.push("…".into());
    }
    names.push(format!("`{}`", short_name(leaf)));
    format!(" via {}", names.join(" → "))
}

/// What a blocking finding's call does: what it waits on, and whether it blocked in the
/// baseline too. The finding's evidence says the same in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedCall {
    /// What the stack below the function waits on.
    pub wait: Wait,
    /// True when the call blocked in the baseline already.
    pub blocked_before: bool,
}

impl BlockedCall {
    /// A lock that was already contended in the baseline: its longer wait may be the effect of
    /// another cause (see [`mark_symptoms`]).
    fn was_contended(self) -> bool {
        self.blocked_before && matches!(self.wait, Wait::Lock | Wait::AllocatorLock)
    }
}

/// What a blocked stack waits on, read from the library calls below the program's function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wait {
    /// `fsync`, `fdatasync`, `sync_all`, `sync_data`.
    Sync,
    /// `nanosleep`, `thread::sleep`.
    Sleep,
    /// The C allocator's arena lock.
    AllocatorLock,
    /// A futex: a `Mutex`, `RwLock`, `Condvar`, parking_lot, a channel's blocking receive.
    Lock,
    /// DNS resolution.
    Resolve,
    /// File reads and writes, `open`, `stat`.
    FileIo,
    /// Something else off the CPU.
    Other,
}

impl Wait {
    /// What the calls of `path` (the program's function first) wait on.
    fn of(path: &[String]) -> Wait {
        let has = |words: &[&str]| path.iter().any(|p| words.iter().any(|w| p.contains(w)));
        if has(&["fsync", "fdatasync", "sync_all", "sync_data", "syncfs"]) {
            Wait::Sync
        } else if has(&["nanosleep", "thread::sleep", "thread::functions::sleep"]) {
            Wait::Sleep
        } else if has(&["malloc", "_int_free", "cfree", "realloc"]) && has(&["lock_wait"]) {
            Wait::AllocatorLock
        } else if has(&[
            "futex",
            "Mutex",
            "RwLock",
            "Condvar",
            "park",
            "lock_wait",
            "recv",
        ]) {
            Wait::Lock
        } else if has(&["getaddrinfo", "to_socket_addrs", "lookup_host"]) {
            Wait::Resolve
        } else if has(&[
            "std::fs::",
            "pread",
            "pwrite",
            "__libc_read",
            "__libc_write",
            "open",
        ]) {
            Wait::FileIo
        } else {
            Wait::Other
        }
    }

    /// What it waits on, as the finding's title and evidence say.
    pub fn what(self) -> &'static str {
        match self {
            Wait::Sync => "waiting for the disk to sync",
            Wait::Sleep => "sleeping",
            Wait::AllocatorLock => "waiting for the C allocator's lock",
            Wait::Lock => "waiting for a lock held by another thread",
            Wait::Resolve => "resolving a name",
            Wait::FileIo => "in file I/O",
            Wait::Other => "off the CPU",
        }
    }

    /// The fix to try.
    pub fn fix(self) -> &'static str {
        match self {
            Wait::Sync => {
                "a sync on a runtime thread holds every task queued behind it: move it to \
                 `tokio::task::spawn_blocking` (or a dedicated writer thread), and share one sync \
                 among the writes that arrive together (group commit)"
            }
            Wait::Sleep => {
                "`std::thread::sleep` stops the whole runtime thread: use \
                 `tokio::time::sleep(..).await`, which parks only the task"
            }
            Wait::AllocatorLock => {
                "threads contend for the C allocator's arena lock (memory allocated on one thread \
                 and freed on another, e.g. across `spawn_blocking`): allocate less on that path, \
                 or use an allocator with per-thread caches (mimalloc, jemalloc)"
            }
            Wait::Lock => {
                "a blocking lock is contended between threads and the runtime thread waits for \
                 it: hold it for less (no I/O or long work under it), shard it, or use \
                 `tokio::sync::Mutex` when it must be held across an `.await`"
            }
            Wait::Resolve => {
                "name resolution blocks: resolve once and keep the address, or use \
                 `tokio::net::lookup_host`"
            }
            Wait::FileIo => {
                "blocking file I/O on a runtime thread: use `tokio::fs` or \
                 `tokio::task::spawn_blocking`, or batch the calls"
            }
            Wait::Other => {
                "the call below this function blocks its runtime thread: move it to \
                 `tokio::task::spawn_blocking`, or use its async counterpart"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn what_a_stack_waits_on_comes_from_its_library_calls() {
        let sync = path(&[
            "std::fs::File::sync_all",
            "std::sys::fs::File::fsync",
            "fsync",
        ]);
        assert_eq!(Wait::of(&sync), Wait::Sync);
        let sleep = path(&["std::thread::functions::sleep", "__GI___clock_nanosleep"]);
        assert_eq!(Wait::of(&sleep), Wait::Sleep);
        let lock = path(&["std::sync::poison::mutex::Mutex<T>::lock", "futex_wait"]);
        assert_eq!(Wait::of(&lock), Wait::Lock);
        let arena = path(&["_int_free", "__GI___lll_lock_wait_private", "futex_wait"]);
        assert_eq!(Wait::of(&arena), Wait::AllocatorLock);
        assert_eq!(Wait::of(&path(&["__libc_pread64"])), Wait::FileIo);
        assert_eq!(Wait::of(&[]), Wait::Other);
    }

    #[test]
    fn the_noise_of_tick_counts_is_poisson() {
        // 100 against 130 ticks over the same operations: 2.0 deviations, noise.
        assert!(!beyond_noise(100, 1000, 130, 1000));
        // 100 against 200: 5.8 deviations.
        assert!(beyond_noise(100, 1000, 200, 1000));
        // Nothing against a few ticks is not a change; against 30 it is.
        assert!(!beyond_noise(0, 1000, 3, 1000));
        assert!(beyond_noise(0, 1000, 30, 1000));
        // Per operation: the same ticks over twice the operations are half the rate.
        assert!(!beyond_noise(100, 1000, 200, 2000));
    }
}

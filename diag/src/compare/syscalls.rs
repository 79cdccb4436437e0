//! System call findings: an I/O system call made more often per operation (many small reads
//! or writes, a file opened per request, a connection per call).
//!
//! Evidence needed: the system call counts of both sides, by one counter (`diag-syscount`'s
//! interposers do not see the calls the C library makes inside itself, strace does). A call is
//! named when its count per operation grew by the threshold and by at least one call per
//! operation, and beyond four Poisson deviations of the counts. Where: the program function
//! whose calls grew most on the counter's sampled stacks; without them (strace's counts), the
//! one whose CPU samples in the call's C wrapper grew most. Its cost is the CPU the profiles
//! measured in its calls from that function, or else the extra CPU in system calls shared
//! among the call findings by the calls each adds; for a call that waits for the disk, the
//! larger of that and its wall time off the runtime's threads (see [`super::disk_waits`]).
//! A call no program function is seen making crosses no threshold: the runtime makes `write`s
//! of its own (an `eventfd` write per wake-up of a parked worker) that follow the timing. The
//! pass counts those apart (`write (eventfd)`, never compared).

use std::collections::BTreeSet;

use super::{Context, Evidence, Finding, FindingKind, fmt_count, fmt_us, short_name};
use crate::snapshot::{CpuCategory, CpuFigures, IO_SYSCALLS, SyscallFigures};

/// Poisson deviations of the two counts a change must exceed.
pub const SYSCALL_SIGMAS: f64 = 4.0;

/// Calls per operation below this change are never a finding.
pub const SYSCALL_CHANGE_PER_OP_MIN: f64 = 1.0;

/// The system call findings, most calls added first.
pub(crate) fn findings(cx: &Context<'_>, notes: &mut Vec<String>) -> Vec<Finding> {
    let (Some(b), Some(c)) = (
        &cx.baseline.snapshot.syscalls,
        &cx.candidate.snapshot.syscalls,
    ) else {
        return Vec::new();
    };
    if b.counter != c.counter {
        notes.push(format!(
            "system calls were counted by {} (baseline) and {} (candidate), which see different \
             calls: not compared. Profile both sides again with one xtask",
            b.counter, c.counter
        ));
        return Vec::new();
    }
    let names: BTreeSet<&String> = b.calls.keys().chain(c.calls.keys()).collect();
    let mut grown: Vec<(&str, f64, f64)> = names
        .into_iter()
        .filter(|n| IO_SYSCALLS.contains(&n.as_str()))
        .map(|n| (n.as_str(), b.per_op(n), c.per_op(n)))
        .filter(|&(n, before, after)| grew(cx, b, c, n, before, after))
        .filter(|&(n, before, after)| family_grew(b, c, Family::of(n), after - before))
        .collect();
    grown.sort_by(|x, y| (y.2 - y.1).total_cmp(&(x.2 - x.1)));
    let added: f64 = grown.iter().map(|(_, b, a)| a - b).sum();
    let syscall_cpu = cx.cpu.map(|cpu| cpu.delta(CpuCategory::Syscall).max(0.0));
    let calls: Vec<Call> = grown
        .into_iter()
        .map(|(name, before, after)| Call {
            name,
            before,
            after,
            caller: caller(cx, b, c, name),
        })
        .collect();
    same_site_groups(calls)
        .into_iter()
        .map(|group| {
            let grew: f64 = group.iter().map(|c| c.after - c.before).sum();
            let share = syscall_cpu.map(|cpu| cpu * grew / added.max(f64::MIN_POSITIVE));
            let cost = measured_cost(&group).or(share);
            let names: Vec<&str> = group.iter().map(|c| c.name).collect();
            let disk = super::disk_waits::off_runtime_wall(cx, b, c, &names);
            let mut finding = finding(&group, cost);
            if let Some((evidence, wall)) = disk {
                finding.evidence.push(evidence);
                finding.cost_ns_per_op = Some(finding.cost_ns_per_op.unwrap_or(0.0).max(wall));
            }
            finding
        })
        .collect()
}

/// The extra CPU the profiles measured in the group's calls from the function making them,
/// when it is known for every call: a `connect` costs more than a `close`, so the calls'
/// own time ranks them better than their number does.
fn measured_cost(group: &[Call<'_>]) -> Option<f64> {
    group
        .iter()
        .map(|c| {
            let (before, after) = c.caller.as_ref()?.cpu?;
            Some((after - before).max(0.0))
        })
        .sum()
}

/// Two calls whose growth differs by at most this share of the larger come from one change
/// when one function makes both (an `openat` and its `close`).
pub const SAME_CHANGE_SHARE: f64 = 0.1;

/// One call that grew, and the program function seen making it.
struct Call<'a> {
    name: &'a str,
    before: f64,
    after: f64,
    caller: Option<Caller>,
}

/// The program function making more of a call.
struct Caller {
    function: String,
    location: Option<String>,
    /// Its calls per operation before and after, by the counter's sampled stacks.
    counted: Option<(f64, f64)>,
    /// CPU ns per operation in the call's C wrapper under it, before and after, by the CPU
    /// profiles.
    cpu: Option<(f64, f64)>,
}

/// Who makes more of `name`: by the counter's sampled stacks when both sides have them (a
/// count: a cheap call is seen as surely as a slow one), else by the CPU profiles' samples in
/// the call's wrapper.
fn caller(cx: &Context<'_>, b: &SyscallFigures, c: &SyscallFigures, name: &str) -> Option<Caller> {
    if let Some((function, location, before, after)) = counted_caller(b, c, name) {
        let cpu = cpu_in_wrapper(cx, name, &function);
        return Some(Caller {
            function,
            location,
            counted: Some((before, after)),
            cpu,
        });
    }
    let (function, location, before, after) = caller_that_grew(cx, name)?;
    Some(Caller {
        function,
        location,
        counted: None,
        cpu: Some((before, after)),
    })
}

/// The function whose sampled calls of `name` per operation grew most: (function, location,
/// calls per operation before, after). `None` unless both sides sampled stacks.
fn counted_caller(
    b: &SyscallFigures,
    c: &SyscallFigures,
    name: &str,
) -> Option<(String, Option<String>, f64, f64)> {
    if b.sites.is_empty() || c.sites.is_empty() {
        return None;
    }
    c.sites
        .iter()
        .filter(|s| s.call == name)
        .map(|s| {
            (
                s,
                b.site_per_op(name, &s.function),
                c.site_per_op(name, &s.function),
            )
        })
        .filter(|(_, before, after)| after > before)
        .max_by(|x, y| (x.2 - x.1).total_cmp(&(y.2 - y.1)))
        .map(|(s, before, after)| (s.function.clone(), s.location.clone(), before, after))
}

/// The calls grouped by the function that makes them and a growth within
/// [`SAME_CHANGE_SHARE`]: a file opened per read is one finding, not an `openat` and a `close`.
fn same_site_groups(calls: Vec<Call<'_>>) -> Vec<Vec<Call<'_>>> {
    let mut groups: Vec<Vec<Call<'_>>> = Vec::new();
    for call in calls {
        let delta = call.after - call.before;
        let joins = |group: &Vec<Call<'_>>| {
            let first = &group[0];
            let (d, f) = (first.after - first.before, first.caller.as_ref());
            f.is_some()
                && f.map(|c| &c.function) == call.caller.as_ref().map(|c| &c.function)
                && (d - delta).abs() <= SAME_CHANGE_SHARE * d.max(delta)
        };
        match groups.iter_mut().find(|g| joins(g)) {
            Some(group) => group.push(call),
            None => groups.push(vec![call]),
        }
    }
    groups
}

/// Whether `name`'s count per operation grew by the threshold, by at least
/// [`SYSCALL_CHANGE_PER_OP_MIN`] and beyond [`SYSCALL_SIGMAS`] Poisson deviations.
pub(super) fn grew(
    cx: &Context<'_>,
    b: &SyscallFigures,
    c: &SyscallFigures,
    name: &str,
    before: f64,
    after: f64,
) -> bool {
    let delta = after - before;
    if delta < SYSCALL_CHANGE_PER_OP_MIN
        || (before > 0.0 && delta / before < cx.thresholds.syscall_growth)
    {
        return false;
    }
    let (nb, nc) = (
        b.calls.get(name).copied().unwrap_or(0) as f64,
        c.calls.get(name).copied().unwrap_or(0) as f64,
    );
    let (ob, oc) = (b.ops.max(1) as f64, c.ops.max(1) as f64);
    let sd = (nb.max(1.0) / (ob * ob) + nc.max(1.0) / (oc * oc)).sqrt();
    delta > SYSCALL_SIGMAS * sd
}

/// Whether the calls of `family` together grew by at least half of one call's growth `delta`
/// (and by the minimum change): a call that replaced another of its family (`writev` for
/// `sendto`, `pwritev` for `pwrite64`) is the same work through another door, not more of it.
fn family_grew(b: &SyscallFigures, c: &SyscallFigures, family: Family, delta: f64) -> bool {
    let total = |side: &SyscallFigures| -> f64 {
        IO_SYSCALLS
            .iter()
            .filter(|n| Family::of(n) == family)
            .map(|n| side.per_op(n))
            .sum()
    };
    total(c) - total(b) >= SYSCALL_CHANGE_PER_OP_MIN.max(0.5 * delta)
}

fn finding(group: &[Call<'_>], cost: Option<f64>) -> Finding {
    let first = &group[0];
    let caller = first.caller.as_ref();
    let mut evidence = Vec::new();
    let mut sites = Vec::new();
    for call in group {
        let name = call.name;
        evidence.push(Evidence::new(
            format!("`{name}` calls per operation"),
            fmt_count(call.before),
            fmt_count(call.after),
        ));
        sites.push(match &call.caller {
            Some(caller) => {
                caller_evidence(name, caller, &mut evidence);
                format!(
                    "`{}` ({}) via `{name}`",
                    short_name(&super::function_identity(&caller.function)),
                    caller.location.as_deref().unwrap_or("no line recorded")
                )
            }
            None => format!(
                "`{name}` (neither sampled stacks nor CPU samples in its wrapper say who calls it)"
            ),
        });
    }
    let names: Vec<String> = group.iter().map(|c| format!("`{}`", c.name)).collect();
    let counts: Vec<String> = group
        .iter()
        .map(|c| format!("{} → {}", fmt_count(c.before), fmt_count(c.after)))
        .collect();
    Finding {
        kind: FindingKind::Syscalls,
        title: format!(
            "{} more {} calls per operation ({}){}",
            fmt_count(first.after - first.before),
            names.join(" and "),
            counts.join(", "),
            caller.map_or(String::new(), |c| format!(
                ", from `{}`",
                short_name(&super::function_identity(&c.function))
            ))
        ),
        evidence,
        sites,
        // Calls no program function is seen making may be the runtime's own (an `eventfd`
        // write per wake-up of a parked worker: they follow the timing): shown, not a threshold.
        regression: caller.is_some(),
        functions: caller.map(|c| vec![c.function.clone()]).unwrap_or_default(),
        cost_ns_per_op: cost,
        share: None,
        fix: group_family(group).fix().into(),
        symptom: false,
        blocked_call: None,
        counts_per_op: Some((first.before, first.after)),
    }
}

/// What says that `caller` makes more of `name`: its sampled calls, its CPU in the wrapper.
fn caller_evidence(name: &str, caller: &Caller, evidence: &mut Vec<Evidence>) {
    let function = short_name(&caller.function);
    if let Some((before, after)) = caller.counted {
        evidence.push(Evidence::new(
            format!("`{name}` calls per operation from `{function}` (sampled stacks)"),
            fmt_count(before),
            fmt_count(after),
        ));
    }
    if let Some((before, after)) = caller.cpu {
        evidence.push(Evidence::new(
            format!("CPU per operation in `{name}` called from `{function}`"),
            fmt_us(before),
            fmt_us(after),
        ));
    }
}

/// CPU ns per operation in `name`'s wrapper under `function`, before and after, when both
/// sides have a CPU profile and it grew (a cheap call may have no samples at all: its cost is
/// then a share of the system calls' extra CPU, not zero).
fn cpu_in_wrapper(cx: &Context<'_>, name: &str, function: &str) -> Option<(f64, f64)> {
    let (b, c) = (
        cx.baseline.snapshot.cpu.as_ref()?,
        cx.candidate.snapshot.cpu.as_ref()?,
    );
    let (before, after) = (wrapper_ns(b, name, function), wrapper_ns(c, name, function));
    (after > before).then_some((before, after))
}

/// CPU ns per operation a side's profile saw in `name`'s wrapper under `function`.
fn wrapper_ns(side: &CpuFigures, name: &str, function: &str) -> f64 {
    let samples: u64 = side
        .syscall_callers
        .iter()
        .filter(|s| s.function == function && wraps(&s.wrapper, name))
        .map(|s| s.samples)
        .sum();
    side.samples_to_ns_per_op(samples as f64)
}

/// The program function whose CPU in `name`'s wrapper grew most: (function, location, ns/op
/// before, after).
fn caller_that_grew(cx: &Context<'_>, name: &str) -> Option<(String, Option<String>, f64, f64)> {
    let (b, c) = (
        cx.baseline.snapshot.cpu.as_ref()?,
        cx.candidate.snapshot.cpu.as_ref()?,
    );
    c.syscall_callers
        .iter()
        .filter(|s| wraps(&s.wrapper, name))
        .map(|s| {
            (
                s,
                wrapper_ns(b, name, &s.function),
                wrapper_ns(c, name, &s.function),
            )
        })
        .filter(|(_, before, after)| after > before)
        .max_by(|x, y| (x.2 - x.1).total_cmp(&(y.2 - y.1)))
        .map(|(s, before, after)| (s.function.clone(), s.location.clone(), before, after))
}

/// The C library's wrappers named after a call they make through another system call: glibc's
/// `recv` is the `recvfrom` system call, `send` is `sendto`, `open` is `openat`.
const WRAPPER_CALLS: [(&str, &str); 5] = [
    ("recv", "recvfrom"),
    ("send", "sendto"),
    ("open", "openat"),
    ("open64", "openat"),
    ("fstat64", "fstat"),
];

/// Whether a C wrapper (`__libc_sendto`, `__GI___libc_write`, `__send`) makes system call
/// `name`.
fn wraps(wrapper: &str, name: &str) -> bool {
    let bare = wrapper
        .trim_start_matches('_')
        .trim_start_matches("GI_")
        .trim_start_matches('_')
        .trim_start_matches("libc_");
    bare == name
        || bare.trim_end_matches("64") == name.trim_end_matches("64")
        || WRAPPER_CALLS.contains(&(bare, name))
}

/// The family of a group's calls: a connection's when any of them opens or shuts one (a
/// `close` beside a `shutdown` closes a socket, not a file), else the first call's.
fn group_family(group: &[Call<'_>]) -> Family {
    if group
        .iter()
        .any(|c| Family::of(c.name) == Family::Connection)
    {
        return Family::Connection;
    }
    Family::of(group[0].name)
}

/// Which kind of work a system call does, for the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Write,
    Read,
    Sync,
    File,
    Connection,
    /// A socket's options or addresses set or asked (`setsockopt`, `getpeername`).
    SocketQuery,
}

impl Family {
    fn of(name: &str) -> Family {
        match name {
            n if n.starts_with("fsync") || n.starts_with("fdatasync") || n.starts_with("sync_") => {
                Family::Sync
            }
            n if n.contains("write") || n.starts_with("send") => Family::Write,
            n if n.contains("read") || n.starts_with("recv") => Family::Read,
            "connect" | "accept4" | "socket" | "shutdown" => Family::Connection,
            "setsockopt" | "getsockopt" | "getpeername" | "getsockname" => Family::SocketQuery,
            _ => Family::File,
        }
    }

    fn fix(self) -> &'static str {
        match self {
            Family::Write => {
                "write through a buffer larger than a message (`BufWriter` with enough capacity, \
                 flushed once per message), or gather a message's parts into one \
                 `write_vectored`: many small writes cost a system call each"
            }
            Family::Read => {
                "read through a buffer larger than a message (`BufReader` with enough capacity), or \
                 read a known length at once (`read_exact` into the whole buffer): many small \
                 reads cost a system call each"
            }
            Family::Sync => {
                "sync only where durability is asked for, and share one sync among the writes \
                 that arrive together (group commit): each sync waits for the disk"
            }
            Family::File => {
                "keep the file open and reuse its handle, cache what its metadata says: files \
                 opened, closed or looked up per operation cost a path lookup each"
            }
            Family::Connection => {
                "keep connections open and reuse them (a pool): connections made per operation \
                 cost a handshake each"
            }
            Family::SocketQuery => {
                "set a socket's options once, when the connection is made, and keep what you ask \
                 of it (its peer's address): each ask per request is a system call"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_wrappers_are_matched_to_their_system_calls() {
        assert!(wraps("__libc_sendto", "sendto"));
        assert!(wraps("__send", "sendto"));
        assert!(wraps("__GI___libc_write", "write"));
        assert!(wraps("__libc_pread64", "pread64"));
        assert!(wraps("pread64", "pread64"));
        assert!(!wraps("__libc_recvfrom", "sendto"));
        assert!(wraps("__libc_recv", "recvfrom"), "glibc's recv is recvfrom");
        assert!(!wraps("__libc_read", "readv"));
        assert!(!wraps("__libc_write", "pwrite64"));
    }

    #[test]
    fn a_call_that_replaced_another_of_its_family_is_no_growth() {
        let figures = |calls: &[(&str, u64)]| SyscallFigures {
            ops: 100,
            calls: calls.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
            ..SyscallFigures::default()
        };
        let before = figures(&[("sendto", 1_670), ("pwrite64", 133)]);
        let switched = figures(&[("sendto", 1_576), ("writev", 160), ("pwritev", 134)]);
        assert!(!family_grew(&before, &switched, Family::Write, 1.60));
        let more = figures(&[("sendto", 1_670), ("pwrite64", 133), ("writev", 300)]);
        assert!(family_grew(&before, &more, Family::Write, 3.0));
    }

    #[test]
    fn calls_one_function_adds_as_often_are_one_finding() {
        const GET: &str = "app::store::log::FragmentLog::get";
        let call = |name, delta: f64, caller: Option<&str>| Call {
            name,
            before: 0.1,
            after: 0.1 + delta,
            caller: caller.map(|f| Caller {
                function: f.to_string(),
                location: Some(format!("{f}.rs:1")),
                counted: None,
                cpu: Some((0.0, 1.0)),
            }),
        };
        let groups = same_site_groups(vec![
            call("close", 6.11, Some(GET)),
            call("openat", 6.10, Some(GET)),
            call("fstat", 3.0, Some(GET)),
            call("sendto", 6.1, Some("conn::write")),
            call("write", 6.1, None),
            call("read", 6.1, None),
        ]);
        let names: Vec<Vec<&str>> = groups
            .iter()
            .map(|g| g.iter().map(|c| c.name).collect())
            .collect();
        assert_eq!(
            names,
            [
                vec!["close", "openat"],
                vec!["fstat"],
                vec!["sendto"],
                vec!["write"],
                vec!["read"]
            ],
            "same function and growth join; another growth, another function or no known \
             caller stay apart"
        );
        let f = finding(&groups[0], Some(2_000.0));
        assert!(
            f.title
                .starts_with("6.11 more `close` and `openat` calls per operation (0.10 → 6.21, 0.10 → 6.20), from `FragmentLog::get`"),
            "{}",
            f.title
        );
        assert_eq!(f.sites.len(), 2, "{:?}", f.sites);
        assert!(f.fix.starts_with("keep the file open"), "{}", f.fix);
        assert_eq!(
            measured_cost(&groups[0]),
            Some(2.0),
            "each call's own extra CPU"
        );
        assert_eq!(
            measured_cost(&groups[3]),
            None,
            "a call nobody is seen making"
        );
        let closed = same_site_groups(vec![
            call("close", 7.37, Some(GET)),
            call("shutdown", 7.37, Some(GET)),
        ]);
        assert!(
            finding(&closed[0], None)
                .fix
                .starts_with("keep connections open"),
            "a close beside a shutdown closes a socket"
        );
    }

    #[test]
    fn the_fix_follows_what_the_call_does() {
        assert_eq!(Family::of("sendto"), Family::Write);
        assert_eq!(Family::of("pwrite64"), Family::Write);
        assert_eq!(Family::of("recvfrom"), Family::Read);
        assert_eq!(Family::of("fdatasync"), Family::Sync);
        assert_eq!(Family::of("openat"), Family::File);
        assert_eq!(Family::of("connect"), Family::Connection);
        assert_eq!(Family::of("getpeername"), Family::SocketQuery);
        assert_eq!(Family::of("setsockopt"), Family::SocketQuery);
    }
}

//! System call counts of a run, from `diag-syscount`'s counts (an `LD_PRELOAD` library counting
//! the C library's I/O wrappers), or from `strace -f -y`'s trace or `strace -c`'s summary table:
//! calls and errors per system call, per operation. Counts, like allocations, repeat from run
//! to run far better than times do, so "many small reads or writes" is a change of a count.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The system calls a program makes for I/O and files (and connections): the ones whose count
/// says how the program talks to the kernel, and the ones `diag-syscount` counts. Scheduling and
/// memory calls (`futex`, `sched_yield`, `epoll_wait`, `mmap`, `madvise`...) follow the timing of
/// the run, not the code, and are kept in the figures but never compared.
pub use diag_preload::{IO_SYSCALLS, TCP_WRITES_NAGLE, TCP_WRITES_NODELAY};

/// System call counts of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyscallFigures {
    /// Operations of the traced run.
    pub ops: u64,
    /// Calls per system call.
    pub calls: BTreeMap<String, u64>,
    /// Calls that returned an error, per system call.
    pub errors: BTreeMap<String, u64>,
    /// The summary table, relative to the snapshot directory.
    pub file: String,
    /// What counted them ([`COUNTER_SYSCOUNT`] or [`COUNTER_STRACE`]): the two see different
    /// calls (strace also the C library's own), so only counts of one counter compare.
    #[serde(default = "strace_counter")]
    pub counter: String,
    /// Which program functions make the calls, from the counter's sampled stacks (empty for
    /// strace's counts), most calls first.
    #[serde(default)]
    pub sites: Vec<super::SyscallSite>,
    /// Wall nanoseconds inside the calls the counter times (those that wait for the disk:
    /// `fsync`, `fdatasync`, `sync_file_range`), per system call.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub wall_ns: BTreeMap<String, u64>,
}

/// The counter of the interposing library, `diag-syscount`.
pub const COUNTER_SYSCOUNT: &str = "diag-syscount";

/// The counter of snapshots made under `strace` (every snapshot before the library).
pub const COUNTER_STRACE: &str = "strace";

fn strace_counter() -> String {
    COUNTER_STRACE.into()
}

/// Counts, a summary or a trace that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("not system call counts, nor strace's summary or trace: {0}")]
pub struct StraceSummaryError(pub(crate) String);

impl SyscallFigures {
    /// Reads the counts `diag-syscount` wrote (`diag-syscalls 1`, then `call CALLS ERRORS
    /// NAME` lines) of a run of `ops` operations. Counts cut short (no header, a line that is
    /// not a call) are an error, never a zero.
    pub fn from_syscount(text: &str, ops: u64) -> Result<SyscallFigures, StraceSummaryError> {
        let mut lines = text.lines();
        if lines.next() != Some("diag-syscalls 1") {
            return Err(StraceSummaryError(
                "the first line is not `diag-syscalls 1`".into(),
            ));
        }
        let mut figures = SyscallFigures {
            ops,
            counter: COUNTER_SYSCOUNT.into(),
            ..SyscallFigures::default()
        };
        for line in lines {
            if let Some(row) = line.strip_prefix("wall ") {
                let (ns, name) = row
                    .split_once(' ')
                    .and_then(|(ns, name)| Some((ns.parse::<u64>().ok()?, name)))
                    .ok_or_else(|| {
                        StraceSummaryError(format!("a wall line cut short: {line:?}"))
                    })?;
                figures.wall_ns.insert(name.to_string(), ns);
                continue;
            }
            let Some(row) = line.strip_prefix("call ") else {
                continue;
            };
            let (calls, errors, name) = parse_call_row(row)
                .ok_or_else(|| StraceSummaryError(format!("a call line cut short: {line:?}")))?;
            figures.calls.insert(name.to_string(), calls);
            if errors > 0 {
                figures.errors.insert(name.to_string(), errors);
            }
        }
        if figures.calls.is_empty() {
            return Err(StraceSummaryError(
                "no system calls counted (was the library loaded?)".into(),
            ));
        }
        Ok(figures)
    }

    /// Reads `strace -c`'s table (`% time  seconds  usecs/call  calls  errors syscall`, one
    /// row per call, a `total` row last) of a run of `ops` operations.
    pub fn from_strace_summary(text: &str, ops: u64) -> Result<SyscallFigures, StraceSummaryError> {
        if !text
            .lines()
            .any(|l| l.contains("calls") && l.contains("syscall"))
        {
            return Err(StraceSummaryError(
                "no header line with `calls` and `syscall`".into(),
            ));
        }
        let mut figures = SyscallFigures {
            ops,
            counter: COUNTER_STRACE.into(),
            ..SyscallFigures::default()
        };
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some((name, numbers)) = words.split_last() else {
                continue;
            };
            // `% time, seconds, usecs/call, calls[, errors]`; the header and rule lines fail.
            let values: Option<Vec<f64>> = numbers.iter().map(|n| n.parse().ok()).collect();
            let Some(values) = values.filter(|v| (4..=5).contains(&v.len())) else {
                continue;
            };
            if *name == "total" {
                continue;
            }
            figures.calls.insert(name.to_string(), values[3] as u64);
            if let Some(&errors) = values.get(4) {
                figures.errors.insert(name.to_string(), errors as u64);
            }
        }
        if figures.calls.is_empty() {
            return Err(StraceSummaryError("no rows".into()));
        }
        Ok(figures)
    }

    /// Reads the trace `strace -f -y` wrote (`PID name(fd<what>, ...) = result`, a call cut by
    /// another thread's as `<unfinished ...>` and `<... name resumed>`) of a run of `ops`
    /// operations. A call on an anonymous inode (`write(5<anon_inode:[eventfd]>, ...)`: one
    /// thread waking another, which follows the timing of the run, not the code) is counted
    /// under its own name, `write (eventfd)`, so only calls on files and sockets compare as I/O.
    pub fn from_strace_trace(text: &str, ops: u64) -> Result<SyscallFigures, StraceSummaryError> {
        let mut figures = SyscallFigures {
            ops,
            counter: COUNTER_STRACE.into(),
            ..SyscallFigures::default()
        };
        // The call each thread has unfinished, for the error its resumption returns.
        let mut unfinished: BTreeMap<&str, String> = BTreeMap::new();
        for line in text.lines() {
            let (pid, rest) = match line.split_once(' ') {
                Some((pid, rest)) if pid.bytes().all(|b| b.is_ascii_digit()) => {
                    (pid, rest.trim_start())
                }
                _ => ("", line),
            };
            if rest.starts_with("<...") {
                if let Some(key) = unfinished.remove(pid)
                    && is_error(rest)
                {
                    *figures.errors.entry(key).or_default() += 1;
                }
                continue;
            }
            let Some(key) = call_key(rest) else {
                continue;
            };
            count(&mut figures.calls, &key);
            if rest.ends_with("<unfinished ...>") {
                unfinished.insert(pid, key.into_owned());
            } else if is_error(rest) {
                count(&mut figures.errors, &key);
            }
        }
        if figures.calls.is_empty() {
            return Err(StraceSummaryError("no system calls in the trace".into()));
        }
        Ok(figures)
    }

    /// Calls of `name` per operation.
    pub fn per_op(&self, name: &str) -> f64 {
        super::per_op(self.calls.get(name).copied().unwrap_or(0), self.ops)
    }

    /// Wall nanoseconds per operation inside `name`, when the counter timed it.
    pub fn wall_per_op(&self, name: &str) -> Option<f64> {
        let ns = *self.wall_ns.get(name)?;
        Some(ns as f64 / self.ops.max(1) as f64)
    }
}

/// `CALLS ERRORS NAME` (the name may hold a space: `write (eventfd)`).
fn parse_call_row(row: &str) -> Option<(u64, u64, &str)> {
    let (calls, rest) = row.split_once(' ')?;
    let (errors, name) = rest.split_once(' ')?;
    let name = name.trim();
    (!name.is_empty()).then_some(())?;
    Some((calls.parse().ok()?, errors.parse().ok()?, name))
}

/// Adds one to `key`'s count, allocating its name only the first time (a trace has hundreds of
/// thousands of lines and a few dozen names).
fn count(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_string(), 1);
        }
    }
}

/// The name a traced call is counted under: the system call's, with the kind of anonymous
/// inode its first argument is (`write (eventfd)`); `None` for a line that is no call (a
/// signal, an exit).
fn call_key(call: &str) -> Option<Cow<'_, str>> {
    let (name, args) = call.split_once('(')?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let first = args.split([',', ')']).next().unwrap_or("");
    Some(match first.split_once("<anon_inode:") {
        Some((_, inode)) => {
            let kind = inode.trim_start_matches('[').split([']', '>']).next();
            Cow::Owned(format!("{name} ({})", kind.unwrap_or("anon_inode")))
        }
        None => Cow::Borrowed(name),
    })
}

/// Whether a call's line ends with an error return (`= -1 EAGAIN (...)`).
fn is_error(line: &str) -> bool {
    line.rsplit_once(" = ")
        .is_some_and(|(_, result)| result.starts_with("-1 E"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interposers_counts_are_read_and_counts_cut_short_are_an_error() {
        let text = "\
diag-syscalls 1
reason exit
pid 4711
call 6916 12 sendto
call 1089 0 pwrite64
call 3021 0 write (eventfd)
";
        let figures = SyscallFigures::from_syscount(text, 100).expect("counts");
        assert_eq!(figures.counter, COUNTER_SYSCOUNT);
        assert_eq!(figures.calls["sendto"], 6916);
        assert_eq!(figures.errors["sendto"], 12);
        assert!(!figures.errors.contains_key("pwrite64"));
        assert_eq!(figures.calls["write (eventfd)"], 3021);
        assert_eq!(figures.per_op("pwrite64"), 10.89);
        let cut = "diag-syscalls 1\nreason exit\ncall 6916";
        let error = SyscallFigures::from_syscount(cut, 100).expect_err("a line cut short");
        assert!(error.to_string().contains("cut short"), "{error}");
        assert!(SyscallFigures::from_syscount("diag-syscalls 1\nreason exit\n", 1).is_err());
        assert!(SyscallFigures::from_syscount("diag-moves 1\ncall 1 0 read\n", 1).is_err());
    }

    #[test]
    fn strace_summary_rows_with_and_without_errors_are_read() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ------------------
 93.16   10.101384        1571      6426        63 futex
  1.83    0.198487          28      6916           sendto
  0.47    0.051159          46      1089           pwrite64
------ ----------- ----------- --------- --------- ------------------
100.00   10.842875         400     27088       419 total
";
        let figures = SyscallFigures::from_strace_summary(text, 100).expect("a summary");
        assert_eq!(figures.calls["sendto"], 6916);
        assert_eq!(figures.calls["futex"], 6426);
        assert_eq!(figures.errors["futex"], 63);
        assert!(!figures.calls.contains_key("total"));
        assert_eq!(figures.per_op("pwrite64"), 10.89);
        assert!(SyscallFigures::from_strace_summary("Killed\n", 1).is_err());
    }

    #[test]
    fn a_trace_counts_calls_on_sockets_and_files_apart_from_wakeups_of_other_threads() {
        let text = "\
15343 sendto(12<socket:[4411]>, \"\"..., 61, 0, NULL, 0) = 61
15343 write(5<anon_inode:[eventfd]>, \"\"..., 8) = 8
15344 recvfrom(13<socket:[4412]>, \"\"..., 8192, 0, NULL, NULL) = -1 EAGAIN (Resource temporarily unavailable)
15345 pread64(9</tmp/node-0/fragments.log>, \"\"..., 4096, 0 <unfinished ...>
15343 write(1<pipe:[77]>, \"\"..., 40) = 40
15345 <... pread64 resumed>) = -1 EIO (Input/output error)
15344 --- SIGPROF {si_signo=SIGPROF, si_code=SI_KERNEL} ---
15344 +++ exited with 0 +++
";
        let figures = SyscallFigures::from_strace_trace(text, 2).expect("a trace");
        let calls: Vec<(&str, u64)> = figures
            .calls
            .iter()
            .map(|(name, n)| (name.as_str(), *n))
            .collect();
        assert_eq!(
            calls,
            [
                ("pread64", 1),
                ("recvfrom", 1),
                ("sendto", 1),
                ("write", 1),
                ("write (eventfd)", 1)
            ]
        );
        assert_eq!(figures.errors["recvfrom"], 1);
        assert_eq!(figures.errors["pread64"], 1, "the error of a resumed call");
        assert_eq!(figures.per_op("write"), 0.5);
        assert!(SyscallFigures::from_strace_trace("Killed\n", 1).is_err());
    }
}

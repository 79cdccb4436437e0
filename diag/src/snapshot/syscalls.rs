//! System call counts of a run, from `strace -f -c`'s summary table: calls and errors per
//! system call, per operation. Counts, like allocations, repeat from run to run far better than
//! times do, so "many small reads or writes" is a change of a count.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The system calls a program makes for I/O and files (and connections): the ones whose count
/// says how the program talks to the kernel. Scheduling and memory calls (`futex`,
/// `sched_yield`, `epoll_wait`, `mmap`, `madvise`...) follow the timing of the run, not the
/// code, and are kept in the figures but never compared.
pub const IO_SYSCALLS: [&str; 34] = [
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendmmsg",
    "recvmmsg",
    "fsync",
    "fdatasync",
    "sync_file_range",
    "openat",
    "open",
    "close",
    "statx",
    "newfstatat",
    "fstat",
    "lseek",
    "ftruncate",
    "fallocate",
    "unlinkat",
    "renameat2",
    "connect",
    "accept4",
    "socket",
    "shutdown",
];

/// System call counts of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallFigures {
    /// Operations of the traced run.
    pub ops: u64,
    /// Calls per system call.
    pub calls: BTreeMap<String, u64>,
    /// Calls that returned an error, per system call.
    pub errors: BTreeMap<String, u64>,
    /// The summary table, relative to the snapshot directory.
    pub file: String,
}

/// A summary that is not `strace -c`'s table.
#[derive(Debug, thiserror::Error)]
#[error("not an `strace -c` summary: {0}")]
pub struct StraceSummaryError(String);

impl SyscallFigures {
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

    /// Calls of `name` per operation.
    pub fn per_op(&self, name: &str) -> f64 {
        super::per_op(self.calls.get(name).copied().unwrap_or(0), self.ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

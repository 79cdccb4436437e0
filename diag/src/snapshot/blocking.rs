//! Blocking figures from a blocking profile (`blocking.folded` and `blocking.json`): wall time
//! off the CPU inside polls, per task kind and by the program's own function that blocked.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::cpu::{charged_function, parse_frame};
use super::file_of;
use crate::blocking::{Blocked, BlockingSummary, SamplerCost};

/// Most blocking functions kept per snapshot, by time.
pub const BLOCKING_FUNCTIONS_MAX: usize = 40;

/// Frames kept below a blocking function: enough to tell what the call waits on (a lock's
/// frames sit between the library call and the system call).
const PATH_FRAMES_MAX: usize = 24;

/// Where the program blocked: its own innermost function, and the library calls below it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockingFunction {
    /// The program's innermost function on the blocked stacks.
    pub function: String,
    /// Its file and line (of the call, on the stack with the most time).
    pub location: Option<String>,
    /// The calls below it on that stack, outermost first, down to the blocking call
    /// (`std::fs::File::sync_all`, ..., `fsync`); at most a few, the leaf always kept.
    pub path: Vec<String>,
    /// The task kinds it blocked in, most time first.
    pub kinds: Vec<String>,
    /// Wall time blocked, nanoseconds.
    pub ns: u64,
    /// Sampler ticks that found it blocked (about `ns` × hz).
    pub ticks: u64,
}

/// A blocking profile of one run, summarized.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlockingFigures {
    /// Operations of the profiled run.
    pub ops: u64,
    /// Sampler ticks per second.
    pub hz: u32,
    /// Blocked time per task kind.
    pub kinds: BTreeMap<String, Blocked>,
    /// Blocking functions, most time first (at most [`BLOCKING_FUNCTIONS_MAX`]).
    pub functions: Vec<BlockingFunction>,
    /// Blocked time whose stack never arrived.
    pub unknown_stack_ns: u64,
    /// The folded stacks, relative to the snapshot directory.
    pub folded_file: String,
    /// The flamegraph, relative to the snapshot directory.
    pub flamegraph_file: Option<String>,
    /// What the profile cost the process; absent in snapshots taken before it was measured.
    #[serde(default)]
    pub cost: Option<SamplerCost>,
}

impl BlockingFigures {
    /// The figures of a run of `ops` operations: `folded` from `blocking.folded` (counts in
    /// µs), `summary` from `blocking.json`.
    pub fn new(folded: &str, summary: &BlockingSummary, ops: u64) -> BlockingFigures {
        let tick_ns = 1e9 / f64::from(summary.hz.max(1));
        let mut by_function: HashMap<(String, Option<String>, Option<String>), Accumulated> =
            HashMap::new();
        for (frames, us) in super::cpu::folded_stacks(folded) {
            let Some((kind, frames)) = frames.split_first() else {
                continue;
            };
            let (function, location) = charged_function(frames);
            let path = path_below(frames, &function);
            // A site is the function, its file (not its line: a moved line is the same site)
            // and the call it blocked in (a new lock in a function that blocked before is a
            // new site).
            let key = (
                function,
                location.as_deref().map(|l| file_of(l).to_string()),
                path.first().cloned(),
            );
            by_function
                .entry(key)
                .or_default()
                .add(us * 1000, kind, location, path);
        }
        let mut functions: Vec<BlockingFunction> = by_function
            .into_iter()
            .map(|((function, _, _), acc)| acc.into_function(function, tick_ns))
            .collect();
        functions.sort_by(|a, b| b.ns.cmp(&a.ns).then_with(|| a.function.cmp(&b.function)));
        functions.truncate(BLOCKING_FUNCTIONS_MAX);
        BlockingFigures {
            ops,
            hz: summary.hz,
            kinds: summary.kinds.clone(),
            functions,
            unknown_stack_ns: summary.unknown_stack_ns,
            folded_file: String::new(),
            flamegraph_file: None,
            cost: summary.cost,
        }
    }

    /// Blocked time per operation of every kind together, nanoseconds.
    pub fn ns_per_op(&self) -> f64 {
        super::per_op(self.kinds.values().map(|b| b.ns).sum(), self.ops)
    }

    /// Blocked time per operation of one kind, nanoseconds.
    pub fn kind_ns_per_op(&self, kind: &str) -> f64 {
        super::per_op(self.kinds.get(kind).map_or(0, |b| b.ns), self.ops)
    }
}

/// One function's stacks, added up.
#[derive(Default)]
struct Accumulated {
    ns: u64,
    kinds: HashMap<String, u64>,
    /// The location and path of its stack with the most time.
    top: Option<(u64, Option<String>, Vec<String>)>,
}

impl Accumulated {
    fn add(&mut self, ns: u64, kind: &str, location: Option<String>, path: Vec<String>) {
        self.ns += ns;
        *self.kinds.entry(kind.to_string()).or_default() += ns;
        if self.top.as_ref().is_none_or(|(top, _, _)| ns > *top) {
            self.top = Some((ns, location, path));
        }
    }

    fn into_function(self, function: String, tick_ns: f64) -> BlockingFunction {
        let mut kinds: Vec<(String, u64)> = self.kinds.into_iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let (_, location, path) = self.top.unwrap_or_default();
        BlockingFunction {
            function,
            location,
            path,
            kinds: kinds.into_iter().map(|(k, _)| k).collect(),
            ns: self.ns,
            ticks: (self.ns as f64 / tick_ns).round() as u64,
        }
    }
}

/// The function names below the charged function, outermost first: the first few and the leaf.
fn path_below(frames: &[&str], function: &str) -> Vec<String> {
    let names: Vec<&str> = frames.iter().map(|f| parse_frame(f).0).collect();
    let below = match names.iter().rposition(|n| *n == function) {
        Some(at) => &names[at + 1..],
        None => &names[..0],
    };
    let mut path: Vec<String> = below
        .iter()
        .take(PATH_FRAMES_MAX - 1)
        .map(|n| n.to_string())
        .collect();
    if below.len() >= PATH_FRAMES_MAX
        && let Some(leaf) = below.last()
    {
        path.push(leaf.to_string());
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_stack_is_charged_to_the_programs_innermost_function_with_its_calls_below() {
        let folded = "gateway.put;tokio::runtime::task::poll;app::gateway::put (app/src/gateway.rs:40);\
                      app::audit::append (app/src/audit.rs:12);std::fs::File::sync_data \
                      (library/std/src/fs.rs:900);fdatasync 3000\n\
                      node.put;app::audit::append (app/src/audit.rs:14);std::fs::File::sync_data;fdatasync 1000\n";
        let mut kinds = BTreeMap::new();
        kinds.insert(
            "gateway.put".to_string(),
            Blocked {
                ticks: 3,
                ns: 3_000_000,
            },
        );
        let summary = BlockingSummary {
            version: crate::blocking::BLOCKING_SUMMARY_VERSION,
            hz: 1000,
            duration_ns: 1,
            kinds,
            unknown_stack_ns: 0,
            threads_unsampled: 0,
            cost: None,
        };
        let figures = BlockingFigures::new(folded, &summary, 10);
        assert_eq!(
            figures.functions.len(),
            1,
            "two lines of one function and file: {figures:?}"
        );
        let f = &figures.functions[0];
        assert_eq!(f.function, "app::audit::append");
        assert_eq!(f.location.as_deref(), Some("app/src/audit.rs:12"));
        assert_eq!(f.path, ["std::fs::File::sync_data", "fdatasync"]);
        assert_eq!(f.kinds, ["gateway.put", "node.put"]);
        assert_eq!((f.ns, f.ticks), (4_000_000, 4));
        assert_eq!(figures.kind_ns_per_op("gateway.put"), 300_000.0);
    }
}

//! Tasks spawned per call: an allocation site whose stack goes through one of tokio's spawn
//! functions is a place that spawns a task (each spawn allocates its task's cell once), so its
//! allocations per operation are the tasks it spawns per operation.
//!
//! Evidence needed: the spawn function in the frames between the program's function and the
//! allocator (`HeapSite::via`). A site that only allocates blocks the size of a task, or that
//! spawns through a function not listed here (a wrapper crate's), is an ordinary allocation
//! site: reported, but not called a spawn. A task spawned per call costs more than its
//! allocation (it is scheduled, woken and joined; on the blocking pool, handed to another
//! thread): the allocator's share is only the part the heap profile can price.

use super::names::short_name;
use super::{Context, Evidence, Finding, FindingKind, fmt_bytes, fmt_count};
use crate::snapshot::{CpuCategory, HeapSite, MoveFigures, per_op};

/// Where `spawn_blocking` runs its tasks.
const BLOCKING_POOL: &str = "the blocking pool";

/// The spawn functions, with what they spawn on.
const SPAWNS: [(&str, &str); 6] = [
    (
        "tokio::runtime::blocking::pool::spawn_blocking",
        BLOCKING_POOL,
    ),
    ("tokio::task::blocking::spawn_blocking", BLOCKING_POOL),
    (
        "tokio::task::join_set::JoinSet<T>::spawn",
        "the runtime (a JoinSet)",
    ),
    ("tokio::task::spawn::spawn", "the runtime"),
    ("tokio::task::local::spawn_local", "the local set"),
    ("tokio::runtime::handle::Handle::spawn", "the runtime"),
];

/// Where tokio moves a spawned future into its new task (the task's cell, its stage, the
/// closure that carries it to the scheduler): the copy tracer charges those copies to tokio's
/// functions, and they are the spawn's cost, not a cause of their own.
const TASK_COPY_FUNCTIONS: [&str; 4] = [
    "tokio::runtime::task::",
    "tokio::task::spawn::",
    "tokio::runtime::context::current::with_current",
    "tokio::runtime::blocking::pool::",
];

/// The copies into new tasks, both sides, per operation.
pub(super) struct TaskCopies {
    /// The candidate's functions that made them (claimed whole by the spawn findings).
    pub functions: Vec<String>,
    pub before: f64,
    pub after: f64,
}

impl TaskCopies {
    /// Both sides' copies into new tasks, when both have a copy trace.
    pub fn of(cx: &Context<'_>) -> Option<TaskCopies> {
        let b = cx.baseline.snapshot.moves.as_ref()?;
        let c = cx.candidate.snapshot.moves.as_ref()?;
        Some(TaskCopies {
            functions: task_copy_functions(c).map(|(f, _)| f.to_string()).collect(),
            before: task_copy_functions(b)
                .map(|(_, bytes)| per_op(bytes, b.ops))
                .sum(),
            after: task_copy_functions(c)
                .map(|(_, bytes)| per_op(bytes, c.ops))
                .sum(),
        })
    }

    /// Their evidence line.
    pub fn evidence(&self) -> Evidence {
        Evidence::new(
            "bytes copied into new tasks per operation",
            fmt_bytes(self.before),
            fmt_bytes(self.after),
        )
    }

    /// Their share of the extra CPU in `memcpy`: the growth of these copies over the growth
    /// of all large copies.
    pub fn cost(&self, cx: &Context<'_>) -> Option<f64> {
        let (b, c) = (
            cx.baseline.snapshot.moves.as_ref()?,
            cx.candidate.snapshot.moves.as_ref()?,
        );
        let large_delta = c.large_bytes_per_op() - b.large_bytes_per_op();
        let grown = self.after - self.before;
        let memcpy = cx.cpu?.delta(CpuCategory::Copy).max(0.0);
        (large_delta > 0.0 && grown > 0.0).then(|| memcpy * (grown / large_delta).min(1.0))
    }
}

/// The functions of `moves` that copy into new tasks, with their bytes.
fn task_copy_functions(moves: &MoveFigures) -> impl Iterator<Item = (&str, u64)> {
    let is_task_copy = |f: &str| TASK_COPY_FUNCTIONS.iter().any(|p| f.starts_with(p));
    let from_functions = moves
        .functions
        .iter()
        .filter(move |f| is_task_copy(&f.function))
        .map(|f| (f.function.as_str(), f.bytes));
    // Older snapshots have sites only.
    let from_sites = moves
        .sites
        .iter()
        .filter(move |s| moves.functions.is_empty() && is_task_copy(&s.function))
        .map(|s| (s.function.as_str(), s.bytes));
    from_functions.chain(from_sites)
}

/// Where the tasks of `site` are spawned, when its stack goes through a spawn function (the
/// blocking pool first: `spawn_blocking` also goes through the runtime's handle).
pub(super) fn spawned_on(site: &HeapSite) -> Option<&'static str> {
    SPAWNS
        .iter()
        .find(|(function, _)| site.via.iter().any(|v| v.starts_with(function)))
        .map(|&(_, on)| on)
}

/// The finding of a site that spawns more tasks per operation (`before` and `after` per
/// operation; `cost`: its share of the allocator's extra CPU).
pub(super) fn finding(site: &HeapSite, before: f64, after: f64, cost: Option<f64>) -> Finding {
    let on = spawned_on(site).unwrap_or("the runtime");
    let name = short_name(&site.function);
    let location = site.location.clone().unwrap_or_else(|| "?".into());
    let blocking = on == BLOCKING_POOL;
    Finding {
        kind: FindingKind::TaskPerCall,
        title: if before == 0.0 {
            format!(
                "`{name}` spawns a task on {on} per call: {} per operation",
                fmt_count(after)
            )
        } else {
            format!(
                "`{name}` spawns more tasks on {on}: {} per operation, {} before",
                fmt_count(after),
                fmt_count(before)
            )
        },
        evidence: vec![Evidence::new(
            "tasks spawned per operation here",
            fmt_count(before),
            fmt_count(after),
        )],
        sites: vec![format!(
            "`{name}` ({location}) via {}",
            site.via.join(" → ")
        )],
        functions: vec![site.function.clone()],
        cost_ns_per_op: cost,
        share: None,
        fix: if blocking {
            "run short work inline, batch it into one blocking task, or keep a dedicated thread \
             fed by a channel: each call hands work to another thread and back (an allocation, \
             a queue, two wake-ups)"
        } else {
            "await the future inline (join several with `join!`/`join_all`), or spawn one task \
             for the batch: each spawned task is an allocation, a schedule and a wake-up"
        }
        .into(),
        regression: true,
        symptom: false,
        blocked_call: None,
        counts_per_op: Some((before, after)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(via: &[&str]) -> HeapSite {
        HeapSite {
            function: "app::node::Node::get".into(),
            location: Some("app/src/node.rs:10".into()),
            via: via.iter().map(|v| v.to_string()).collect(),
            blocks: 100,
            bytes: 12_800,
        }
    }

    #[test]
    fn a_spawn_is_known_by_its_function_on_the_stack_not_by_a_size() {
        let blocking = site(&[
            "tokio::task::blocking::spawn_blocking",
            "tokio::runtime::blocking::pool::spawn_blocking",
            "tokio::runtime::handle::Handle::spawn_blocking",
        ]);
        assert_eq!(spawned_on(&blocking), Some("the blocking pool"));
        let spawned = site(&[
            "diag::tasks::spawn::spawn_named",
            "tokio::task::spawn::spawn",
            "tokio::task::spawn::spawn_inner",
        ]);
        assert_eq!(spawned_on(&spawned), Some("the runtime"));
        // The same block size through `Box::new` is no spawn.
        assert_eq!(spawned_on(&site(&["alloc::boxed::Box<T>::new"])), None);
    }

    #[test]
    fn the_finding_names_the_function_where_and_the_fix_for_the_pool() {
        let f = finding(
            &site(&["tokio::task::blocking::spawn_blocking"]),
            0.0,
            6.0,
            None,
        );
        assert_eq!(f.kind, FindingKind::TaskPerCall);
        assert!(
            f.title
                .contains("`Node::get` spawns a task on the blocking pool"),
            "{}",
            f.title
        );
        assert!(f.sites[0].contains("app/src/node.rs:10"), "{:?}", f.sites);
        assert!(f.fix.contains("batch"), "{}", f.fix);
    }
}

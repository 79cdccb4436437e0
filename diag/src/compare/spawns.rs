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
use super::{Evidence, Finding, FindingKind, fmt_count};
use crate::snapshot::HeapSite;

/// The spawn functions, with what they spawn on.
const SPAWNS: [(&str, &str); 6] = [
    (
        "tokio::runtime::blocking::pool::spawn_blocking",
        "the blocking pool",
    ),
    ("tokio::task::blocking::spawn_blocking", "the blocking pool"),
    (
        "tokio::task::join_set::JoinSet<T>::spawn",
        "the runtime (a JoinSet)",
    ),
    ("tokio::task::spawn::spawn", "the runtime"),
    ("tokio::task::local::spawn_local", "the local set"),
    ("tokio::runtime::handle::Handle::spawn", "the runtime"),
];

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
    let blocking = on == "the blocking pool";
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
            "each call hands work to another thread and back (an allocation, a queue, two \
             wake-ups): run short work inline, batch it into one blocking task, or keep a \
             dedicated thread fed by a channel"
        } else {
            "each spawned task is an allocation, a schedule and a wake-up: await the future \
             inline (join several with `join!`/`join_all`), or spawn one task for the batch"
        }
        .into(),
        regression: true,
        symptom: false,
        blocked_call: None,
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

//! A change of the runtime's shape: the sides ran their tasks on different numbers of worker
//! threads (`worker_threads(n)` in the runtime's builder, the `current_thread` flavour, a
//! `TOKIO_WORKER_THREADS` in the environment).
//!
//! Evidence needed: both sides' runtime figures, whose worker counts differ. tokio reports the
//! count itself, so nothing is inferred from timing. With the operations slower, the change is
//! the regression's cause and costs the whole wall-time change; otherwise it explains a change
//! and is no regression by itself. Tasks that wait or queue longer because fewer threads run
//! them are its symptoms, not causes.

use super::{Context, Evidence, Finding, FindingKind, WallVerdict, mark_symptoms_of, waiting};

/// The finding when the sides' runtimes had different numbers of worker threads.
pub(crate) fn finding(cx: &Context<'_>) -> Option<Finding> {
    let before = cx.baseline.snapshot.tasks.as_ref()?.workers()?;
    let after = cx.candidate.snapshot.tasks.as_ref()?.workers()?;
    if before == after {
        return None;
    }
    let (machine_b, machine_c) = (
        &cx.baseline.snapshot.build.machine,
        &cx.candidate.snapshot.build.machine,
    );
    // tokio's default is a worker per core: on another machine the count follows the cores.
    let same_machine = machine_b == machine_c;
    let slower = cx
        .wall
        .filter(|w| w.verdict == WallVerdict::Slower && same_machine);
    let mut evidence = vec![Evidence::new(
        "worker threads of the runtime",
        before.to_string(),
        after.to_string(),
    )];
    if let Some(w) = cx.wall {
        evidence.push(waiting::throughput(w));
    }
    let fewer = after < before;
    Some(Finding {
        kind: FindingKind::RuntimeChanged,
        title: format!("the runtime runs {} (was {before})", workers(after)),
        evidence,
        sites: vec![
            "where the program builds its runtime (`tokio::runtime::Builder`, \
                     `#[tokio::main]`) or `TOKIO_WORKER_THREADS` in its environment"
                .into(),
        ],
        functions: Vec::new(),
        cost_ns_per_op: slower
            .and_then(|w| waiting::wall_equivalent(cx, w))
            .filter(|&ns| ns > 0.0),
        share: None,
        fix: if !same_machine {
            format!(
                "the sides ran on different machines ({machine_b}; {machine_c}), and tokio gives \
                 a runtime a worker per core: compare on one machine"
            )
        } else if fewer {
            "fewer threads run the same tasks, so they queue for a thread: give the runtime a \
             worker per core (tokio's default) unless the program means to leave cores to other \
             work"
                .into()
        } else {
            "more workers than cores take turns on them and steal each other's tasks: keep \
             tokio's default of a worker per core"
                .into()
        },
        regression: slower.is_some(),
        symptom: false,
        blocked_call: None,
        counts_per_op: None,
    })
}

fn workers(n: u64) -> String {
    if n == 1 {
        "1 worker thread".into()
    } else {
        format!("{n} worker threads")
    }
}

/// With the worker count the regression's cause, the tasks that wait, queue or answer later
/// are how it shows.
pub(crate) fn mark_symptoms(findings: &mut [Finding]) {
    let Some(cause) = findings
        .iter()
        .find(|f| f.kind == FindingKind::RuntimeChanged && f.regression)
        .map(|f| f.title.clone())
    else {
        return;
    };
    for kind in [
        FindingKind::Waiting,
        FindingKind::Latency,
        FindingKind::Polls,
    ] {
        mark_symptoms_of(
            findings,
            kind,
            &cause,
            "tasks wait longer for a thread to run them",
        );
    }
}

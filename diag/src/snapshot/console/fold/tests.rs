use console_api::resources::resource::{Kind as ResourceKind, kind};
use console_api::resources::{PollOp, Resource, ResourceUpdate};
use console_api::tasks::{Stats, Task, TaskUpdate};
use console_api::{Id, PollStats, field};

use super::*;

fn at(ms: i64) -> Timestamp {
    Timestamp {
        seconds: 1_000 + ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

fn id(n: u64) -> Option<Id> {
    Some(Id { id: n })
}

fn field(name: &str, value: field::Value) -> Field {
    Field {
        name: Some(field::Name::StrName(name.into())),
        value: Some(value),
        metadata_id: None,
    }
}

fn location(file: &str, line: u32) -> Option<Location> {
    Some(Location {
        file: Some(file.into()),
        line: Some(line),
        ..Location::default()
    })
}

fn task(n: u64, name: &str, size: u64, original: Option<u64>) -> Task {
    let mut fields = vec![
        field("task.name", field::Value::DebugVal(name.into())),
        field("size.bytes", field::Value::U64Val(size)),
    ];
    if let Some(original) = original {
        fields.push(field("original_size.bytes", field::Value::U64Val(original)));
    }
    Task {
        id: id(n),
        fields,
        location: location("app/src/server.rs", 100),
        ..Task::default()
    }
}

fn resource(n: u64, kind: &str, file: &str, line: u32, parent: Option<u64>) -> Resource {
    Resource {
        id: id(n),
        concrete_type: kind.into(),
        kind: Some(ResourceKind {
            kind: Some(kind::Kind::Other("Sync".into())),
        }),
        location: location(file, line),
        parent_resource_id: parent.and_then(id),
        is_internal: parent.is_some(),
        ..Resource::default()
    }
}

fn op(n: u64, resource: u64, parent: Option<u64>) -> async_ops::AsyncOp {
    async_ops::AsyncOp {
        id: id(n),
        source: "Mutex::lock".into(),
        resource_id: id(resource),
        parent_async_op_id: parent.and_then(id),
        ..async_ops::AsyncOp::default()
    }
}

fn op_stats(task: u64, from_ms: i64, to_ms: i64) -> async_ops::Stats {
    async_ops::Stats {
        created_at: Some(at(from_ms)),
        dropped_at: Some(at(to_ms)),
        task_id: id(task),
        ..async_ops::Stats::default()
    }
}

fn ready(op: u64) -> PollOp {
    PollOp {
        async_op_id: id(op),
        is_ready: true,
        ..PollOp::default()
    }
}

/// A run of 10 operations: two connection tasks wait on one `Mutex` (2 ms and 4 ms; the lock's
/// inner semaphore wait is inside it), a timeout's timer never fires, a task wakes itself, one
/// task's future was boxed by tokio.
fn recording() -> ConsoleRecording {
    let first = Update {
        now: Some(at(0)),
        task_update: Some(TaskUpdate {
            new_tasks: vec![
                task(1, "gateway.conn", 900, None),
                task(2, "gateway.conn", 900, None),
                task(3, "load.worker", 20_480, Some(20_480)),
                Task {
                    fields: vec![field("kind", field::Value::DebugVal("blocking".into()))],
                    ..task(4, "", 64, None)
                },
            ],
            ..TaskUpdate::default()
        }),
        resource_update: Some(ResourceUpdate {
            new_resources: vec![
                resource(10, "Mutex", "app/src/gateway.rs", 120, None),
                resource(11, "Semaphore", "tokio/src/sync/mutex.rs", 340, Some(10)),
                resource(12, "Sleep", "app/src/store.rs", 80, None),
            ],
            ..ResourceUpdate::default()
        }),
        ..Update::default()
    };
    let second = Update {
        now: Some(at(3_000)),
        task_update: Some(TaskUpdate {
            stats_update: [
                (
                    3,
                    Stats {
                        wakes: 40,
                        self_wakes: 30,
                        poll_stats: Some(PollStats {
                            polls: 40,
                            ..PollStats::default()
                        }),
                        ..Stats::default()
                    },
                ),
                (
                    4,
                    // A runtime's worker thread: one poll running since the start.
                    Stats {
                        poll_stats: Some(PollStats {
                            polls: 1,
                            last_poll_started: Some(at(0)),
                            ..PollStats::default()
                        }),
                        ..Stats::default()
                    },
                ),
            ]
            .into(),
            ..TaskUpdate::default()
        }),
        resource_update: Some(ResourceUpdate {
            new_poll_ops: vec![ready(20), ready(21), ready(22)],
            dropped_events: 7,
            ..ResourceUpdate::default()
        }),
        async_op_update: Some(async_ops::AsyncOpUpdate {
            new_async_ops: vec![
                op(20, 10, None),
                op(21, 10, None),
                op(22, 11, Some(20)),
                op(23, 12, None),
            ],
            stats_update: [
                (20, op_stats(1, 100, 102)),
                (21, op_stats(2, 200, 204)),
                (22, op_stats(1, 100, 102)),
                (23, op_stats(2, 300, 800)),
            ]
            .into(),
            ..async_ops::AsyncOpUpdate::default()
        }),
        ..Update::default()
    };
    ConsoleRecording {
        updates: vec![first, second],
    }
}

#[test]
fn completed_waits_are_charged_to_the_resource_where_it_was_created_and_to_the_waiting_task() {
    let figures = ConsoleFigures::from_recording(&recording(), 10);
    assert_eq!((figures.ops, figures.updates, figures.tasks), (10, 2, 4));
    assert_eq!(figures.dropped_events, 7);
    let mutex = figures
        .site("Mutex app/src/gateway.rs")
        .expect("the mutex's site");
    assert_eq!(mutex.location, "app/src/gateway.rs:120");
    assert_eq!(
        (mutex.resources, mutex.waits),
        (1, 2),
        "the inner wait counts once"
    );
    assert_eq!(mutex.wait_ns, 6_000_000.0);
    assert_eq!(mutex.tasks["gateway.conn"].waits, 2);
    let timer = figures
        .site("Sleep app/src/store.rs")
        .expect("the timer's site");
    assert_eq!(timer.waits, 0, "a timer that never fired is no wait on it");
    assert!(
        figures.site("Semaphore tokio/src/sync/mutex.rs").is_none(),
        "internal resources are part of their parent"
    );
}

#[test]
fn the_consoles_lints_name_the_tasks_they_apply_to() {
    let figures = ConsoleFigures::from_recording(&recording(), 10);
    let lints: Vec<(Lint, &str, u64)> = figures
        .lints
        .iter()
        .map(|l| (l.lint, l.task.as_str(), l.tasks))
        .collect();
    assert!(
        lints.contains(&(Lint::SelfWakes, "load.worker", 1)),
        "{lints:?}"
    );
    assert!(
        lints.contains(&(Lint::AutoBoxedFuture, "load.worker", 1)),
        "{lints:?}"
    );
    assert!(
        !lints
            .iter()
            .any(|(l, task, _)| *l == Lint::LargeFuture && *task == "gateway.conn"),
        "900 B is under the large-future threshold: {lints:?}"
    );
    assert!(
        !lints.iter().any(|(l, _, _)| *l == Lint::NeverYielded),
        "a blocking task is meant to block: {lints:?}"
    );
    let boxed = figures
        .lints
        .iter()
        .find(|l| l.lint == Lint::AutoBoxedFuture)
        .expect("the boxed future");
    assert_eq!(
        (boxed.value, boxed.location.as_str()),
        (20_480.0, "app/src/server.rs:100")
    );
}

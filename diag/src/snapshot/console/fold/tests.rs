use console_api::resources::ResourceUpdate;
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

/// A run of 10 operations: two connection tasks, a task that wakes itself and whose future was
/// boxed by tokio, and a runtime's worker thread (a blocking task); the layer dropped 7 events.
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
            dropped_events: 7,
            ..ResourceUpdate::default()
        }),
        ..Update::default()
    };
    ConsoleRecording {
        updates: vec![first, second],
    }
}

#[test]
fn a_task_id_the_console_hands_out_again_is_a_new_task_once_the_first_was_dropped() {
    let again = |dropped: bool| {
        let mut recording = recording();
        let stats = Stats {
            wakes: 40,
            self_wakes: 30,
            dropped_at: dropped.then(|| at(3_500)),
            ..Stats::default()
        };
        recording.updates.push(Update {
            now: Some(at(3_500)),
            task_update: Some(TaskUpdate {
                stats_update: [(3, stats)].into(),
                ..TaskUpdate::default()
            }),
            ..Update::default()
        });
        recording.updates.push(Update {
            now: Some(at(4_000)),
            task_update: Some(TaskUpdate {
                new_tasks: vec![task(3, "load.worker", 20_480, Some(20_480))],
                ..TaskUpdate::default()
            }),
            ..Update::default()
        });
        ConsoleFigures::from_recording(&recording, 10)
    };
    let reused = again(true);
    assert_eq!(reused.tasks, 5);
    let boxed = reused
        .lints
        .iter()
        .find(|l| l.lint == Lint::AutoBoxedFuture)
        .expect("the boxed futures");
    assert_eq!(boxed.tasks, 2, "{boxed:?}");
    assert!(
        reused.lints.iter().any(|l| l.lint == Lint::SelfWakes),
        "the first task keeps its self-wakes: {:?}",
        reused.lints
    );
    // A task sent again while it lives (a new subscriber's first updates repeat recent tasks)
    // is the same task.
    assert_eq!(again(false).tasks, 4);
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

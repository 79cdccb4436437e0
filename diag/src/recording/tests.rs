use console_api::Id;
use console_api::instrument::instrument_client::InstrumentClient;
use console_api::tasks::{Task, TaskUpdate};

use std::time::Duration;

use super::replay::{Replay, serve};
use super::*;

fn update(second: i64, task: u64, dropped: u64) -> Update {
    Update {
        now: Some(prost_types::Timestamp {
            seconds: second,
            nanos: 0,
        }),
        task_update: Some(TaskUpdate {
            new_tasks: vec![Task {
                id: Some(Id { id: task }),
                ..Task::default()
            }],
            dropped_events: dropped,
            ..TaskUpdate::default()
        }),
        ..Update::default()
    }
}

fn written(updates: &[Update]) -> (tempfile::TempDir, PathBuf, RecordingSummary) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("console.rec");
    let mut writer = RecordingWriter::create(&path).expect("created");
    for u in updates {
        writer.append(u).expect("appended");
    }
    let summary = writer.finish().expect("finished");
    (dir, path, summary)
}

#[test]
fn a_recording_reads_back_the_updates_it_was_written_with() {
    let updates = [update(1, 1, 0), update(2, 2, 3), update(3, 3, 0)];
    let (_dir, path, summary) = written(&updates);
    assert_eq!(summary.updates, 3);
    assert_eq!(summary.dropped_events, 3);
    assert_eq!(
        summary.bytes,
        std::fs::metadata(&path).expect("the file").len()
    );
    let read = ConsoleRecording::read(&path).expect("read");
    assert_eq!(read.updates, updates);
    assert_eq!(read.dropped_events(), 3);
}

#[test]
fn a_recording_cut_anywhere_is_refused_as_cut_short() {
    let (_dir, path, _) = written(&[update(1, 1, 0), update(2, 2, 0)]);
    let bytes = std::fs::read(&path).expect("the file");
    let header = format!("{RECORDING_MAGIC} {RECORDING_VERSION}\n").len();
    for cut in header..bytes.len() {
        match ConsoleRecording::parse(&bytes[..cut], &path) {
            Err(RecordingError::CutShort { offset, .. }) => assert!(offset <= cut),
            other => panic!("cut at {cut} of {}: {other:?}", bytes.len()),
        }
    }
}

#[test]
fn other_files_are_named_for_what_they_are() {
    let path = Path::new("x.rec");
    assert!(matches!(
        ConsoleRecording::parse(b"{\"json\": true}\n", path),
        Err(RecordingError::NotARecording { .. })
    ));
    assert!(matches!(
        ConsoleRecording::parse(format!("{RECORDING_MAGIC} 9\nE\0").as_bytes(), path),
        Err(RecordingError::Version { .. })
    ));
    let damaged = format!("{RECORDING_MAGIC} {RECORDING_VERSION}\nX\0");
    let error = ConsoleRecording::parse(damaged.as_bytes(), path).expect_err("damaged");
    assert!(error.to_string().contains("tagged 0x58"), "{error}");
    let miscounted = format!("{RECORDING_MAGIC} {RECORDING_VERSION}\nE\x05");
    let error = ConsoleRecording::parse(miscounted.as_bytes(), path).expect_err("miscounted");
    assert!(error.to_string().contains("counts 5 updates"), "{error}");
}

#[tokio::test]
async fn a_console_client_receives_the_recorded_updates_from_the_replay() {
    let updates = vec![update(100, 1, 0), update(101, 2, 0), update(102, 3, 0)];
    let recording = ConsoleRecording {
        updates: updates.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("its address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // A thousand times faster than recorded: a second's gap is a millisecond.
    let server = tokio::spawn(serve(Replay::new(recording, 1000.0), listener, async {
        let _ = stopped.await;
    }));
    let mut client = InstrumentClient::connect(format!("http://{addr}"))
        .await
        .expect("connected");
    let mut stream = client
        .watch_updates(console_api::instrument::InstrumentRequest {})
        .await
        .expect("streaming")
        .into_inner();
    let mut received = Vec::new();
    while received.len() < updates.len() {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an update within 10 s")
            .expect("no stream error")
            .expect("the stream stays open");
        received.push(next);
    }
    assert_eq!(received, updates);
    drop(stream);
    let _ = stop.send(());
    server.await.expect("joined").expect("served");
}

#[test]
fn bytes_after_the_end_mark_are_damage() {
    let (_dir, path, _) = written(&[update(1, 1, 0)]);
    let mut bytes = std::fs::read(&path).expect("the file");
    bytes.extend_from_slice(b"more");
    let error = ConsoleRecording::parse(&bytes, &path).expect_err("damaged");
    assert!(
        error.to_string().contains("4 bytes after the end mark"),
        "{error}"
    );
}

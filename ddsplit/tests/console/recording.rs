//! `ddsplit local --console-record`: the run's waits on resources, every one, by where each
//! resource was created; its recording reads back; a recording whose process was killed is
//! refused.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diag::recording::{ConsoleRecording, RecordingError};
use diag::snapshot::ConsoleFigures;
use diag::waits::WaitsSummary;

use super::{PACED, Proc, TEST_RATE, free_addr};

/// Operations of the recorded run: six seconds at the test's rate.
const RECORDED_OPS: u64 = 150;

/// How long a recorded run, or the wait for a recording to start, may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// `ddsplit local` with the console recording into `out`, `load` being `--ops N` or `--load T`.
fn recorded_run(data: &Path, out: &Path, load: [&str; 2]) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_ddsplit"))
        .args(["local", "--listen", "127.0.0.1:0", "--no-admin", "--json"])
        .args(load)
        .args(PACED)
        .args(["--fsync", "never", "--console-record"])
        .arg("--data-dir")
        .arg(data)
        .arg("--diag-out")
        .arg(out)
        .env("TOKIO_CONSOLE_BIND", free_addr().to_string())
        .env("DDSPLIT_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ddsplit local built with the console feature");
    Proc(child)
}

#[test]
fn a_recording_names_the_resources_tasks_waited_on_where_they_were_created() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probes");
    let ops = RECORDED_OPS.to_string();
    let mut run = recorded_run(&dir.path().join("data"), &out, ["--ops", &ops]);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = run.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < RUN_TIMEOUT,
            "the recorded run took over {RUN_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "ddsplit local --console-record: {status}");
    let recording = ConsoleRecording::read(&out.join("console.rec")).unwrap();
    let figures = ConsoleFigures::from_recording(&recording, RECORDED_OPS);
    assert_eq!(figures.dropped_events, 0, "lossless at --rate {TEST_RATE}");
    assert!(figures.tasks > 0, "{figures:?}");
    let waits: WaitsSummary =
        serde_json::from_str(&std::fs::read_to_string(out.join("resources.json")).unwrap())
            .unwrap();
    // Every request takes a permit of the server's in-flight semaphore.
    let permits = waits
        .resources
        .iter()
        .find(|r| {
            r.concrete_type == "Semaphore"
                && r.location.contains("ddsplit/src/server.rs")
                && r.waits > 0
        })
        .unwrap_or_else(|| panic!("no waits on the server's semaphore: {:#?}", waits.resources));
    assert!(
        permits.waits >= RECORDED_OPS,
        "every operation's request waits for a permit at least once: {permits:#?}"
    );
    assert!(
        permits
            .tasks
            .get("gateway.conn")
            .is_some_and(|w| w.waits >= RECORDED_OPS),
        "each of the gateway's requests takes a permit: {permits:#?}"
    );
    // A node's put waits for the log writer's answer, in the `node.put` handler's polls.
    let answers = waits
        .resources
        .iter()
        .find(|r| r.location.contains("ddsplit/src/store/log.rs") && r.waits > 0)
        .unwrap_or_else(|| panic!("no waits on the log's answers: {:#?}", waits.resources));
    assert!(answers.kinds.contains_key("node.put"), "{answers:#?}");
    // The load generator paces its workers with an `Interval`: each tick is a wait on it, and
    // the `Sleep` inside it is part of the tick, not a wait of its own.
    assert!(
        waits.resources.iter().any(|r| r.concrete_type == "Interval"
            && r.location.contains("ddsplit/src/load.rs")
            && r.waits > 0),
        "{:#?}",
        waits.resources
    );
    assert!(
        !waits.resources.iter().any(|r| r.concrete_type == "Sleep"
            && r.location.contains("interval.rs")
            && r.waits > 0),
        "an Interval's own Sleep counted apart: {:#?}",
        waits.resources
    );
    // A timeout's timer that never fired is no wait on it.
    assert!(
        waits
            .resources
            .iter()
            .filter(|r| r.concrete_type == "Sleep" && r.location.contains("ddsplit/src/store.rs"))
            .all(|r| r.waits == 0),
        "{:#?}",
        waits.resources
    );
}

#[test]
fn a_recording_whose_process_was_killed_is_refused_as_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probes");
    let mut run = recorded_run(&dir.path().join("data"), &out, ["--load", "60s"]);
    let file = out.join("console.rec");
    let started = Instant::now();
    // Killed once the first updates are in the file.
    while std::fs::metadata(&file).map_or(0, |m| m.len()) < 4096 {
        assert!(
            started.elapsed() < RUN_TIMEOUT,
            "no recording after {RUN_TIMEOUT:?}"
        );
        assert!(run.0.try_wait().unwrap().is_none(), "ddsplit exited early");
        std::thread::sleep(Duration::from_millis(100));
    }
    run.0.kill().unwrap();
    run.0.wait().unwrap();
    match ConsoleRecording::read(&file) {
        Err(e @ RecordingError::CutShort { .. }) => {
            assert!(e.to_string().contains("record again"), "{e}");
        }
        other => panic!("a killed recording read as {other:?}"),
    }
}

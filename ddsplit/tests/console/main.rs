//! tokio-console's view of DDSplit: a `ddsplit local` built with the `console` feature (and
//! `--cfg tokio_unstable`) runs load while a real console client, speaking the console's gRPC
//! protocol (`console-api`), subscribes to its updates; the named DDSplit tasks must appear, with
//! polls. The same build's task probes must report tokio's unstable runtime figures. Built and
//! run by `cargo xtask test` in `target/console` (feature `console-test`).
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on should stop at the line that failed"
)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod recording;

use console_api::field::{Name, Value};
use console_api::instrument::InstrumentRequest;
use console_api::instrument::instrument_client::InstrumentClient;

/// How long the console server may take to come up and to show the tasks: the load starts at
/// once and the console publishes every second, so this is slack for a loaded CI machine.
const SEE_TIMEOUT: Duration = Duration::from_secs(60);

/// A child process killed with SIGKILL when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The test's load: paced so that this unoptimised build's console loses no event on a loaded
/// 2-core machine (the release build is lossless at 100 a second; see `diag::console`).
const TEST_RATE: &str = "25";

/// The tests' workload: a few connections, records up to 64 KiB, at [`TEST_RATE`].
const PACED: [&str; 6] = [
    "--concurrency",
    "4",
    "--size-max",
    "64KiB",
    "--rate",
    TEST_RATE,
];

/// How long the console is watched for dropped events after the tasks appeared.
const LOSSLESS_WATCH: Duration = Duration::from_secs(15);

/// Tasks the console must show polled: the connection tasks, which run every request of the
/// gateway and of the nodes.
const REQUIRED: [&str; 2] = ["gateway.conn", "node.conn"];

/// Whether a task named `name` has been polled.
fn polled(seen: &HashMap<u64, Seen>, name: &str) -> bool {
    seen.values().any(|t| t.name == name && t.polls > 0)
}

/// What the console has told about one task.
#[derive(Debug, Default)]
struct Seen {
    name: String,
    polls: u64,
}

#[test]
fn tokio_console_sees_the_named_ddsplit_tasks_polled() {
    let dir = tempfile::tempdir().unwrap();
    let (console, admin) = (free_addr(), free_addr());
    let child = Command::new(env!("CARGO_BIN_EXE_ddsplit"))
        .args(["local", "--listen", "127.0.0.1:0", "--load", "120s"])
        .args(PACED)
        .args(["--admin", &admin.to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .env("TOKIO_CONSOLE_BIND", console.to_string())
        .env("DDSPLIT_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ddsplit local built with the console feature");
    let mut child = Proc(child);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (seen, dropped) = runtime.block_on(async {
        tokio::time::timeout(SEE_TIMEOUT + LOSSLESS_WATCH, watch(console, &mut child.0))
            .await
            .unwrap_or_else(|_| {
                panic!("the console did not show polled {REQUIRED:?} tasks within {SEE_TIMEOUT:?}")
            })
    });
    for name in REQUIRED {
        assert!(polled(&seen, name), "no polled {name} task in {seen:?}");
    }
    // The console's view is complete at this load, and the process says so itself.
    assert_eq!(
        dropped, 0,
        "the console layer dropped events at --rate {TEST_RATE}"
    );
    let metrics = http_get(admin, "/metrics");
    assert!(
        metrics.contains("ddsplit_console_drops_counted 1\n"),
        "the process does not count its console drops:\n{metrics}"
    );
    for kind in ["tasks", "resources", "async_ops"] {
        let line = format!("ddsplit_console_dropped_events_total{{kind=\"{kind}\"}} 0\n");
        assert!(metrics.contains(&line), "{line:?} missing:\n{metrics}");
    }

    // tokio_unstable builds give the task probes tokio's unstable runtime figures.
    let snapshot: serde_json::Value =
        serde_json::from_str(&http_get(admin, "/debug/tasks")).unwrap();
    let runtime = &snapshot["runtime"];
    assert!(
        runtime["total_poll_count"].as_u64().unwrap() > 0,
        "{runtime}"
    );
    for figure in [
        "total_steal_count",
        "total_remote_schedule_count",
        "local_queue_depth",
        "blocking_threads_count",
    ] {
        assert!(runtime[figure].is_u64(), "{figure} in {runtime}");
    }
    let metrics = http_get(admin, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tokio_runtime_worker_polls_total ")),
        "{metrics}"
    );
}

/// The body of `GET path` (HTTP/1.0, so never chunked), which must answer 200.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    body.to_string()
}

/// Subscribes to the console at `addr` (retrying while it starts), gathers task names and poll
/// counts until every [`REQUIRED`] task has been polled, then watches [`LOSSLESS_WATCH`] more;
/// returns the tasks and the events the console said it dropped.
async fn watch(addr: SocketAddr, program: &mut Child) -> (HashMap<u64, Seen>, u64) {
    let mut client = loop {
        match InstrumentClient::connect(format!("http://{addr}")).await {
            Ok(client) => break client,
            Err(_) => {
                if let Some(status) = program.try_wait().unwrap() {
                    panic!("ddsplit exited before its console server answered: {status}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await
            }
        }
    };
    let mut updates = client
        .watch_updates(InstrumentRequest {})
        .await
        .expect("the console accepts the subscription")
        .into_inner();
    let mut seen: HashMap<u64, Seen> = HashMap::new();
    let mut dropped = 0;
    let mut seen_at = None;
    loop {
        let update = updates
            .message()
            .await
            .expect("the console's update stream stays healthy")
            .expect("the console's update stream does not end while the program runs");
        dropped += update.resource_update.map_or(0, |r| r.dropped_events)
            + update.async_op_update.map_or(0, |a| a.dropped_events);
        let Some(tasks) = update.task_update else {
            continue;
        };
        dropped += tasks.dropped_events;
        for task in tasks.new_tasks {
            let id = task.id.expect("a new task has an id").id;
            let name = task
                .fields
                .iter()
                .find_map(|field| match (&field.name, &field.value) {
                    (Some(Name::StrName(n)), Some(Value::DebugVal(v) | Value::StrVal(v)))
                        if n == "task.name" =>
                    {
                        Some(v.clone())
                    }
                    _ => None,
                });
            seen.entry(id).or_default().name = name.unwrap_or_default();
        }
        for (id, stats) in tasks.stats_update {
            let polls = stats.poll_stats.map_or(0, |p| p.polls);
            seen.entry(id).or_default().polls = polls;
        }
        if seen_at.is_none() && REQUIRED.iter().all(|name| polled(&seen, name)) {
            seen_at = Some(std::time::Instant::now());
        }
        if seen_at.is_some_and(|at| at.elapsed() >= LOSSLESS_WATCH) {
            return (seen, dropped);
        }
    }
}

//! Tests of the task probes: exact counts from real instrumented futures, intervals against
//! cumulative figures, the sampler's life, the JSON shape and the exact Prometheus lines.

#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on should stop at the line that failed"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A future that returns `Pending` `n` times (waking itself each time), then `Ready`.
async fn yield_times(n: usize) {
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
}

#[test]
fn instrumented_futures_are_counted_exactly() {
    current_thread().block_on(async {
        let probes = TaskProbes::builder()
            .kinds(["node.put", "node.get"])
            .build()
            .unwrap();
        let put = probes.kind("node.put").unwrap();
        for _ in 0..3 {
            put.instrument(yield_times(4)).await;
        }
        // Spawned and awaited through its handle: still one task of the kind.
        tokio::spawn(put.instrument(yield_times(0))).await.unwrap();
        // Wrapped, never polled, dropped.
        drop(put.instrument(yield_times(1)));

        let put = probes.kind("node.put").unwrap().cumulative().unwrap();
        assert_eq!(put.instrumented_count, 5);
        assert_eq!(put.dropped_count, 5);
        assert_eq!(put.alive_count(), 0);
        assert_eq!(put.first_poll_count, 4);
        // 3 futures × (4 pending polls + 1 ready poll) + 1 single-poll future.
        assert_eq!(put.total_poll_count, 16);
        // Each yield wakes the future, which then waits in the run queue for its next poll.
        assert_eq!(put.total_scheduled_count, 12);
        let get = probes.kind("node.get").unwrap().cumulative().unwrap();
        // Blocked time is known (zero) once another test's blocking profile has run.
        assert_eq!(get.total_blocked_duration_ns.unwrap_or(0), 0);
        assert_eq!(
            TaskFigures {
                total_blocked_duration_ns: None,
                ..get
            },
            TaskFigures::default(),
            "an unused kind has measured nothing"
        );
    });
}

#[test]
fn idle_time_covers_the_wait_for_a_timer() {
    current_thread().block_on(async {
        let probes = TaskProbes::builder().kind("gateway.get").build().unwrap();
        let get = probes.kind("gateway.get").unwrap();
        let sleep = Duration::from_millis(20);
        let started = Instant::now();
        // The timer starts inside the first poll, so from that poll's start to the wake-up
        // the future was being polled or idle for at least the whole sleep.
        get.instrument(async { tokio::time::sleep(sleep).await })
            .await;
        let wall_ns = started.elapsed().as_nanos() as u64;
        let figures = probes.sample().tasks["gateway.get"];
        assert_eq!(figures.total_poll_count, 2);
        assert_eq!(figures.total_idle_count, 1);
        assert_eq!(figures.total_scheduled_count, 1);
        assert!(
            figures.total_idle_duration_ns + figures.total_poll_duration_ns
                >= sleep.as_nanos() as u64,
            "polled or idle for the whole sleep: {figures:?}"
        );
        assert!(figures.total_idle_duration_ns <= wall_ns, "{figures:?}");
        assert_eq!(figures.max_idle_duration_ns, figures.total_idle_duration_ns);
    });
}

#[test]
fn slow_polls_are_those_over_the_threshold() {
    current_thread().block_on(async {
        let threshold = Duration::from_millis(5);
        let probes = TaskProbes::builder()
            .kind("node.list")
            .slow_poll_threshold(threshold)
            .build()
            .unwrap();
        let list = probes.kind("node.list").unwrap();
        list.instrument(async {
            // One poll that blocks its thread for twice the threshold, then a fast one.
            std::thread::sleep(threshold * 2);
            tokio::task::yield_now().await;
        })
        .await;
        let figures = list.cumulative().unwrap();
        assert_eq!(figures.total_poll_count, 2);
        assert_eq!(figures.total_slow_poll_count, 1);
        assert!(figures.total_slow_poll_duration_ns >= (threshold * 2).as_nanos() as u64);
        assert!(figures.total_poll_duration_ns >= figures.total_slow_poll_duration_ns);
        assert_eq!(figures.slow_poll_ratio(), 0.5);
    });
}

#[test]
fn an_interval_holds_only_what_happened_in_it() {
    current_thread().block_on(async {
        let probes = TaskProbes::builder().kind("gateway.put").build().unwrap();
        let put = probes.kind("gateway.put").unwrap();
        for _ in 0..2 {
            put.instrument(yield_times(1)).await;
        }
        let first = probes.sample();
        for _ in 0..3 {
            put.instrument(yield_times(1)).await;
        }
        let second = probes.sample();
        let interval = second.interval.as_ref().unwrap();
        assert_eq!(
            first.interval.as_ref().unwrap().tasks["gateway.put"].instrumented_count,
            2
        );
        assert_eq!(interval.tasks["gateway.put"].instrumented_count, 3);
        assert_eq!(interval.tasks["gateway.put"].total_poll_count, 6);
        assert_eq!(second.tasks["gateway.put"].instrumented_count, 5);
        assert_eq!(second.tasks["gateway.put"].total_poll_count, 10);
        // The latest sample is what readers get.
        assert_eq!(probes.snapshot(), second);
    });
}

#[test]
fn runtime_figures_add_up_over_intervals() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let probes = TaskProbes::builder().kind("node.get").build().unwrap();
        let mut totals = RuntimeFigures::default();
        for _ in 0..3 {
            let tasks: Vec<_> = (0..8)
                .map(|_| tokio::spawn(tokio::time::sleep(Duration::from_millis(2))))
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            let snapshot = probes.sample();
            totals.accumulate(&snapshot.interval.unwrap().runtime.unwrap());
            assert_eq!(snapshot.runtime.unwrap(), totals);
        }
        assert_eq!(totals.workers_count, 2);
        assert!(
            totals.total_park_count > 0,
            "idle workers parked: {totals:?}"
        );
        assert!(totals.total_busy_duration_ns > 0);
        assert!(totals.elapsed_ns > 0);
        #[cfg(not(tokio_unstable))]
        assert_eq!(
            totals.total_poll_count, None,
            "unstable figures need tokio_unstable"
        );
        #[cfg(tokio_unstable)]
        assert!(
            totals.total_poll_count.unwrap() >= 24,
            "24 tasks were polled: {totals:?}"
        );
    });
}

#[test]
fn accumulate_adds_counters_and_keeps_the_newest_gauges() {
    let mut total = RuntimeFigures {
        workers_count: 2,
        live_tasks_count: 9,
        total_park_count: 10,
        total_busy_duration_ns: 100,
        elapsed_ns: 1_000,
        total_steal_count: Some(1),
        local_queue_depth: Some(4),
        ..RuntimeFigures::default()
    };
    total.accumulate(&RuntimeFigures {
        workers_count: 2,
        live_tasks_count: 3,
        global_queue_depth: 1,
        total_park_count: 5,
        total_busy_duration_ns: 50,
        elapsed_ns: 1_000,
        total_steal_count: Some(2),
        total_poll_count: Some(7),
        local_queue_depth: Some(0),
        ..RuntimeFigures::default()
    });
    assert_eq!(
        total,
        RuntimeFigures {
            workers_count: 2,
            live_tasks_count: 3,
            global_queue_depth: 1,
            total_park_count: 15,
            total_busy_duration_ns: 150,
            elapsed_ns: 2_000,
            total_steal_count: Some(3),
            total_poll_count: Some(7),
            local_queue_depth: Some(0),
            ..RuntimeFigures::default()
        }
    );
    assert_eq!(total.busy_ratio(), 150.0 / 4_000.0);
}

#[test]
fn off_probes_pass_futures_through_and_measure_nothing() {
    current_thread().block_on(async {
        let probes = TaskProbes::builder()
            .kind("gateway.put")
            .enabled(false)
            .build()
            .unwrap();
        assert!(!probes.is_enabled());
        let put = probes.kind("gateway.put").unwrap();
        assert_eq!(put.instrument(async { 7 }).await, 7);
        assert!(matches!(put.instrument(async {}), Monitored::Off { .. }));
        assert_eq!(put.cumulative(), None);
        let snapshot = probes.sample();
        assert!(!snapshot.enabled);
        assert!(snapshot.tasks.is_empty(), "nothing measured, nothing shown");
        assert!(snapshot.runtime.is_some(), "the runtime is still sampled");
    });
}

#[test]
fn the_builder_refuses_what_it_cannot_use() {
    let err = |b: TaskProbesBuilder| b.build().unwrap_err().to_string();
    assert_eq!(
        err(TaskProbes::builder().kinds(["node.put", "node.put"])),
        "task kind \"node.put\" is registered twice"
    );
    assert!(err(TaskProbes::builder().kind("Node Put")).contains("not a valid name"));
    assert!(err(TaskProbes::builder().kind("")).contains("not a valid name"));
    let long: &'static str = "x".repeat(TASK_KIND_NAME_BYTES_MAX + 1).leak();
    assert!(err(TaskProbes::builder().kind(long)).contains("not a valid name"));
    let many: Vec<&'static str> = (0..=TASK_KINDS_MAX)
        .map(|i| &*format!("kind-{i}").leak())
        .collect();
    assert_eq!(
        err(TaskProbes::builder().kinds(many)),
        format!(
            "{} task kinds given, the limit is {TASK_KINDS_MAX}",
            TASK_KINDS_MAX + 1
        )
    );
    assert!(
        err(TaskProbes::builder().sample_interval(Duration::from_millis(1)))
            .contains("shorter than the minimum")
    );
    // Outside a runtime: task figures only, and no sampler.
    let probes = TaskProbes::builder().kind("a.b").build().unwrap();
    assert!(probes.snapshot().runtime.is_none());
    assert!(matches!(probes.start_sampler(), Err(TasksError::NoRuntime)));
}

#[test]
fn the_sampler_samples_and_ends_with_its_probes() {
    current_thread().block_on(async {
        let probes = TaskProbes::builder()
            .kind("node.get")
            .sample_interval(SAMPLE_INTERVAL_MIN)
            .build()
            .unwrap();
        probes.start_sampler().unwrap();
        probes.start_sampler().unwrap();
        let metrics = tokio::runtime::Handle::current().metrics();
        assert_eq!(
            metrics.num_alive_tasks(),
            1,
            "one sampler, however often started"
        );
        let get = probes.kind("node.get").unwrap();
        get.instrument(yield_times(1)).await;
        // Wait (by the real clock: the sampler runs on it) until a sample shows the future.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let latest = probes.inner.collector.lock().unwrap().latest.clone();
            if latest.is_some_and(|s| s.tasks["node.get"].instrumented_count == 1) {
                break;
            }
            assert!(Instant::now() < deadline, "no sample in 10 s");
            tokio::time::sleep(SAMPLE_INTERVAL_MIN).await;
        }
        drop(get);
        drop(probes);
        // Dropping the last clone aborts the sampler; the runtime reaps it at its next turn.
        for _ in 0..100 {
            if metrics.num_alive_tasks() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            metrics.num_alive_tasks(),
            0,
            "the sampler ended with its probes"
        );
    });
}

#[test]
fn the_snapshot_json_has_the_documented_shape() {
    current_thread().block_on(async {
        let probes = TaskProbes::builder()
            .kinds(["gateway.put", "node.put"])
            .build()
            .unwrap();
        probes
            .kind("gateway.put")
            .unwrap()
            .instrument(yield_times(2))
            .await;
        let snapshot = probes.sample();
        let json: serde_json::Value = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["enabled"], true);
        assert_eq!(json["tasks"]["gateway.put"]["instrumented_count"], 1);
        assert_eq!(json["tasks"]["gateway.put"]["total_poll_count"], 3);
        assert_eq!(json["tasks"]["node.put"]["total_poll_count"], 0);
        for key in [
            "dropped_count",
            "first_poll_count",
            "total_poll_duration_ns",
            "total_scheduled_count",
            "total_scheduled_duration_ns",
            "total_idle_count",
            "total_idle_duration_ns",
            "total_slow_poll_count",
            "total_slow_poll_duration_ns",
            "total_first_poll_delay_ns",
        ] {
            assert!(
                json["tasks"]["gateway.put"][key].is_u64(),
                "{key} in {json}"
            );
        }
        assert_eq!(json["runtime"]["workers_count"], 1);
        assert!(json["runtime"]["total_busy_duration_ns"].is_u64());
        assert_eq!(
            json["runtime"].get("total_steal_count").is_some(),
            cfg!(tokio_unstable),
            "unstable figures appear exactly in tokio_unstable builds: {json}"
        );
        assert_eq!(
            json["interval"]["tasks"]["gateway.put"]["instrumented_count"],
            1
        );
        let back: Snapshot = serde_json::from_value(json).unwrap();
        assert_eq!(back, snapshot);
    });
}

fn known_snapshot() -> Snapshot {
    let put = TaskFigures {
        instrumented_count: 10,
        dropped_count: 9,
        first_poll_count: 10,
        total_first_poll_delay_ns: 2_000,
        total_poll_count: 40,
        total_poll_duration_ns: 1_500_000_000,
        total_slow_poll_count: 3,
        total_slow_poll_duration_ns: 250_000_000,
        total_scheduled_count: 30,
        total_scheduled_duration_ns: 4_000_000,
        total_long_delay_count: 2,
        total_long_delay_duration_ns: 1_000_000,
        total_idle_count: 29,
        total_idle_duration_ns: 7_000_000_000,
        max_idle_duration_ns: 500_000_000,
        total_blocked_duration_ns: None,
    };
    Snapshot {
        version: SNAPSHOT_VERSION,
        enabled: true,
        uptime_ns: 60_000_000_000,
        tasks: BTreeMap::from([
            ("node.get".to_string(), TaskFigures::default()),
            ("gateway.put".to_string(), put),
        ]),
        runtime: Some(RuntimeFigures {
            workers_count: 2,
            live_tasks_count: 17,
            global_queue_depth: 1,
            elapsed_ns: 60_000_000_000,
            total_park_count: 1234,
            total_busy_duration_ns: 30_000_000_000,
            total_steal_count: Some(5),
            ..RuntimeFigures::default()
        }),
        interval: None,
    }
}

#[test]
fn prometheus_text_has_the_exact_lines() {
    let mut text = String::new();
    known_snapshot().render_prometheus(&mut text);
    for line in [
        "# HELP tokio_task_polls_total Polls of the task kind's futures.",
        "# TYPE tokio_task_polls_total counter",
        "tokio_task_polls_total{task=\"gateway.put\"} 40",
        "tokio_task_polls_total{task=\"node.get\"} 0",
        "tokio_task_instrumented_total{task=\"gateway.put\"} 10",
        "tokio_task_dropped_total{task=\"gateway.put\"} 9",
        "tokio_task_first_polls_total{task=\"gateway.put\"} 10",
        "tokio_task_first_poll_delay_seconds_total{task=\"gateway.put\"} 0.000002",
        "tokio_task_poll_duration_seconds_total{task=\"gateway.put\"} 1.5",
        "tokio_task_slow_polls_total{task=\"gateway.put\"} 3",
        "tokio_task_slow_poll_duration_seconds_total{task=\"gateway.put\"} 0.25",
        "tokio_task_scheduled_total{task=\"gateway.put\"} 30",
        "tokio_task_scheduled_duration_seconds_total{task=\"gateway.put\"} 0.004",
        "tokio_task_long_delays_total{task=\"gateway.put\"} 2",
        "tokio_task_long_delay_duration_seconds_total{task=\"gateway.put\"} 0.001",
        "tokio_task_idles_total{task=\"gateway.put\"} 29",
        "tokio_task_idle_duration_seconds_total{task=\"gateway.put\"} 7",
        "# TYPE tokio_task_max_idle_duration_seconds gauge",
        "tokio_task_max_idle_duration_seconds{task=\"gateway.put\"} 0.5",
        "# TYPE tokio_runtime_workers gauge",
        "tokio_runtime_workers 2",
        "tokio_runtime_live_tasks 17",
        "tokio_runtime_global_queue_depth 1",
        "# TYPE tokio_runtime_worker_parks_total counter",
        "tokio_runtime_worker_parks_total 1234",
        "tokio_runtime_worker_busy_seconds_total 30",
        "# TYPE tokio_runtime_worker_steals_total counter",
        "tokio_runtime_worker_steals_total 5",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in:\n{text}"
        );
    }
    // Unstable figures that are absent are left out, not shown as 0.
    assert!(!text.contains("tokio_runtime_worker_polls_total"), "{text}");
    // Every family has one HELP and one TYPE, before its samples; every sample is
    // `name{labels} value` or `name value` with a number.
    let mut families = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(!families.contains(&name), "{name} declared twice");
            families.push(name);
        } else if !line.starts_with("# HELP ") {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            assert_eq!(families.last(), Some(&name), "{line} outside its family");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
    assert_eq!(families.len(), 15 + 6);
}

#[test]
fn metric_samples_carry_the_task_label() {
    let samples = known_snapshot().metric_samples();
    let put_polls = samples
        .iter()
        .find(|s| s.family == "tokio_task_polls_total" && s.task.as_deref() == Some("gateway.put"))
        .unwrap();
    assert_eq!(put_polls.kind, MetricKind::Counter);
    assert_eq!(put_polls.value, 40.0);
    assert_eq!(put_polls.labels(), "task=\"gateway.put\"");
    let workers = samples
        .iter()
        .find(|s| s.family == "tokio_runtime_workers")
        .unwrap();
    assert_eq!(workers.labels(), "");
    let odd = MetricSample {
        task: Some("a\"b\\c\nd".into()),
        ..put_polls.clone()
    };
    assert_eq!(odd.labels(), r#"task="a\"b\\c\nd""#);
}

#[test]
fn derived_figures_divide_safely() {
    let none = TaskFigures::default();
    assert_eq!(none.mean_poll_duration_ns(), 0);
    assert_eq!(none.slow_poll_ratio(), 0.0);
    let put = known_snapshot().tasks["gateway.put"];
    assert_eq!(put.mean_poll_duration_ns(), 37_500_000);
    assert_eq!(put.mean_scheduled_duration_ns(), 133_333);
    assert_eq!(put.mean_first_poll_delay_ns(), 200);
    assert_eq!(put.long_delay_ratio(), 2.0 / 30.0);
    assert_eq!(put.alive_count(), 1);
}

#[test]
fn blocked_time_is_a_metric_only_when_it_was_measured() {
    let mut snapshot = known_snapshot();
    let mut text = String::new();
    snapshot.render_prometheus(&mut text);
    assert!(!text.contains("tokio_task_blocked"), "{text}");
    let put = snapshot
        .tasks
        .get_mut("gateway.put")
        .expect("the known kind");
    put.total_blocked_duration_ns = Some(250_000_000);
    let mut text = String::new();
    snapshot.render_prometheus(&mut text);
    assert!(
        text.contains("# TYPE tokio_task_blocked_duration_seconds_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("tokio_task_blocked_duration_seconds_total{task=\"gateway.put\"} 0.25\n"),
        "{text}"
    );
    let json = serde_json::to_value(&snapshot).expect("serializes");
    assert_eq!(
        json["tasks"]["gateway.put"]["total_blocked_duration_ns"],
        250_000_000
    );
}

#[test]
fn futures_wrapped_on_many_threads_add_up_in_their_kind() {
    let probes = TaskProbes::builder()
        .kind("test.threads")
        .without_runtime()
        .build()
        .unwrap();
    let kind = probes.kind("test.threads").unwrap();
    let before = probes.sample();
    // More threads than shards, so some share one.
    let threads = MONITOR_SHARDS + 2;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                current_thread().block_on(async {
                    for _ in 0..5 {
                        kind.instrument(yield_times(2)).await;
                    }
                })
            });
        }
    });
    let futures = 5 * threads as u64;
    let cumulative = kind.cumulative().unwrap();
    assert_eq!(cumulative.instrumented_count, futures);
    assert_eq!(cumulative.dropped_count, futures);
    assert_eq!(cumulative.total_poll_count, 3 * futures);
    assert_eq!(cumulative.total_idle_count, 2 * futures);
    assert_eq!(before.tasks["test.threads"].instrumented_count, 0);
    let interval = probes.sample().interval.unwrap().tasks["test.threads"];
    assert_eq!(
        (interval.instrumented_count, interval.total_poll_count),
        (futures, 3 * futures),
        "the interval sums the shards too"
    );
}

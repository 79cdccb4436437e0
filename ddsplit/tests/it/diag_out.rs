//! `ddsplit local --diag-out DIR`: the task figures of the run in `DIR/tasks.json`, agreeing
//! with the load report, and the `DDSPLIT_TASK_PROBES` switch.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{COMMAND_TIMEOUT, EVERY_FRAGMENT, ddsplit_bin, output_within};

fn local_run(out_dir: &Path, probes: Option<&str>) -> Output {
    let mut command = Command::new(ddsplit_bin());
    command
        .args(["local", "--listen", "127.0.0.1:0", "--no-admin"])
        .args(EVERY_FRAGMENT)
        .args([
            "--ops",
            "200",
            "--concurrency",
            "4",
            "--seed",
            "5",
            "--json",
        ])
        .args(["--size-min", "1KiB", "--size-max", "64KiB"])
        .arg("--diag-out")
        .arg(out_dir)
        .env_remove("DDSPLIT_TASK_PROBES");
    if let Some(value) = probes {
        command.env("DDSPLIT_TASK_PROBES", value);
    }
    output_within(&mut command, COMMAND_TIMEOUT, "ddsplit local --diag-out")
}

fn json_file(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn diag_out_holds_the_task_figures_of_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("probes");
    let out = local_run(&out_dir, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tasks = json_file(&out_dir.join("tasks.json"));
    assert_eq!(tasks["version"], 1);
    assert_eq!(tasks["enabled"], true);
    assert!(
        tasks.get("interval").is_none(),
        "the run's figures are cumulative only"
    );
    let figure = |kind: &str, name: &str| -> u64 {
        tasks["tasks"][kind][name]
            .as_u64()
            .unwrap_or_else(|| panic!("{kind}.{name} in {tasks}"))
    };
    // Gets and queries happen only in the measured phase: one handler each.
    for op in ["get", "query"] {
        assert_eq!(
            figure(&format!("gateway.{op}"), "instrumented_count"),
            report["per_op"][op]["ops"].as_u64().unwrap(),
            "{op}"
        );
    }
    // Puts also preload records; each is written to all k + m = 6 nodes (quorum k + m).
    let puts = figure("gateway.put", "instrumented_count");
    assert!(puts >= report["per_op"]["put"]["ops"].as_u64().unwrap());
    assert_eq!(figure("node.put", "instrumented_count"), 6 * puts);
    // A get reads k = 4 fragments at least.
    assert!(
        figure("node.get", "instrumented_count") >= 4 * figure("gateway.get", "instrumented_count")
    );
    for kind in ["gateway.put", "gateway.get", "node.put", "node.get"] {
        assert_eq!(
            figure(kind, "dropped_count"),
            figure(kind, "instrumented_count"),
            "every {kind} handler finished"
        );
        assert!(figure(kind, "total_poll_count") >= figure(kind, "instrumented_count"));
        assert!(figure(kind, "total_poll_duration_ns") > 0);
    }
    assert_eq!(figure("gateway.delete", "instrumented_count"), 0);
    assert!(
        tasks["tasks"].get("gateway.conn").is_none(),
        "connection tasks are measured only with DDSPLIT_TASK_PROBES=all"
    );
    let runtime = &tasks["runtime"];
    assert!(runtime["workers_count"].as_u64().unwrap() >= 1, "{runtime}");
    assert!(
        runtime["total_busy_duration_ns"].as_u64().unwrap() > 0,
        "{runtime}"
    );
}

#[test]
fn all_task_probes_measure_the_connection_tasks_too() {
    let dir = tempfile::tempdir().unwrap();
    let out = local_run(dir.path(), Some("all"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tasks = json_file(&dir.path().join("tasks.json"));
    for conn in ["gateway.conn", "node.conn"] {
        let figures = &tasks["tasks"][conn];
        assert!(
            figures["instrumented_count"].as_u64().unwrap() >= 1,
            "{conn}: {tasks}"
        );
        assert!(
            figures["total_poll_count"].as_u64().unwrap() > 0,
            "{conn}: {tasks}"
        );
    }
    // One connection per load worker at least.
    assert!(
        tasks["tasks"]["gateway.conn"]["instrumented_count"]
            .as_u64()
            .unwrap()
            >= 4
    );
}

#[test]
fn the_task_probes_switch_turns_the_monitors_off() {
    let dir = tempfile::tempdir().unwrap();
    let out = local_run(dir.path(), Some("off"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tasks = json_file(&dir.path().join("tasks.json"));
    assert_eq!(tasks["enabled"], false);
    assert_eq!(
        tasks["tasks"],
        serde_json::json!({}),
        "nothing measured, nothing listed"
    );
    assert!(tasks["runtime"]["workers_count"].as_u64().unwrap() >= 1);

    let out = local_run(dir.path(), Some("maybe"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DDSPLIT_TASK_PROBES must be `on`, `all` or `off`, not \"maybe\""),
        "{stderr}"
    );
}

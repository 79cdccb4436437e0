//! DDSplit's task probes ([`diag::tasks`]): one task kind per role and request operation
//! (`gateway.put`, `node.get`, ...) and one for each role's connection tasks; their figures on
//! `/metrics`, as JSON on `/debug/tasks`, and in `tasks.json` at the end of a run.
//!
//! Every request handler runs inside the monitor of its kind, awaited inline on its
//! connection's task (no extra spawn); each connection task runs inside its role's `.conn`
//! monitor. `DDSPLIT_TASK_PROBES=off` turns the monitors off (to measure what they cost).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use diag::tasks::{Snapshot, TaskKind, TaskProbes};
use futures::future::BoxFuture;

use crate::admin::{AdminRoute, HttpResponse};
use crate::metrics::{MetricsSource, Sample};
use crate::wire::OP_NAMES;

/// Environment variable that turns the task monitors `on` (default) or `off`.
pub const TASK_PROBES_ENV: &str = "DDSPLIT_TASK_PROBES";

/// The file `--diag-out DIR` writes the task figures to.
pub const TASKS_JSON: &str = "tasks.json";

/// Every task kind: (role, operation in [`OP_NAMES`] or `conn` for the connection tasks, kind).
const KINDS: [(&str, &str, &str); 12] = [
    ("gateway", "conn", "gateway.conn"),
    ("gateway", "put", "gateway.put"),
    ("gateway", "get", "gateway.get"),
    ("gateway", "query", "gateway.query"),
    ("gateway", "delete", "gateway.delete"),
    ("gateway", "cluster_stats", "gateway.stats"),
    ("node", "conn", "node.conn"),
    ("node", "put_fragment", "node.put"),
    ("node", "get_fragment", "node.get"),
    ("node", "delete_fragments", "node.delete"),
    ("node", "list_fragments", "node.list"),
    ("node", "node_stats", "node.stats"),
];

/// The names of every task kind of DDSplit.
pub fn task_kinds() -> impl Iterator<Item = &'static str> {
    KINDS.iter().map(|&(_, _, kind)| kind)
}

/// Reads [`TASK_PROBES_ENV`]: `on`/`1`/`true` or unset for on, `off`/`0`/`false` for off.
pub fn enabled_from_env() -> anyhow::Result<bool> {
    match std::env::var(TASK_PROBES_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(true),
        Ok(value) => parse_switch(&value),
        Err(e) => anyhow::bail!("{TASK_PROBES_ENV}: {e}"),
    }
}

fn parse_switch(value: &str) -> anyhow::Result<bool> {
    match value {
        "on" | "1" | "true" => Ok(true),
        "off" | "0" | "false" => Ok(false),
        other => anyhow::bail!("{TASK_PROBES_ENV} must be `on` or `off`, not {other:?}"),
    }
}

/// The task probes of a process: every DDSplit kind, on unless [`TASK_PROBES_ENV`] says off
/// (a bad value is refused by the `ddsplit` command at start; here it leaves them on), with the
/// sampler running when built inside a runtime.
pub fn probes_from_env() -> TaskProbes {
    let probes = TaskProbes::builder()
        .kinds(task_kinds())
        .enabled(enabled_from_env().unwrap_or(true))
        .build()
        .expect("DDSplit's kinds are valid, distinct and few, and the interval is the default");
    // Outside a runtime there is no sampler; snapshots are then taken on demand.
    let _ = probes.start_sampler();
    probes
}

/// The task kinds one server (a node or a gateway) instruments, looked up once at its start.
#[derive(Clone, Debug)]
pub struct ServerTasks {
    conn: TaskKind,
    /// Indexed like [`OP_NAMES`]; the other role's operations get a kind that is off (they are
    /// refused at once).
    ops: [TaskKind; OP_NAMES.len()],
}

impl ServerTasks {
    /// The kinds of a server with `role` (`gateway` or `node`) from `probes`.
    pub fn new(role: &str, probes: &TaskProbes) -> ServerTasks {
        let kind = |op: &str| {
            KINDS
                .iter()
                .find(|&&(r, o, _)| r == role && o == op)
                .and_then(|&(_, _, name)| probes.kind(name))
                .unwrap_or_else(|| TaskKind::off("other"))
        };
        ServerTasks {
            conn: kind("conn"),
            ops: std::array::from_fn(|op| kind(OP_NAMES[op])),
        }
    }

    /// Kinds that measure nothing.
    pub fn off() -> ServerTasks {
        ServerTasks {
            conn: TaskKind::off("conn"),
            ops: std::array::from_fn(|_| TaskKind::off("other")),
        }
    }

    /// The kind of the server's connection tasks.
    pub fn conn(&self) -> &TaskKind {
        &self.conn
    }

    /// The kind of operation `op` (an index into [`OP_NAMES`]).
    pub fn op(&self, op: usize) -> &TaskKind {
        &self.ops[op]
    }
}

/// The task and runtime figures on `/metrics`.
#[derive(Debug)]
pub struct TasksSource {
    probes: TaskProbes,
}

impl TasksSource {
    /// `/metrics` samples of `probes`.
    pub fn new(probes: TaskProbes) -> TasksSource {
        TasksSource { probes }
    }
}

impl MetricsSource for TasksSource {
    fn collect(&self, out: &mut Vec<Sample>) {
        for sample in self.probes.snapshot().metric_samples() {
            let labels = sample.labels();
            out.push(Sample {
                family: sample.family,
                kind: sample.kind.as_str(),
                help: sample.help,
                suffix: "",
                labels,
                value: sample.value,
            });
        }
    }
}

/// `/debug/tasks`: the latest snapshot as JSON (cumulative figures and the last interval).
#[derive(Debug)]
pub struct TasksRoute {
    probes: TaskProbes,
}

impl TasksRoute {
    /// The route for `probes`.
    pub fn new(probes: TaskProbes) -> TasksRoute {
        TasksRoute { probes }
    }
}

impl AdminRoute for TasksRoute {
    fn path(&self) -> &'static str {
        "/debug/tasks"
    }

    fn describe(&self) -> &'static str {
        "task and runtime metrics per task kind (JSON)"
    }

    fn get(&self, _query: &str) -> BoxFuture<'static, HttpResponse> {
        let snapshot = self.probes.snapshot();
        Box::pin(async move {
            match serde_json::to_vec_pretty(&snapshot) {
                Ok(mut body) => {
                    body.push(b'\n');
                    HttpResponse::text("application/json", body)
                }
                Err(e) => HttpResponse::error(503, format!("encoding the snapshot: {e}")),
            }
        })
    }
}

/// The figures of the whole run as of now, as `tasks.json` holds them: cumulative only.
pub fn run_snapshot(probes: &TaskProbes) -> Snapshot {
    Snapshot {
        interval: None,
        ..probes.sample()
    }
}

/// Writes [`run_snapshot`] to `dir/tasks.json`; returns the file's path.
pub fn write_json(dir: &Path, probes: &TaskProbes) -> anyhow::Result<PathBuf> {
    let path = dir.join(TASKS_JSON);
    let mut json = serde_json::to_vec_pretty(&run_snapshot(probes))?;
    json.push(b'\n');
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The probes of `registry` as a metrics source (what [`crate::metrics::Registry::tasks`]
/// registers).
pub(crate) fn source(probes: &TaskProbes) -> Arc<dyn MetricsSource> {
    Arc::new(TasksSource::new(probes.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_says_on_or_off() {
        assert!(parse_switch("on").expect("valid"));
        assert!(!parse_switch("off").expect("valid"));
        assert!(!parse_switch("0").expect("valid"));
        assert_eq!(
            parse_switch("yes").expect_err("invalid").to_string(),
            "DDSPLIT_TASK_PROBES must be `on` or `off`, not \"yes\""
        );
    }

    #[test]
    fn every_operation_of_a_role_has_its_kind() {
        let probes = TaskProbes::builder()
            .kinds(task_kinds())
            .build()
            .expect("valid kinds");
        let gateway = ServerTasks::new("gateway", &probes);
        let node = ServerTasks::new("node", &probes);
        let names = |tasks: &ServerTasks| -> Vec<&str> {
            (0..OP_NAMES.len()).map(|op| tasks.op(op).name()).collect()
        };
        assert_eq!(
            names(&gateway),
            [
                "other",
                "other",
                "other",
                "other",
                "other",
                "gateway.put",
                "gateway.get",
                "gateway.query",
                "gateway.delete",
                "gateway.stats"
            ]
        );
        assert_eq!(
            names(&node),
            [
                "node.put",
                "node.get",
                "node.delete",
                "node.list",
                "node.stats",
                "other",
                "other",
                "other",
                "other",
                "other"
            ]
        );
        assert_eq!(gateway.conn().name(), "gateway.conn");
        assert_eq!(node.conn().name(), "node.conn");
        // Every kind names a real operation of its role.
        for (role, op, kind) in KINDS {
            assert!(op == "conn" || OP_NAMES.contains(&op), "{op}");
            assert!(kind.starts_with(&format!("{role}.")), "{kind}");
        }
    }
}

//! DDSplit's task probes ([`diag::tasks`]): one task kind per role and request operation
//! (`gateway.put`, `node.get`, ...) and one for each role's connection tasks; their figures on
//! `/metrics`, as JSON on `/debug/tasks`, and in `tasks.json` at the end of a run.
//!
//! Every request handler runs inside the monitor of its kind, awaited inline on its
//! connection's task (no extra spawn). [`TASK_PROBES_ENV`] picks what is measured: `on` (the
//! default) the request handlers; `all` the connection tasks too, in their role's `.conn` kind
//! (frame decoding and encoding, waiting for the next request; it about doubles what the
//! monitors cost, so it is not the default); `off` nothing (to measure the cost).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use diag::tasks::{Snapshot, TaskKind, TaskProbes};

use crate::op::{Op, Role};

/// Environment variable that picks the task monitors: `on` (default), `all` or `off`
/// ([`TaskProbeLevel`]).
pub const TASK_PROBES_ENV: &str = "DDSPLIT_TASK_PROBES";

/// What the task monitors measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskProbeLevel {
    /// Nothing: instrumented futures pass through untouched.
    Off,
    /// The request handlers, one kind per role and operation (the default).
    Handlers,
    /// The handlers and the connection tasks (`gateway.conn`, `node.conn`).
    All,
}

/// The file `--diag-out DIR` writes the task figures to.
pub const TASKS_JSON: &str = "tasks.json";

/// The roles, each with its connection tasks' kind and its operations' kinds.
const ROLES: [Role; 2] = [Role::Gateway, Role::Node];

/// The names of every task kind of DDSplit: each role's connection kind, then its operations'.
pub fn task_kinds() -> impl Iterator<Item = &'static str> {
    ROLES
        .into_iter()
        .flat_map(|role| std::iter::once(role.conn_kind()).chain(Op::of(role).map(Op::task_kind)))
}

/// Reads [`TASK_PROBES_ENV`]: unset or `on` for [`TaskProbeLevel::Handlers`], `all`, `off`.
pub fn level_from_env() -> anyhow::Result<TaskProbeLevel> {
    match std::env::var(TASK_PROBES_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(TaskProbeLevel::Handlers),
        Ok(value) => parse_level(&value),
        Err(e) => anyhow::bail!("{TASK_PROBES_ENV}: {e}"),
    }
}

fn parse_level(value: &str) -> anyhow::Result<TaskProbeLevel> {
    match value {
        "on" => Ok(TaskProbeLevel::Handlers),
        "all" => Ok(TaskProbeLevel::All),
        "off" => Ok(TaskProbeLevel::Off),
        other => anyhow::bail!("{TASK_PROBES_ENV} must be `on`, `all` or `off`, not {other:?}"),
    }
}

/// The task probes of a process at `level`, with the sampler running when built inside a
/// runtime.
pub fn probes(level: TaskProbeLevel) -> TaskProbes {
    let kinds = task_kinds().filter(|kind| level == TaskProbeLevel::All || !is_conn_kind(kind));
    let probes = TaskProbes::builder()
        .kinds(kinds)
        .enabled(level != TaskProbeLevel::Off)
        .build()
        .expect("DDSplit's kinds are valid, distinct and few, and the interval is the default");
    // Outside a runtime there is no sampler; snapshots are then taken on demand.
    let _ = probes.start_sampler();
    probes
}

fn is_conn_kind(kind: &str) -> bool {
    ROLES.iter().any(|role| role.conn_kind() == kind)
}

/// [`probes`] at the level [`TASK_PROBES_ENV`] asks for (a bad value is refused by the
/// `ddsplit` command at its start; here it gives the default).
pub fn probes_from_env() -> TaskProbes {
    probes(level_from_env().unwrap_or(TaskProbeLevel::Handlers))
}

/// The task kinds one server (a node or a gateway) instruments, looked up once at its start.
#[derive(Clone, Debug)]
pub struct ServerTasks {
    conn: TaskKind,
    /// Indexed by [`Op::slot`]; the other role's operations get a kind that is off (they are
    /// refused at once).
    ops: [TaskKind; Op::COUNT],
}

impl ServerTasks {
    /// The kinds of a server with `role` from `probes`; a kind the probes do not measure keeps
    /// its name (spawned tasks carry it) and measures nothing.
    pub fn new(role: Role, probes: &TaskProbes) -> ServerTasks {
        let kind = |name: &'static str| probes.kind(name).unwrap_or_else(|| TaskKind::off(name));
        ServerTasks {
            conn: kind(role.conn_kind()),
            ops: Op::ALL.map(|op| {
                if op.role() == role {
                    kind(op.task_kind())
                } else {
                    TaskKind::off("other")
                }
            }),
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

    /// The kind of operation `op`.
    pub fn op(&self, op: Op) -> &TaskKind {
        &self.ops[op.slot()]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_says_on_all_or_off() {
        assert_eq!(parse_level("on").expect("valid"), TaskProbeLevel::Handlers);
        assert_eq!(parse_level("all").expect("valid"), TaskProbeLevel::All);
        assert_eq!(parse_level("off").expect("valid"), TaskProbeLevel::Off);
        assert_eq!(
            parse_level("yes").expect_err("invalid").to_string(),
            "DDSPLIT_TASK_PROBES must be `on`, `all` or `off`, not \"yes\""
        );
    }

    #[test]
    fn connection_tasks_are_measured_only_at_level_all() {
        let names = |level| -> Vec<&str> { probes(level).kinds().map(|k| k.name()).collect() };
        assert_eq!(names(TaskProbeLevel::All).len(), task_kinds().count());
        let handlers = names(TaskProbeLevel::Handlers);
        assert_eq!(handlers.len(), task_kinds().count() - 2);
        assert!(
            !handlers.iter().any(|k| k.ends_with(".conn")),
            "{handlers:?}"
        );
        let gateway = ServerTasks::new(Role::Gateway, &probes(TaskProbeLevel::Handlers));
        assert_eq!(
            gateway.conn().name(),
            "gateway.conn",
            "unmeasured, still named"
        );
        assert_eq!(gateway.conn().cumulative(), None);
    }

    #[test]
    fn every_operation_of_a_role_has_its_kind() {
        let probes = probes(TaskProbeLevel::All);
        let gateway = ServerTasks::new(Role::Gateway, &probes);
        let node = ServerTasks::new(Role::Node, &probes);
        let names = |tasks: &ServerTasks| -> Vec<&str> {
            Op::ALL.iter().map(|&op| tasks.op(op).name()).collect()
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
                "gateway.stats",
                "gateway.repair",
                "gateway.repair_scan"
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
                "other",
                "other",
                "other"
            ]
        );
        assert_eq!(gateway.conn().name(), "gateway.conn");
        assert_eq!(node.conn().name(), "node.conn");
    }
}

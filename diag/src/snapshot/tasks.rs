//! The task and runtime metrics of a run, read from the `tasks.json` a program wrote with the
//! task probes ([`crate::tasks::Snapshot`]): the writer's types, so a figure is a field, not a
//! name looked up.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::tasks::{RuntimeFigures, SNAPSHOT_VERSION};

/// Errors reading a `tasks.json`.
#[derive(Debug, thiserror::Error)]
pub enum TasksJsonError {
    /// The JSON does not parse as the task probes' snapshot.
    #[error("tasks.json is not a snapshot of the task probes: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by another version of the task probes.
    #[error(
        "tasks.json has version {found}, this tool reads version {SNAPSHOT_VERSION}: run the \
         program of this build again"
    )]
    Version {
        /// The version found.
        found: u32,
    },
}

/// Task and runtime metrics over a run: the cumulative figures per task kind and of the
/// runtime, as the program wrote them, with the operations they were measured over.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskRunFigures {
    /// Operations of the run.
    pub ops: u64,
    /// Figures per task kind (`gateway.put`...).
    pub kinds: BTreeMap<String, crate::tasks::TaskFigures>,
    /// The runtime's figures; `None` when the program's probes ran outside a runtime.
    #[serde(default)]
    pub runtime: Option<RuntimeFigures>,
}

impl TaskRunFigures {
    /// Reads the `tasks.json` a program wrote (a [`crate::tasks::Snapshot`]) over a run of `ops`
    /// operations; refuses a `version` other than [`SNAPSHOT_VERSION`].
    pub fn from_json(text: &str, ops: u64) -> Result<TaskRunFigures, TasksJsonError> {
        // The version first: another version's fields may not parse at all.
        #[derive(Deserialize)]
        struct Head {
            version: u32,
        }
        let head: Head = serde_json::from_str(text)?;
        if head.version != SNAPSHOT_VERSION {
            return Err(TasksJsonError::Version {
                found: head.version,
            });
        }
        let snapshot: crate::tasks::Snapshot = serde_json::from_str(text)?;
        Ok(TaskRunFigures {
            ops,
            kinds: snapshot.tasks,
            runtime: snapshot.runtime,
        })
    }

    /// The figures of task kind `kind`; `None` when this run has no such kind.
    pub fn kind(&self, kind: &str) -> Option<&crate::tasks::TaskFigures> {
        self.kinds.get(kind)
    }

    /// A figure of task kind `kind` per operation (`figure` picks it, e.g.
    /// `|k| k.total_poll_duration_ns`); `None` when this run has no such kind, 0 when it had
    /// no operations.
    pub fn per_op(
        &self,
        kind: &str,
        figure: impl Fn(&crate::tasks::TaskFigures) -> u64,
    ) -> Option<f64> {
        self.kind(kind).map(|k| super::per_op(figure(k), self.ops))
    }

    /// The runtime's worker threads; `None` without runtime figures.
    pub fn workers(&self) -> Option<u64> {
        self.runtime.map(|r| r.workers_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `tasks.json` of a run whose `gateway.put` polled 40 times for 8 µs, on 2 workers.
    fn tasks_json() -> serde_json::Value {
        let put = crate::tasks::TaskFigures {
            total_poll_count: 40,
            total_poll_duration_ns: 8000,
            ..crate::tasks::TaskFigures::default()
        };
        let snapshot = crate::tasks::Snapshot {
            version: SNAPSHOT_VERSION,
            enabled: true,
            tasks: BTreeMap::from([("gateway.put".to_string(), put)]),
            runtime: Some(RuntimeFigures {
                workers_count: 2,
                ..RuntimeFigures::default()
            }),
            ..crate::tasks::Snapshot::default()
        };
        serde_json::to_value(snapshot).unwrap()
    }

    #[test]
    fn task_figures_keep_each_kind_and_divide_by_ops() {
        let mut json = tasks_json();
        // A field the reader does not know (a newer writer's) is left out.
        json["tasks"]["gateway.put"]["name"] = "x".into();
        let tasks = TaskRunFigures::from_json(&json.to_string(), 20).unwrap();
        assert_eq!(
            tasks.per_op("gateway.put", |k| k.total_poll_count),
            Some(2.0)
        );
        assert_eq!(
            tasks.per_op("gateway.put", |k| k.total_poll_duration_ns),
            Some(400.0)
        );
        assert_eq!(tasks.per_op("node.get", |k| k.total_poll_count), None);
        assert_eq!(tasks.workers(), Some(2));
    }

    #[test]
    fn tasks_json_of_another_version_is_refused() {
        let mut json = tasks_json();
        json["version"] = 99.into();
        let err = TaskRunFigures::from_json(&json.to_string(), 20).unwrap_err();
        assert!(err.to_string().contains("version 99"), "{err}");
    }
}

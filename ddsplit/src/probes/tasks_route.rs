//! `/debug/tasks`: the task probes' latest snapshot as JSON.

use diag::tasks::TaskProbes;
use futures::future::BoxFuture;

use crate::admin::{AdminRoute, HttpResponse};

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

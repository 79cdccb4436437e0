//! The wait layer: a `tracing` layer beside the console's that times every wait on a tokio
//! resource, in the process, from the spans tokio makes under `--cfg tokio_unstable`.
//!
//! tokio wraps each `lock()`, `acquire()`, `sleep` (...) in an async-operation span inside the
//! resource's span, and marks each poll of it ready or not. The console's aggregator keys those
//! operations by span id, which the tracing registry hands out again as soon as a span closes,
//! so an operation that closes between two of its publishes is often replaced by the next one
//! and never reported: at 25 operations a second a recording held 21 of 150 waits. This layer
//! keeps each operation's state in its own span and counts it when the span closes: every
//! completed wait, exactly. A wait is an operation from its creation to its close, counted only
//! when it completed (a poll of it returned ready; a `Sleep` lived to its deadline, so a
//! timeout's timer that never fired is no wait on it), and only the outermost operation of a
//! resource (the semaphore inside a `Mutex` is the mutex).
//!
//! It measures only between [`start`] and [`take`]; otherwise each span costs one relaxed load.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::waits::{ResourceWaits, WAITS_VERSION, WaitsSummary};

static MEASURING: AtomicBool = AtomicBool::new(false);

/// The sites' totals while measuring, and when it started.
static TOTALS: Mutex<Option<Totals>> = Mutex::new(None);

#[derive(Debug)]
struct Totals {
    started: Instant,
    sites: HashMap<Arc<Site>, ResourceWaits>,
}

/// A resource's type, kind and place of creation.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Site {
    concrete_type: String,
    kind: String,
    location: String,
}

/// What the layer keeps in an async operation's span.
#[derive(Debug)]
struct Op {
    site: Arc<Site>,
    task: Arc<str>,
    /// The task kind whose poll started it, when polls are marked.
    kind: Option<&'static str>,
    created: Instant,
    ready: AtomicBool,
    /// A `Sleep`'s time to its deadline, nanoseconds, once its first poll said (0 before).
    sleeps_ns: AtomicU64,
}

impl Op {
    /// Whether the operation completed: a `Sleep` when it lived to its deadline (its polls'
    /// readiness is the task's cooperative budget's, not the timer's: a timeout that never
    /// fired looked ready), any other when a poll of it returned ready.
    fn completed(&self, lived_ns: u64) -> bool {
        if self.site.concrete_type == "Sleep" {
            let sleeps = self.sleeps_ns.load(Ordering::Relaxed);
            // The timer wheel rounds a deadline to its millisecond tick.
            return sleeps > 0 && lived_ns + TIMER_TICK_NS >= sleeps;
        }
        self.ready.load(Ordering::Relaxed)
    }
}

/// The timer wheel's resolution.
const TIMER_TICK_NS: u64 = 1_000_000;

/// A task's name, kept in its span.
struct TaskName(Arc<str>);

thread_local! {
    /// The tasks being polled on this thread (a task's poll may run another's, `block_on`
    /// inside `spawn_blocking`): their span ids and names, innermost last.
    static POLLING: RefCell<Vec<(Id, Arc<str>)>> = const { RefCell::new(Vec::new()) };
}

/// The name of the task being polled on this thread.
fn polling_task() -> Arc<str> {
    POLLING
        .with(|p| p.borrow().last().map(|(_, name)| Arc::clone(name)))
        .unwrap_or_else(|| "unnamed".into())
}

/// The layer: add it beside the console's.
#[derive(Debug, Default)]
pub struct WaitLayer;

/// Starts measuring (again from zero). Each wait is charged to the task kind whose poll
/// started it when polls are marked (`diag::blocking::mark_polls`).
pub fn start() {
    let mut totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    *totals = Some(Totals {
        started: Instant::now(),
        sites: HashMap::new(),
    });
    MEASURING.store(true, Ordering::Relaxed);
}

/// Stops measuring and returns what was measured; `None` when [`start`] was not called.
pub fn take() -> Option<WaitsSummary> {
    MEASURING.store(false, Ordering::Relaxed);
    let totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner()).take()?;
    let mut resources: Vec<ResourceWaits> = totals.sites.into_values().collect();
    resources.sort_by(|a, b| {
        b.wait_ns
            .total_cmp(&a.wait_ns)
            .then_with(|| a.location.cmp(&b.location))
    });
    Some(WaitsSummary {
        version: WAITS_VERSION,
        duration_ns: totals.started.elapsed().as_nanos() as u64,
        resources,
    })
}

fn measuring() -> bool {
    MEASURING.load(Ordering::Relaxed)
}

/// Adds to the site's totals: a resource made (`waited` `None`) or a wait done by `op`.
fn add(site: &Arc<Site>, op: Option<&Op>, waited: Option<f64>) {
    let mut totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(totals) = totals.as_mut() else {
        return;
    };
    let entry = totals
        .sites
        .entry(Arc::clone(site))
        .or_insert_with(|| ResourceWaits {
            concrete_type: site.concrete_type.clone(),
            kind: site.kind.clone(),
            location: site.location.clone(),
            ..ResourceWaits::default()
        });
    match waited {
        None => entry.resources += 1,
        Some(ns) => {
            entry.waits += 1;
            entry.wait_ns += ns;
            let task = op.map_or("unnamed", |op| &op.task);
            let by_task = entry.tasks.entry(task.to_string()).or_default();
            by_task.waits += 1;
            by_task.wait_ns += ns;
            if let Some(kind) = op.and_then(|op| op.kind) {
                let by_kind = entry.kinds.entry(kind.to_string()).or_default();
                by_kind.waits += 1;
                by_kind.wait_ns += ns;
            }
        }
    }
}

impl<S> Layer<S> for WaitLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // Tasks and resources are named whenever they are made: a connection's task and a
        // long-lived lock come before the measuring starts.
        let Some(span) = ctx.span(id) else { return };
        match attrs.metadata().name() {
            "runtime.resource" => {
                let mut fields = Fields::default();
                attrs.record(&mut fields);
                if fields.is_internal {
                    return;
                }
                let site = Arc::new(fields.site());
                if measuring() {
                    add(&site, None, None);
                }
                span.extensions_mut().insert(site);
            }
            "runtime.spawn" => {
                let mut fields = Fields::default();
                attrs.record(&mut fields);
                let name = fields.task_name.filter(|n| !n.is_empty());
                let name = name.unwrap_or_else(|| "unnamed".into());
                span.extensions_mut().insert(TaskName(name.into()));
            }
            "runtime.resource.async_op" if measuring() => {
                // Its parent is the resource's span; an operation inside another (or on an
                // internal part) has none with a site, and the outer one counts.
                let Some(parent) = span.parent() else { return };
                let site = parent.extensions().get::<Arc<Site>>().cloned();
                let Some(site) = site else { return };
                span.extensions_mut().insert(Op {
                    site,
                    task: polling_task(),
                    kind: crate::blocking::polling_kind(),
                    created: Instant::now(),
                    ready: AtomicBool::new(false),
                    sleeps_ns: AtomicU64::new(0),
                });
            }
            _ => {}
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(task) = span.extensions().get::<TaskName>() {
            let name = Arc::clone(&task.0);
            POLLING.with(|p| p.borrow_mut().push((id.clone(), name)));
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        POLLING.with(|p| {
            let mut polling = p.borrow_mut();
            if polling.last().is_some_and(|(top, _)| top == id) {
                polling.pop();
            }
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let target = event.metadata().target();
        if !measuring()
            || !matches!(
                target,
                "runtime::resource::poll_op" | "runtime::resource::state_update"
            )
        {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if !fields.is_ready && fields.duration_ms.is_none() {
            return;
        }
        // The poll's span is inside the operation's.
        let Some(op_span) = ctx
            .event_scope(event)
            .into_iter()
            .flatten()
            .find(|s| s.extensions().get::<Op>().is_some())
        else {
            return;
        };
        let extensions = op_span.extensions();
        let Some(op) = extensions.get::<Op>() else {
            return;
        };
        if fields.is_ready {
            op.ready.store(true, Ordering::Relaxed);
        }
        if let Some(ms) = fields.duration_ms {
            // A `Sleep`'s first poll says how far its deadline is.
            let _ = op.sleeps_ns.compare_exchange(
                0,
                ms.saturating_mul(1_000_000).max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if !measuring() {
            return;
        }
        let Some(span) = ctx.span(&id) else { return };
        let extensions = span.extensions();
        let Some(op) = extensions.get::<Op>() else {
            return;
        };
        let lived = op.created.elapsed().as_nanos() as u64;
        if op.completed(lived) {
            add(&op.site, Some(op), Some(lived as f64));
        }
    }
}

/// The fields the layer reads off tokio's spans and events.
#[derive(Debug, Default)]
struct Fields {
    concrete_type: Option<String>,
    kind: Option<String>,
    file: Option<String>,
    line: Option<u64>,
    task_name: Option<String>,
    is_ready: bool,
    is_internal: bool,
    duration_ms: Option<u64>,
}

impl Fields {
    fn site(self) -> Site {
        let file = self.file.unwrap_or_else(|| "?".into());
        Site {
            concrete_type: self.concrete_type.unwrap_or_else(|| "?".into()),
            kind: self.kind.unwrap_or_default(),
            location: match self.line {
                Some(line) => format!("{file}:{line}"),
                None => file,
            },
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "concrete_type" => self.concrete_type = Some(value.to_string()),
            "kind" => self.kind = Some(value.to_string()),
            "loc.file" => self.file = Some(value.to_string()),
            "task.name" => self.task_name = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "loc.line" => self.line = Some(value),
            "duration" => self.duration_ms = Some(value),
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "loc.line" {
            self.line = u64::try_from(value).ok();
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        match field.name() {
            "is_ready" => self.is_ready = value,
            "is_internal" => self.is_internal = value,
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        let text = text.trim_matches('"').to_string();
        match field.name() {
            "concrete_type" | "kind" | "loc.file" | "task.name" => {
                self.record_str(field, &text);
            }
            _ => {}
        }
    }
}

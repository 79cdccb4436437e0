//! The wait layer: a `tracing` layer beside the console's that times every wait on a tokio
//! resource, in the process, from the spans tokio makes under `--cfg tokio_unstable`.
//!
//! tokio wraps each `lock()`, `acquire()`, `sleep` (...) in an async-operation span inside the
//! resource's span, enters a poll span inside it at each poll, and says in a `poll_op` event
//! whether the poll was ready. The console's aggregator keys those operations by span id, which
//! the tracing registry hands out again as soon as a span closes, so an operation that closes
//! between two of its publishes is often replaced by the next one and never reported: at 25
//! operations a second a recording held 21 of 150 waits. This layer keeps each operation's
//! state in its own span and counts it when the span closes: every completed wait.
//!
//! A wait runs from the operation's first poll (its waiter, the task and task kind charged, is
//! the one polling it then) to the poll that found it ready; one that never completed (a
//! timeout's timer that did not fire) is no wait. A `Sleep`'s poll says twice whether it is
//! ready: first for the task's cooperative budget, then for the timer; only the second says it
//! fired. An operation polled inside another's poll (the `Sleep` inside an `Interval`'s tick)
//! is part of the outer one, and a resource's internal parts (the semaphore inside a `Mutex`)
//! are its resource's. A resource tokio made no span for (a `Mutex` made with `const_new`, as
//! a `static` is) has no place: its waits are kept under its type, at [`UNPLACED`].
//!
//! Only tokio's `runtime.*` spans and events reach it (a per-layer filter). It names tasks and
//! resources whenever they are made (an `Arc` and a few strings each: a connection's task and a
//! long-lived lock come before measuring starts), and times waits only between [`start`] and
//! [`take`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
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
    state: Mutex<OpState>,
}

/// An operation's polls so far.
#[derive(Debug, Default)]
struct OpState {
    /// The task and task kind that polled it first, and when: its waiter.
    waiter: Option<Waiter>,
    /// `poll_op` events seen in the poll being run (a `Sleep`'s first is its budget's).
    events_in_poll: u32,
    /// When a poll found it ready.
    ready_at: Option<Instant>,
    /// Polled inside another operation's poll: the outer one counts.
    nested: bool,
}

#[derive(Debug)]
struct Waiter {
    task: Arc<str>,
    kind: Option<&'static str>,
    since: Instant,
}

impl Op {
    fn state(&self) -> std::sync::MutexGuard<'_, OpState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes in one `poll_op` event of its current poll.
    fn polled(&self, is_ready: bool) {
        let mut state = self.state();
        state.events_in_poll += 1;
        if state.waiter.is_none() {
            state.waiter = Some(Waiter {
                task: polling_task(),
                kind: crate::blocking::polling_kind(),
                since: Instant::now(),
            });
        }
        // A `Sleep` reports its budget first and its timer second.
        let timer_said = self.site.concrete_type != "Sleep" || state.events_in_poll >= 2;
        if is_ready && timer_said && state.ready_at.is_none() {
            state.ready_at = Some(Instant::now());
        }
    }
}

/// A task's name, kept in its span.
struct TaskName(Arc<str>);

thread_local! {
    /// The tasks being polled on this thread (a task's poll may run another's, `block_on`
    /// inside `spawn_blocking`): their span ids and names, innermost last.
    static POLLING: RefCell<Vec<(Id, Arc<str>)>> = const { RefCell::new(Vec::new()) };
    /// The operations whose poll runs on this thread, innermost last: their poll spans' ids.
    static OP_POLLS: RefCell<Vec<Id>> = const { RefCell::new(Vec::new()) };
}

/// Removes `id`'s entry from a stack of entered spans, searched from the top (an exit out of
/// order must not leave it there for good).
fn exit<T>(stack: &RefCell<Vec<T>>, is: impl Fn(&T) -> bool) {
    let mut stack = stack.borrow_mut();
    if let Some(at) = stack.iter().rposition(is) {
        stack.remove(at);
    }
}

/// The name of the task being polled on this thread.
fn polling_task() -> Arc<str> {
    POLLING
        .with(|p| p.borrow().last().map(|(_, name)| Arc::clone(name)))
        .unwrap_or_else(|| "unnamed".into())
}

/// The layer itself; [`layer`] gives it its filter.
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

/// Why [`take`] has no figures.
#[derive(Debug, thiserror::Error)]
pub enum WaitsError {
    /// No subscriber of the process has the layer: nothing would have been timed.
    #[error("the wait layer is not in the process's tracing subscriber: nothing was timed")]
    NotInstalled,
    /// [`start`] was not called.
    #[error("the waits were not being timed (start was not called)")]
    NotStarted,
}

/// Set when the layer joins a subscriber.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Stops measuring and returns what was measured.
pub fn take() -> Result<WaitsSummary, WaitsError> {
    MEASURING.store(false, Ordering::Relaxed);
    if !INSTALLED.load(Ordering::Relaxed) {
        return Err(WaitsError::NotInstalled);
    }
    let taken = TOTALS.lock().unwrap_or_else(|e| e.into_inner()).take();
    let totals = taken.ok_or(WaitsError::NotStarted)?;
    let mut resources: Vec<ResourceWaits> = totals.sites.into_values().collect();
    resources.sort_by(|a, b| {
        b.wait_ns
            .total_cmp(&a.wait_ns)
            .then_with(|| a.location.cmp(&b.location))
    });
    Ok(WaitsSummary {
        version: WAITS_VERSION,
        duration_ns: totals.started.elapsed().as_nanos() as u64,
        resources,
    })
}

fn measuring() -> bool {
    MEASURING.load(Ordering::Relaxed)
}

/// Adds to the site's totals: a resource made (`waited` `None`) or a wait done by `waiter`.
fn add(site: &Arc<Site>, waiter: Option<&Waiter>, waited: Option<f64>) {
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
            let task = waiter.map_or("unnamed", |w| &w.task);
            let by_task = entry.tasks.entry(task.to_string()).or_default();
            by_task.waits += 1;
            by_task.wait_ns += ns;
            if let Some(kind) = waiter.and_then(|w| w.kind) {
                let by_kind = entry.kinds.entry(kind.to_string()).or_default();
                by_kind.waits += 1;
                by_kind.wait_ns += ns;
            }
        }
    }
}

/// The layer, with the filter that lets only tokio's `runtime.*` spans and events reach it: add
/// it beside the console's.
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    WaitLayer.with_filter(filter_fn(|meta| {
        meta.name().starts_with("runtime.") || meta.target().starts_with("runtime::resource")
    }))
}

impl<S> Layer<S> for WaitLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_layer(&mut self, _subscriber: &mut S) {
        INSTALLED.store(true, Ordering::Relaxed);
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
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
                // Its parent is the resource's span. An internal part's has no site; a resource
                // made without one (`Mutex::const_new`) leaves it under the polling task's.
                let Some(parent) = span.parent() else { return };
                let site = parent.extensions().get::<Arc<Site>>().cloned();
                let site = match site {
                    Some(site) => site,
                    None if parent.name() == "runtime.resource" => return,
                    None => {
                        let mut fields = Fields::default();
                        attrs.record(&mut fields);
                        Arc::new(unplaced(fields.source.as_deref()))
                    }
                };
                span.extensions_mut().insert(Op {
                    site,
                    state: Mutex::default(),
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
            return;
        }
        if span.name() != "runtime.resource.async_op.poll" {
            return;
        }
        let nested = OP_POLLS.with(|p| {
            let mut polls = p.borrow_mut();
            polls.push(id.clone());
            polls.len() > 1
        });
        if let Some(op_span) = span.parent()
            && let Some(op) = op_span.extensions().get::<Op>()
        {
            let mut state = op.state();
            state.events_in_poll = 0;
            state.nested |= nested;
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        POLLING.with(|p| exit(p, |(top, _)| top == id));
        OP_POLLS.with(|p| exit(p, |top| top == id));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !measuring() || event.metadata().target() != "runtime::resource::poll_op" {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        // The event is in the operation's poll span, inside the operation's span.
        let Some(op_span) = ctx
            .event_scope(event)
            .into_iter()
            .flatten()
            .find(|s| s.extensions().get::<Op>().is_some())
        else {
            return;
        };
        if let Some(op) = op_span.extensions().get::<Op>() {
            op.polled(fields.is_ready);
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
        let state = op.state();
        if let (Some(waiter), Some(ready_at), false) = (&state.waiter, state.ready_at, state.nested)
        {
            let waited = ready_at.saturating_duration_since(waiter.since);
            add(&op.site, Some(waiter), Some(waited.as_nanos() as f64));
        }
    }
}

/// Where a resource is said to be when tokio made no span for it.
pub const UNPLACED: &str = "? (tokio gives no place: made with `const_new`)";

/// The site of an operation on a resource tokio made no span for: its type from the
/// operation's source (`Mutex::lock` is a `Mutex`'s).
fn unplaced(source: Option<&str>) -> Site {
    let source = source.unwrap_or("?");
    Site {
        concrete_type: source.split("::").next().unwrap_or(source).to_string(),
        kind: String::new(),
        location: UNPLACED.to_string(),
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
    source: Option<String>,
    is_ready: bool,
    is_internal: bool,
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
            "source" => self.source = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "loc.line" {
            self.line = Some(value);
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
            "concrete_type" | "kind" | "loc.file" | "task.name" | "source" => {
                self.record_str(field, &text);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;

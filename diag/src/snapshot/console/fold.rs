//! Folding a console recording's updates into the state they describe, and that state into
//! the tasks' lints of [`ConsoleFigures`]. The console keys tasks by span ids, which come back
//! once a task has ended: a task id seen again is a new task, and the one before it keeps the
//! lints it had.

use std::collections::{BTreeMap, HashMap};

use console_api::instrument::Update;
use console_api::tasks;
use console_api::{Field, Location, field};
use prost_types::Timestamp;

use super::{
    CONSOLE_LINTS_MAX, ConsoleFigures, ConsoleLint, LARGE_FUTURE_BYTES, LONG_POLL_NS, Lint,
    SELF_WAKE_SHARE_MIN, SELF_WAKE_WAKES_MIN,
};
use crate::recording::{ConsoleRecording, dropped_events};

/// The state a recording's updates describe so far.
#[derive(Debug, Default)]
pub struct ConsoleFold {
    field_names: HashMap<u64, Vec<String>>,
    tasks: HashMap<u64, TaskState>,
    /// Tasks whose id a later task took: their last state.
    ended: Vec<TaskState>,
    now: Option<Timestamp>,
    updates: u64,
    dropped_events: u64,
}

impl TaskState {
    /// Whether its stats say it was dropped.
    fn ended(&self) -> bool {
        self.stats.as_ref().is_some_and(|s| s.dropped_at.is_some())
    }
}

#[derive(Debug, Default)]
struct TaskState {
    name: String,
    /// tokio's kind of the task: `task`, `local`, `blocking`, `block_on`.
    kind: String,
    location: String,
    size: Option<u64>,
    original_size: Option<u64>,
    stats: Option<tasks::Stats>,
}

impl ConsoleFigures {
    /// The figures of `recording`, a run of `ops` operations.
    pub fn from_recording(recording: &ConsoleRecording, ops: u64) -> ConsoleFigures {
        let mut fold = ConsoleFold::default();
        for update in &recording.updates {
            fold.update(update);
        }
        fold.figures(ops)
    }
}

impl ConsoleFold {
    /// Takes in one update.
    pub fn update(&mut self, update: &Update) {
        self.updates += 1;
        self.dropped_events += dropped_events(update);
        if update.now.is_some() {
            self.now = update.now;
        }
        for new in update.new_metadata.iter().flat_map(|m| &m.metadata) {
            if let (Some(id), Some(meta)) = (&new.id, &new.metadata) {
                self.field_names.insert(id.id, meta.field_names.clone());
            }
        }
        if let Some(t) = &update.task_update {
            for task in &t.new_tasks {
                let Some(id) = &task.id else { continue };
                let mut state = self.task_state(task);
                match self.tasks.remove(&id.id) {
                    // The id came back: the task before it ended.
                    Some(before) if before.ended() => self.ended.push(before),
                    // The same task again (a new subscriber's first updates repeat recent
                    // tasks): its stats so far stay.
                    Some(before) => state.stats = before.stats,
                    None => {}
                }
                self.tasks.insert(id.id, state);
            }
            for (id, stats) in &t.stats_update {
                if let Some(task) = self.tasks.get_mut(id) {
                    task.stats = Some(*stats);
                }
            }
        }
    }

    fn task_state(&self, task: &tasks::Task) -> TaskState {
        let mut state = TaskState {
            name: "unnamed".into(),
            location: location_text(task.location.as_ref()),
            ..TaskState::default()
        };
        for f in &task.fields {
            match (self.field_name(f).as_deref(), &f.value) {
                (Some("task.name"), Some(v)) => {
                    let name = value_text(v);
                    if !name.is_empty() {
                        state.name = name;
                    }
                }
                (Some("kind"), Some(v)) => state.kind = value_text(v),
                (Some("size.bytes"), Some(v)) => state.size = value_u64(v),
                (Some("original_size.bytes"), Some(v)) => state.original_size = value_u64(v),
                _ => {}
            }
        }
        state
    }

    fn field_name(&self, f: &Field) -> Option<String> {
        match f.name.as_ref()? {
            field::Name::StrName(name) => Some(name.clone()),
            field::Name::NameIdx(i) => {
                let names = self.field_names.get(&f.metadata_id.as_ref()?.id)?;
                names.get(usize::try_from(*i).ok()?).cloned()
            }
        }
    }

    /// The figures of the state so far, for a run of `ops` operations.
    pub fn figures(&self, ops: u64) -> ConsoleFigures {
        ConsoleFigures {
            ops,
            updates: self.updates,
            dropped_events: self.dropped_events,
            tasks: (self.tasks.len() + self.ended.len()) as u64,
            resources: Vec::new(),
            lints: self.lints(),
            file: String::new(),
        }
    }

    fn lints(&self) -> Vec<ConsoleLint> {
        let mut lints: BTreeMap<(Lint, String, String), ConsoleLint> = BTreeMap::new();
        let now = self.now.as_ref().map(nanos);
        // An ended task's last stats may be from before its end: only its lints that do not
        // depend on it still running (its size, its wakes) apply.
        let tasks = self.tasks.values().map(|t| (t, now));
        for (task, now) in tasks.chain(self.ended.iter().map(|t| (t, None))) {
            for (lint, value) in task_lints(task, now) {
                let key = (lint, task.name.clone(), task.location.clone());
                let entry = lints.entry(key).or_insert_with(|| ConsoleLint {
                    lint,
                    task: task.name.clone(),
                    location: task.location.clone(),
                    tasks: 0,
                    value: 0.0,
                });
                entry.tasks += 1;
                entry.value = entry.value.max(value);
            }
        }
        let mut out: Vec<ConsoleLint> = lints.into_values().collect();
        out.sort_by(|a, b| b.tasks.cmp(&a.tasks).then_with(|| a.lint.cmp(&b.lint)));
        out.truncate(CONSOLE_LINTS_MAX);
        out
    }
}

/// The lints that apply to one task, each with its figure, the way tokio-console's own
/// warnings read a task's stats. Only spawned futures: a blocking task (a runtime's worker
/// thread among them) is meant to block, and a `block_on` future is not moved into a task.
fn task_lints(task: &TaskState, now: Option<i128>) -> Vec<(Lint, f64)> {
    let mut out = Vec::new();
    if !matches!(task.kind.as_str(), "" | "task" | "local") {
        return out;
    }
    match (task.original_size, task.size) {
        (Some(original), _) => out.push((Lint::AutoBoxedFuture, original as f64)),
        (None, Some(size)) if size >= LARGE_FUTURE_BYTES => {
            out.push((Lint::LargeFuture, size as f64));
        }
        _ => {}
    }
    let Some(stats) = &task.stats else {
        return out;
    };
    if stats.wakes >= SELF_WAKE_WAKES_MIN
        && stats.self_wakes as f64 > SELF_WAKE_SHARE_MIN * stats.wakes as f64
    {
        out.push((
            Lint::SelfWakes,
            stats.self_wakes as f64 / stats.wakes as f64,
        ));
    }
    let polls = stats.poll_stats.as_ref();
    let started = polls.and_then(|p| p.last_poll_started.as_ref()).map(nanos);
    let ended = polls.and_then(|p| p.last_poll_ended.as_ref()).map(nanos);
    let running = started.is_some_and(|s| ended.is_none_or(|e| s > e));
    if let (true, Some(started), Some(now)) = (running, started, now)
        && now - started >= i128::from(LONG_POLL_NS)
    {
        out.push((Lint::NeverYielded, (now - started) as f64));
    }
    let woken = stats.last_wake.as_ref().map(nanos);
    let awakened = woken.is_some_and(|w| started.is_none_or(|s| w > s));
    // Whether it is known to be alive at the end of the recording.
    let alive = stats.dropped_at.is_none() && now.is_some();
    let polled = polls.is_some_and(|p| p.polls > 0);
    if alive && polled && !running && !awakened && stats.waker_clones <= stats.waker_drops {
        out.push((Lint::LostWaker, 0.0));
    }
    out
}

/// `file:line` of a location, or `?`.
fn location_text(location: Option<&Location>) -> String {
    match location {
        Some(Location {
            file: Some(file),
            line,
            ..
        }) => match line {
            Some(line) => format!("{file}:{line}"),
            None => file.clone(),
        },
        _ => "?".into(),
    }
}

fn value_text(v: &field::Value) -> String {
    match v {
        field::Value::DebugVal(s) | field::Value::StrVal(s) => s.trim_matches('"').to_string(),
        field::Value::BoolVal(b) => b.to_string(),
        field::Value::U64Val(n) => n.to_string(),
        field::Value::I64Val(n) => n.to_string(),
    }
}

fn value_u64(v: &field::Value) -> Option<u64> {
    match v {
        field::Value::U64Val(n) => Some(*n),
        field::Value::I64Val(n) => u64::try_from(*n).ok(),
        field::Value::DebugVal(s) | field::Value::StrVal(s) => s.trim().parse().ok(),
        field::Value::BoolVal(_) => None,
    }
}

/// A timestamp in nanoseconds since the epoch.
fn nanos(t: &Timestamp) -> i128 {
    i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
}

#[cfg(test)]
mod tests;

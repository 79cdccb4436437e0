//! The async-aware view of a CPU profile: which kind of task each sample was working for, and
//! how much of the CPU went to the executor rather than the program.
//!
//! A sampling profiler sees an async program's threads as the runtime sees them: a worker loop
//! polling whatever task came next, so every stack starts with the same runtime frames and the
//! task that ran is buried halfway down. The view reads each stack root first and:
//!
//! - **classifies** it: *user* if a frame belongs to one of the program's crates, *executor* if
//!   not but a frame is tokio's (the scheduler, parking, the I/O and time drivers, the blocking
//!   pool's bookkeeping), *other* for the rest (threads that are neither: a logger, the
//!   profiler);
//! - **roots** a user stack at its task kind: the first [`TaskRule`], in the order the rules
//!   were added, whose pattern names one of the stack's functions (so list a request kind that
//!   calls another before it, and catch-all prefixes last), or else the outermost function of
//!   the program's crates;
//! - **collapses** the runtime frames above the program's outermost frame, and the
//!   future-polling plumbing (`core`, `std`, `tokio`, `futures`, `tracing` frames, and the
//!   probes' own wrappers) between the program's own frames. Frames below the program's innermost frame (a `memcpy`, a syscall)
//!   are kept: that is where the time went.
//!
//! Classification is by function name, so it works with a signal-based sampler that cannot read
//! what the interrupted thread was doing: an `async fn`'s body is its `{{closure}}`, and is on
//! the stack whenever its task is being polled. Optimised code inlines most of those bodies, and
//! the names of inlined functions come from the debug info: with full debug info (the
//! `profiling` profile) they are whole paths; with line tables only (`debug =
//! "line-tables-only"`) they are bare (`run`, `poll<...>`), so such frames are placed in a crate
//! by their source file, and rules only see the frames that were not inlined.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CpuProfile, Frame, Stack};

/// Crates whose frames are future-polling plumbing between two of the program's frames.
const PLUMBING_CRATES: [&str; 10] = [
    "core",
    "std",
    "alloc",
    "tokio",
    "futures_util",
    "futures_core",
    "tracing",
    "pin_project_lite",
    // The probes' own future wrappers (`diag::alloc::Measured`, tokio-metrics' monitors).
    "diag",
    "tokio_metrics",
];

/// A pattern naming a function (or a path prefix, when it ends with `::`) and the task kind of
/// the stacks that run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRule {
    /// A path such as `myapp::handlers::upload`, matched as a whole path inside the frame's
    /// function name (so `<myapp::Store as myapp::Trait>::get` matches `myapp::Store as
    /// myapp::Trait>::get`), or a prefix such as `myapp::admin::`.
    pub pattern: String,
    /// The task kind, e.g. `gateway.put`.
    pub kind: String,
}

impl TaskRule {
    /// Whether the rule names `function` (a frame's demangled function).
    pub fn matches(&self, function: &str) -> bool {
        let pattern = self.pattern.as_str();
        let mut from = 0;
        while let Some(at) = function[from..].find(pattern) {
            let start = from + at;
            let end = start + pattern.len();
            let before_ok = function[..start]
                .chars()
                .next_back()
                .is_none_or(|c| !is_ident(c) && c != ':');
            let after_ok = pattern.ends_with("::")
                || function[end..].chars().next().is_none_or(|c| !is_ident(c));
            if before_ok && after_ok {
                return true;
            }
            from = start + 1;
        }
        false
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// How a program's stacks map to task kinds.
#[derive(Clone, Debug)]
pub struct TaskView {
    user_crates: Vec<String>,
    rules: Vec<TaskRule>,
}

/// What one stack is, in the view.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Class {
    User { kind: String, first: usize },
    Executor { part: ExecutorPart, first: usize },
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExecutorPart {
    Park,
    IoDriver,
    TimeDriver,
    BlockingPool,
    Scheduler,
}

impl TaskView {
    /// A view for a program whose own code is in `user_crates` (crate names as they appear in
    /// paths: `my_app`, not `my-app`), with no rules yet.
    pub fn new<S: Into<String>>(user_crates: impl IntoIterator<Item = S>) -> TaskView {
        TaskView {
            user_crates: user_crates.into_iter().map(Into::into).collect(),
            rules: Vec::new(),
        }
    }

    /// The rules, in the order they were added (the first that names a frame decides).
    pub fn rules(&self) -> &[TaskRule] {
        &self.rules
    }

    /// Adds a rule: stacks running `pattern` are of task kind `kind`, unless an earlier rule
    /// names one of their functions.
    pub fn rule(mut self, pattern: impl Into<String>, kind: impl Into<String>) -> TaskView {
        self.rules.push(TaskRule {
            pattern: pattern.into(),
            kind: kind.into(),
        });
        self
    }

    fn is_user(&self, frame: &Frame) -> bool {
        let krate = frame.crate_name();
        self.user_crates.iter().any(|c| *c == krate)
    }

    fn classify(&self, stack: &Stack) -> Class {
        let frames = &stack.frames;
        if let Some(first) = frames.iter().position(|f| self.is_user(f)) {
            let ruled = self
                .rules
                .iter()
                .find(|r| frames.iter().any(|f| r.matches(&f.function)))
                .map(|r| r.kind.clone());
            let kind = ruled.unwrap_or_else(|| fallback_kind(&frames[first]));
            return Class::User { kind, first };
        }
        let Some(first) = frames.iter().position(|f| f.crate_name() == "tokio") else {
            return Class::Other;
        };
        // The innermost runtime part on the stack is what the thread was doing.
        let part = frames
            .iter()
            .rev()
            .filter(|f| f.crate_name() == "tokio")
            .find_map(|f| {
                let name = f.function.as_str();
                if name.contains("runtime::io::") {
                    Some(ExecutorPart::IoDriver)
                } else if name.contains("runtime::time::") {
                    Some(ExecutorPart::TimeDriver)
                } else if name.contains("park") {
                    Some(ExecutorPart::Park)
                } else if name.contains("runtime::scheduler::") {
                    Some(ExecutorPart::Scheduler)
                } else if name.contains("runtime::blocking::") {
                    Some(ExecutorPart::BlockingPool)
                } else {
                    None
                }
            })
            .unwrap_or(ExecutorPart::Scheduler);
        Class::Executor { part, first }
    }

    /// Folded stacks rooted at task kinds (`gateway.put;...`), `executor;...` for the runtime's
    /// own work and `other;THREAD;...` for the rest; sorted, one line per distinct stack.
    pub fn folded(&self, stacks: &[Stack]) -> String {
        let mut merged: BTreeMap<String, u64> = BTreeMap::new();
        for stack in stacks {
            let mut line = String::new();
            match self.classify(stack) {
                Class::User { kind, first } => {
                    line.push_str(&kind);
                    let last = stack
                        .frames
                        .iter()
                        .rposition(|f| self.is_user(f))
                        .expect("a user stack has a user frame");
                    for (i, frame) in stack.frames.iter().enumerate().skip(first) {
                        let plumbing = i < last
                            && !self.is_user(frame)
                            && PLUMBING_CRATES.contains(&frame.crate_name().as_ref());
                        if !plumbing {
                            line.push(';');
                            line.push_str(&frame.label());
                        }
                    }
                }
                Class::Executor { first, .. } => {
                    line.push_str("executor");
                    for frame in &stack.frames[first..] {
                        line.push(';');
                        line.push_str(&frame.label());
                    }
                }
                Class::Other => {
                    line.push_str("other;");
                    line.push_str(&stack.thread.replace([';', ' '], "_"));
                    for frame in &stack.frames {
                        line.push(';');
                        line.push_str(&frame.label());
                    }
                }
            }
            *merged.entry(line).or_default() += stack.samples;
        }
        let mut out = String::new();
        for (line, samples) in merged {
            out.push_str(&format!("{line} {samples}\n"));
        }
        out
    }

    /// Sample counts of `profile` in this view.
    pub fn summary(&self, profile: &CpuProfile) -> CpuSummary {
        let mut summary = CpuSummary {
            version: CPU_SUMMARY_VERSION,
            hz: profile.hz,
            duration_s: profile.duration.as_secs_f64(),
            ..CpuSummary::default()
        };
        for stack in &profile.stacks {
            let n = stack.samples;
            summary.samples += n;
            match self.classify(stack) {
                Class::User { kind, .. } => {
                    summary.user_samples += n;
                    *summary.tasks.entry(kind).or_default() += n;
                }
                Class::Executor { part, .. } => {
                    summary.executor_samples += n;
                    let e = &mut summary.executor;
                    match part {
                        ExecutorPart::Park => e.park += n,
                        ExecutorPart::IoDriver => e.io_driver += n,
                        ExecutorPart::TimeDriver => e.time_driver += n,
                        ExecutorPart::BlockingPool => e.blocking_pool += n,
                        ExecutorPart::Scheduler => e.scheduler += n,
                    }
                }
                Class::Other => summary.other_samples += n,
            }
        }
        summary.executor_share = if summary.samples == 0 {
            0.0
        } else {
            summary.executor_samples as f64 / summary.samples as f64
        };
        summary
    }
}

/// The kind of a stack no rule names: its outermost function of the program, without the
/// closures of its async body; a bare name (an inlined function in a build with line tables
/// only) with its file, since the name alone says little (`run (app/src/server.rs)`).
fn fallback_kind(frame: &Frame) -> String {
    let name = strip_closures(&frame.function);
    match &frame.file {
        Some(file) if !name.contains("::") => format!("{name} ({file})"),
        _ => name,
    }
}

/// `a::b::{{closure}}::{{closure}}` → `a::b` (and the `{closure#0}` spelling of v0 symbols).
fn strip_closures(function: &str) -> String {
    let mut name = function;
    loop {
        let trimmed = name.strip_suffix("::{{closure}}").or_else(|| {
            name.rfind("::{closure#")
                .filter(|_| name.ends_with('}'))
                .map(|at| &name[..at])
        });
        match trimmed {
            Some(t) => name = t,
            None => return name.to_string(),
        }
    }
}

/// Version of [`CpuSummary`]'s JSON (`cpu.json`); a reader refuses others.
pub const CPU_SUMMARY_VERSION: u32 = 1;

/// The sample counts of a profile in a [`TaskView`] (`cpu.json`): written by the program,
/// read back as this type by the tool that profiles it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSummary {
    /// Format version of this object.
    pub version: u32,
    /// All samples.
    pub samples: u64,
    /// Samples in the runtime's own code (no frame of the program on the stack).
    pub executor_samples: u64,
    /// Samples with a frame of the program on the stack.
    pub user_samples: u64,
    /// Samples of threads that are neither (no program frame, no tokio frame).
    pub other_samples: u64,
    /// `executor_samples / samples` (0 when there are no samples).
    pub executor_share: f64,
    /// Sampling frequency, Hz of CPU time.
    pub hz: u32,
    /// Wall time sampled, seconds.
    pub duration_s: f64,
    /// Executor samples by what the runtime was doing.
    pub executor: ExecutorSamples,
    /// User samples by task kind.
    pub tasks: BTreeMap<String, u64>,
}

/// Executor samples by the innermost runtime part on the stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorSamples {
    /// Parking and unparking workers.
    pub park: u64,
    /// The I/O driver (epoll and dispatching readiness).
    pub io_driver: u64,
    /// The timer wheel.
    pub time_driver: u64,
    /// The blocking pool's bookkeeping.
    pub blocking_pool: u64,
    /// The rest: run queues, task harness, waking.
    pub scheduler: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str) -> Frame {
        Frame {
            function: function.to_string(),
            file: Some("x.rs".into()),
            line: Some(1),
        }
    }

    fn stack(functions: &[&str], samples: u64) -> Stack {
        Stack {
            thread: "worker".into(),
            frames: functions.iter().map(|f| frame(f)).collect(),
            samples,
        }
    }

    fn view() -> TaskView {
        TaskView::new(["app"])
            .rule("app::gateway::Gateway::query", "gateway.query")
            .rule("app::gateway::Gateway::get", "gateway.get")
            .rule("app::admin::", "admin")
    }

    const RUNTIME: [&str; 3] = [
        "std::sys::thread::unix::Thread::new::thread_start",
        "tokio::runtime::scheduler::multi_thread::worker::run",
        "tokio::runtime::task::harness::Harness<T,S>::poll",
    ];

    #[test]
    fn rules_match_whole_paths() {
        let rule = TaskRule {
            pattern: "app::Gateway::get".into(),
            kind: "g".into(),
        };
        assert!(rule.matches("app::Gateway::get::{{closure}}"));
        assert!(rule.matches("<app::Gateway::get as x>::y"));
        assert!(!rule.matches("app::Gateway::get_many"));
        assert!(!rule.matches("myapp::Gateway::get"));
        assert!(!rule.matches("x::app::Gateway::get"));
        let prefix = TaskRule {
            pattern: "app::admin::".into(),
            kind: "a".into(),
        };
        assert!(prefix.matches("app::admin::Admin::serve::{{closure}}"));
    }

    #[test]
    fn earlier_rules_win_and_runtime_frames_collapse() {
        let mut frames = RUNTIME.to_vec();
        frames.extend([
            "app::server::Connection<H>::run::{{closure}}",
            "<core::pin::Pin<P> as core::future::future::Future>::poll",
            "app::gateway::Gateway::query::{{closure}}",
            "app::gateway::Gateway::get::{{closure}}",
            "app::codec::reassemble",
            "core::ptr::copy_nonoverlapping",
            "__memmove_avx_unaligned_erms",
        ]);
        let stacks = [stack(&frames, 5)];
        assert_eq!(
            view().folded(&stacks),
            "gateway.query;\
             app::server::Connection<H>::run::{{closure}} (x.rs:1);\
             app::gateway::Gateway::query::{{closure}} (x.rs:1);\
             app::gateway::Gateway::get::{{closure}} (x.rs:1);\
             app::codec::reassemble (x.rs:1);\
             core::ptr::copy_nonoverlapping (x.rs:1);\
             __memmove_avx_unaligned_erms (x.rs:1) 5\n"
        );
    }

    #[test]
    fn unruled_stacks_are_rooted_at_their_outermost_function() {
        let mut frames = RUNTIME.to_vec();
        frames.extend([
            "app::load::run::{{closure}}::{{closure}}",
            "app::load::pick",
        ]);
        let summary = view().summary(&CpuProfile {
            stacks: vec![stack(&frames, 3)],
            hz: 99,
            duration: std::time::Duration::from_secs(1),
            start_time: std::time::SystemTime::UNIX_EPOCH,
        });
        assert_eq!(summary.tasks.get("app::load::run"), Some(&3));
    }

    #[test]
    fn executor_user_and_other_samples_add_up() {
        let mut user = RUNTIME.to_vec();
        user.push("app::gateway::Gateway::get::{{closure}}");
        let mut park = RUNTIME[..2].to_vec();
        park.extend([
            "tokio::runtime::scheduler::multi_thread::park::Parker::park",
            "tokio::runtime::io::driver::Driver::turn",
            "epoll_wait",
        ]);
        // Workers are threads of the blocking pool: what they do inside it is what counts.
        let mut queue = vec!["tokio::runtime::blocking::pool::Inner::run"];
        queue.extend(&RUNTIME[1..]);
        queue.push("tokio::runtime::scheduler::multi_thread::queue::Local<T>::push_back");
        let other = [
            "std::sys::thread::unix::Thread::new::thread_start",
            "log::write",
        ];
        let profile = CpuProfile {
            stacks: vec![
                stack(&user, 10),
                stack(&park, 4),
                stack(&queue, 2),
                stack(&other, 1),
            ],
            hz: 99,
            duration: std::time::Duration::from_secs(1),
            start_time: std::time::SystemTime::UNIX_EPOCH,
        };
        let summary = view().summary(&profile);
        assert_eq!(summary.samples, 17);
        assert_eq!(summary.user_samples, 10);
        assert_eq!(summary.executor_samples, 6);
        assert_eq!(summary.other_samples, 1);
        assert_eq!(summary.executor.io_driver, 4);
        assert_eq!(summary.executor.scheduler, 2);
        assert_eq!(summary.tasks.get("gateway.get"), Some(&10));
        assert!((summary.executor_share - 6.0 / 17.0).abs() < 1e-12);
        let folded = view().folded(&profile.stacks);
        assert!(
            folded.contains(
                "executor;tokio::runtime::scheduler::multi_thread::worker::run (x.rs:1);"
            )
        );
        assert!(folded.contains("other;worker;std::sys::thread::unix::Thread::new::thread_start (x.rs:1);log::write (x.rs:1) 1\n"));
    }

    #[test]
    fn closures_are_stripped_from_fallback_kinds() {
        assert_eq!(strip_closures("a::b::{{closure}}::{{closure}}"), "a::b");
        assert_eq!(strip_closures("a::b::{closure#0}"), "a::b");
        assert_eq!(strip_closures("a::b"), "a::b");
    }
}

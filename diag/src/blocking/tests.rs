use std::time::{Duration, Instant};

use super::*;
use crate::tasks::TaskProbes;

/// One at a time: the profiler is process-wide.
static ONE_PROFILE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[inline(never)]
fn sleeps_in_a_poll() {
    std::thread::sleep(Duration::from_millis(2));
}

#[inline(never)]
fn spins_in_a_poll() {
    let until = Instant::now() + Duration::from_millis(2);
    while Instant::now() < until {
        std::hint::black_box(0u64);
    }
}

fn profile_of(work: fn(), kind: &'static str) -> BlockingProfile {
    profile_and_figures_of(work, kind).0
}

/// The profile of 100 polls that each do `work`, and the kind's task figures after it:
/// cumulative, and of the probes' first sampling interval.
fn profile_and_figures_of(
    work: fn(),
    kind: &'static str,
) -> (BlockingProfile, [crate::tasks::TaskFigures; 2]) {
    let _one = ONE_PROFILE.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let probes = TaskProbes::builder()
        .kind(kind)
        .without_runtime()
        .build()
        .expect("one valid kind");
    let task = probes.kind(kind).expect("the kind just registered");
    let profiler = BlockingProfiler::start(DEFAULT_HZ).expect("no other profile runs");
    runtime.block_on(async {
        for _ in 0..100 {
            task.instrument(async {
                work();
                tokio::task::yield_now().await;
            })
            .await;
        }
    });
    let profile = profiler.stop();
    let cumulative = task.cumulative().expect("the probes are on");
    let interval = probes
        .sample()
        .interval
        .expect("a sample has its interval")
        .tasks[kind];
    (profile, [cumulative, interval])
}

#[test]
fn a_sleep_inside_a_poll_is_blocked_time_of_its_kind_and_stack() {
    let profile = profile_of(sleeps_in_a_poll, "test.sleeps");
    let blocked = profile
        .kinds
        .get("test.sleeps")
        .copied()
        .unwrap_or_default();
    // 100 polls of 2 ms each: 200 ms off the CPU, sampled at 1 kHz.
    assert!(
        (120_000_000..=400_000_000).contains(&blocked.ns),
        "blocked {} ns, expected about 200 ms: {profile:?}",
        blocked.ns
    );
    let top = &profile.stacks[0];
    assert_eq!(top.kind, "test.sleeps");
    assert!(
        top.frames
            .iter()
            .any(|f| f.function.ends_with("sleeps_in_a_poll")),
        "the program's function is on the stack: {:?}",
        top.frames
    );
    assert!(
        top.frames
            .iter()
            .all(|f| !f.function.contains("on_stack_signal")),
        "the handler's frames are cut: {:?}",
        top.frames
    );
    let leaf = &top.frames.last().expect("a stack has frames").function;
    assert!(
        leaf.contains("nanosleep"),
        "the leaf is the blocking call: {leaf}"
    );
    let folded = profile.folded();
    assert!(folded.starts_with("test.sleeps;"), "{folded}");
}

#[test]
fn a_poll_that_spins_on_the_cpu_is_not_blocked() {
    let profile = profile_of(spins_in_a_poll, "test.spins");
    let blocked = profile.kinds.get("test.spins").copied().unwrap_or_default();
    // 200 ms on the CPU; a preempted thread is runnable, not blocked. Allow for a page fault
    // or two.
    assert!(
        blocked.ns < 20_000_000,
        "blocked {} ns: {profile:?}",
        blocked.ns
    );
}

#[test]
fn one_profile_at_a_time_and_rates_in_range() {
    let _one = ONE_PROFILE.lock().unwrap_or_else(|e| e.into_inner());
    assert!(matches!(
        BlockingProfiler::start(0),
        Err(BlockingError::Frequency { hz: 0 })
    ));
    let first = BlockingProfiler::start(100).expect("no other profile runs");
    assert!(matches!(
        BlockingProfiler::start(100),
        Err(BlockingError::Busy)
    ));
    drop(first);
    BlockingProfiler::start(100)
        .expect("the first one has ended")
        .stop();
}

#[test]
fn the_task_figures_show_the_blocked_time_the_profile_charged() {
    let (profile, [cumulative, interval]) =
        profile_and_figures_of(sleeps_in_a_poll, "test.sleeps-live");
    let charged = profile
        .kinds
        .get("test.sleeps-live")
        .copied()
        .unwrap_or_default();
    assert!(charged.ns > 0, "the sleeps were sampled: {profile:?}");
    for figures in [cumulative, interval] {
        assert_eq!(
            figures.total_blocked_duration_ns,
            Some(charged.ns),
            "the live figure is what the profile charged to the kind: {figures:?}"
        );
    }
    assert!(
        charged.ns <= cumulative.total_poll_duration_ns + charged.ns / 5,
        "blocked time is part of the poll time, within a tick's rounding: {cumulative:?}"
    );
}

#[test]
fn the_profile_measures_its_own_cost_against_the_process() {
    let profile = profile_of(spins_in_a_poll, "test.cost");
    let cost = profile.cost;
    // 200 ms of spinning on the test's thread, and 200 sampler ticks at least.
    assert!(
        cost.process_cpu_ns >= 150_000_000,
        "the process's CPU includes the spinning: {cost:?}"
    );
    assert!(
        cost.sampler_cpu_ns > 0,
        "the sampler's CPU is read: {cost:?}"
    );
    assert!(
        cost.sampler_cpu_ns < cost.process_cpu_ns,
        "the sampler is part of the process: {cost:?}"
    );
    let share = cost.share();
    assert!(share > 0.0 && share < 0.5, "share {share}: {cost:?}");
    assert_eq!(
        profile.summary().cost,
        Some(cost),
        "blocking.json carries it"
    );
}

#[test]
fn the_stack_handlers_time_is_counted_when_threads_block() {
    let profile = profile_of(sleeps_in_a_poll, "test.handler-cost");
    assert!(!profile.stacks.is_empty(), "stacks were taken: {profile:?}");
    assert!(
        profile.cost.handler_cpu_ns > 0,
        "each stack's unwinding is timed: {:?}",
        profile.cost
    );
}

//! The wait layer on a real runtime with tokio's instrumentation (this build has
//! `--cfg tokio_unstable`): contended locks, timers, a timeout that never fires.

use std::time::Duration;

use tracing_subscriber::prelude::*;

use super::*;

/// The layer's figures are the process's: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `work` on a runtime whose spans reach the wait layer, timing its waits.
fn timed<F: Future<Output = ()>>(work: impl FnOnce() -> F) -> WaitsSummary {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let subscriber = tracing_subscriber::registry().with(layer());
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    start();
    runtime.block_on(work());
    drop(runtime);
    take().expect("the layer timed the waits")
}

fn site<'a>(waits: &'a WaitsSummary, concrete_type: &str, place: &str) -> &'a ResourceWaits {
    waits
        .resources
        .iter()
        .find(|r| r.concrete_type == concrete_type && r.location.contains(place))
        .unwrap_or_else(|| panic!("no {concrete_type} at {place}: {:#?}", waits.resources))
}

static STATIC_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[test]
fn a_contended_lock_is_a_wait_as_long_as_it_was_held_and_an_uncontended_one_is_short() {
    let waits = timed(|| async {
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        let held = lock.clone().lock_owned().await;
        let waiter = tokio::spawn({
            let lock = lock.clone();
            async move {
                let _turn = lock.lock().await;
            }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(held);
        waiter.await.expect("the waiter ends");
    });
    let lock = site(&waits, "Mutex", "diag/src/console/waits/tests.rs");
    assert_eq!(lock.waits, 2, "{lock:#?}");
    assert!(
        lock.wait_ns >= 30e6,
        "the waiter waited for the holder: {lock:#?}"
    );
    assert!(lock.wait_ns < 1e9, "{lock:#?}");
    let sleep = site(&waits, "Sleep", "diag/src/console/waits/tests.rs");
    assert_eq!(sleep.waits, 1, "{sleep:#?}");
    assert!(sleep.wait_ns >= 30e6, "{sleep:#?}");
}

#[test]
fn a_timeout_that_never_fired_is_no_wait_and_a_static_lock_is_kept_without_a_place() {
    let waits = timed(|| async {
        let quick = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::task::yield_now().await;
        });
        quick.await.expect("no timeout");
        let held = STATIC_LOCK.lock().await;
        let waiter = tokio::spawn(async {
            let _turn = STATIC_LOCK.lock().await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        waiter.await.expect("the waiter ends");
    });
    let timeouts: Vec<&ResourceWaits> = waits
        .resources
        .iter()
        .filter(|r| r.concrete_type == "Sleep" && r.waits > 0)
        .collect();
    assert_eq!(
        timeouts.len(),
        1,
        "only the 20 ms sleep fired: {timeouts:#?}"
    );
    let unplaced = site(&waits, "Mutex", "const_new");
    assert_eq!(unplaced.waits, 2, "{unplaced:#?}");
    assert!(unplaced.wait_ns >= 20e6, "{unplaced:#?}");
}

#[test]
fn without_a_start_there_is_nothing_to_take_and_it_says_why() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Joining a subscriber is what installs the layer.
    let _subscriber = tracing_subscriber::registry().with(layer());
    let _ = take();
    let error = take().expect_err("nothing was started");
    assert!(matches!(error, WaitsError::NotStarted), "{error}");
}

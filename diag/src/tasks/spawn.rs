//! Spawning tasks with names. tokio-console shows a task's name; tokio can attach one only in
//! builds with `--cfg tokio_unstable` and its `tracing` feature (this crate's `console`
//! feature). Elsewhere these helpers spawn the task unnamed, at no cost.

use std::future::Future;

use tokio::task::{AbortHandle, JoinHandle, JoinSet};

/// Whether this build gives spawned tasks their names (the `console` feature with
/// `--cfg tokio_unstable`).
pub const fn names_tasks() -> bool {
    cfg!(all(tokio_unstable, feature = "console"))
}

/// Spawns `future` on the current runtime as a task named `name` (see [`names_tasks`]).
///
/// # Panics
///
/// Outside a tokio runtime, as `tokio::spawn`.
#[track_caller]
pub fn spawn_named<F>(name: &str, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    #[cfg(all(tokio_unstable, feature = "console"))]
    {
        tokio::task::Builder::new()
            .name(name)
            .spawn(future)
            .expect("tokio's task builder spawns on a running runtime without fail")
    }
    #[cfg(not(all(tokio_unstable, feature = "console")))]
    {
        let _ = name;
        tokio::spawn(future)
    }
}

/// Spawns `future` into `set` as a task named `name` (see [`names_tasks`]).
///
/// # Panics
///
/// Outside a tokio runtime, as `JoinSet::spawn`.
#[track_caller]
pub fn spawn_named_in<T, F>(set: &mut JoinSet<T>, name: &str, future: F) -> AbortHandle
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    #[cfg(all(tokio_unstable, feature = "console"))]
    {
        set.build_task()
            .name(name)
            .spawn(future)
            .expect("tokio's task builder spawns on a running runtime without fail")
    }
    #[cfg(not(all(tokio_unstable, feature = "console")))]
    {
        let _ = name;
        set.spawn(future)
    }
}

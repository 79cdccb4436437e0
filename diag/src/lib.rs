//! Probes for tokio programs: task and runtime metrics, allocations, CPU profiles, type and
//! future sizes from debug info, and where large values are copied.
//!
//! - [`tasks`]: named task monitors (one per kind of work), the runtime's metrics, an interval
//!   sampler, JSON snapshots and Prometheus text; [`tasks::spawn_named`] names tasks for
//!   tokio-console.
//! - `console` (feature `console`, with `--cfg tokio_unstable`): the tokio-console layer.
//! - `recording` (feature `console-recording`): a process's tokio-console stream recorded to a
//!   file, read back, and replayed to `tokio-console`.
//! - [`blocking`]: which code blocks a runtime thread inside a poll (fsync, sleep, a contended
//!   lock), sampled in wall time by task kind and stack (the sampler needs feature `cpu`).
//! - [`alloc`]: a counting global allocator cheap enough to leave on, with scopes that measure a
//!   thread's or a future's own allocations.
//! - [`cpu`]: CPU profiles with source lines, flamegraphs, pprof protobuf, and an async-aware
//!   view rooted at task kinds (feature `cpu`, on by default).
//! - `heap`: heap profiles with `dhat` (feature `dhat`).
//! - [`sizes`]: reads the DWARF of a built binary and reports every type's size, enums whose
//!   largest variant dwarfs the rest, the futures of `async fn`s and what they hold across
//!   awaits, and functions with large stack frames (feature `dwarf`, on by default).
//! - [`moves`]: reads the trace written by the `diag-memtrace` preload library and says where
//!   large `memcpy`/`memmove` calls come from, and which type was copied (feature `dwarf`).
//! - [`compare`]: explains the difference between two snapshots as ranked findings, in
//!   markdown and HTML.
//! - [`snapshot`]: one profile of one build as a versioned JSON document, with the figures of
//!   every probe per operation.

pub mod alloc;
#[cfg(feature = "dwarf")]
pub mod binary;
pub mod blocking;
#[cfg(feature = "dwarf")]
pub mod compare;
#[cfg(feature = "console")]
pub mod console;
#[cfg(feature = "cpu")]
pub mod cpu;
#[cfg(feature = "dhat")]
pub mod heap;
#[cfg(feature = "dwarf")]
pub mod moves;
#[cfg(feature = "console-recording")]
pub mod recording;
#[cfg(feature = "dwarf")]
pub mod sizes;
#[cfg(feature = "dwarf")]
pub mod snapshot;
pub mod tasks;
pub mod waits;

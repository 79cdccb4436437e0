//! Probes for tokio programs: allocations, CPU profiles, type and future sizes from debug info,
//! and where large values are copied.
//!
//! - [`alloc`]: a counting global allocator cheap enough to leave on, with scopes that measure a
//!   thread's or a future's own allocations.
//! - [`cpu`]: CPU profiles with source lines, flamegraphs, pprof protobuf, and an async-aware
//!   view rooted at task kinds (feature `cpu`, on by default).
//! - [`heap`]: heap profiles with `dhat` (feature `dhat`).
//! - [`sizes`]: reads the DWARF of a built binary and reports every type's size, enums whose
//!   largest variant dwarfs the rest, the futures of `async fn`s and what they hold across
//!   awaits, and functions with large stack frames.
//! - [`moves`]: reads the trace written by the `diag-memtrace` preload library and says where
//!   large `memcpy`/`memmove` calls come from, and which type was copied.

pub mod alloc;
pub mod binary;
#[cfg(feature = "cpu")]
pub mod cpu;
#[cfg(feature = "dhat")]
pub mod heap;
pub mod moves;
pub mod sizes;

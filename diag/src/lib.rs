//! Probes for tokio programs: type and future sizes from debug info, and where large values are copied.
//!
//! - [`sizes`]: reads the DWARF of a built binary and reports every type's size, enums whose
//!   largest variant dwarfs the rest, the futures of `async fn`s and what they hold across
//!   awaits, and functions with large stack frames.
//! - [`moves`]: reads the trace written by the `diag-memtrace` preload library and says where
//!   large `memcpy`/`memmove` calls come from, and which type was copied.
//! - [`compare`]: explains the difference between two snapshots as ranked findings, in
//!   markdown and HTML.
//! - [`snapshot`]: one profile of one build as a versioned JSON document, with the figures of
//!   every probe per operation.

pub mod binary;
pub mod compare;
pub mod moves;
pub mod sizes;
pub mod snapshot;

//! Probes for tokio programs: type and future sizes from debug info, and where large values are copied.
//!
//! - [`sizes`]: reads the DWARF of a built binary and reports every type's size, enums whose
//!   largest variant dwarfs the rest, the futures of `async fn`s and what they hold across
//!   awaits, and functions with large stack frames.
//! - [`moves`]: reads the trace written by the `diag-memtrace` preload library and says where
//!   large `memcpy`/`memmove` calls come from, and which type was copied.

pub mod binary;
pub mod moves;
pub mod sizes;

//! Integration tests of DDSplit with real processes, real sockets and real files.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on should stop at the line that failed"
)]

mod bad_input;
mod cli;
mod cluster;
mod diag_out;
mod prometheus;
mod support;

//! Integration tests of DDSplit with real processes, real sockets and real files.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on should stop at the line that failed"
)]

// The probes' tests measure this binary's allocations; the others do not notice.
#[global_allocator]
static GLOBAL: diag::alloc::CountingAlloc = diag::alloc::CountingAlloc::system();

mod bad_input;
mod budgets;
mod chaos;
mod cli;
mod cluster;
mod connections;
mod damage;
mod diag_out;
mod hinted;
mod probes;
mod prometheus;
mod props;
mod security;
mod shutdown;
mod sizes;
mod slow;
mod support;

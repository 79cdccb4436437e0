//! Integration tests of DDSplit with real processes, real sockets and real files.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on should stop at the line that failed"
)]

// The probes' tests measure this binary's allocations; the others do not notice.
#[global_allocator]
static GLOBAL: diag::alloc::CountingAlloc = diag::alloc::CountingAlloc::system();

mod bad_input;
// The budgets pin the default build's allocations: the story builds spend more on purpose, and
// the heap-profile build's allocator does not count.
#[cfg(not(any(
    feature = "story-async-trait",
    feature = "story-inline-error",
    feature = "story-query-by-value",
    feature = "dhat-heap"
)))]
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

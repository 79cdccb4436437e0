//! Integration tests of the `diag` library: allocation counts and CPU profiles of this test
//! binary, the sizes and moves reports and the system call counter on fixture programs.

// Every test here runs with the counting allocator: the allocation tests measure it, the others
// do not notice it.
#[global_allocator]
static GLOBAL: diag::alloc::CountingAlloc = diag::alloc::CountingAlloc::system();

mod alloc;
#[cfg(feature = "cpu")]
mod cpu;
mod moves;
mod sizes;
mod support;
mod syscount;

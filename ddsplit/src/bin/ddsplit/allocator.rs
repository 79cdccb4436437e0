//! The `ddsplit` binary's global allocator: the counting allocator (`diag::alloc`) over the
//! system allocator, mimalloc (`alloc-mimalloc`) or jemalloc (`alloc-jemalloc`); or, in the
//! heap-profile build (`dhat-heap`), dhat's recording allocator instead; or the bare system
//! allocator (`alloc-uncounted`), to measure what counting costs.

#[cfg(all(feature = "alloc-mimalloc", feature = "alloc-jemalloc"))]
compile_error!("`alloc-mimalloc` and `alloc-jemalloc` each choose the global allocator: pick one");

#[cfg(all(
    feature = "dhat-heap",
    any(
        feature = "alloc-mimalloc",
        feature = "alloc-jemalloc",
        feature = "alloc-uncounted"
    )
))]
compile_error!(
    "`dhat-heap` records allocations over the system allocator: build it without the `alloc-*` features"
);

#[cfg(all(
    feature = "alloc-uncounted",
    any(feature = "alloc-mimalloc", feature = "alloc-jemalloc")
))]
compile_error!(
    "`alloc-uncounted` is the bare system allocator: build it without `alloc-mimalloc` or `alloc-jemalloc`"
);

#[cfg(feature = "dhat-heap")]
#[global_allocator]
static GLOBAL: diag::heap::DhatAlloc = diag::heap::DhatAlloc;

#[cfg(all(not(feature = "dhat-heap"), feature = "alloc-mimalloc"))]
#[global_allocator]
static GLOBAL: diag::alloc::CountingAlloc<mimalloc::MiMalloc> =
    diag::alloc::CountingAlloc::new(mimalloc::MiMalloc);

#[cfg(all(not(feature = "dhat-heap"), feature = "alloc-jemalloc"))]
#[global_allocator]
static GLOBAL: diag::alloc::CountingAlloc<tikv_jemallocator::Jemalloc> =
    diag::alloc::CountingAlloc::new(tikv_jemallocator::Jemalloc);

#[cfg(not(any(
    feature = "dhat-heap",
    feature = "alloc-mimalloc",
    feature = "alloc-jemalloc",
    feature = "alloc-uncounted"
)))]
#[global_allocator]
static GLOBAL: diag::alloc::CountingAlloc = diag::alloc::CountingAlloc::system();

// `alloc-uncounted`: no `#[global_allocator]`, so Rust's default, the system allocator.

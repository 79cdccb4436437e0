//! The global allocator of the `ddsplit` binary, chosen by cargo feature: the system allocator
//! by default, mimalloc with `alloc-mimalloc`, jemalloc with `alloc-jemalloc`. The library
//! never picks one: that is for the program that links it.

#[cfg(all(feature = "alloc-mimalloc", feature = "alloc-jemalloc"))]
compile_error!(
    "features `alloc-mimalloc` and `alloc-jemalloc` both pick the global allocator: enable one"
);

#[cfg(all(feature = "alloc-mimalloc", not(feature = "alloc-jemalloc")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "alloc-jemalloc", not(feature = "alloc-mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

//! The probes of a DDSplit process wired to its admin endpoint: the allocation metrics on
//! `/metrics` (`alloc_metrics`), `/debug/tasks` (`tasks_route`), the CPU and heap profile
//! routes (`profile_routes`), the task kinds of DDSplit's stacks in the CPU view
//! (`task_view`), and the files `--diag-out` writes at the end of a run (`diag_out`).

use std::sync::Arc;

use crate::admin::Admin;
use crate::metrics::Registry;

mod alloc_metrics;
mod diag_out;
mod profile_routes;
mod task_view;
mod tasks_route;

pub use diag_out::{HeapProfile, ProbeArgs, ProbeRun, heap_profile, write_cpu_files};
pub use task_view::task_view;
pub use tasks_route::TasksRoute;

/// Whether this build records a dhat heap profile (feature `dhat-heap`).
pub const HEAP_PROFILE_MODE: bool = cfg!(feature = "dhat-heap");

// Heavy probes never share a run: dhat records a backtrace for every allocation, and
// tokio-console's instrumentation allocates on every poll; together they were measured at over
// 100x slower than dhat alone, which measures nothing but themselves.
#[allow(
    unexpected_cfgs,
    reason = "the `console` feature is defined beside this one"
)]
mod heavy_probes_never_share_a_run {
    #[cfg(all(feature = "dhat-heap", feature = "console"))]
    compile_error!(
        "the `dhat-heap` and `console` features are both heavy probes and never share a run: \
         build with one of them"
    );
}

/// Why a CPU profile is refused in the heap-profile build.
pub(crate) const CPU_IN_HEAP_MODE: &str = "this build records a dhat heap profile (feature dhat-heap), which makes every \
     allocation several times slower: a CPU profile of it would show dhat, not DDSplit. \
     Take CPU profiles with a build without --features dhat-heap";

/// The admin endpoint of a DDSplit process over `registry`, with the allocation metrics on
/// `/metrics`, `/debug/tasks` and, unless `profiles` is false (`--no-profiling`), the profile routes
/// (`/debug/pprof/profile`, `/debug/pprof/heap`).
pub fn admin(registry: &Arc<Registry>, profiles: bool) -> Admin {
    alloc_metrics::register(registry);
    let admin =
        Admin::new(Arc::clone(registry)).route(Arc::new(TasksRoute::new(registry.tasks().clone())));
    if profiles {
        admin
            .route(Arc::new(profile_routes::CpuProfileRoute))
            .route(Arc::new(profile_routes::HeapProfileRoute))
    } else {
        admin
    }
}

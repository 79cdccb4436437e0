//! The allocation, CPU and heap probes of a DDSplit process (`diag::alloc`, `diag::cpu`,
//! `diag::heap`): their admin routes and `/metrics` families, the task kinds of DDSplit's
//! stacks, and the files `--diag-out` writes at the end of a run.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use diag::blocking::{BlockingError, BlockingProfiler};
use diag::cpu::{CpuError, CpuProfile, CpuProfiler, HZ_MAX, TaskView};
use futures::future::BoxFuture;

use crate::admin::{Admin, AdminRoute, HttpResponse};
use crate::limits::{PROFILE_SECONDS_DEFAULT, PROFILE_SECONDS_MAX};
use crate::load::LoadReport;
use crate::metrics::{MetricsSource, Registry, Sample};

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
const CPU_IN_HEAP_MODE: &str = "this build records a dhat heap profile (feature dhat-heap), which makes every \
     allocation several times slower: a CPU profile of it would show dhat, not DDSplit. \
     Take CPU profiles with a build without --features dhat-heap";

/// The admin endpoint of a DDSplit process over `registry`, with the allocation metrics on
/// `/metrics` and, unless `profiles` is false (`--no-profiling`), the profile routes
/// (`/debug/pprof/profile`, `/debug/pprof/heap`).
pub fn admin(registry: &Arc<Registry>, profiles: bool) -> Admin {
    registry.add_source(Arc::new(AllocSource));
    #[cfg(feature = "console")]
    registry.add_source(Arc::new(ConsoleDropSource));
    let admin = Admin::new(Arc::clone(registry));
    if profiles {
        admin
            .route(Arc::new(CpuProfileRoute))
            .route(Arc::new(HeapProfileRoute))
    } else {
        admin
    }
}

/// How DDSplit's stacks map to task kinds in the async-aware CPU view (the same kinds as the
/// task monitors: `gateway.put`, `node.get`...). The first rule naming a frame decides: a
/// gateway query, which reads records, is `gateway.query` before it is `gateway.get`, and the
/// connection's own work (frames in and out) is what is left once no handler is on the stack.
pub fn task_view() -> TaskView {
    let store = "ddsplit::store::LocalStore as ddsplit::store::FragmentStore>::";
    // Repair is an `impl Gateway` of its own module: `ddsplit::gateway::repair::<impl
    // ddsplit::gateway::Gateway>::repair`.
    let repair = "ddsplit::gateway::Gateway>::";
    TaskView::new(["ddsplit"])
        .rule(format!("{repair}repair_scan"), "gateway.repair_scan")
        .rule(format!("{repair}repair"), "gateway.repair")
        .rule("ddsplit::gateway::Gateway::query", "gateway.query")
        .rule("ddsplit::gateway::Gateway::put", "gateway.put")
        .rule("ddsplit::gateway::Gateway::get", "gateway.get")
        .rule("ddsplit::gateway::Gateway::delete", "gateway.delete")
        .rule("ddsplit::gateway::Gateway::stats", "gateway.stats")
        .rule(format!("{store}put_fragment"), "node.put")
        .rule(format!("{store}get_fragment"), "node.get")
        .rule(format!("{store}delete_fragments"), "node.delete")
        .rule(format!("{store}list_fragments"), "node.list")
        .rule(format!("{store}stats"), "node.stats")
        // The log's blocking reads run on the blocking pool, outside the store's future.
        .rule("ddsplit::node::log::FragmentLog::get", "node.get")
        .rule("ddsplit::node::log::write_loop", "node.log_writer")
        .rule("ddsplit::load::Worker::put", "load.put")
        .rule("ddsplit::load::Worker::get", "load.get")
        .rule("ddsplit::load::Worker::query", "load.query")
        .rule("ddsplit::load::", "load")
        .rule("ddsplit::admin::", "admin")
        // Reading, decoding, encoding and writing frames, before and after a handler runs.
        .rule("ddsplit::server::", "server.connection")
}

// ---------------------------------------------------------------------------------------------
// /metrics

/// The process's allocation counters on `/metrics`, as `ddsplit_alloc_*` families (none when the
/// global allocator does not count, e.g. in the heap-profile build).
struct AllocSource;

impl MetricsSource for AllocSource {
    fn collect(&self, out: &mut Vec<Sample>) {
        if !diag::alloc::is_counting() {
            return;
        }
        static FAMILIES: OnceLock<Vec<String>> = OnceLock::new();
        let families = FAMILIES.get_or_init(|| {
            diag::alloc::METRICS
                .iter()
                .map(|m| format!("ddsplit_{}", m.name))
                .collect()
        });
        let counts = diag::alloc::process();
        for (metric, family) in diag::alloc::METRICS.iter().zip(families) {
            out.push(Sample {
                family: family.as_str(),
                kind: metric.kind,
                help: metric.help,
                suffix: "",
                labels: String::new(),
                value: (metric.value)(&counts) as f64,
            });
        }
    }
}

/// `ddsplit_console_dropped_events_total{kind}`: events tokio-console's layer dropped (its buffer
/// was full), so whether the console's view is complete; and whether they are being counted.
#[cfg(feature = "console")]
struct ConsoleDropSource;

#[cfg(feature = "console")]
impl MetricsSource for ConsoleDropSource {
    fn collect(&self, out: &mut Vec<Sample>) {
        use std::sync::atomic::Ordering::Relaxed;
        let drops = diag::console::drops();
        for (kind, counter) in [
            ("tasks", &drops.tasks),
            ("resources", &drops.resources),
            ("async_ops", &drops.async_ops),
        ] {
            out.push(Sample {
                family: "ddsplit_console_dropped_events_total",
                kind: "counter",
                help: "Events the tokio-console layer dropped because its buffer was full: the \
                       console shows less than happened while this grows.",
                suffix: "",
                labels: format!("kind=\"{kind}\""),
                value: counter.load(Relaxed) as f64,
            });
        }
        out.push(Sample {
            family: "ddsplit_console_drops_counted",
            kind: "gauge",
            help: "1 while the drop counter receives the console's updates (the counts above are \
                   known), 0 before it has connected.",
            suffix: "",
            labels: String::new(),
            value: f64::from(u8::from(drops.watching.load(Relaxed))),
        });
    }
}

// ---------------------------------------------------------------------------------------------
// /debug/pprof/profile and /debug/pprof/heap

/// What a profile request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ProfileQuery {
    seconds: u64,
    hz: u32,
    format: ProfileFormat,
    tasks: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProfileFormat {
    Pprof,
    Svg,
    Folded,
}

fn parse_profile_query(query: &str) -> Result<ProfileQuery, String> {
    let mut parsed = ProfileQuery {
        seconds: PROFILE_SECONDS_DEFAULT,
        hz: diag::cpu::DEFAULT_HZ,
        format: ProfileFormat::Pprof,
        tasks: false,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "seconds" => {
                parsed.seconds = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=PROFILE_SECONDS_MAX).contains(s))
                    .ok_or_else(|| {
                        format!("seconds={value:?}: a whole number of seconds, 1 to {PROFILE_SECONDS_MAX}")
                    })?;
            }
            "hz" => {
                parsed.hz = value
                    .parse()
                    .ok()
                    .filter(|hz| (1..=HZ_MAX).contains(hz))
                    .ok_or_else(|| format!("hz={value:?}: a sampling frequency, 1 to {HZ_MAX}"))?;
            }
            "format" => {
                parsed.format = match value {
                    "pprof" | "proto" => ProfileFormat::Pprof,
                    "svg" => ProfileFormat::Svg,
                    "folded" => ProfileFormat::Folded,
                    other => {
                        return Err(format!(
                            "format={other:?}: pprof (gzip'd protobuf, the default), svg (a flamegraph) or folded (folded stacks)"
                        ));
                    }
                }
            }
            "view" => {
                parsed.tasks = match value {
                    "threads" => false,
                    "tasks" => true,
                    other => {
                        return Err(format!(
                            "view={other:?}: threads (stacks rooted at threads, the default) or tasks (rooted at task kinds, runtime frames collapsed)"
                        ));
                    }
                }
            }
            other => {
                return Err(format!(
                    "unknown parameter {other:?}; the parameters are seconds, hz, format and view"
                ));
            }
        }
    }
    Ok(parsed)
}

/// `/debug/pprof/profile?seconds=N`: a CPU profile of the whole process, as Go's endpoint serves
/// it (gzip'd pprof protobuf), or a flamegraph (`&format=svg`), or folded stacks.
#[derive(Debug)]
struct CpuProfileRoute;

impl AdminRoute for CpuProfileRoute {
    fn path(&self) -> &'static str {
        "/debug/pprof/profile"
    }

    fn describe(&self) -> &'static str {
        "CPU profile: ?seconds=N (default 30, at most 120) [&hz=99] [&format=pprof|svg|folded] [&view=threads|tasks]"
    }

    fn get(&self, query: &str) -> BoxFuture<'static, HttpResponse> {
        let parsed = parse_profile_query(query);
        Box::pin(async move {
            let query = match parsed {
                Ok(query) => query,
                Err(e) => return HttpResponse::error(400, e),
            };
            if HEAP_PROFILE_MODE {
                return HttpResponse::error(409, CPU_IN_HEAP_MODE);
            }
            let profiler = match CpuProfiler::start(query.hz) {
                Ok(profiler) => profiler,
                Err(e @ CpuError::Busy) => return HttpResponse::error(409, e.to_string()),
                Err(e) => return HttpResponse::error(500, e.to_string()),
            };
            tokio::time::sleep(Duration::from_secs(query.seconds)).await;
            // Symbolizing reads debug info: not on a runtime thread.
            let rendered = tokio::task::spawn_blocking(move || render_profile(profiler, query))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
            rendered.unwrap_or_else(|e| HttpResponse::error(500, e))
        })
    }
}

fn render_profile(profiler: CpuProfiler, query: ProfileQuery) -> Result<HttpResponse, String> {
    let profile = profiler.stop().map_err(|e| e.to_string())?;
    let folded = || {
        if query.tasks {
            profile.tasks_folded(&task_view())
        } else {
            profile.folded()
        }
    };
    Ok(match query.format {
        ProfileFormat::Pprof => {
            let mut response = HttpResponse::text(
                diag::cpu::PPROF_CONTENT_TYPE,
                profile.pprof_gzip().map_err(|e| e.to_string())?,
            );
            response.headers.push((
                "Content-Disposition",
                "attachment; filename=\"profile\"".to_string(),
            ));
            response
        }
        ProfileFormat::Svg => HttpResponse::text(
            "image/svg+xml",
            profile
                .flamegraph_svg("ddsplit CPU", &folded())
                .map_err(|e| e.to_string())?,
        ),
        ProfileFormat::Folded => HttpResponse::text("text/plain; charset=utf-8", folded()),
    })
}

/// `/debug/pprof/heap`: the dhat heap profile recorded so far (heap-profile build only).
#[derive(Debug)]
struct HeapProfileRoute;

impl AdminRoute for HeapProfileRoute {
    fn path(&self) -> &'static str {
        "/debug/pprof/heap"
    }

    fn describe(&self) -> &'static str {
        "dhat heap profile so far (JSON for dh_view.html; recording restarts), in the dhat-heap build"
    }

    fn get(&self, query: &str) -> BoxFuture<'static, HttpResponse> {
        let refused = (!query.is_empty()).then(|| {
            HttpResponse::error(400, format!("{query:?}: this route takes no parameters"))
        });
        Box::pin(async move {
            if let Some(refused) = refused {
                return refused;
            }
            heap_profile_response().await
        })
    }
}

#[cfg(feature = "dhat-heap")]
async fn heap_profile_response() -> HttpResponse {
    match tokio::task::spawn_blocking(diag::heap::take_json).await {
        Ok(Ok(json)) => HttpResponse::text("application/json", json),
        Ok(Err(e)) => HttpResponse::error(503, e.to_string()),
        Err(e) => HttpResponse::error(500, e.to_string()),
    }
}

#[cfg(not(feature = "dhat-heap"))]
async fn heap_profile_response() -> HttpResponse {
    HttpResponse::error(
        404,
        "no heap profile: this build does not record one. Heap profiles need the heap-profile \
         build, `cargo build --profile profiling -p ddsplit --features dhat-heap` (every \
         allocation is then recorded with its stack, several times slower); this route then \
         serves the dhat profile, and the run writes dhat-heap.json",
    )
}

// ---------------------------------------------------------------------------------------------
// --diag-out

/// The probe flags of `ddsplit local` and `ddsplit load`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ProbeArgs {
    /// When the run ends, write this process's probe results into DIR (created if missing):
    /// alloc.json; with --cpu-profile also cpu.folded, cpu-tasks.folded, flamegraph.svg and
    /// cpu.json; in the dhat-heap build, dhat-heap.json.
    #[arg(long, value_name = "DIR")]
    pub diag_out: Option<PathBuf>,
    /// Sample the CPU over the measured load phase (needs --diag-out).
    #[arg(long, requires = "diag_out")]
    pub cpu_profile: bool,
    /// CPU samples per second of CPU time, 1 to 1000.
    #[arg(long, default_value_t = diag::cpu::DEFAULT_HZ, requires = "cpu_profile")]
    pub cpu_profile_hz: u32,
    /// Sample, in wall time, which code blocks a runtime thread inside a task's poll (fsync,
    /// sleep, a contended lock) over the measured load phase; writes blocking.folded,
    /// blocking.json and blocking.svg (needs --diag-out). Set DDSPLIT_TASK_PROBES=all to see
    /// the connection tasks too.
    #[arg(long, requires = "diag_out")]
    pub blocking_profile: bool,
}

/// The probes of one load run: started with the measured phase, written out at the end.
#[derive(Debug)]
pub struct ProbeRun {
    dir: Option<PathBuf>,
    cpu_hz: Option<u32>,
    cpu: Option<Result<CpuProfiler, CpuError>>,
    blocking_wanted: bool,
    blocking: Option<Result<BlockingProfiler, BlockingError>>,
}

impl ProbeRun {
    /// Checks the flags and creates the output directory.
    pub fn new(args: &ProbeArgs) -> anyhow::Result<ProbeRun> {
        if args.cpu_profile && HEAP_PROFILE_MODE {
            anyhow::bail!("--cpu-profile: {CPU_IN_HEAP_MODE}");
        }
        if args.cpu_profile && !(1..=HZ_MAX).contains(&args.cpu_profile_hz) {
            anyhow::bail!(
                "--cpu-profile-hz {} is out of range: 1 to {HZ_MAX} samples per second",
                args.cpu_profile_hz
            );
        }
        if let Some(dir) = &args.diag_out {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the --diag-out directory {}", dir.display()))?;
        }
        if args.cpu_profile {
            // Outside the measured phase: the sampler's first start loads debug info.
            CpuProfiler::prepare();
        }
        Ok(ProbeRun {
            dir: args.diag_out.clone(),
            cpu_hz: args.cpu_profile.then_some(args.cpu_profile_hz),
            cpu: None,
            blocking_wanted: args.blocking_profile,
            blocking: None,
        })
    }

    /// The measured phase begins: starts the CPU and blocking profiles asked for.
    pub fn begin_measure(&mut self) {
        if let Some(hz) = self.cpu_hz {
            self.cpu = Some(CpuProfiler::start(hz));
        }
        if self.blocking_wanted {
            self.blocking = Some(BlockingProfiler::start(diag::blocking::DEFAULT_HZ));
        }
    }

    /// The run is over: writes the results of this process into the `--diag-out` directory.
    pub async fn finish(self, report: &LoadReport) -> anyhow::Result<()> {
        let Some(dir) = self.dir else {
            return Ok(());
        };
        if let Some(alloc) = &report.alloc {
            write(&dir, "alloc.json", serde_json::to_vec_pretty(alloc)?)?;
        }
        if let Some(blocking) = self.blocking {
            let profiler = blocking.context("starting the blocking profile")?;
            let dir = dir.clone();
            let written = tokio::task::spawn_blocking(move || write_blocking_files(&dir, profiler));
            written.await.context("writing the blocking profile")??;
        }
        let profiler = match self.cpu {
            None => return Ok(()),
            Some(Err(e)) => return Err(e).context("starting the CPU profile"),
            Some(Ok(profiler)) => profiler,
        };
        let written = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let profile = profiler.stop().context("stopping the CPU profile")?;
            write_cpu_files(&dir, &profile)
        });
        written.await.context("writing the CPU profile")?
    }
}

/// `cpu.folded`, `cpu-tasks.folded`, `flamegraph.svg` (threads), `flamegraph-tasks.svg` and
/// `cpu.json` in `dir`.
pub fn write_cpu_files(dir: &Path, profile: &CpuProfile) -> anyhow::Result<()> {
    let view = task_view();
    let folded = profile.folded();
    let tasks_folded = profile.tasks_folded(&view);
    write(
        dir,
        "flamegraph.svg",
        profile.flamegraph_svg("ddsplit CPU", &folded)?,
    )?;
    write(
        dir,
        "flamegraph-tasks.svg",
        profile.flamegraph_svg("ddsplit CPU by task kind", &tasks_folded)?,
    )?;
    write(dir, "cpu.folded", folded)?;
    write(dir, "cpu-tasks.folded", tasks_folded)?;
    write(
        dir,
        "cpu.json",
        serde_json::to_vec_pretty(&profile.summary(&view))?,
    )
}

/// `blocking.folded`, `blocking.json` and `blocking.svg` in `dir`.
fn write_blocking_files(dir: &Path, profiler: BlockingProfiler) -> anyhow::Result<()> {
    let profile = profiler.stop();
    write(dir, "blocking.folded", profile.folded())?;
    write(
        dir,
        "blocking.json",
        serde_json::to_vec_pretty(&profile.summary())?,
    )?;
    write(
        dir,
        "blocking.svg",
        profile.flamegraph_svg("ddsplit blocked inside polls")?,
    )
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> anyhow::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// A heap profile that lasts as long as this value: dropping it writes `dhat-heap.json`.
#[derive(Debug)]
pub struct HeapProfile {
    _private: (),
}

/// In the heap-profile build, starts recording the heap; the profile is written to
/// `DIR/dhat-heap.json` (`--diag-out DIR`) or `./dhat-heap.json` when the returned value drops.
/// `None` in other builds.
pub fn heap_profile(diag_out: Option<&Path>) -> anyhow::Result<Option<HeapProfile>> {
    if !HEAP_PROFILE_MODE {
        return Ok(None);
    }
    let file = match diag_out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the --diag-out directory {}", dir.display()))?;
            dir.join("dhat-heap.json")
        }
        None => PathBuf::from("dhat-heap.json"),
    };
    start_heap(file)?;
    Ok(Some(HeapProfile { _private: () }))
}

#[cfg(feature = "dhat-heap")]
fn start_heap(file: PathBuf) -> anyhow::Result<()> {
    Ok(diag::heap::start(file)?)
}

#[cfg(not(feature = "dhat-heap"))]
fn start_heap(_file: PathBuf) -> anyhow::Result<()> {
    unreachable!("only the heap-profile build starts a heap profile")
}

impl Drop for HeapProfile {
    fn drop(&mut self) {
        #[cfg(feature = "dhat-heap")]
        match diag::heap::finish() {
            Ok(path) => eprintln!(
                "heap profile in {} (open it with dh_view.html)",
                path.display()
            ),
            Err(e) => eprintln!("heap profile: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_queries_parse_with_defaults_and_limits() {
        let q = parse_profile_query("").unwrap();
        assert_eq!(q.seconds, PROFILE_SECONDS_DEFAULT);
        assert_eq!(q.hz, diag::cpu::DEFAULT_HZ);
        assert_eq!(q.format, ProfileFormat::Pprof);
        let q = parse_profile_query("seconds=5&format=svg&view=tasks&hz=500").unwrap();
        assert_eq!(
            q,
            ProfileQuery {
                seconds: 5,
                hz: 500,
                format: ProfileFormat::Svg,
                tasks: true
            }
        );
        for bad in [
            "seconds=0",
            "seconds=121",
            "seconds=abc",
            "hz=0",
            "hz=1001",
            "format=png",
            "view=x",
            "debug=1",
        ] {
            let e = parse_profile_query(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(
            parse_profile_query("seconds=121")
                .unwrap_err()
                .contains("1 to 120")
        );
    }

    #[test]
    fn ddsplit_stacks_are_rooted_at_task_kinds() {
        let view = task_view();
        let frame = |f: &str| diag::cpu::Frame {
            function: f.into(),
            file: None,
            line: None,
        };
        let stack = |fs: &[&str]| diag::cpu::Stack {
            thread: "ddsplit-worker".into(),
            frames: fs.iter().map(|f| frame(f)).collect(),
            samples: 1,
        };
        let runtime = "tokio::runtime::task::harness::Harness<T,S>::poll";
        let conn = "ddsplit::server::Connection<H>::run::{{closure}}";
        let kind = |fs: &[&str]| {
            view.folded(&[stack(fs)])
                .split(';')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            kind(&[
                runtime,
                conn,
                "<ddsplit::gateway::GatewayHandler as ddsplit::server::Handler>::handle::{{closure}}",
                "ddsplit::gateway::Gateway::query::{{closure}}",
                "ddsplit::gateway::Gateway::get::{{closure}}",
            ]),
            "gateway.query"
        );
        assert_eq!(
            kind(&[
                runtime,
                conn,
                "<ddsplit::store::LocalStore as ddsplit::store::FragmentStore>::put_fragment::{{closure}}",
            ]),
            "node.put"
        );
        assert_eq!(
            kind(&[
                runtime,
                conn,
                "<ddsplit::gateway::GatewayHandler as ddsplit::server::Handler>::handle::{{closure}}",
                "ddsplit::gateway::Gateway::put::{{closure}}",
                "ddsplit::codec::split",
            ]),
            "gateway.put"
        );
        assert_eq!(
            kind(&[runtime, conn, "ddsplit::wire::Request::decode"]),
            "server.connection"
        );
        assert_eq!(
            kind(&["ddsplit::node::log::write_loop", "fdatasync"]),
            "node.log_writer"
        );
    }
}

//! The probe flags of a load run and the files `--diag-out DIR` writes when it ends: allocation
//! counters, the CPU profile and its flamegraphs, the blocking profile, dhat's heap profile, the
//! console recording.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use diag::blocking::{BlockingError, BlockingProfiler};
use diag::cpu::{CpuError, CpuProfile, CpuProfiler, HZ_MAX};

use super::{CPU_IN_HEAP_MODE, HEAP_PROFILE_MODE, task_view};
use crate::load::LoadReport;

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
    /// Record this process's tokio-console stream over the measured load phase into
    /// console.rec, and time every wait on a tokio resource into resources.json (needs --diag-out, and a build with tokio-console support: the `console`
    /// feature under --cfg tokio_unstable, as `cargo xtask console` builds). Replay it with
    /// `cargo xtask console --replay DIR/console.rec`.
    #[arg(long, requires = "diag_out")]
    pub console_record: bool,
}

/// What `--console-record` says in a build without tokio-console support.
pub const CONSOLE_RECORD_UNSUPPORTED: &str = "this build has no tokio-console support: build \
     ddsplit with the `console` feature under RUSTFLAGS=\"--cfg tokio_unstable\" (in a target \
     directory of its own), as `cargo xtask console` does";

/// The probes of one load run: started with the measured phase, written out at the end.
#[derive(Debug)]
pub struct ProbeRun {
    dir: Option<PathBuf>,
    cpu_hz: Option<u32>,
    cpu: Option<Result<CpuProfiler, CpuError>>,
    blocking_wanted: bool,
    blocking: Option<Result<BlockingProfiler, BlockingError>>,
    #[cfg(feature = "console")]
    console_wanted: bool,
    #[cfg(feature = "console")]
    console: Option<Result<diag::recording::Recorder, diag::recording::RecordError>>,
    /// Polls marked with their task kinds while the console's waits are timed.
    #[cfg(feature = "console")]
    poll_marks: Option<diag::blocking::PollMarks>,
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
        if args.console_record && !cfg!(feature = "console") {
            anyhow::bail!("--console-record: {CONSOLE_RECORD_UNSUPPORTED}");
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
            #[cfg(feature = "console")]
            console_wanted: args.console_record,
            #[cfg(feature = "console")]
            console: None,
            #[cfg(feature = "console")]
            poll_marks: None,
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
        #[cfg(feature = "console")]
        if let (true, Some(dir)) = (self.console_wanted, &self.dir) {
            let path = dir.join(diag::recording::RECORDING_FILE);
            let addr = diag::console::console_addr();
            self.console = Some(diag::recording::Recorder::start(&addr, &path));
            self.poll_marks = Some(diag::blocking::mark_polls());
            diag::console::waits::start();
        }
    }

    /// The run is over: writes the results of this process into the `--diag-out` directory.
    pub async fn finish(self, report: &LoadReport) -> anyhow::Result<()> {
        let Some(dir) = self.dir else {
            return Ok(());
        };
        // First: the recording's last updates are of the run just ended.
        #[cfg(feature = "console")]
        if let Some(recorder) = self.console {
            let recorder = recorder.context("starting the console recording")?;
            let waits = diag::console::waits::take().context("timing the waits on resources")?;
            drop(self.poll_marks);
            write(
                &dir,
                diag::waits::WAITS_FILE,
                serde_json::to_vec_pretty(&waits)?,
            )?;
            let summary = tokio::task::spawn_blocking(move || recorder.finish())
                .await
                .context("finishing the console recording")??;
            eprintln!(
                "console recording: {} updates, {} bytes, {} events dropped",
                summary.updates, summary.bytes, summary.dropped_events
            );
        }
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

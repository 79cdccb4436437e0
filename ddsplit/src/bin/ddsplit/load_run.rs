//! The load generator's run: the live summary while it runs, its probes, its report.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ddsplit::load::{self, LoadConfig, LoadReport};
use ddsplit::probes::{ProbeArgs, ProbeRun};

use crate::live;

/// Runs the load under the probes `probe_args` asks for, and writes their files (`--diag-out`)
/// when it ends.
pub async fn load_with_probes(
    gateway: SocketAddr,
    config: LoadConfig,
    probe_args: &ProbeArgs,
) -> anyhow::Result<LoadReport> {
    let mut probes = ProbeRun::new(probe_args)?;
    let report = run_load(gateway, config, &mut probes).await?;
    probes.finish(&report).await?;
    Ok(report)
}

async fn run_load(
    gateway: SocketAddr,
    config: LoadConfig,
    probes: &mut ProbeRun,
) -> anyhow::Result<LoadReport> {
    let stop = Arc::new(AtomicBool::new(false));
    let ctrl_c_stop = Arc::clone(&stop);
    diag::tasks::spawn_named("load.stop_signal", async move {
        if ddsplit::shutdown::terminate_signal().await.is_ok() {
            ctrl_c_stop.store(true, Ordering::Relaxed);
        }
    });
    let mut summary = None;
    let shown_config = config.clone();
    let report = load::run_measured(
        gateway,
        config,
        stop,
        |progress| summary = Some(live::show(progress, &shown_config)),
        || probes.begin_measure(),
    )
    .await;
    if let Some(summary) = summary {
        summary.abort();
        let _ = summary.await;
    }
    report
}

pub fn print_report(report: &LoadReport, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{}", report.table());
    }
    // Wrong data is a correctness failure, never a performance figure.
    Ok(if report.wrong_data > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

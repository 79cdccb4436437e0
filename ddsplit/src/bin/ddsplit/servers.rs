//! `ddsplit node`, `ddsplit gateway` and `ddsplit local`: start the servers and their admin
//! endpoints, run until a signal (or the local cluster's load) ends them.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use ddsplit::admin;
use ddsplit::gateway::{self, GatewayConfig};
use ddsplit::local::{LocalCluster, LocalClusterConfig};
use ddsplit::metrics::Registry;
use ddsplit::node::{self, NodeConfig};
use ddsplit::server::ServerConfig;

use crate::cli::{AdminArgs, GatewayArgs, LocalArgs, NodeArgs};
use crate::load_run;

async fn start_admin(
    args: &AdminArgs,
    registry: &Arc<Registry>,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(addr) = args.addr() else {
        return Ok(None);
    };
    let (trigger, shutdown) = ddsplit::shutdown::channel();
    // The admin endpoint lives as long as the process.
    std::mem::forget(trigger);
    let bound = admin::start(
        addr,
        args.admin_allow_remote,
        ddsplit::probes::admin(registry, !args.no_profiling),
        shutdown,
    )
    .await?;
    tracing::info!("admin endpoint on http://{bound}/metrics");
    Ok(Some(bound))
}

/// Waits for SIGTERM or Ctrl-C, and says that in-flight requests are being finished.
async fn until_terminated() -> anyhow::Result<()> {
    let signal = ddsplit::shutdown::terminate_signal().await?;
    tracing::info!(signal, "shutting down: finishing in-flight requests");
    Ok(())
}

pub async fn run_node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let registry = Arc::new(Registry::default());
    let config = NodeConfig {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        fsync: args.fsync,
        server: ServerConfig {
            connections_max: args.max_connections,
        },
    };
    let node = node::start(config, &registry).await?;
    start_admin(&args.admin, &registry).await?;
    until_terminated().await?;
    node.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn run_gateway(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let registry = Arc::new(Registry::default());
    let params = args.split.params()?;
    let config = GatewayConfig {
        listen: args.listen,
        nodes: args.nodes.clone(),
        params,
        write_quorum: args
            .split
            .write_quorum
            .unwrap_or(gateway::write_quorum_default(params)),
        fragment_timeout: args.fragment_timeout,
        server: ServerConfig {
            connections_max: args.max_connections,
        },
    };
    let gateway = gateway::start(config, &registry).await?;
    start_admin(&args.admin, &registry).await?;
    until_terminated().await?;
    gateway.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn run_local(mut args: LocalArgs) -> anyhow::Result<ExitCode> {
    let config = LocalClusterConfig {
        nodes: args.nodes,
        data_dir: args.data_dir.clone(),
        params: args.split.params()?,
        write_quorum: args.split.write_quorum,
        fsync: args.fsync,
        admin: args.admin.addr(),
        admin_allow_remote: args.admin.admin_allow_remote,
        admin_profiles: !args.admin.no_profiling,
        gateway_listen: args.listen,
    };
    let cluster = LocalCluster::start(config).await?;
    let gateway = cluster.gateway_addr();
    eprintln!(
        "local cluster: gateway {gateway}, {} nodes, data in {}{}",
        args.nodes,
        cluster.data_dir().display(),
        cluster
            .admin_addr()
            .map(|a| format!(", metrics on http://{a}/metrics"))
            .unwrap_or_default()
    );
    let outcome = if args.load.is_some() || args.workload.ops.is_some() {
        if let Some(duration) = args.load {
            args.workload.duration = Some(duration);
        }
        let report = load_run::load_with_probes(gateway, args.workload, &args.probes).await;
        report.and_then(|r| load_run::print_report(&r, args.json))
    } else {
        eprintln!("try: ddsplit put --gateway {gateway} FILE; press Ctrl-C to stop");
        ddsplit::shutdown::terminate_signal().await?;
        Ok(ExitCode::SUCCESS)
    };
    if let Some(dir) = &args.probes.diag_out {
        write_diag_out(dir, &cluster)?;
    }
    cluster.shutdown().await?;
    outcome
}

/// `--diag-out DIR`: the task probes' results of this process (`tasks.json`), written when the
/// run ends; the load's probes (allocations, CPU) write theirs as the load ends.
fn write_diag_out(dir: &std::path::Path, cluster: &LocalCluster) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    ddsplit::tasks::write_json(dir, cluster.registry().tasks())?;
    Ok(())
}

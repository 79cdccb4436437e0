//! The `ddsplit` command: run a node, a gateway or a whole local cluster, generate load, and
//! put, get, query and delete records. `main` parses arguments and wires parts together.

mod allocator;
mod live;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use ddsplit::admin;
use ddsplit::client::Client;
use ddsplit::codec::CodecParams;
use ddsplit::error::{DistriErr, ErrorCode};
use ddsplit::gateway::{self, GatewayConfig};
use ddsplit::id::RecordId;
use ddsplit::limits::{
    CONNECTIONS_MAX_DEFAULT, DATA_FRAGMENTS_DEFAULT, PARITY_FRAGMENTS_DEFAULT, RECORD_SIZE_MAX,
};
use ddsplit::load::{self, LoadConfig, LoadReport};
use ddsplit::local::{LOCAL_NODES_DEFAULT, LocalCluster, LocalClusterConfig};
use ddsplit::metrics::Registry;
use ddsplit::node::{self, NodeConfig};
use ddsplit::probes::{ProbeArgs, ProbeRun};
use ddsplit::query::DistriQuery;
use ddsplit::server::ServerConfig;
use ddsplit::store::log::FsyncPolicy;
use ddsplit::units::parse_duration;

/// Splits records into erasure-coded fragments on distinct nodes, and reassembles them.
#[derive(Parser, Debug)]
#[command(
    name = "ddsplit",
    version = ddsplit::build_info::long_version(),
    about,
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print this binary's build identity: revision, dirty tree, source hash, features,
    /// compiler, profile (one `key: value` per line).
    BuildInfo,
    /// Run a whole cluster (a gateway and N nodes) in this process, optionally with load.
    Local(LocalArgs),
    /// Run a fragment node.
    Node(NodeArgs),
    /// Run a gateway over fragment nodes.
    Gateway(GatewayArgs),
    /// Store a record from FILE (or standard input); prints its new id.
    Put {
        #[command(flatten)]
        gateway: GatewayAddr,
        /// File to store; standard input when absent.
        file: Option<PathBuf>,
    },
    /// Read a record to standard output (or -o FILE).
    Get {
        #[command(flatten)]
        gateway: GatewayAddr,
        /// Record id (32 hex digits).
        id: RecordId,
        /// Write the record here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Read several records or byte ranges in one request: ID or ID:START-END (end exclusive).
    Query {
        #[command(flatten)]
        gateway: GatewayAddr,
        /// Queries, e.g. 0123...ef or 0123...ef:0-100.
        #[arg(required = true)]
        queries: Vec<DistriQuery>,
        /// Write the answers' bytes, one after the other, here instead of a summary.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Delete a record from all its nodes.
    Delete {
        #[command(flatten)]
        gateway: GatewayAddr,
        /// Record id.
        id: RecordId,
    },
    /// Bring records back to k+m intact fragments: the given IDs, or every record the nodes
    /// hold (a scrub: every fragment is read and checked).
    Repair {
        #[command(flatten)]
        gateway: GatewayAddr,
        /// Records to repair; all of them when none is given.
        ids: Vec<RecordId>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the counters of the gateway and its nodes (JSON).
    Stats {
        #[command(flatten)]
        gateway: GatewayAddr,
    },
    /// Generate load against a gateway and report throughput and latency.
    Load {
        #[command(flatten)]
        gateway: GatewayAddr,
        #[command(flatten)]
        load: LoadConfig,
        /// Print the result as one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        probes: ProbeArgs,
    },
}

#[derive(Args, Debug)]
struct GatewayAddr {
    /// Gateway address.
    #[arg(long, env = "DDSPLIT_GATEWAY", default_value = "127.0.0.1:7400")]
    gateway: SocketAddr,
}

#[derive(Args, Debug)]
struct SplitArgs {
    /// Data fragments per record.
    #[arg(long, default_value_t = DATA_FRAGMENTS_DEFAULT)]
    k: u8,
    /// Parity fragments per record: this many nodes of a record may be lost.
    #[arg(long, default_value_t = PARITY_FRAGMENTS_DEFAULT)]
    m: u8,
    /// Fragment writes acknowledged before a put is (k+1 ..= k+m; default k+1: puts go on
    /// with up to m-1 of a record's nodes down; k+m waits for every fragment).
    #[arg(long)]
    write_quorum: Option<usize>,
}

impl SplitArgs {
    fn params(&self) -> anyhow::Result<CodecParams> {
        Ok(CodecParams::new(self.k, self.m)?)
    }
}

#[derive(Args, Debug)]
struct AdminArgs {
    /// Admin HTTP endpoint (/metrics, /debug/tasks, /healthz); port 0 picks a free one.
    #[arg(long, default_value = admin::ADMIN_DEFAULT)]
    admin: SocketAddr,
    /// Allow the admin endpoint on a non-loopback address.
    #[arg(long)]
    admin_allow_remote: bool,
    /// No admin endpoint.
    #[arg(long, conflicts_with = "admin")]
    no_admin: bool,
    /// No CPU or heap profiles on the admin endpoint (/debug/pprof/*); metrics and tasks stay.
    #[arg(long)]
    no_profiling: bool,
}

#[derive(Args, Debug)]
struct NodeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7500")]
    listen: SocketAddr,
    /// Directory of the node's fragment log (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// When the log is fsync'd.
    #[arg(long, value_enum, default_value_t = FsyncPolicy::Always)]
    fsync: FsyncPolicy,
    /// Connections held at once; more are refused.
    #[arg(long, default_value_t = CONNECTIONS_MAX_DEFAULT)]
    max_connections: usize,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Args, Debug)]
struct GatewayArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    /// Fragment nodes, comma-separated (at least k+m).
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<SocketAddr>,
    #[command(flatten)]
    split: SplitArgs,
    /// How long one fragment operation may take before another node is tried.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    fragment_timeout: Duration,
    /// Connections held at once; more are refused.
    #[arg(long, default_value_t = CONNECTIONS_MAX_DEFAULT)]
    max_connections: usize,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Args, Debug)]
struct LocalArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = LOCAL_NODES_DEFAULT)]
    nodes: usize,
    /// Keep the nodes' logs here (node-0, node-1, ...) instead of a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    split: SplitArgs,
    /// When the nodes fsync their logs.
    #[arg(long, value_enum, default_value_t = FsyncPolicy::Always)]
    fsync: FsyncPolicy,
    /// Gateway address (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    /// Run the load generator for this long (e.g. 20s) with a live summary, then stop.
    #[arg(long, value_parser = parse_duration)]
    load: Option<Duration>,
    #[command(flatten)]
    workload: LoadConfig,
    /// With --load or --ops: print the result as JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    probes: ProbeArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(&cli.command, Command::Local(a) if a.load.is_some() || a.workload.ops.is_some())
        || !matches!(
            cli.command,
            Command::Local(_) | Command::Node(_) | Command::Gateway(_)
        );
    init_logging(if quiet { "warn" } else { "info" });
    if let Err(e) = ddsplit::tasks::level_from_env() {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    // Dropped last, after the runtime: the heap profile covers the whole run.
    let _heap_profile =
        match ddsplit::probes::heap_profile(probe_args(&cli.command).diag_out.as_deref()) {
            Ok(profile) => profile,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ddsplit-worker")
        .thread_stack_size(ddsplit::limits::RUNTIME_THREAD_STACK_BYTES)
        .build()
        .expect("the tokio runtime starts");
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("DDSPLIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // The filter is the log output's own, so that the console layer (which needs tokio's
    // trace-level task events) sees everything whatever the log level.
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only where a terminal reads them, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    let subscriber = tracing_subscriber::registry().with(log);
    #[cfg(feature = "console")]
    let subscriber = {
        eprintln!(
            "tokio-console: attach with `tokio-console http://{}`; event buffer {} events \
             (TOKIO_CONSOLE_BUFFER_CAPACITY), publish every {:?}, retention {:?}. Past what its \
             one aggregator thread folds (about 100 operations a second on 2 cores) it drops \
             events: they are counted in /metrics as ddsplit_console_dropped_events_total and \
             in the live line",
            diag::console::console_addr(),
            diag::console::EVENT_BUFFER_CAPACITY,
            diag::console::PUBLISH_INTERVAL,
            diag::console::RETENTION,
        );
        subscriber.with(diag::console::layer())
    };
    subscriber.init();
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Local(args) => run_local(args).await,
        Command::Node(args) => run_node(args).await,
        Command::Gateway(args) => run_gateway(args).await,
        Command::Put { gateway, file } => {
            let data = match &file {
                Some(path) => {
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
                }
                None => read_stdin()?,
            };
            if data.is_empty() {
                bail!(
                    "nothing to store: the record is empty (records hold 1 to {RECORD_SIZE_MAX} bytes)"
                );
            }
            if data.len() > RECORD_SIZE_MAX {
                bail!(
                    "the record is {} bytes, over the limit of {RECORD_SIZE_MAX}",
                    data.len()
                );
            }
            let id = Client::new(gateway.gateway)
                .put(Bytes::from(data))
                .await
                .map_err(explain)?;
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Get {
            gateway,
            id,
            output,
        } => {
            let data = Client::new(gateway.gateway)
                .get(id)
                .await
                .map_err(explain)?;
            write_output(output.as_ref(), &data)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Query {
            gateway,
            queries,
            output,
        } => {
            let answers = Client::new(gateway.gateway)
                .query(queries.clone())
                .await
                .map_err(explain)?;
            let mut failed = false;
            let mut all = Vec::new();
            for (query, answer) in queries.iter().zip(&answers) {
                match answer {
                    Ok(data) if output.is_some() => all.extend_from_slice(data),
                    Ok(data) => println!(
                        "{} {} bytes crc32c {:08x}",
                        query.id,
                        data.len(),
                        crc32c::crc32c(data)
                    ),
                    Err((code, message)) => {
                        failed = true;
                        eprintln!("{}: {code}: {message}", query.id);
                    }
                }
            }
            if output.is_some() {
                write_output(output.as_ref(), &all)?;
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Delete { gateway, id } => {
            let done = Client::new(gateway.gateway)
                .delete(id)
                .await
                .map_err(explain)?;
            println!("{id} deleted ({done:?})");
            Ok(ExitCode::SUCCESS)
        }
        Command::Repair { gateway, ids, json } => {
            let mut client = Client::new(gateway.gateway);
            let report = if ids.is_empty() {
                client.repair_all(|_| {}).await
            } else {
                client.repair(&ids).await
            }
            .map_err(explain)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", gateway::repair::summary(&report));
            }
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::BuildInfo => {
            print!("{}", ddsplit::build_info::TEXT);
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats { gateway } => {
            let json = Client::new(gateway.gateway)
                .stats()
                .await
                .map_err(explain)?;
            let value: serde_json::Value = serde_json::from_str(&json)?;
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Load {
            gateway,
            load,
            json,
            probes,
        } => {
            let report = load_with_probes(gateway.gateway, load, &probes).await?;
            print_report(&report, json)
        }
    }
}

/// Turns a gateway's error into a message for a person.
fn explain(e: DistriErr) -> anyhow::Error {
    match e {
        DistriErr::Remote {
            code: ErrorCode::NotFound,
            message,
        } => anyhow::anyhow!("{message}"),
        DistriErr::Remote {
            code: ErrorCode::Unavailable,
            message,
        } => {
            anyhow::anyhow!(
                "{message}\n(fewer than k fragments could be read: too many nodes are down or damaged)"
            )
        }
        DistriErr::Io {
            context: "connecting",
            source,
        } => {
            anyhow::anyhow!("cannot reach the gateway: {source} (is it running? see --gateway)")
        }
        other => anyhow::Error::new(other),
    }
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    std::io::stdin()
        .take(RECORD_SIZE_MAX as u64 + 1)
        .read_to_end(&mut data)
        .context("reading standard input")?;
    Ok(data)
}

fn write_output(path: Option<&PathBuf>, data: &[u8]) -> anyhow::Result<()> {
    match path {
        Some(path) => {
            std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(data)?;
            out.flush()?;
            Ok(())
        }
    }
}

fn admin_of(args: &AdminArgs) -> Option<SocketAddr> {
    (!args.no_admin).then_some(args.admin)
}

async fn start_admin(
    args: &AdminArgs,
    registry: &Arc<Registry>,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(addr) = admin_of(args) else {
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

async fn run_node(args: NodeArgs) -> anyhow::Result<ExitCode> {
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
    let signal = ddsplit::shutdown::terminate_signal().await?;
    tracing::info!(signal, "shutting down: finishing in-flight requests");
    node.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

async fn run_gateway(args: GatewayArgs) -> anyhow::Result<ExitCode> {
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
    let signal = ddsplit::shutdown::terminate_signal().await?;
    tracing::info!(signal, "shutting down: finishing in-flight requests");
    gateway.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

async fn run_local(mut args: LocalArgs) -> anyhow::Result<ExitCode> {
    let config = LocalClusterConfig {
        nodes: args.nodes,
        data_dir: args.data_dir.clone(),
        params: args.split.params()?,
        write_quorum: args.split.write_quorum,
        fsync: args.fsync,
        admin: admin_of(&args.admin),
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
        let report = load_with_probes(gateway, args.workload, &args.probes).await;
        report.and_then(|r| print_report(&r, args.json))
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

/// Runs the load under the probes `probe_args` asks for, and writes their files (`--diag-out`)
/// when it ends.
async fn load_with_probes(
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

fn print_report(report: &LoadReport, json: bool) -> anyhow::Result<ExitCode> {
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

/// The probe flags of a command (none for the commands that have none).
fn probe_args(command: &Command) -> ProbeArgs {
    match command {
        Command::Local(args) => args.probes.clone(),
        Command::Load { probes, .. } => probes.clone(),
        _ => ProbeArgs::default(),
    }
}

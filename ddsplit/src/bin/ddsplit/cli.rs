//! The command line: every subcommand and its flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ddsplit::admin;
use ddsplit::codec::CodecParams;
use ddsplit::id::RecordId;
use ddsplit::limits::{CONNECTIONS_MAX_DEFAULT, DATA_FRAGMENTS_DEFAULT, PARITY_FRAGMENTS_DEFAULT};
use ddsplit::load::LoadConfig;
use ddsplit::local::LOCAL_NODES_DEFAULT;
use ddsplit::probes::ProbeArgs;
use ddsplit::query::DistriQuery;
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
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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
pub struct GatewayAddr {
    /// Gateway address.
    #[arg(long, env = "DDSPLIT_GATEWAY", default_value = "127.0.0.1:7400")]
    pub gateway: SocketAddr,
}

#[derive(Args, Debug)]
pub struct SplitArgs {
    /// Data fragments per record.
    #[arg(long, default_value_t = DATA_FRAGMENTS_DEFAULT)]
    pub k: u8,
    /// Parity fragments per record: this many nodes of a record may be lost.
    #[arg(long, default_value_t = PARITY_FRAGMENTS_DEFAULT)]
    pub m: u8,
    /// Fragment writes acknowledged before a put is (k+1 ..= k+m; default k+1: puts go on
    /// with up to m-1 of a record's nodes down; k+m waits for every fragment).
    #[arg(long)]
    pub write_quorum: Option<usize>,
}

impl SplitArgs {
    pub fn params(&self) -> anyhow::Result<CodecParams> {
        Ok(CodecParams::new(self.k, self.m)?)
    }
}

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// Admin HTTP endpoint (/metrics, /debug/tasks, /healthz); port 0 picks a free one.
    #[arg(long, default_value = admin::ADMIN_DEFAULT)]
    pub admin: SocketAddr,
    /// Allow the admin endpoint on a non-loopback address.
    #[arg(long)]
    pub admin_allow_remote: bool,
    /// No admin endpoint.
    #[arg(long, conflicts_with = "admin")]
    pub no_admin: bool,
    /// No CPU or heap profiles on the admin endpoint (/debug/pprof/*); metrics and tasks stay.
    #[arg(long)]
    pub no_profiling: bool,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7500")]
    pub listen: SocketAddr,
    /// Directory of the node's fragment log (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// When the log is fsync'd.
    #[arg(long, value_enum, default_value_t = FsyncPolicy::Always)]
    pub fsync: FsyncPolicy,
    /// Connections held at once; more are refused.
    #[arg(long, default_value_t = CONNECTIONS_MAX_DEFAULT)]
    pub max_connections: usize,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Args, Debug)]
pub struct GatewayArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
    /// Fragment nodes, comma-separated (at least k+m).
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<SocketAddr>,
    #[command(flatten)]
    pub split: SplitArgs,
    /// How long one fragment operation may take before another node is tried.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub fragment_timeout: Duration,
    /// Connections held at once; more are refused.
    #[arg(long, default_value_t = CONNECTIONS_MAX_DEFAULT)]
    pub max_connections: usize,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Args, Debug)]
pub struct LocalArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = LOCAL_NODES_DEFAULT)]
    pub nodes: usize,
    /// Keep the nodes' logs here (node-0, node-1, ...) instead of a temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub split: SplitArgs,
    /// When the nodes fsync their logs.
    #[arg(long, value_enum, default_value_t = FsyncPolicy::Always)]
    pub fsync: FsyncPolicy,
    /// Gateway address (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
    /// Run the load generator for this long (e.g. 20s) with a live summary, then stop.
    #[arg(long, value_parser = parse_duration)]
    pub load: Option<Duration>,
    #[command(flatten)]
    pub workload: LoadConfig,
    /// With --load or --ops: print the result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub probes: ProbeArgs,
}

impl AdminArgs {
    /// The admin endpoint's address, unless `--no-admin`.
    pub fn addr(&self) -> Option<SocketAddr> {
        (!self.no_admin).then_some(self.admin)
    }
}

impl Command {
    /// The probe flags of the command (none for the commands that have none).
    pub fn probe_args(&self) -> ProbeArgs {
        match self {
            Command::Local(args) => args.probes.clone(),
            Command::Load { probes, .. } => probes.clone(),
            _ => ProbeArgs::default(),
        }
    }
}

//! A whole cluster in one process: N nodes and a gateway on loopback, data in a temporary
//! directory (or one given), and one admin endpoint for all of them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::admin::{self, Admin};
use crate::codec::CodecParams;
use crate::gateway::{self, GatewayConfig, RunningGateway};
use crate::metrics::Registry;
use crate::node::{self, NodeConfig, RunningNode};
use crate::server::ServerConfig;
use crate::shutdown::{self, ShutdownTrigger};
use crate::store::log::FsyncPolicy;

/// Default number of nodes of a local cluster: k + m with the default split.
pub const LOCAL_NODES_DEFAULT: usize = 6;

/// How to run a local cluster.
#[derive(Clone, Debug)]
pub struct LocalClusterConfig {
    /// Number of nodes (default [`LOCAL_NODES_DEFAULT`]).
    pub nodes: usize,
    /// Where the nodes keep their logs (`node-0`, `node-1`, ...); a temporary directory,
    /// removed at the end, when `None`.
    pub data_dir: Option<PathBuf>,
    /// How records are split.
    pub params: CodecParams,
    /// Gateway write quorum; `None` for [`gateway::write_quorum_default`] (k + 1).
    pub write_quorum: Option<usize>,
    /// Nodes' fsync policy.
    pub fsync: FsyncPolicy,
    /// Admin endpoint address; `None` for none.
    pub admin: Option<SocketAddr>,
    /// Allow a non-loopback admin address.
    pub admin_allow_remote: bool,
    /// Serve CPU and heap profiles on the admin endpoint (default true).
    pub admin_profiles: bool,
    /// Gateway listen address (port 0 picks a free one).
    pub gateway_listen: SocketAddr,
}

impl Default for LocalClusterConfig {
    fn default() -> LocalClusterConfig {
        LocalClusterConfig {
            nodes: LOCAL_NODES_DEFAULT,
            data_dir: None,
            params: CodecParams::default(),
            write_quorum: None,
            fsync: FsyncPolicy::Always,
            admin: None,
            admin_allow_remote: false,
            admin_profiles: true,
            gateway_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// A running local cluster.
#[derive(Debug)]
pub struct LocalCluster {
    nodes: Vec<RunningNode>,
    gateway: RunningGateway,
    registry: Arc<Registry>,
    admin_addr: Option<SocketAddr>,
    admin_shutdown: ShutdownTrigger,
    data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl LocalCluster {
    /// Starts the nodes, then the gateway over them.
    pub async fn start(config: LocalClusterConfig) -> anyhow::Result<LocalCluster> {
        LocalCluster::start_with(config, Arc::new(Registry::default()), |admin| admin).await
    }

    /// [`LocalCluster::start`] with a given metrics registry, and a hook to add admin routes.
    pub async fn start_with(
        config: LocalClusterConfig,
        registry: Arc<Registry>,
        add_routes: impl FnOnce(Admin) -> Admin,
    ) -> anyhow::Result<LocalCluster> {
        let (temp, data_dir) = match &config.data_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("ddsplit-local-")
                    .tempdir()?;
                let path = temp.path().to_path_buf();
                (Some(temp), path)
            }
        };
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut nodes = Vec::with_capacity(config.nodes);
        for i in 0..config.nodes {
            let node_config = NodeConfig {
                listen: loopback,
                data_dir: data_dir.join(format!("node-{i}")),
                fsync: config.fsync,
                server: ServerConfig::default(),
            };
            nodes.push(node::start(node_config, &registry).await?);
        }
        let mut gateway_config = GatewayConfig::new(
            config.gateway_listen,
            nodes.iter().map(RunningNode::addr).collect(),
        );
        gateway_config.params = config.params;
        gateway_config.write_quorum = config
            .write_quorum
            .unwrap_or(gateway::write_quorum_default(config.params));
        let gateway = gateway::start(gateway_config, &registry).await?;
        let (admin_shutdown, admin_listener) = shutdown::channel();
        let admin_addr = match config.admin {
            Some(addr) => {
                let admin = add_routes(crate::probes::admin(&registry, config.admin_profiles));
                Some(admin::start(addr, config.admin_allow_remote, admin, admin_listener).await?)
            }
            None => None,
        };
        Ok(LocalCluster {
            nodes,
            gateway,
            registry,
            admin_addr,
            admin_shutdown,
            data_dir,
            _temp: temp,
        })
    }

    /// The gateway's address.
    pub fn gateway_addr(&self) -> SocketAddr {
        self.gateway.addr()
    }

    /// The nodes' addresses.
    pub fn node_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(RunningNode::addr).collect()
    }

    /// The admin endpoint's address, if one runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The metrics of every server of the cluster.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Where the nodes' logs are.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Stops the gateway (letting in-flight requests finish), then the nodes.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.admin_shutdown.trigger();
        self.gateway.shutdown().await?;
        for node in self.nodes {
            node.shutdown().await?;
        }
        Ok(())
    }
}

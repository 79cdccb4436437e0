//! The fragment node: a TCP server that stores fragments durably in its [`log::FragmentLog`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use crate::error::DistriErr;
use crate::metrics::{MetricsSource, Registry, Sample, ServiceMetrics};
use crate::op::Role;
use crate::server::{self, Handler, RunningServer, ServerConfig};
// Trait objects (the story build) call trait methods without the import.
#[cfg_attr(feature = "story-async-trait", allow(unused_imports))]
use crate::store::FragmentStore;
use crate::store::log::{FragmentLog, FsyncPolicy};
use crate::store::{LocalStore, NodeStore, node_store};
use crate::wire::{Request, Response};

/// How to run a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the fragment log (created owner-only if missing).
    pub data_dir: PathBuf,
    /// When to fsync (default: before every acknowledgement).
    pub fsync: FsyncPolicy,
    /// Accept loop settings.
    pub server: ServerConfig,
}

/// Answers node requests from a fragment store.
pub struct NodeHandler {
    store: NodeStore,
}

impl std::fmt::Debug for NodeHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandler").finish_non_exhaustive()
    }
}

impl Handler for NodeHandler {
    async fn handle(&self, request: Request) -> Response {
        let result = match request {
            Request::PutFragment(fragment) => {
                self.store.put_fragment(fragment).await.map(Response::Done)
            }
            Request::GetFragment(key) => self.store.get_fragment(key).await.map(Response::Fragment),
            Request::DeleteFragments { id } => {
                self.store.delete_fragments(id).await.map(Response::Done)
            }
            Request::ListFragments { after, limit } => self
                .store
                .list_fragments(after, limit as usize)
                .await
                .map(Response::FragmentKeys),
            Request::NodeStats => self.store.stats().await.map(Response::Stats),
            other => Err(DistriErr::BadRequest(
                format!(
                    "{} is a gateway operation; this is a fragment node",
                    other.op().name()
                )
                .into(),
            )),
        };
        result.unwrap_or_else(|e| {
            if !e.is_not_found() {
                tracing::warn!(error = %e, "node request failed");
            }
            Response::from(&e)
        })
    }
}

/// A running node.
#[derive(Debug)]
pub struct RunningNode {
    server: RunningServer,
    log: FragmentLog,
}

impl RunningNode {
    /// The address the node listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The node's log.
    pub fn log(&self) -> &FragmentLog {
        &self.log
    }

    /// Stops the node after its in-flight requests.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.server.shutdown().await
    }
}

/// Opens the node's log, binds its listener and starts serving; metrics go to `registry`.
pub async fn start(config: NodeConfig, registry: &Registry) -> anyhow::Result<RunningNode> {
    let log = FragmentLog::open(&config.data_dir, config.fsync)
        .with_context(|| format!("opening the fragment log in {}", config.data_dir.display()))?;
    let listener = server::bind(config.listen, &config.server)
        .with_context(|| format!("binding node listener on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let metrics =
        Arc::new(ServiceMetrics::new(Role::Node, addr.to_string()).with_tasks(registry.tasks()));
    registry.add_service(Arc::clone(&metrics));
    registry.add_source(Arc::new(LogGauges {
        log: log.clone(),
        instance: addr.to_string(),
    }));
    let handler = Arc::new(NodeHandler {
        store: node_store(LocalStore::new(log.clone())),
    });
    let server = RunningServer::spawn(listener, handler, metrics, config.server)?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), fsync = ?config.fsync, "node listening");
    Ok(RunningNode { server, log })
}

/// Gauges of a node's log on `/metrics`.
struct LogGauges {
    log: FragmentLog,
    instance: String,
}

impl MetricsSource for LogGauges {
    fn collect(&self, out: &mut Vec<Sample>) {
        let stats = self.log.stats();
        let gauges = [
            (
                "ddsplit_node_fragments",
                "gauge",
                "Fragments stored on the node.",
                stats.fragments,
            ),
            (
                "ddsplit_node_fragment_bytes",
                "gauge",
                "Bytes of the fragments stored on the node.",
                stats.fragment_bytes,
            ),
            (
                "ddsplit_node_log_bytes",
                "gauge",
                "Bytes of the node's log file.",
                stats.log_bytes,
            ),
            (
                "ddsplit_node_log_appends_total",
                "counter",
                "Entries appended to the log.",
                stats.appends_total,
            ),
            (
                "ddsplit_node_log_fsyncs_total",
                "counter",
                "fsyncs of the log (one per group of appends).",
                stats.fsyncs_total,
            ),
        ];
        for (family, kind, help, value) in gauges {
            let labels = format!("instance=\"{}\"", self.instance);
            out.push(Sample {
                family,
                kind,
                help,
                suffix: "",
                labels,
                value: value as f64,
            });
        }
    }
}

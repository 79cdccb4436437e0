//! The gateway: the client-facing server. It splits each record into k + m fragments, writes
//! them concurrently to distinct nodes chosen by [`placement`] (a fragment whose node is down
//! goes to a spare node: [`hints`]), acknowledges after a write quorum, and reads any k
//! fragments back to reassemble a record.

mod hints;
pub mod placement;
pub mod repair;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::bytes_list::BytesList;
use crate::codec::{self, CodecParams, Fragment};
use crate::error::{DistriErr, ErrorCode, SuccessCode};
use crate::id::RecordId;
use crate::limits::{
    FRAGMENT_TIMEOUT, NODES_MAX, QUERY_CONCURRENCY_MAX, QUERY_RESPONSE_BYTES_MAX, SPARE_NODES_MAX,
};
use crate::metrics::{Registry, ServiceMetrics};
use crate::op::Role;
use crate::query::{self, DistriQuery, QueryAnswer, answer_batch};
use crate::server::{self, Handler, RunningServer, ServerConfig};
// Trait objects (the story build) call trait methods without the import.
#[cfg_attr(feature = "story-async-trait", allow(unused_imports))]
use crate::store::FragmentStore;
use crate::store::{RemoteStore, StoreHandle, remote_handle};
use crate::wire::{FragmentKey, Request, Response};
use hints::Spares;
use placement::Placement;

/// Records at most this large are split and reassembled on the runtime's thread; larger ones
/// on the blocking pool, so one big record does not stall every other request of its worker.
const CPU_INLINE_BYTES_MAX: usize = 256 * 1024;

/// How to run a gateway.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The fragment nodes; at least k + m of them.
    pub nodes: Vec<SocketAddr>,
    /// How records are split (default k = 4, m = 2).
    pub params: CodecParams,
    /// Fragment writes acknowledged before a put is acknowledged: k + 1 ..= k + m (default
    /// [`write_quorum_default`], k + 1).
    pub write_quorum: usize,
    /// How long one fragment operation may take before the node counts as failed for it
    /// (default [`FRAGMENT_TIMEOUT`]).
    pub fragment_timeout: Duration,
    /// Accept loop settings.
    pub server: ServerConfig,
}

/// The default write quorum, k + 1: puts go on while up to m - 1 of a record's nodes are down
/// (and past that on spare nodes, when there are any), and an acknowledged record can still
/// lose one more fragment before repair and be read. With k, the very next loss would lose it.
pub fn write_quorum_default(params: CodecParams) -> usize {
    params.k() as usize + 1
}

impl GatewayConfig {
    /// A configuration with the defaults for everything but the addresses.
    pub fn new(listen: SocketAddr, nodes: Vec<SocketAddr>) -> GatewayConfig {
        let params = CodecParams::default();
        GatewayConfig {
            listen,
            nodes,
            params,
            write_quorum: write_quorum_default(params),
            fragment_timeout: FRAGMENT_TIMEOUT,
            server: ServerConfig::default(),
        }
    }

    /// Checks the configuration, saying what is wrong.
    pub fn validate(&self) -> anyhow::Result<()> {
        let (k, total) = (self.params.k() as usize, self.params.total());
        if self.nodes.len() < total {
            bail!(
                "k={} m={} needs at least {total} nodes (one per fragment), {} given",
                self.params.k(),
                self.params.m(),
                self.nodes.len()
            );
        }
        if self.nodes.len() > NODES_MAX {
            bail!("{} nodes given, the limit is {NODES_MAX}", self.nodes.len());
        }
        let mut unique = self.nodes.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != self.nodes.len() {
            bail!("the node list names a node twice; fragments must go to distinct nodes");
        }
        if !(k + 1..=total).contains(&self.write_quorum) {
            bail!(
                "write quorum {} is outside k+1..=k+m ({}..={total})",
                self.write_quorum,
                k + 1
            );
        }
        Ok(())
    }
}

/// The gateway's record operations, usable without the TCP server around them.
pub struct Gateway {
    stores: Vec<StoreHandle>,
    node_addrs: Vec<SocketAddr>,
    placement: Placement,
    params: CodecParams,
    write_quorum: usize,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("nodes", &self.node_addrs)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over the configured nodes (no connection is made until a request needs one).
    pub fn new(config: &GatewayConfig) -> anyhow::Result<Gateway> {
        config.validate()?;
        Ok(Gateway {
            stores: config
                .nodes
                .iter()
                .map(|addr| remote_handle(RemoteStore::new(*addr, config.fragment_timeout)))
                .collect(),
            node_addrs: config.nodes.clone(),
            placement: Placement::new(&config.nodes),
            params: config.params,
            write_quorum: config.write_quorum,
        })
    }

    /// Stores a record: split, write every fragment concurrently (a fragment whose write fails
    /// goes to a spare node), answer after the quorum. Writes past the quorum go on in the
    /// background.
    pub async fn put(&self, data: Bytes) -> Result<RecordId, DistriErr> {
        let id = RecordId::random();
        let params = self.params;
        let fragments =
            off_thread_if_large(data.len(), move || codec::split(id, &data, params)).await??;
        let ranked = self.placement.ranked(id);
        let spares = Spares::new(self.stores_of(self.spares(&ranked)));
        let total = fragments.len();
        let mut writes: FuturesUnordered<_> = fragments
            .into_iter()
            .zip(ranked)
            .map(|(fragment, node)| {
                hints::write_fragment(self.stores[node].clone(), fragment, spares.clone())
            })
            .collect();
        let (mut acked, mut failed) = (0, 0);
        let mut cause = None;
        while let Some(result) = writes.next().await {
            match result {
                Ok(_) => acked += 1,
                Err(e) => {
                    tracing::warn!(%id, error = %e, "fragment write failed");
                    failed += 1;
                    cause = Some(e);
                }
            }
            if acked >= self.write_quorum {
                break;
            }
            if total - failed < self.write_quorum {
                return Err(DistriErr::QuorumNotReached {
                    acked: acked as u8,
                    needed: self.write_quorum as u8,
                    cause: cause.map_or_else(|| "".into(), |e| e.to_string().into()),
                });
            }
        }
        if !writes.is_empty() {
            diag::tasks::spawn_named("gateway.put.tail", async move {
                while let Some(result) = writes.next().await {
                    if let Err(e) = result {
                        tracing::warn!(%id, error = %e, "fragment write past the quorum failed");
                    }
                }
            });
        }
        Ok(id)
    }

    /// Reads a whole record, as its data shards side by side (see [`codec::reassemble_parts`]).
    pub async fn get(&self, id: RecordId) -> Result<BytesList, DistriErr> {
        let fragments = self.read_fragments(id).await?;
        let data_fragments = fragments.iter().filter(|f| f.header().index < f.header().k);
        if data_fragments.count() == fragments.len() {
            // Nothing to decode: the shards are moved into the list, no CPU to move off-thread.
            return Ok(codec::reassemble_parts(fragments)?);
        }
        let len = fragments[0].header().record_len as usize;
        Ok(off_thread_if_large(len, move || codec::reassemble_parts(fragments)).await??)
    }

    /// Answers a batch of queries, in order; each answer is data or an error of its own.
    pub async fn query(&self, queries: Vec<DistriQuery>) -> Vec<QueryAnswer> {
        answer_batch(
            queries,
            QUERY_CONCURRENCY_MAX,
            QUERY_RESPONSE_BYTES_MAX,
            |id, range| async move {
                let record = self.get(id).await.map_err(|e| (e.code(), e.to_string()))?;
                let part =
                    query::select(range, record.len()).map_err(|e| (ErrorCode::BadRequest, e))?;
                Ok(record.slice(part))
            },
        )
        .await
    }

    /// Deletes a record's fragments from every node that may hold one: its k + m ranked nodes
    /// and its spares.
    pub async fn delete(&self, id: RecordId) -> Result<SuccessCode, DistriErr> {
        let ranked = self.placement.ranked(id);
        let holders = self.params.total() + self.spares(&ranked).len();
        let results: Vec<Result<SuccessCode, DistriErr>> = ranked[..holders]
            .iter()
            .map(|&node| self.stores[node].delete_fragments(id))
            .collect::<FuturesUnordered<_>>()
            .collect()
            .await;
        let mut deleted = 0;
        let mut cause = None;
        for result in results {
            match result {
                Ok(SuccessCode::Deleted { fragments }) => deleted += fragments,
                Ok(SuccessCode::Stored) => {}
                Err(e) => cause = Some(e),
            }
        }
        match (deleted, cause) {
            (0, None) => Err(DistriErr::NotFound { id }),
            (0, Some(e)) => Err(e),
            (fragments, _) => Ok(SuccessCode::Deleted { fragments }),
        }
    }

    /// Counters of the gateway and every node, as JSON.
    pub async fn stats(&self) -> String {
        let nodes = self
            .stores
            .iter()
            .zip(&self.node_addrs)
            .map(|(store, addr)| async move {
                match store.stats().await {
                    Ok(json) => serde_json::json!({
                        "addr": addr,
                        "stats": serde_json::from_str::<serde_json::Value>(&json).unwrap_or(serde_json::Value::Null),
                    }),
                    Err(e) => serde_json::json!({ "addr": addr, "error": e.to_string() }),
                }
            });
        let nodes: Vec<serde_json::Value> = futures::future::join_all(nodes).await;
        serde_json::json!({
            "k": self.params.k(),
            "m": self.params.m(),
            "write_quorum": self.write_quorum,
            "nodes": nodes,
        })
        .to_string()
    }

    /// Reads k verified fragments of `id`: the k data fragments first (no decoding needed when
    /// they all arrive); each failure brings in the next parity fragment; when the k + m ranked
    /// nodes cannot give k, the spares give the hinted ones they hold.
    async fn read_fragments(&self, id: RecordId) -> Result<Vec<Fragment>, DistriErr> {
        let ranked = self.placement.ranked(id);
        let (k, total) = (self.params.k() as usize, self.params.total());
        // k reads at once, one per slot: slot i asks for data fragment i, and when a read fails
        // the slot goes on with the next parity fragment nobody has asked for yet. The k slots
        // are one allocation (a stream of reads would be one per read). What they share is
        // touched by one future's polls only, never across an await: an atomic and a lock only
        // because the handler's future is `Send`.
        let next_parity = AtomicUsize::new(k);
        let tally = Mutex::new(ReadTally::default());
        let slot = |first: usize| {
            let (ranked, next_parity, tally) = (&ranked, &next_parity, &tally);
            async move {
                let mut index = first;
                loop {
                    let read = self.read_from(ranked[index], id, index as u8).await;
                    match read.and_then(|f| self.check_split(f)) {
                        Ok(fragment) => return Some(fragment),
                        Err(e) => tally.lock().expect("no code panics holding it").fail(id, e),
                    }
                    index = next_parity.fetch_add(1, Ordering::Relaxed);
                    if index >= total {
                        return None;
                    }
                }
            }
        };
        let read = futures::future::join_all((0..k).map(slot)).await;
        let mut fragments: Vec<Fragment> = read.into_iter().flatten().collect();
        if fragments.len() == k {
            return Ok(fragments);
        }
        let mut tally = tally.into_inner().expect("no code panics holding it");
        let spares = self.spares(&ranked);
        if !spares.is_empty() {
            self.read_hinted(id, spares, &mut fragments, &mut tally)
                .await;
            if fragments.len() == k {
                return Ok(fragments);
            }
        }
        Err(self.unreadable(id, fragments.len(), total + spares.len(), tally))
    }

    /// Adds the hinted fragments of `id` its spares hold to `fragments`, up to k.
    async fn read_hinted(
        &self,
        id: RecordId,
        spares: &[usize],
        fragments: &mut Vec<Fragment>,
        tally: &mut ReadTally,
    ) {
        let (k, total) = (self.params.k() as usize, self.params.total());
        let has =
            |fragments: &[Fragment], index: u8| fragments.iter().any(|f| f.header().index == index);
        let listings =
            futures::future::join_all(spares.iter().map(|&node| async move {
                (node, hints::indices_held(&self.stores[node], id).await)
            }))
            .await;
        let mut reads = FuturesUnordered::new();
        for (node, listing) in listings {
            match listing {
                Ok(indices) if indices.is_empty() => tally.not_found += 1,
                Ok(indices) => reads.extend(
                    indices
                        .into_iter()
                        .filter(|&index| (index as usize) < total && !has(fragments, index))
                        .map(|index| self.read_from(node, id, index)),
                ),
                Err(e) => tally.fail(id, e),
            }
        }
        while let Some(result) = reads.next().await {
            match result.and_then(|f| self.check_split(f)) {
                Ok(fragment) if !has(fragments, fragment.header().index) => {
                    fragments.push(fragment);
                    if fragments.len() == k {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => tally.fail(id, e),
            }
        }
    }

    /// Why `id` could not be read from the `holders` nodes that may hold its fragments.
    fn unreadable(&self, id: RecordId, have: usize, holders: usize, tally: ReadTally) -> DistriErr {
        let k = self.params.k() as usize;
        // Fewer than k of the nodes that may hold a fragment could: the record is not stored.
        if have == 0 && holders.saturating_sub(tally.not_found) < k {
            return DistriErr::NotFound { id };
        }
        let ReadTally {
            not_found,
            failed,
            cause,
        } = tally;
        let cause = match cause {
            Some(e) => format!(
                "{failed} reads failed, {not_found} nodes lack their fragment; last failure: {e}"
            ),
            None => format!("{not_found} nodes lack their fragment"),
        };
        DistriErr::Unavailable {
            id,
            have: have as u8,
            needed: k as u8,
            cause: cause.into(),
        }
    }

    /// Reads fragment `index` of `id` from `node`.
    fn read_from(
        &self,
        node: usize,
        id: RecordId,
        index: u8,
    ) -> impl Future<Output = Result<Fragment, DistriErr>> + use<> {
        let store = self.stores[node].clone();
        async move { store.get_fragment(FragmentKey { id, index }).await }
    }

    /// The spares of a record ranked `ranked`: the nodes just past its k + m.
    fn spares<'r>(&self, ranked: &'r [usize]) -> &'r [usize] {
        let total = self.params.total();
        &ranked[total..ranked.len().min(total + SPARE_NODES_MAX)]
    }

    /// The stores of `nodes`.
    fn stores_of(&self, nodes: &[usize]) -> Vec<StoreHandle> {
        nodes.iter().map(|&n| self.stores[n].clone()).collect()
    }

    /// A fragment of another split than this gateway's is treated as damaged.
    fn check_split(&self, fragment: Fragment) -> Result<Fragment, DistriErr> {
        let h = fragment.header();
        if h.k != self.params.k() || h.m != self.params.m() {
            return Err(DistriErr::corrupt(
                h.record_id,
                h.index,
                format!(
                    "fragment says k={} m={}, this gateway splits k={} m={}",
                    h.k,
                    h.m,
                    self.params.k(),
                    self.params.m()
                ),
                &[],
            ));
        }
        Ok(fragment)
    }
}

/// What the failed fragment reads of one record read were.
#[derive(Default)]
struct ReadTally {
    /// Nodes that answered they do not hold the fragment asked for (or any, for a spare).
    not_found: usize,
    /// Reads that failed otherwise: the node down or slow, the fragment damaged.
    failed: usize,
    /// The last of those failures.
    cause: Option<DistriErr>,
}

impl ReadTally {
    fn fail(&mut self, id: RecordId, error: DistriErr) {
        if error.is_not_found() {
            self.not_found += 1;
        } else {
            tracing::warn!(%id, %error, "fragment read failed; trying another node");
            self.failed += 1;
            self.cause = Some(error);
        }
    }
}

async fn off_thread_if_large<T: Send + 'static>(
    len: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DistriErr> {
    if len <= CPU_INLINE_BYTES_MAX {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DistriErr::io("codec task", std::io::Error::other(e)))
}

/// Answers gateway requests.
#[derive(Debug)]
pub struct GatewayHandler {
    gateway: Arc<Gateway>,
}

impl Handler for GatewayHandler {
    async fn handle(&self, request: Request) -> Response {
        crate::inject::slowdown();
        let g = &self.gateway;
        let result = match request {
            Request::Put { data } => g.put(data).await.map(|id| Response::Stored { id }),
            Request::Get { id } => g.get(id).await.map(|data| Response::Record { data }),
            Request::Query { queries } => Ok(Response::QueryAnswers(g.query(queries).await)),
            Request::Delete { id } => g.delete(id).await.map(Response::Done),
            Request::ClusterStats => Ok(Response::Stats(g.stats().await)),
            Request::Repair { ids } => report_json(&g.repair(&ids).await),
            Request::RepairScan { after } => report_json(&g.repair_scan(after).await),
            other => Err(DistriErr::BadRequest(
                format!(
                    "{} is a fragment node operation; this is the gateway",
                    other.op().name()
                )
                .into(),
            )),
        };
        result.unwrap_or_else(|e| {
            if !e.is_not_found() {
                tracing::warn!(error = %e, "gateway request failed");
            }
            Response::from(&e)
        })
    }
}

fn report_json(report: &repair::RepairReport) -> Result<Response, DistriErr> {
    serde_json::to_string(report)
        .map(Response::Stats)
        .map_err(|e| DistriErr::io("encoding the repair report", std::io::Error::other(e)))
}

/// A running gateway.
#[derive(Debug)]
pub struct RunningGateway {
    server: RunningServer,
    gateway: Arc<Gateway>,
}

impl RunningGateway {
    /// The address the gateway listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The record operations behind the server.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Stops the gateway after its in-flight requests.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.server.shutdown().await
    }
}

/// Binds the gateway's listener and starts serving; metrics go to `registry`.
pub async fn start(config: GatewayConfig, registry: &Registry) -> anyhow::Result<RunningGateway> {
    let gateway = Arc::new(Gateway::new(&config)?);
    let listener = server::bind(config.listen, &config.server)
        .with_context(|| format!("binding gateway listener on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let metrics =
        Arc::new(ServiceMetrics::new(Role::Gateway, addr.to_string()).with_tasks(registry.tasks()));
    registry.add_service(Arc::clone(&metrics));
    let handler = Arc::new(GatewayHandler {
        gateway: Arc::clone(&gateway),
    });
    let server = RunningServer::spawn(listener, handler, metrics, config.server)?;
    tracing::info!(
        %addr,
        nodes = config.nodes.len(),
        k = config.params.k(),
        m = config.params.m(),
        write_quorum = config.write_quorum,
        "gateway listening"
    );
    Ok(RunningGateway { server, gateway })
}

//! The fragment store: the trait every fragment operation goes through, its two
//! implementations (a node's local log, and a remote node over TCP), [`NodeStore`] (how a node
//! holds its own) and [`StoreHandle`] (how a gateway holds a node's).
//!
//! The default build dispatches with the [`Store`] enum: no boxing, no virtual call. The
//! `story-async-trait` feature brings back the story's version: the trait written with
//! `#[async_trait]` (every call boxes its future) and called through `Arc<dyn FragmentStore>`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::codec::Fragment;
use crate::conn::Conn;
use crate::error::{DistriErr, ErrorCode, SuccessCode};
use crate::id::RecordId;
use crate::limits::{FRAGMENT_TIMEOUT, LIST_ENTRIES_MAX, NODE_POOL_IDLE_MAX};
use crate::wire::{FragmentKey, Request, Response};

pub mod log;

use self::log::FragmentLog;

/// Where fragments live. Every fragment operation of a node and of a gateway goes through it.
// In the default build dispatch is static (the `Store` enum), so the futures' `Send`-ness is
// known to callers and the lint about unnameable `Send` bounds does not apply.
#[allow(async_fn_in_trait)]
#[cfg_attr(feature = "story-async-trait", async_trait::async_trait)]
pub trait FragmentStore: Send + Sync {
    /// Stores a fragment durably.
    async fn put_fragment(&self, fragment: Fragment) -> Result<SuccessCode, DistriErr>;
    /// Reads a fragment; a fragment that fails its checksum is an error, never data.
    async fn get_fragment(&self, key: FragmentKey) -> Result<Fragment, DistriErr>;
    /// Deletes every fragment of a record held by this store.
    async fn delete_fragments(&self, id: RecordId) -> Result<SuccessCode, DistriErr>;
    /// Fragment keys after `after`, in order, at most `limit` (at most [`LIST_ENTRIES_MAX`]).
    async fn list_fragments(
        &self,
        after: Option<FragmentKey>,
        limit: usize,
    ) -> Result<Vec<FragmentKey>, DistriErr>;
    /// Counters, as a JSON object.
    async fn stats(&self) -> Result<String, DistriErr>;
}

/// A node's own fragments, in its log.
#[derive(Clone, Debug)]
pub struct LocalStore {
    log: FragmentLog,
}

impl LocalStore {
    /// A store over an open log.
    pub fn new(log: FragmentLog) -> LocalStore {
        LocalStore { log }
    }

    /// The log behind the store.
    pub fn log(&self) -> &FragmentLog {
        &self.log
    }
}

#[cfg_attr(feature = "story-async-trait", async_trait::async_trait)]
impl FragmentStore for LocalStore {
    async fn put_fragment(&self, fragment: Fragment) -> Result<SuccessCode, DistriErr> {
        self.log.put(fragment).await
    }

    async fn get_fragment(&self, key: FragmentKey) -> Result<Fragment, DistriErr> {
        self.log.get(key).await
    }

    async fn delete_fragments(&self, id: RecordId) -> Result<SuccessCode, DistriErr> {
        self.log.delete(id).await
    }

    async fn list_fragments(
        &self,
        after: Option<FragmentKey>,
        limit: usize,
    ) -> Result<Vec<FragmentKey>, DistriErr> {
        Ok(self.log.list(after, limit.min(LIST_ENTRIES_MAX)))
    }

    async fn stats(&self) -> Result<String, DistriErr> {
        serde_json::to_string(&self.log.stats())
            .map_err(|e| DistriErr::io("encoding stats", std::io::Error::other(e)))
    }
}

/// A node reached over TCP, with a pool of idle connections.
#[derive(Clone, Debug)]
pub struct RemoteStore {
    inner: Arc<RemoteInner>,
}

#[derive(Debug)]
struct RemoteInner {
    addr: SocketAddr,
    timeout: Duration,
    idle: Mutex<Vec<Conn>>,
}

impl RemoteStore {
    /// A store for the node at `addr`; each operation gives up after `timeout`
    /// (default [`FRAGMENT_TIMEOUT`]).
    pub fn new(addr: SocketAddr, timeout: Duration) -> RemoteStore {
        RemoteStore {
            inner: Arc::new(RemoteInner {
                addr,
                timeout,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A store for `addr` with the default timeout.
    pub fn with_default_timeout(addr: SocketAddr) -> RemoteStore {
        RemoteStore::new(addr, FRAGMENT_TIMEOUT)
    }

    /// The node's address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Sends one request, on an idle connection if there is one. A pooled connection may have
    /// been closed by a node restart since it was last used: an I/O failure on one is retried
    /// once on a fresh connection (every node operation is idempotent).
    ///
    /// The whole operation (connecting, the retry, the exchange) is bounded by the store's
    /// timeout, so a node that accepts connections but never answers costs a caller at most that
    /// long, however the time is spent.
    async fn call(&self, request: Request, what: &'static str) -> Result<Response, DistriErr> {
        tokio::time::timeout(self.inner.timeout, self.call_unbounded(request, what))
            .await
            .map_err(|_| DistriErr::Timeout {
                what,
                after_ms: self.inner.timeout.as_millis() as u64,
            })?
    }

    /// One call, retried once on a fresh connection when a pooled one turns out dead. The
    /// caller's timeout bounds both attempts.
    async fn call_unbounded(
        &self,
        request: Request,
        what: &'static str,
    ) -> Result<Response, DistriErr> {
        let (mut conn, fresh_retry) = match self.pooled() {
            Some(conn) => (conn, true),
            None => (Conn::connect(self.inner.addr).await?, false),
        };
        let result = match conn.call(&request).await {
            Err(DistriErr::Io { .. } | DistriErr::Wire(_)) if fresh_retry => {
                tracing::debug!(what, "pooled connection failed; retrying on a new one");
                conn = Conn::connect(self.inner.addr).await?;
                conn.call(&request).await
            }
            other => other,
        };
        // A connection is reused only after a complete exchange (a response or an error frame).
        if matches!(result, Ok(_) | Err(DistriErr::Remote { .. })) {
            let mut idle = self.inner.idle.lock().expect("pool lock is never poisoned");
            if idle.len() < NODE_POOL_IDLE_MAX {
                idle.push(conn);
            }
        }
        result
    }

    /// An idle connection of the pool, if there is one.
    fn pooled(&self) -> Option<Conn> {
        self.inner
            .idle
            .lock()
            .expect("pool lock is never poisoned")
            .pop()
    }
}

fn unexpected(response: Response) -> DistriErr {
    DistriErr::BadRequest(format!("unexpected response from node: {response:?}").into())
}

#[cfg_attr(feature = "story-async-trait", async_trait::async_trait)]
impl FragmentStore for RemoteStore {
    async fn put_fragment(&self, fragment: Fragment) -> Result<SuccessCode, DistriErr> {
        match self
            .call(Request::PutFragment(fragment), "fragment write")
            .await?
        {
            Response::Done(code) => Ok(code),
            other => Err(unexpected(other)),
        }
    }

    async fn get_fragment(&self, key: FragmentKey) -> Result<Fragment, DistriErr> {
        match self.call(Request::GetFragment(key), "fragment read").await {
            Ok(Response::Fragment(fragment)) => {
                let h = fragment.header();
                if h.record_id != key.id || h.index != key.index {
                    return Err(DistriErr::corrupt(
                        key.id,
                        key.index,
                        "node answered with another fragment".into(),
                        &[],
                    ));
                }
                Ok(fragment)
            }
            Ok(other) => Err(unexpected(other)),
            Err(DistriErr::Remote {
                code: ErrorCode::NotFound,
                ..
            }) => Err(DistriErr::FragmentNotFound {
                id: key.id,
                index: key.index,
            }),
            Err(e) => Err(e),
        }
    }

    async fn delete_fragments(&self, id: RecordId) -> Result<SuccessCode, DistriErr> {
        match self
            .call(Request::DeleteFragments { id }, "fragment delete")
            .await?
        {
            Response::Done(code) => Ok(code),
            other => Err(unexpected(other)),
        }
    }

    async fn list_fragments(
        &self,
        after: Option<FragmentKey>,
        limit: usize,
    ) -> Result<Vec<FragmentKey>, DistriErr> {
        let limit = limit.min(LIST_ENTRIES_MAX) as u32;
        match self
            .call(Request::ListFragments { after, limit }, "fragment list")
            .await?
        {
            Response::FragmentKeys(keys) => Ok(keys),
            other => Err(unexpected(other)),
        }
    }

    async fn stats(&self) -> Result<String, DistriErr> {
        match self.call(Request::NodeStats, "node stats").await? {
            Response::Stats(json) => Ok(json),
            other => Err(unexpected(other)),
        }
    }
}

/// How a gateway holds a node's store.
#[cfg(not(feature = "story-async-trait"))]
pub type StoreHandle = Store;

/// How a gateway holds a node's store: the story's trait object.
#[cfg(feature = "story-async-trait")]
pub type StoreHandle = Arc<dyn FragmentStore>;

/// A local store where a gateway's handle is expected (tests run a gateway over local logs).
pub fn local_handle(store: LocalStore) -> StoreHandle {
    #[cfg(not(feature = "story-async-trait"))]
    return Store::Local(store);
    #[cfg(feature = "story-async-trait")]
    return Arc::new(store);
}

/// How a node holds its own store: the `LocalStore` itself, so a request's future is the size
/// of the local call (through [`Store`] it would be the size of the largest variant's, a remote
/// call's, which a node never makes); the story's trait object in that build.
#[cfg(not(feature = "story-async-trait"))]
pub type NodeStore = LocalStore;

/// How a node holds its own store: the story's trait object.
#[cfg(feature = "story-async-trait")]
pub type NodeStore = Arc<dyn FragmentStore>;

/// A node's handle of its own store.
pub fn node_store(store: LocalStore) -> NodeStore {
    #[cfg(not(feature = "story-async-trait"))]
    return store;
    #[cfg(feature = "story-async-trait")]
    return Arc::new(store);
}

/// The handle of a remote node's store.
pub fn remote_handle(store: RemoteStore) -> StoreHandle {
    #[cfg(not(feature = "story-async-trait"))]
    return Store::Remote(store);
    #[cfg(feature = "story-async-trait")]
    return Arc::new(store);
}

/// A fragment store of either kind, dispatched by `match` (no boxing, no virtual call).
#[cfg(not(feature = "story-async-trait"))]
#[derive(Clone, Debug)]
pub enum Store {
    Local(LocalStore),
    Remote(RemoteStore),
}

#[cfg(not(feature = "story-async-trait"))]
impl FragmentStore for Store {
    async fn put_fragment(&self, fragment: Fragment) -> Result<SuccessCode, DistriErr> {
        match self {
            Store::Local(s) => s.put_fragment(fragment).await,
            Store::Remote(s) => s.put_fragment(fragment).await,
        }
    }

    async fn get_fragment(&self, key: FragmentKey) -> Result<Fragment, DistriErr> {
        match self {
            Store::Local(s) => s.get_fragment(key).await,
            Store::Remote(s) => s.get_fragment(key).await,
        }
    }

    async fn delete_fragments(&self, id: RecordId) -> Result<SuccessCode, DistriErr> {
        match self {
            Store::Local(s) => s.delete_fragments(id).await,
            Store::Remote(s) => s.delete_fragments(id).await,
        }
    }

    async fn list_fragments(
        &self,
        after: Option<FragmentKey>,
        limit: usize,
    ) -> Result<Vec<FragmentKey>, DistriErr> {
        match self {
            Store::Local(s) => s.list_fragments(after, limit).await,
            Store::Remote(s) => s.list_fragments(after, limit).await,
        }
    }

    async fn stats(&self) -> Result<String, DistriErr> {
        match self {
            Store::Local(s) => s.stats().await,
            Store::Remote(s) => s.stats().await,
        }
    }
}

//! The accept loop shared by nodes and gateways: a connection cap, one task per connection,
//! one request at a time per connection, and graceful shutdown that lets in-flight requests
//! finish.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use diag::tasks::{spawn_named, spawn_named_in};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::error::ErrorCode;
use crate::limits::{
    CONN_BUFFER_BYTES, CONNECTIONS_MAX_DEFAULT, FRAME_PAYLOAD_TIMEOUT, LISTEN_BACKLOG_MIN,
    REQUESTS_IN_FLIGHT_MAX, SHUTDOWN_GRACE,
};
use crate::metrics::ServiceMetrics;
use crate::shutdown::Shutdown;
use crate::wire::{Request, Response, WireError, read_frame_head, read_frame_payload};

/// What a server does with each request.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request. Errors are answered with [`Response::Error`].
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send;
}

/// Settings of the accept loop.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Connections held at once; more are refused with an error frame.
    /// Default [`CONNECTIONS_MAX_DEFAULT`].
    pub connections_max: usize,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            connections_max: CONNECTIONS_MAX_DEFAULT,
        }
    }
}

/// Binds a server's listener with an accept queue as long as `config`'s connection limit (at
/// least [`LISTEN_BACKLOG_MIN`]), so that a burst of that many connects waits to be accepted
/// instead of having SYNs dropped.
pub fn bind(addr: SocketAddr, config: &ServerConfig) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server binds its port again at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let backlog = config
        .connections_max
        .clamp(LISTEN_BACKLOG_MIN, i32::MAX as usize);
    socket.listen(backlog as u32)
}

/// Serves `handler` on `listener` until `shutdown`, then waits up to [`SHUTDOWN_GRACE`] for
/// in-flight requests to be answered.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    metrics: Arc<ServiceMetrics>,
    config: ServerConfig,
    mut shutdown: Shutdown,
) -> io::Result<()> {
    let limit = Arc::new(Semaphore::new(config.connections_max));
    let in_flight = Arc::new(Semaphore::new(REQUESTS_IN_FLIGHT_MAX));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, most likely: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                match Arc::clone(&limit).try_acquire_owned() {
                    Ok(permit) => {
                        metrics.connections_total.fetch_add(1, Ordering::Relaxed);
                        let slot = ConnectionSlot::new(permit, Arc::clone(&metrics));
                        let conn = Connection {
                            handler: Arc::clone(&handler),
                            metrics: Arc::clone(&metrics),
                            in_flight: Arc::clone(&in_flight),
                            peer,
                        };
                        let kind = metrics.tasks().conn();
                        spawn_named_in(
                            &mut connections,
                            kind.name(),
                            kind.instrument(conn.run(stream, shutdown.clone(), slot)),
                        );
                    }
                    Err(_) => {
                        metrics.connections_refused_total.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%peer, limit = config.connections_max, "connection refused: at the connection limit");
                        spawn_named(&format!("{}.refuse", metrics.role().name()), refuse(stream, config.connections_max));
                    }
                }
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "shutdown grace period over; dropping connections"
        );
    }
    Ok(())
}

async fn refuse(mut stream: TcpStream, limit: usize) {
    let frame = Response::Error {
        code: ErrorCode::Busy,
        message: format!("server is at its limit of {limit} connections; try again later"),
    }
    .encode();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        frame.write_to(&mut stream).await?;
        stream.shutdown().await
    })
    .await;
}

/// A connection's place under the connection limit, counted in
/// [`ServiceMetrics::connections_open`] for as long as it is held.
struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<ServiceMetrics>,
}

impl ConnectionSlot {
    fn new(permit: OwnedSemaphorePermit, metrics: Arc<ServiceMetrics>) -> ConnectionSlot {
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        ConnectionSlot {
            _permit: permit,
            metrics,
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

struct Connection<H> {
    handler: Arc<H>,
    metrics: Arc<ServiceMetrics>,
    /// Requests being handled by the whole server (see [`REQUESTS_IN_FLIGHT_MAX`]).
    in_flight: Arc<Semaphore>,
    peer: SocketAddr,
}

impl<H: Handler> Connection<H> {
    async fn run(self, stream: TcpStream, mut shutdown: Shutdown, _slot: ConnectionSlot) {
        let (read, write) = stream.into_split();
        let mut reader = BufReader::with_capacity(CONN_BUFFER_BYTES, read);
        let mut writer = BufWriter::with_capacity(CONN_BUFFER_BYTES, write);
        loop {
            // Shutdown is only looked at between requests: one whose head has arrived is
            // answered.
            let head = tokio::select! {
                biased;
                _ = shutdown.wait() => break,
                head = read_frame_head(&mut reader) => head,
            };
            // Back-pressure: wait for a slot before the payload is buffered. Until then the
            // payload stays in the socket, and TCP flow control slows the sender down.
            let _slot = match &head {
                Ok(Some(_)) => Some(
                    Arc::clone(&self.in_flight)
                        .acquire_owned()
                        .await
                        .expect("the in-flight semaphore is never closed"),
                ),
                _ => None,
            };
            let frame = match head {
                Ok(None) => Ok(None),
                Err(e) => Err(e),
                Ok(Some(head)) => tokio::time::timeout(
                    FRAME_PAYLOAD_TIMEOUT,
                    read_frame_payload(&mut reader, head),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(WireError::Io(format!(
                        "the frame's payload did not arrive within {} s",
                        FRAME_PAYLOAD_TIMEOUT.as_secs()
                    )))
                })
                .map(Some),
            };
            let started = Instant::now();
            let (op, response, keep_going) = match frame {
                Ok(None) => break,
                Ok(Some((kind, payload))) => match Request::decode(kind, payload) {
                    Ok(request) => {
                        let op = request.op();
                        let span =
                            tracing::debug_span!("request", op = op.name(), peer = %self.peer);
                        // The handler runs inline, inside the monitor of its operation's kind,
                        // and its allocations are counted wherever it is polled.
                        let kind = self.metrics.tasks().op(op);
                        let handled = kind
                            .instrument(self.handler.handle(request))
                            .instrument(span);
                        let (response, alloc) = diag::alloc::measure(handled).await;
                        self.metrics.record_alloc(op, &alloc);
                        (Some(op), response, true)
                    }
                    Err(e) => (None, self.refuse_frame(&e), true),
                },
                Err(e) => (None, self.refuse_frame(&e), e.is_recoverable()),
            };
            let is_error = matches!(response, Response::Error { .. });
            let written = async {
                response.into_frame().write_to(&mut writer).await?;
                writer.flush().await
            }
            .await;
            if let Some(op) = op {
                self.metrics.record(op, started.elapsed(), is_error);
            }
            if written.is_err() || !keep_going {
                break;
            }
        }
    }

    fn refuse_frame(&self, e: &WireError) -> Response {
        self.metrics
            .bad_frames_total
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(peer = %self.peer, error = %e, "malformed frame refused");
        let code = match e {
            WireError::Limit { .. } | WireError::FrameTooLarge { .. } => ErrorCode::LimitExceeded,
            _ => ErrorCode::BadRequest,
        };
        Response::Error {
            code,
            message: e.to_string(),
        }
    }
}

/// A server running on its own task, with the means to stop it.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    trigger: crate::shutdown::ShutdownTrigger,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl RunningServer {
    /// Spawns [`serve`] for `handler` on `listener`.
    pub fn spawn<H: Handler>(
        listener: TcpListener,
        handler: Arc<H>,
        metrics: Arc<ServiceMetrics>,
        config: ServerConfig,
    ) -> io::Result<RunningServer> {
        let addr = listener.local_addr()?;
        let (trigger, shutdown) = crate::shutdown::channel();
        let name = format!("{}.accept", metrics.role().name());
        let task = spawn_named(&name, serve(listener, handler, metrics, config, shutdown));
        Ok(RunningServer {
            addr,
            trigger,
            task,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server to end.
    pub async fn shutdown(self) -> io::Result<()> {
        self.trigger.trigger();
        self.task.await.map_err(io::Error::other)?
    }
}

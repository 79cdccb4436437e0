//! The accept loop shared by nodes and gateways: a connection cap, one task per connection,
//! one request at a time per connection, and graceful shutdown that lets in-flight requests
//! finish.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::error::ErrorCode;
use crate::limits::{CONNECTIONS_MAX_DEFAULT, SHUTDOWN_GRACE};
use crate::metrics::ServiceMetrics;
use crate::shutdown::Shutdown;
use crate::wire::{Request, Response, WireError, read_frame};

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
                        let conn = Connection { handler: Arc::clone(&handler), metrics: Arc::clone(&metrics), peer };
                        connections.spawn(conn.run(stream, shutdown.clone(), permit));
                    }
                    Err(_) => {
                        metrics.connections_refused_total.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%peer, limit = config.connections_max, "connection refused: at the connection limit");
                        tokio::spawn(refuse(stream, config.connections_max));
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

struct Connection<H> {
    handler: Arc<H>,
    metrics: Arc<ServiceMetrics>,
    peer: SocketAddr,
}

impl<H: Handler> Connection<H> {
    async fn run(self, stream: TcpStream, mut shutdown: Shutdown, _permit: OwnedSemaphorePermit) {
        let (read, write) = stream.into_split();
        let mut reader = BufReader::with_capacity(64 * 1024, read);
        let mut writer = BufWriter::with_capacity(64 * 1024, write);
        loop {
            // Shutdown is only looked at between requests: one that has arrived is answered.
            let frame = tokio::select! {
                biased;
                _ = shutdown.wait() => break,
                frame = read_frame(&mut reader) => frame,
            };
            let started = Instant::now();
            let (op, response, keep_going) = match frame {
                Ok(None) => break,
                Ok(Some((kind, payload))) => match Request::decode(kind, payload) {
                    Ok(request) => {
                        let op = request.op_index();
                        let span = tracing::debug_span!("request", op = request.op_name(), peer = %self.peer);
                        let handled = self.handler.handle(request).instrument(span);
                        let (response, alloc) = diag::alloc::measure(handled).await;
                        self.metrics.record_alloc(op, &alloc);
                        (Some(op), response, true)
                    }
                    Err(e) => (None, self.refuse_frame(&e), true),
                },
                Err(e) => (None, self.refuse_frame(&e), e.is_recoverable()),
            };
            let written = async {
                response.encode().write_to(&mut writer).await?;
                writer.flush().await
            }
            .await;
            if let Some(op) = op {
                let is_error = matches!(response, Response::Error { .. });
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
        let task = tokio::spawn(serve(listener, handler, metrics, config, shutdown));
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

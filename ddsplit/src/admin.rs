//! The admin endpoint of every DDSplit process: a small HTTP/1.1 server (GET only, one request
//! per connection) for `/healthz`, `/metrics` and the routes other parts add. It binds loopback
//! unless the operator names another address.

use std::net::SocketAddr;
use std::sync::Arc;

use diag::tasks::spawn_named;
use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::limits::ADMIN_REQUEST_BYTES_MAX;
use crate::metrics::Registry;
use crate::shutdown::Shutdown;

/// Default admin address of a node or gateway started alone (port 0 picks a free one).
pub const ADMIN_DEFAULT: &str = "127.0.0.1:0";

/// An HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// `200 OK` with a text body.
    pub fn text(content_type: &'static str, body: impl Into<Vec<u8>>) -> HttpResponse {
        HttpResponse {
            status: 200,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// An error status with a plain-text reason.
    pub fn error(status: u16, reason: impl Into<String>) -> HttpResponse {
        let mut body = reason.into().into_bytes();
        body.push(b'\n');
        HttpResponse {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body,
        }
    }
}

/// A route added to the admin endpoint.
pub trait AdminRoute: Send + Sync {
    /// The path served, e.g. `/debug/tasks`.
    fn path(&self) -> &'static str;
    /// One line for the index page.
    fn describe(&self) -> &'static str;
    /// Answers a GET with the query string (without `?`).
    fn get(&self, query: &str) -> BoxFuture<'static, HttpResponse>;
}

/// The routes of one admin endpoint.
#[derive(Clone)]
pub struct Admin {
    registry: Arc<Registry>,
    routes: Vec<Arc<dyn AdminRoute>>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field(
                "routes",
                &self.routes.iter().map(|r| r.path()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Admin {
    /// An endpoint serving `/healthz` and `/metrics` from `registry`; other parts add routes.
    pub fn new(registry: Arc<Registry>) -> Admin {
        Admin {
            registry,
            routes: Vec::new(),
        }
    }

    /// Adds a route.
    pub fn route(mut self, route: Arc<dyn AdminRoute>) -> Admin {
        self.routes.push(route);
        self
    }

    /// Answers one GET.
    pub async fn get(&self, target: &str) -> HttpResponse {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        match path {
            "/healthz" => HttpResponse::text("text/plain; charset=utf-8", "ok\n"),
            "/metrics" => HttpResponse::text(
                "text/plain; version=0.0.4; charset=utf-8",
                self.registry.render(),
            ),
            "/" => {
                let mut index = String::from("/healthz  liveness\n/metrics  Prometheus metrics\n");
                for route in &self.routes {
                    index.push_str(&format!("{}  {}\n", route.path(), route.describe()));
                }
                HttpResponse::text("text/plain; charset=utf-8", index)
            }
            _ => match self.routes.iter().find(|r| r.path() == path) {
                Some(route) => route.get(query).await,
                None => HttpResponse::error(404, format!("no route {path}; GET / lists them")),
            },
        }
    }

    /// Serves on `listener` until `shutdown`.
    pub async fn serve(self, listener: TcpListener, mut shutdown: Shutdown) {
        let admin = Arc::new(self);
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let admin = Arc::clone(&admin);
                    spawn_named("admin.conn", async move { admin.serve_one(stream).await });
                }
            }
        }
    }

    async fn serve_one(&self, mut stream: TcpStream) {
        let response = match read_request_head(&mut stream).await {
            Ok(target) => self.get(&target).await,
            Err(response) => response,
        };
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            response.status,
            reason(response.status),
            response.content_type,
            response.body.len()
        );
        for (name, value) in &response.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&response.body).await;
        let _ = stream.shutdown().await;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Reads a request head (up to [`ADMIN_REQUEST_BYTES_MAX`]) and returns the GET target.
async fn read_request_head(stream: &mut TcpStream) -> Result<String, HttpResponse> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let read = async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            if buf.len() > ADMIN_REQUEST_BYTES_MAX {
                return Err(HttpResponse::error(431, "request head too large"));
            }
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|_| HttpResponse::error(400, "read failed"))?;
            if n == 0 {
                return Err(HttpResponse::error(
                    400,
                    "connection closed before the request head ended",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .map_err(|_| HttpResponse::error(400, "request head took too long"))??;
    let head = String::from_utf8_lossy(&buf);
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) => Ok(target.to_string()),
        (Some(_), Some(_)) => Err(HttpResponse::error(405, "only GET is served")),
        _ => Err(HttpResponse::error(400, "malformed request line")),
    }
}

/// Binds `addr` and serves `admin` on it until `shutdown`; returns the bound address.
/// Binding an address other than loopback must be asked for with `allow_remote`.
pub async fn start(
    addr: SocketAddr,
    allow_remote: bool,
    admin: Admin,
    shutdown: Shutdown,
) -> anyhow::Result<SocketAddr> {
    if !addr.ip().is_loopback() && !allow_remote {
        anyhow::bail!(
            "admin address {addr} is not loopback; metrics and profiles would be reachable from the network. \
             Pass --admin-allow-remote to do that on purpose"
        );
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding admin endpoint on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    spawn_named("admin.accept", admin.serve(listener, shutdown));
    Ok(bound)
}

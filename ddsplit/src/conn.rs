//! The client side of a connection: send a request frame, read the response frame.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::error::DistriErr;
use crate::limits::{CONN_BUFFER_BYTES, CONNECT_TIMEOUT};
use crate::wire::{Request, Response, WireError, read_frame};

/// One open connection to a node or a gateway, used for one request at a time.
#[derive(Debug)]
pub struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: BufWriter<OwnedWriteHalf>,
}

impl Conn {
    /// Connects to `addr` within [`CONNECT_TIMEOUT`].
    pub async fn connect(addr: SocketAddr) -> Result<Conn, DistriErr> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| DistriErr::Timeout {
                what: "connect",
                after_ms: CONNECT_TIMEOUT.as_millis() as u64,
            })?
            .map_err(|e| DistriErr::io("connecting", e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| DistriErr::io("setting TCP_NODELAY", e))?;
        let (read, write) = stream.into_split();
        Ok(Conn {
            reader: BufReader::with_capacity(CONN_BUFFER_BYTES, read),
            writer: BufWriter::with_capacity(CONN_BUFFER_BYTES, write),
        })
    }

    /// Sends `request` and reads its response. An error frame comes back as
    /// [`DistriErr::Remote`]; the connection is still usable after one.
    pub async fn call(&mut self, request: &Request) -> Result<Response, DistriErr> {
        // The frame is dropped once written, so it is not held while the response is awaited.
        request
            .encode()
            .write_to(&mut self.writer)
            .await
            .map_err(|e| DistriErr::io("sending request", e))?;
        self.writer
            .flush()
            .await
            .map_err(|e| DistriErr::io("sending request", e))?;
        let (kind, payload) = read_frame(&mut self.reader)
            .await?
            .ok_or_else(|| WireError::Io("server closed the connection".into()))?;
        match Response::decode(kind, payload)? {
            Response::Error { code, message } => Err(DistriErr::Remote {
                code,
                message: message.into(),
            }),
            response => Ok(response),
        }
    }

    /// [`Conn::call`] bounded by `timeout`.
    pub async fn call_within(
        &mut self,
        request: &Request,
        timeout: Duration,
        what: &'static str,
    ) -> Result<Response, DistriErr> {
        tokio::time::timeout(timeout, self.call(request))
            .await
            .map_err(|_| DistriErr::Timeout {
                what,
                after_ms: timeout.as_millis() as u64,
            })?
    }
}

//! The gateway's read path with the error type as a parameter, for the `moves` bench: the same
//! eight async layers a record read goes through in `ddsplit`, each returning
//! `Result<_, E>` as the service's does, so `ddsplit::error::DistriErr` (the default build: a few
//! words) and [`InlineDistriErr`] (the `story-inline-error` build: the corruption report inline,
//! about 48 KiB) are measured doing the same thing.
//!
//! The layers, outermost first, with the service code each one mirrors:
//!
//! | # | here | in `ddsplit` |
//! | --- | --- | --- |
//! | - | [`handle`] | `GatewayHandler::handle`: turns the `Result` into a response |
//! | 1 | `gateway_get` | `Gateway::get`: `read_fragments(id).await?`, then reassemble |
//! | 2 | `read_fragments` | `Gateway::read_fragments`: k reads in a `FuturesUnordered` |
//! | 3 | `read_one` | its per-fragment `async move` block |
//! | 4 | `store_get_fragment` | `Store::get_fragment` (the enum's `match`) |
//! | 5 | `remote_get_fragment` | `RemoteStore::get_fragment`: matches the response |
//! | 6 | `remote_call` | `RemoteStore::call`: holds the result across the retry |
//! | 7 | `call_within` | `Conn::call_within`: `tokio::time::timeout` around the call |
//! | 8 | `conn_call` | `Conn::call`: the frame arrives after one pending poll, as a socket read |
//!
//! A cargo feature is fixed for a whole build, so the inline error is a copy of `DistriErr`
//! under `story-inline-error`, variant for variant; the fragments, responses and codec are
//! `ddsplit`'s own.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use ddsplit::codec::{self, CodecError, CodecParams, Fragment};
use ddsplit::error::{CORRUPT_EXCERPT_BYTES, CorruptFragment, DistriErr, ErrorCode};
use ddsplit::id::RecordId;
use ddsplit::limits::FRAGMENT_TIMEOUT;
use ddsplit::wire::{FragmentKey, Request, Response, WireError};
use futures::stream::{FuturesUnordered, StreamExt};

/// Number of async layers that return `Result<_, E>` on a gateway read (the table above).
pub const GATEWAY_READ_LAYERS: usize = 8;

/// What the layers need of an error type; both error types answer the same way.
pub trait LayerError: std::fmt::Display + Send + Sync + Sized + 'static {
    /// `Conn::call_within` ran out of time.
    fn timeout(what: &'static str, after_ms: u64) -> Self;
    /// An error frame from the node.
    fn remote(code: ErrorCode, message: String) -> Self;
    /// A response of the wrong kind.
    fn unexpected(response: &Response) -> Self;
    /// The node does not hold the fragment.
    fn fragment_not_found(key: FragmentKey) -> Self;
    /// Fewer than k fragments could be read.
    fn unavailable(id: RecordId, have: u8, needed: u8, cause: String) -> Self;
    /// The gateway's codec failed.
    fn codec(e: CodecError) -> Self;
    /// A failure of the connection itself (retried once on a fresh connection).
    fn is_connection_failure(&self) -> bool;
    /// An error frame saying "not found".
    fn is_remote_not_found(&self) -> bool;
    /// The code of the error frame that carries it.
    fn code(&self) -> ErrorCode;
}

impl LayerError for DistriErr {
    fn timeout(what: &'static str, after_ms: u64) -> Self {
        DistriErr::Timeout { what, after_ms }
    }
    fn remote(code: ErrorCode, message: String) -> Self {
        DistriErr::Remote {
            code,
            message: message.into(),
        }
    }
    fn unexpected(response: &Response) -> Self {
        DistriErr::BadRequest(format!("unexpected response from node: {response:?}").into())
    }
    fn fragment_not_found(key: FragmentKey) -> Self {
        DistriErr::FragmentNotFound {
            id: key.id,
            index: key.index,
        }
    }
    fn unavailable(id: RecordId, have: u8, needed: u8, cause: String) -> Self {
        DistriErr::Unavailable {
            id,
            have,
            needed,
            cause: cause.into(),
        }
    }
    fn codec(e: CodecError) -> Self {
        DistriErr::from(e)
    }
    fn is_connection_failure(&self) -> bool {
        matches!(self, DistriErr::Io { .. } | DistriErr::Wire(_))
    }
    fn is_remote_not_found(&self) -> bool {
        matches!(
            self,
            DistriErr::Remote {
                code: ErrorCode::NotFound,
                ..
            }
        )
    }
    fn code(&self) -> ErrorCode {
        DistriErr::code(self)
    }
}

/// `DistriErr` as the `story-inline-error` build has it: the corruption report inline.
#[allow(
    clippy::large_enum_variant,
    reason = "the large variant is the point: it is what the moves bench measures"
)]
#[derive(Debug, Clone, thiserror::Error)]
pub enum InlineDistriErr {
    #[error("record {id} not found")]
    NotFound { id: RecordId },
    #[error("fragment {index} of record {id} not found")]
    FragmentNotFound { id: RecordId, index: u8 },
    #[error("fragment {} of record {} is corrupt: {}", .0.index, .0.id, .0.detail)]
    Corrupt(CorruptFragment),
    #[error(
        "record {id} is unavailable: {have} of the {needed} fragments needed could be read ({cause})"
    )]
    Unavailable {
        id: RecordId,
        have: u8,
        needed: u8,
        cause: Box<str>,
    },
    #[error("write quorum not reached: {acked} of {needed} fragment writes acknowledged ({cause})")]
    QuorumNotReached {
        acked: u8,
        needed: u8,
        cause: Box<str>,
    },
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: Arc<io::Error>,
    },
    #[error("protocol error: {0}")]
    Wire(Box<WireError>),
    #[error("{code}: {message}")]
    Remote { code: ErrorCode, message: Box<str> },
    #[error("{what} timed out after {after_ms} ms")]
    Timeout { what: &'static str, after_ms: u64 },
    #[error("{what} is {value}, over the limit of {limit}")]
    Limit {
        what: &'static str,
        value: u64,
        limit: u64,
    },
    #[error("{0}")]
    Codec(Box<CodecError>),
    #[error("bad request: {0}")]
    BadRequest(Box<str>),
    #[error("server is shutting down")]
    ShuttingDown,
}

// The point of the copy: it is as large as the story build's error.
const _: () = assert!(size_of::<InlineDistriErr>() > CORRUPT_EXCERPT_BYTES);
const _: () = assert!(size_of::<DistriErr>() <= 48);

impl LayerError for InlineDistriErr {
    fn timeout(what: &'static str, after_ms: u64) -> Self {
        InlineDistriErr::Timeout { what, after_ms }
    }
    fn remote(code: ErrorCode, message: String) -> Self {
        InlineDistriErr::Remote {
            code,
            message: message.into(),
        }
    }
    fn unexpected(response: &Response) -> Self {
        InlineDistriErr::BadRequest(format!("unexpected response from node: {response:?}").into())
    }
    fn fragment_not_found(key: FragmentKey) -> Self {
        InlineDistriErr::FragmentNotFound {
            id: key.id,
            index: key.index,
        }
    }
    fn unavailable(id: RecordId, have: u8, needed: u8, cause: String) -> Self {
        InlineDistriErr::Unavailable {
            id,
            have,
            needed,
            cause: cause.into(),
        }
    }
    fn codec(e: CodecError) -> Self {
        InlineDistriErr::Codec(Box::new(e))
    }
    fn is_connection_failure(&self) -> bool {
        matches!(self, InlineDistriErr::Io { .. } | InlineDistriErr::Wire(_))
    }
    fn is_remote_not_found(&self) -> bool {
        matches!(
            self,
            InlineDistriErr::Remote {
                code: ErrorCode::NotFound,
                ..
            }
        )
    }
    fn code(&self) -> ErrorCode {
        match self {
            InlineDistriErr::NotFound { .. } | InlineDistriErr::FragmentNotFound { .. } => {
                ErrorCode::NotFound
            }
            InlineDistriErr::Corrupt(_) | InlineDistriErr::Codec(_) => ErrorCode::Corrupt,
            InlineDistriErr::Unavailable { .. } => ErrorCode::Unavailable,
            InlineDistriErr::QuorumNotReached { .. } => ErrorCode::QuorumNotReached,
            InlineDistriErr::Io { .. } => ErrorCode::Io,
            InlineDistriErr::Wire(_) | InlineDistriErr::BadRequest(_) => ErrorCode::BadRequest,
            InlineDistriErr::Remote { code, .. } => *code,
            InlineDistriErr::Timeout { .. } => ErrorCode::Timeout,
            InlineDistriErr::Limit { .. } => ErrorCode::LimitExceeded,
            InlineDistriErr::ShuttingDown => ErrorCode::ShuttingDown,
        }
    }
}

/// The cluster the layers read from: one record's fragments, as the nodes would send them.
#[derive(Debug)]
pub struct ReadPath {
    id: RecordId,
    params: CodecParams,
    fragments: Vec<Fragment>,
}

impl ReadPath {
    /// A record of `record` bytes split with the default k and m.
    pub fn new(record: &Bytes) -> ReadPath {
        let id = RecordId(7);
        let params = CodecParams::default();
        let fragments = codec::split(id, record, params).expect("a bench record is valid");
        ReadPath {
            id,
            params,
            fragments,
        }
    }

    /// The record's id.
    pub fn id(&self) -> RecordId {
        self.id
    }
}

/// The gateway's answer to a read of `id`: the record, or the error frame `E` turns into.
pub async fn handle<E: LayerError>(path: &ReadPath, id: RecordId) -> Response {
    match gateway_get::<E>(path, id).await {
        Ok(data) => Response::Record { data: data.into() },
        Err(e) => Response::Error {
            code: e.code(),
            message: e.to_string(),
        },
    }
}

async fn gateway_get<E: LayerError>(path: &ReadPath, id: RecordId) -> Result<Bytes, E> {
    let fragments = read_fragments::<E>(path, id).await?;
    // The service's `off_thread_if_large` runs small records inline: `Ok(work())`.
    let reassembled: Result<Result<Bytes, CodecError>, E> = Ok(codec::reassemble(&fragments));
    reassembled?.map_err(E::codec)
}

async fn read_fragments<E: LayerError>(path: &ReadPath, id: RecordId) -> Result<Vec<Fragment>, E> {
    let (k, total) = (path.params.k() as usize, path.params.total());
    let mut in_flight: FuturesUnordered<_> = (0..k).map(|i| read_one::<E>(path, id, i)).collect();
    let mut next = k;
    let mut fragments = Vec::with_capacity(k);
    let mut failed = 0;
    let mut cause: Option<E> = None;
    while let Some(result) = in_flight.next().await {
        match result {
            Ok(fragment) => {
                fragments.push(fragment);
                if fragments.len() == k {
                    return Ok(fragments);
                }
                continue;
            }
            Err(e) => {
                failed += 1;
                cause = Some(e);
            }
        }
        if next < total {
            in_flight.push(read_one::<E>(path, id, next));
            next += 1;
        }
    }
    Err(E::unavailable(
        id,
        fragments.len() as u8,
        k as u8,
        format!(
            "{failed} reads failed; last failure: {}",
            cause.map_or_else(String::new, |e| e.to_string())
        ),
    ))
}

async fn read_one<E: LayerError>(
    path: &ReadPath,
    id: RecordId,
    index: usize,
) -> Result<Fragment, E> {
    let key = FragmentKey {
        id,
        index: index as u8,
    };
    store_get_fragment::<E>(path, key).await
}

async fn store_get_fragment<E: LayerError>(
    path: &ReadPath,
    key: FragmentKey,
) -> Result<Fragment, E> {
    remote_get_fragment::<E>(path, key).await
}

async fn remote_get_fragment<E: LayerError>(
    path: &ReadPath,
    key: FragmentKey,
) -> Result<Fragment, E> {
    match remote_call::<E>(path, Request::GetFragment(key), "fragment read").await {
        Ok(Response::Fragment(fragment)) => {
            let h = fragment.header();
            if h.record_id != key.id || h.index != key.index {
                return Err(E::unexpected(&Response::Fragment(fragment)));
            }
            Ok(fragment)
        }
        Ok(other) => Err(E::unexpected(&other)),
        Err(e) if e.is_remote_not_found() => Err(E::fragment_not_found(key)),
        Err(e) => Err(e),
    }
}

async fn remote_call<E: LayerError>(
    path: &ReadPath,
    request: Request,
    what: &'static str,
) -> Result<Response, E> {
    // The pool had a connection: a failure of it is retried once on a fresh one.
    let fresh_retry = true;
    let result = call_within::<E>(path, &request, FRAGMENT_TIMEOUT, what).await;
    let result = match result {
        Err(e) if e.is_connection_failure() && fresh_retry => {
            call_within::<E>(path, &request, FRAGMENT_TIMEOUT, what).await
        }
        other => other,
    };
    // The service puts the connection back in its pool here, after a complete exchange.
    std::hint::black_box(result.is_ok());
    result
}

async fn call_within<E: LayerError>(
    path: &ReadPath,
    request: &Request,
    timeout: Duration,
    what: &'static str,
) -> Result<Response, E> {
    tokio::time::timeout(timeout, conn_call::<E>(path, request))
        .await
        .map_err(|_| E::timeout(what, timeout.as_millis() as u64))?
}

async fn conn_call<E: LayerError>(path: &ReadPath, request: &Request) -> Result<Response, E> {
    // The response frame is not there on the first poll, as on a socket.
    PendingOnce(false).await;
    let response = match request {
        Request::GetFragment(key) => match path.fragments.get(key.index as usize) {
            Some(fragment) => Response::Fragment(fragment.clone()),
            None => Response::Error {
                code: ErrorCode::NotFound,
                message: format!("fragment {} not found", key.index),
            },
        },
        _ => Response::Error {
            code: ErrorCode::BadRequest,
            message: "only fragment reads here".into(),
        },
    };
    match response {
        Response::Error { code, message } => Err(E::remote(code, message)),
        response => Ok(response),
    }
}

/// Pending on its first poll (waking its task at once), ready on the second.
struct PendingOnce(bool);

impl Future for PendingOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `work` on a current-thread runtime in a thread with room for the inline error: an
    /// unoptimised build keeps each layer's 48 KiB temporaries in their own stack slots.
    fn on_big_stack<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
        const STACK_BYTES: usize = 8 * 1024 * 1024;
        std::thread::Builder::new()
            .stack_size(STACK_BYTES)
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("runtime")
                    .block_on(work)
            })
            .expect("spawn")
            .join()
            .expect("no panic")
    }

    #[test]
    fn both_errors_read_the_record_back() {
        let record = crate::record(10_000);
        let expected = Response::Record {
            data: record.clone().into(),
        };
        let path = Arc::new(ReadPath::new(&record));
        let (boxed, inline) = on_big_stack(async move {
            (
                handle::<DistriErr>(&path, path.id()).await,
                handle::<InlineDistriErr>(&path, path.id()).await,
            )
        });
        assert_eq!(boxed, expected);
        assert_eq!(inline, expected);
    }

    #[test]
    fn both_errors_report_a_missing_record_alike() {
        let path = Arc::new(ReadPath::new(&crate::record(1000)));
        let (boxed, inline) = on_big_stack(async move {
            (
                handle::<DistriErr>(&path, RecordId(8)).await,
                handle::<InlineDistriErr>(&path, RecordId(8)).await,
            )
        });
        assert!(
            matches!(&boxed, Response::Error { code: ErrorCode::Unavailable, message } if message.contains("0 of the 4")),
            "{boxed:?}"
        );
        assert_eq!(boxed, inline);
    }
}

//! The service's result types: [`SuccessCode`] and [`DistriErr`], returned through every layer
//! from the fragment store to the request handler, and [`ErrorCode`], their form on the wire.
//!
//! The default build boxes the one large payload (a corruption report's excerpt), so a
//! `Result<SuccessCode, DistriErr>` is a few words. The `story-inline-error` feature brings back
//! the story's version: the report inline, and every `Result` of every layer about 48 KiB.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::codec::CodecError;
use crate::id::RecordId;
pub use crate::status::{ErrorCode, SuccessCode};
use crate::wire::{Response, WireError, cut_message};

/// Bytes of a damaged fragment kept in a corruption report, for the operator to look at.
pub const CORRUPT_EXCERPT_BYTES: usize = 48 * 1024;

/// A fragment that failed its checksum, with the first bytes of what was read.
#[derive(Clone)]
pub struct CorruptFragment {
    /// The record the fragment belongs to.
    pub id: RecordId,
    /// The fragment's index.
    pub index: u8,
    /// Why it was judged corrupt.
    pub detail: String,
    /// Valid bytes at the start of `excerpt`.
    pub excerpt_len: usize,
    /// The first bytes of the damaged fragment as read.
    pub excerpt: [u8; CORRUPT_EXCERPT_BYTES],
}

impl CorruptFragment {
    /// A report of `bytes` (cut to [`CORRUPT_EXCERPT_BYTES`]) found corrupt for `detail`.
    pub fn new(id: RecordId, index: u8, detail: String, bytes: &[u8]) -> CorruptFragment {
        let excerpt_len = bytes.len().min(CORRUPT_EXCERPT_BYTES);
        let mut excerpt = [0u8; CORRUPT_EXCERPT_BYTES];
        excerpt[..excerpt_len].copy_from_slice(&bytes[..excerpt_len]);
        CorruptFragment {
            id,
            index,
            detail,
            excerpt_len,
            excerpt,
        }
    }
}

impl fmt::Debug for CorruptFragment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CorruptFragment")
            .field("id", &self.id)
            .field("index", &self.index)
            .field("detail", &self.detail)
            .field("excerpt_len", &self.excerpt_len)
            .finish_non_exhaustive()
    }
}

/// Why a fragment or record operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DistriErr {
    #[error("record {id} not found")]
    NotFound { id: RecordId },
    #[error("fragment {index} of record {id} not found")]
    FragmentNotFound { id: RecordId, index: u8 },
    #[error("fragment {} of record {} is corrupt: {}", .0.index, .0.id, .0.detail)]
    #[cfg(not(feature = "story-inline-error"))]
    Corrupt(Box<CorruptFragment>),
    #[error("fragment {} of record {} is corrupt: {}", .0.index, .0.id, .0.detail)]
    #[cfg(feature = "story-inline-error")]
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

// The error travels through every layer of every request: keep it a few words. Payloads that
// are large (corruption excerpts) are boxed.
#[cfg(not(feature = "story-inline-error"))]
const _: () = assert!(size_of::<DistriErr>() <= 48);

impl DistriErr {
    /// An I/O error with what was being done.
    pub fn io(context: &'static str, source: io::Error) -> DistriErr {
        DistriErr::Io {
            context,
            source: Arc::new(source),
        }
    }

    /// A corruption report.
    pub fn corrupt(id: RecordId, index: u8, detail: String, bytes: &[u8]) -> DistriErr {
        #[cfg(not(feature = "story-inline-error"))]
        return DistriErr::Corrupt(Box::new(CorruptFragment::new(id, index, detail, bytes)));
        #[cfg(feature = "story-inline-error")]
        return DistriErr::Corrupt(CorruptFragment::new(id, index, detail, bytes));
    }

    /// The code this error travels under in an error frame.
    pub fn code(&self) -> ErrorCode {
        match self {
            DistriErr::NotFound { .. } | DistriErr::FragmentNotFound { .. } => ErrorCode::NotFound,
            DistriErr::Corrupt(_) | DistriErr::Codec(_) => ErrorCode::Corrupt,
            DistriErr::Unavailable { .. } => ErrorCode::Unavailable,
            DistriErr::QuorumNotReached { .. } => ErrorCode::QuorumNotReached,
            DistriErr::Io { .. } => ErrorCode::Io,
            DistriErr::Wire(_) | DistriErr::BadRequest(_) => ErrorCode::BadRequest,
            DistriErr::Remote { code, .. } => *code,
            DistriErr::Timeout { .. } => ErrorCode::Timeout,
            DistriErr::Limit { .. } => ErrorCode::LimitExceeded,
            DistriErr::ShuttingDown => ErrorCode::ShuttingDown,
        }
    }

    /// Whether the error says the thing asked for does not exist (as opposed to a failure).
    pub fn is_not_found(&self) -> bool {
        self.code() == ErrorCode::NotFound
    }
}

impl From<WireError> for DistriErr {
    fn from(e: WireError) -> DistriErr {
        DistriErr::Wire(Box::new(e))
    }
}

impl From<CodecError> for DistriErr {
    fn from(e: CodecError) -> DistriErr {
        DistriErr::Codec(Box::new(e))
    }
}

impl From<&DistriErr> for Response {
    /// The error frame for `err`, its message cut to the frame's limit.
    fn from(err: &DistriErr) -> Response {
        Response::Error {
            code: err.code(),
            message: cut_message(err.to_string()),
        }
    }
}

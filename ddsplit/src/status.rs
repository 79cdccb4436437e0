//! The outcome codes a response frame carries: what a write or delete did ([`SuccessCode`]) and
//! the kind of an error ([`ErrorCode`]). A leaf: the wire format, queries and errors all use
//! them.

use std::fmt;

/// What a successful write or delete did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuccessCode {
    /// The fragment or record is durably stored.
    Stored,
    /// This many fragments were deleted.
    Deleted { fragments: u32 },
}

/// The kind of an error, as carried in an error frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    NotFound = 1,
    Corrupt = 2,
    Unavailable = 3,
    BadRequest = 4,
    LimitExceeded = 5,
    Timeout = 6,
    QuorumNotReached = 7,
    Busy = 8,
    ShuttingDown = 9,
    Io = 10,
    Internal = 11,
}

impl ErrorCode {
    /// The code for a wire value; unknown values read as [`ErrorCode::Internal`].
    pub fn from_u16(value: u16) -> ErrorCode {
        use ErrorCode::*;
        [
            NotFound,
            Corrupt,
            Unavailable,
            BadRequest,
            LimitExceeded,
            Timeout,
            QuorumNotReached,
            Busy,
            ShuttingDown,
            Io,
        ]
        .into_iter()
        .find(|c| *c as u16 == value)
        .unwrap_or(Internal)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ErrorCode::NotFound => "not found",
            ErrorCode::Corrupt => "corrupt",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::BadRequest => "bad request",
            ErrorCode::LimitExceeded => "limit exceeded",
            ErrorCode::Timeout => "timeout",
            ErrorCode::QuorumNotReached => "quorum not reached",
            ErrorCode::Busy => "busy",
            ErrorCode::ShuttingDown => "shutting down",
            ErrorCode::Io => "i/o error",
            ErrorCode::Internal => "internal error",
        };
        f.write_str(text)
    }
}

//! The wire protocol: length-prefixed binary frames carrying one request or one response.
//!
//! ```text
//! frame := body_len: u32 (big-endian) | body
//! body  := version: u8 | kind: u8 | payload
//! ```
//!
//! `body_len` is checked against [`FRAME_BODY_MAX`] before a byte of the body is buffered, and
//! every count and length inside a payload against its own limit before anything is allocated
//! for it. A frame whose length prefix is bad ends the connection; any other malformed frame
//! gets an error frame and the connection goes on, since frame boundaries are still known.

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::bytes_list::BytesList;
use crate::codec::{CodecError, Fragment};
use crate::id::RecordId;
use crate::limits::{
    ERROR_MESSAGE_BYTES_MAX, FRAGMENT_HEADER_LEN, FRAGMENT_PAYLOAD_MAX, FRAME_BODY_MAX,
    LIST_ENTRIES_MAX, QUERY_COUNT_MAX, RECORD_SIZE_MAX, REPAIR_IDS_MAX,
};
use crate::op::Op;
use crate::query::{ByteRange, DistriQuery, QueryAnswer};
use crate::status::{ErrorCode, SuccessCode};

mod out_head;

use out_head::OutHead;

/// Version byte of every frame this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;

/// Bytes of the length prefix.
const LEN_PREFIX: usize = 4;
/// Bytes of version and kind.
const BODY_HEAD: usize = 2;

/// A frame that could not be read or understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame body of {len} bytes is over the limit of {FRAME_BODY_MAX}")]
    FrameTooLarge { len: u64 },
    #[error("frame body of {len} bytes is too short for a version and a kind")]
    FrameTooShort { len: u64 },
    #[error("connection closed in the middle of a frame")]
    TruncatedFrame,
    #[error("protocol version {0} is not spoken here (this is version {PROTOCOL_VERSION})")]
    BadVersion(u8),
    #[error("unknown message kind {0:#04x}")]
    UnknownKind(u8),
    #[error("payload ended early while reading {0}")]
    ShortPayload(&'static str),
    #[error("{what} is {value}, over the limit of {limit}")]
    Limit {
        what: &'static str,
        value: u64,
        limit: u64,
    },
    #[error(
        "a message of kind {kind:#04x} carries at most {max} payload bytes, this one has {len}"
    )]
    PayloadTooLong { kind: u8, len: u64, max: u64 },
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    #[error("fragment refused: {0}")]
    BadFragment(CodecError),
    #[error("i/o error: {0}")]
    Io(String),
}

impl WireError {
    /// Whether the connection can go on after this error (the frame's boundaries are known).
    pub fn is_recoverable(&self) -> bool {
        !matches!(
            self,
            WireError::FrameTooLarge { .. }
                | WireError::FrameTooShort { .. }
                | WireError::TruncatedFrame
                | WireError::Io(_)
        )
    }
}

/// A key of a stored fragment: record id and fragment index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FragmentKey {
    pub id: RecordId,
    pub index: u8,
}

/// A request to a node (fragment operations) or a gateway (record operations).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Node: store a fragment durably.
    PutFragment(Fragment),
    /// Node: read one fragment.
    GetFragment(FragmentKey),
    /// Node: delete every fragment of a record held here.
    DeleteFragments { id: RecordId },
    /// Node: list fragment keys after `after` (exclusive), at most `limit`.
    ListFragments {
        after: Option<FragmentKey>,
        limit: u32,
    },
    /// Node: counters as JSON.
    NodeStats,
    /// Gateway: store a record; answered with its new id.
    Put { data: Bytes },
    /// Gateway: read a whole record.
    Get { id: RecordId },
    /// Gateway: answer a batch of queries in one response.
    Query { queries: Vec<DistriQuery> },
    /// Gateway: delete a record from all its nodes.
    Delete { id: RecordId },
    /// Gateway: counters of the gateway and its nodes as JSON.
    ClusterStats,
    /// Gateway: bring these records back to k + m intact fragments; answered with a JSON
    /// report (the gateway's repair report).
    Repair { ids: Vec<RecordId> },
    /// Gateway: repair the next page of records the nodes hold after `after` (a scrub);
    /// answered with a JSON report carrying the cursor of the next page.
    RepairScan { after: Option<RecordId> },
}

/// A response to a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Done(SuccessCode),
    Fragment(Fragment),
    Stored { id: RecordId },
    Record { data: BytesList },
    QueryAnswers(Vec<QueryAnswer>),
    FragmentKeys(Vec<FragmentKey>),
    Stats(String),
    Error { code: ErrorCode, message: String },
}

/// `message` cut to [`ERROR_MESSAGE_BYTES_MAX`] at a character boundary.
pub(crate) fn cut_message(mut message: String) -> String {
    if message.len() > ERROR_MESSAGE_BYTES_MAX {
        let mut end = ERROR_MESSAGE_BYTES_MAX;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

/// Kind bytes of frames: a request's is its operation's ([`Op::request_kind`]), a response's has
/// the high bit set.
mod kind {
    use crate::op::Op;

    pub const PUT_FRAGMENT: u8 = Op::PutFragment.request_kind();
    pub const GET_FRAGMENT: u8 = Op::GetFragment.request_kind();
    pub const DELETE_FRAGMENTS: u8 = Op::DeleteFragments.request_kind();
    pub const LIST_FRAGMENTS: u8 = Op::ListFragments.request_kind();
    pub const NODE_STATS: u8 = Op::NodeStats.request_kind();
    pub const PUT: u8 = Op::Put.request_kind();
    pub const GET: u8 = Op::Get.request_kind();
    pub const QUERY: u8 = Op::Query.request_kind();
    pub const DELETE: u8 = Op::Delete.request_kind();
    pub const CLUSTER_STATS: u8 = Op::ClusterStats.request_kind();
    pub const REPAIR: u8 = Op::Repair.request_kind();
    pub const REPAIR_SCAN: u8 = Op::RepairScan.request_kind();
    pub const DONE: u8 = 0x81;
    pub const FRAGMENT: u8 = 0x82;
    pub const STORED: u8 = 0x83;
    pub const RECORD: u8 = 0x84;
    pub const QUERY_ANSWERS: u8 = 0x85;
    pub const FRAGMENT_KEYS: u8 = 0x86;
    pub const STATS: u8 = 0x87;
    pub const ERROR: u8 = 0xff;
}

/// An encoded frame: a small head, and a large tail (a payload, in one buffer or several)
/// written without copying it.
#[derive(Debug)]
pub struct OutFrame {
    head: OutHead,
    tail: BytesList,
}

impl OutFrame {
    fn new(kind: u8) -> OutFrame {
        let mut head = OutHead::new();
        head.put_u32(0); // length, filled in by `finish`
        head.put_u8(PROTOCOL_VERSION);
        head.put_u8(kind);
        OutFrame {
            head,
            tail: BytesList::default(),
        }
    }

    fn finish(mut self) -> OutFrame {
        let body_len = self.head.len() - LEN_PREFIX + self.tail.len();
        debug_assert!(
            body_len <= FRAME_BODY_MAX,
            "encoding a frame over the limit"
        );
        self.head[..LEN_PREFIX].copy_from_slice(&(body_len as u32).to_be_bytes());
        self
    }

    /// Total bytes on the wire.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// Whether the frame is empty (never: a frame has at least a prefix, version and kind).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the frame to `out` (without flushing), two buffers per vectored write (the head
    /// and the tail's first buffer, then one buffer and the next): a buffered writer passes
    /// writes longer than its buffer straight to the socket, without copying the tail.
    pub async fn write_to<W: AsyncWrite + Unpin>(&self, out: &mut W) -> std::io::Result<()> {
        let mut pieces = std::iter::once(&self.head[..]).chain(self.tail.pieces());
        let (mut current, mut next) = (pieces.next().unwrap_or_default(), pieces.next());
        loop {
            let n = match next {
                Some(after) => {
                    out.write_vectored(&[IoSlice::new(current), IoSlice::new(after)])
                        .await?
                }
                None if current.is_empty() => return Ok(()),
                None => out.write(current).await?,
            };
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            if n < current.len() {
                current = &current[n..];
                continue;
            }
            // Past the current buffer: into the next one, possibly through it.
            let mut into_next = n - current.len();
            current = &[];
            while current.is_empty() {
                let Some(after) = next else { break };
                current = &after[into_next..];
                into_next = 0;
                next = pieces.next();
            }
        }
    }

    /// The frame in one buffer (tests and tools).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = self.head.to_vec();
        for part in self.tail.pieces() {
            out.extend_from_slice(part);
        }
        out
    }
}

fn put_fragment_into(frame: &mut OutFrame, fragment: &Fragment) {
    frame.head.put_slice(&fragment.header().to_bytes());
    frame.tail = BytesList::from(fragment.payload().clone());
}

fn put_key(buf: &mut OutHead, key: FragmentKey) {
    buf.put_slice(&key.id.to_bytes());
    buf.put_u8(key.index);
}

impl Request {
    /// Encodes the request as a frame.
    pub fn encode(&self) -> OutFrame {
        let frame = match self {
            Request::PutFragment(fragment) => {
                let mut f = OutFrame::new(kind::PUT_FRAGMENT);
                put_fragment_into(&mut f, fragment);
                f
            }
            Request::GetFragment(key) => {
                let mut f = OutFrame::new(kind::GET_FRAGMENT);
                put_key(&mut f.head, *key);
                f
            }
            Request::DeleteFragments { id } => {
                let mut f = OutFrame::new(kind::DELETE_FRAGMENTS);
                f.head.put_slice(&id.to_bytes());
                f
            }
            Request::ListFragments { after, limit } => {
                let mut f = OutFrame::new(kind::LIST_FRAGMENTS);
                f.head.put_u32(*limit);
                if let Some(key) = after {
                    put_key(&mut f.head, *key);
                }
                f
            }
            Request::NodeStats => OutFrame::new(kind::NODE_STATS),
            Request::Put { data } => {
                let mut f = OutFrame::new(kind::PUT);
                f.tail = BytesList::from(data.clone());
                f
            }
            Request::Get { id } => {
                let mut f = OutFrame::new(kind::GET);
                f.head.put_slice(&id.to_bytes());
                f
            }
            Request::Query { queries } => {
                let mut f = OutFrame::new(kind::QUERY);
                f.head.put_u32(queries.len() as u32);
                for q in queries {
                    f.head.put_slice(&q.id.to_bytes());
                    match q.range {
                        None => f.head.put_u8(0),
                        Some(ByteRange { start, end }) => {
                            f.head.put_u8(1);
                            f.head.put_u64(start);
                            f.head.put_u64(end);
                        }
                    }
                }
                f
            }
            Request::Delete { id } => {
                let mut f = OutFrame::new(kind::DELETE);
                f.head.put_slice(&id.to_bytes());
                f
            }
            Request::ClusterStats => OutFrame::new(kind::CLUSTER_STATS),
            Request::Repair { ids } => {
                let mut f = OutFrame::new(kind::REPAIR);
                f.head.put_u32(ids.len() as u32);
                for id in ids {
                    f.head.put_slice(&id.to_bytes());
                }
                f
            }
            Request::RepairScan { after } => {
                let mut f = OutFrame::new(kind::REPAIR_SCAN);
                match after {
                    None => f.head.put_u8(0),
                    Some(id) => {
                        f.head.put_u8(1);
                        f.head.put_slice(&id.to_bytes());
                    }
                }
                f
            }
        };
        frame.finish()
    }

    /// Decodes a request from a frame's kind and payload.
    pub fn decode(kind: u8, payload: Bytes) -> Result<Request, WireError> {
        let mut r = Reader { buf: payload };
        let request = match kind {
            kind::PUT_FRAGMENT => {
                let bytes = r.rest();
                Request::PutFragment(Fragment::decode(bytes).map_err(WireError::BadFragment)?)
            }
            kind::GET_FRAGMENT => Request::GetFragment(r.key()?),
            kind::DELETE_FRAGMENTS => Request::DeleteFragments { id: r.id()? },
            kind::LIST_FRAGMENTS => {
                let limit = r.u32("list limit")?;
                let after = if r.is_empty() { None } else { Some(r.key()?) };
                Request::ListFragments { after, limit }
            }
            kind::NODE_STATS => Request::NodeStats,
            kind::PUT => {
                let data = r.rest();
                check_limit("record size", data.len(), RECORD_SIZE_MAX)?;
                if data.is_empty() {
                    return Err(WireError::Malformed("a record must hold at least one byte"));
                }
                Request::Put { data }
            }
            kind::GET => Request::Get { id: r.id()? },
            kind::QUERY => {
                let count = r.u32("query count")? as usize;
                check_limit("query count", count, QUERY_COUNT_MAX)?;
                let mut queries = Vec::with_capacity(count);
                for _ in 0..count {
                    let id = r.id()?;
                    let range = match r.u8("range flag")? {
                        0 => None,
                        1 => Some(ByteRange {
                            start: r.u64("range start")?,
                            end: r.u64("range end")?,
                        }),
                        _ => return Err(WireError::Malformed("range flag is neither 0 nor 1")),
                    };
                    queries.push(DistriQuery::new(id, range));
                }
                Request::Query { queries }
            }
            kind::DELETE => Request::Delete { id: r.id()? },
            kind::CLUSTER_STATS => Request::ClusterStats,
            kind::REPAIR => {
                let count = r.u32("repair id count")? as usize;
                check_limit("repair id count", count, REPAIR_IDS_MAX)?;
                let mut ids = Vec::with_capacity(count);
                for _ in 0..count {
                    ids.push(r.id()?);
                }
                Request::Repair { ids }
            }
            kind::REPAIR_SCAN => Request::RepairScan {
                after: match r.u8("cursor flag")? {
                    0 => None,
                    1 => Some(r.id()?),
                    _ => return Err(WireError::Malformed("cursor flag is neither 0 nor 1")),
                },
            },
            other => return Err(WireError::UnknownKind(other)),
        };
        r.finish()?;
        Ok(request)
    }

    /// The operation the request asks for.
    pub fn op(&self) -> Op {
        match self {
            Request::PutFragment(_) => Op::PutFragment,
            Request::GetFragment(_) => Op::GetFragment,
            Request::DeleteFragments { .. } => Op::DeleteFragments,
            Request::ListFragments { .. } => Op::ListFragments,
            Request::NodeStats => Op::NodeStats,
            Request::Put { .. } => Op::Put,
            Request::Get { .. } => Op::Get,
            Request::Query { .. } => Op::Query,
            Request::Delete { .. } => Op::Delete,
            Request::ClusterStats => Op::ClusterStats,
            Request::Repair { .. } => Op::Repair,
            Request::RepairScan { .. } => Op::RepairScan,
        }
    }
}

impl Response {
    /// Encodes the response as a frame, handing its large payload (a fragment's, a record's)
    /// to the frame: a server sends each response once, and sharing a buffer that came from a
    /// `Vec` would allocate its reference count.
    pub fn into_frame(self) -> OutFrame {
        match self {
            Response::Fragment(fragment) => {
                let mut f = OutFrame::new(kind::FRAGMENT);
                let (header, payload) = fragment.into_parts();
                f.head.put_slice(&header.to_bytes());
                f.tail = BytesList::from(payload);
                f.finish()
            }
            Response::Record { data } => {
                let mut f = OutFrame::new(kind::RECORD);
                f.tail = data;
                f.finish()
            }
            other => other.encode(),
        }
    }

    /// Encodes the response as a frame.
    pub fn encode(&self) -> OutFrame {
        let frame = match self {
            Response::Done(code) => {
                let mut f = OutFrame::new(kind::DONE);
                match code {
                    SuccessCode::Stored => {
                        f.head.put_u8(0);
                        f.head.put_u32(0);
                    }
                    SuccessCode::Deleted { fragments } => {
                        f.head.put_u8(1);
                        f.head.put_u32(*fragments);
                    }
                }
                f
            }
            Response::Fragment(fragment) => {
                let mut f = OutFrame::new(kind::FRAGMENT);
                put_fragment_into(&mut f, fragment);
                f
            }
            Response::Stored { id } => {
                let mut f = OutFrame::new(kind::STORED);
                f.head.put_slice(&id.to_bytes());
                f
            }
            Response::Record { data } => {
                let mut f = OutFrame::new(kind::RECORD);
                f.tail = data.clone();
                f
            }
            Response::QueryAnswers(answers) => {
                let mut f = OutFrame::new(kind::QUERY_ANSWERS);
                let data_len: usize = answers
                    .iter()
                    .map(|a| a.as_ref().map_or(0, Bytes::len))
                    .sum();
                f.head.reserve(data_len + answers.len() * 8);
                f.head.put_u32(answers.len() as u32);
                for answer in answers {
                    match answer {
                        Ok(data) => {
                            f.head.put_u8(0);
                            f.head.put_u32(data.len() as u32);
                            f.head.put_slice(data);
                        }
                        Err((code, message)) => {
                            f.head.put_u8(1);
                            f.head.put_u16(*code as u16);
                            put_string(&mut f.head, message);
                        }
                    }
                }
                f
            }
            Response::FragmentKeys(keys) => {
                let mut f = OutFrame::new(kind::FRAGMENT_KEYS);
                f.head.put_u32(keys.len() as u32);
                for key in keys {
                    put_key(&mut f.head, *key);
                }
                f
            }
            Response::Stats(json) => {
                let mut f = OutFrame::new(kind::STATS);
                put_string(&mut f.head, json);
                f
            }
            Response::Error { code, message } => {
                let mut f = OutFrame::new(kind::ERROR);
                f.head.put_u16(*code as u16);
                // Cut here too, so an error frame never exceeds its kind's payload limit
                // whoever built the message.
                put_string(&mut f.head, &cut_message(message.clone()));
                f
            }
        };
        frame.finish()
    }

    /// Decodes a response from a frame's kind and payload. A fragment that fails its checksum
    /// is an error here: it is never handed on as data.
    pub fn decode(kind: u8, payload: Bytes) -> Result<Response, WireError> {
        let mut r = Reader { buf: payload };
        let response = match kind {
            kind::DONE => {
                let tag = r.u8("success code")?;
                let count = r.u32("deleted count")?;
                match tag {
                    0 => Response::Done(SuccessCode::Stored),
                    1 => Response::Done(SuccessCode::Deleted { fragments: count }),
                    _ => return Err(WireError::Malformed("unknown success code")),
                }
            }
            kind::FRAGMENT => {
                Response::Fragment(Fragment::decode(r.rest()).map_err(WireError::BadFragment)?)
            }
            kind::STORED => Response::Stored { id: r.id()? },
            kind::RECORD => Response::Record {
                data: r.rest().into(),
            },
            kind::QUERY_ANSWERS => {
                let count = r.u32("answer count")? as usize;
                check_limit("answer count", count, QUERY_COUNT_MAX)?;
                let mut answers = Vec::with_capacity(count);
                for _ in 0..count {
                    let answer = match r.u8("answer tag")? {
                        0 => {
                            let len = r.u32("answer length")? as usize;
                            Ok(r.bytes(len, "answer data")?)
                        }
                        1 => {
                            let code = ErrorCode::from_u16(r.u16("error code")?);
                            Err((code, r.string("error message")?))
                        }
                        _ => return Err(WireError::Malformed("answer tag is neither 0 nor 1")),
                    };
                    answers.push(answer);
                }
                Response::QueryAnswers(answers)
            }
            kind::FRAGMENT_KEYS => {
                let count = r.u32("key count")? as usize;
                check_limit("key count", count, LIST_ENTRIES_MAX)?;
                let mut keys = Vec::with_capacity(count);
                for _ in 0..count {
                    keys.push(r.key()?);
                }
                Response::FragmentKeys(keys)
            }
            kind::STATS => Response::Stats(r.string("stats")?),
            kind::ERROR => {
                let code = ErrorCode::from_u16(r.u16("error code")?);
                Response::Error {
                    code,
                    message: r.string("error message")?,
                }
            }
            other => return Err(WireError::UnknownKind(other)),
        };
        r.finish()?;
        Ok(response)
    }
}

fn put_string(buf: &mut OutHead, text: &str) {
    buf.put_u32(text.len() as u32);
    buf.put_slice(text.as_bytes());
}

fn check_limit(what: &'static str, value: usize, limit: usize) -> Result<(), WireError> {
    if value > limit {
        return Err(WireError::Limit {
            what,
            value: value as u64,
            limit: limit as u64,
        });
    }
    Ok(())
}

/// Reads fields from a payload, every read bounds-checked.
struct Reader {
    buf: Bytes,
}

impl Reader {
    fn take(&mut self, n: usize, what: &'static str) -> Result<Bytes, WireError> {
        if self.buf.len() < n {
            return Err(WireError::ShortPayload(what));
        }
        Ok(self.buf.split_to(n))
    }

    /// The next `N` bytes, copied out. Small fields are read this way: splitting them off as
    /// `Bytes` would share the payload's buffer, and the first share of a buffer that came
    /// from a `Vec` allocates its reference count.
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let Some(field) = self.buf.get(..N) else {
            return Err(WireError::ShortPayload(what));
        };
        let field: [u8; N] = field.try_into().expect("N bytes");
        self.buf.advance(N);
        Ok(field)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn id(&mut self) -> Result<RecordId, WireError> {
        Ok(RecordId::from_bytes(self.array("record id")?))
    }

    fn key(&mut self) -> Result<FragmentKey, WireError> {
        Ok(FragmentKey {
            id: self.id()?,
            index: self.u8("fragment index")?,
        })
    }

    fn bytes(&mut self, len: usize, what: &'static str) -> Result<Bytes, WireError> {
        self.take(len, what)
    }

    fn string(&mut self, what: &'static str) -> Result<String, WireError> {
        let len = self.u32(what)? as usize;
        check_limit(what, len, FRAME_BODY_MAX)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| WireError::Malformed("text is not UTF-8"))
    }

    fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn finish(self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes(self.buf.len()))
        }
    }
}

/// The head of a frame (length prefix, version and kind), read and checked before anything is
/// allocated for the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHead {
    /// The version byte as received (checked by [`read_frame_payload`]).
    pub version: u8,
    /// The message kind.
    pub kind: u8,
    /// Bytes of payload after version and kind.
    pub payload_len: usize,
}

/// Most payload bytes a frame of `kind` may carry, or `None` for a kind this build does not
/// know. Each kind's payload has its own limit, so a frame is refused for being too large for
/// *its kind* (a 16 MiB `get`, a record one byte over [`RECORD_SIZE_MAX`]) before a buffer is
/// allocated for it, not only for being over [`FRAME_BODY_MAX`].
pub fn payload_max(kind: u8) -> Option<usize> {
    const ID: usize = 16;
    const KEY: usize = ID + 1;
    const FRAGMENT_MAX: usize = FRAGMENT_HEADER_LEN + FRAGMENT_PAYLOAD_MAX;
    const ANY: usize = FRAME_BODY_MAX - BODY_HEAD;
    Some(match kind {
        kind::PUT_FRAGMENT | kind::FRAGMENT => FRAGMENT_MAX,
        kind::GET_FRAGMENT => KEY,
        kind::DELETE_FRAGMENTS | kind::GET | kind::DELETE | kind::STORED => ID,
        kind::LIST_FRAGMENTS => 4 + KEY,
        kind::NODE_STATS | kind::CLUSTER_STATS => 0,
        kind::PUT | kind::RECORD => RECORD_SIZE_MAX,
        // count, then per query: id, range flag, start, end.
        kind::QUERY => 4 + QUERY_COUNT_MAX * (ID + 1 + 16),
        kind::REPAIR => 4 + REPAIR_IDS_MAX * ID,
        kind::REPAIR_SCAN => 1 + ID,
        kind::DONE => 5,
        kind::FRAGMENT_KEYS => 4 + LIST_ENTRIES_MAX * KEY,
        kind::ERROR => 2 + 4 + ERROR_MESSAGE_BYTES_MAX,
        kind::QUERY_ANSWERS | kind::STATS => ANY,
        _ => return None,
    })
}

/// Reads one frame: `Ok(None)` on a clean end of stream between frames, else the kind and
/// payload. Lengths are checked before the payload is buffered ([`read_frame_head`], then
/// [`read_frame_payload`]).
pub async fn read_frame<R: AsyncRead + Unpin>(
    input: &mut R,
) -> Result<Option<(u8, Bytes)>, WireError> {
    match read_frame_head(input).await? {
        None => Ok(None),
        Some(head) => read_frame_payload(input, head).await.map(Some),
    }
}

/// Reads a frame's length prefix, version and kind: `Ok(None)` on an end of stream (a close or
/// a reset) between frames. A length over [`FRAME_BODY_MAX`] or too short for a version and a kind is
/// an error the connection cannot recover from (the frame's end is not trusted).
pub async fn read_frame_head<R: AsyncRead + Unpin>(
    input: &mut R,
) -> Result<Option<FrameHead>, WireError> {
    let mut prefix = [0u8; LEN_PREFIX];
    let mut filled = 0;
    while filled < LEN_PREFIX {
        let n = match input.read(&mut prefix[filled..]).await {
            Ok(n) => n,
            // A peer that resets the connection between frames has ended it, like a close:
            // nothing malformed was sent.
            Err(e) if filled == 0 && e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(WireError::Io(e.to_string())),
        };
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(WireError::TruncatedFrame)
            };
        }
        filled += n;
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > FRAME_BODY_MAX {
        return Err(WireError::FrameTooLarge { len: len as u64 });
    }
    if len < BODY_HEAD {
        return Err(WireError::FrameTooShort { len: len as u64 });
    }
    let mut head = [0u8; BODY_HEAD];
    input.read_exact(&mut head).await.map_err(read_error)?;
    Ok(Some(FrameHead {
        version: head[0],
        kind: head[1],
        payload_len: len - BODY_HEAD,
    }))
}

/// Reads the payload of the frame whose head is `head`. A frame of another protocol version,
/// of an unknown kind, or longer than its kind's [`payload_max`] is refused *without buffering
/// its payload*: the bytes are read and dropped in small chunks, so the connection stays in
/// step and the error is recoverable.
pub async fn read_frame_payload<R: AsyncRead + Unpin>(
    input: &mut R,
    head: FrameHead,
) -> Result<(u8, Bytes), WireError> {
    let refusal = if head.version != PROTOCOL_VERSION {
        Some(WireError::BadVersion(head.version))
    } else {
        match payload_max(head.kind) {
            None => Some(WireError::UnknownKind(head.kind)),
            // A record over the limit is a limit the client can look up; any other kind
            // longer than its longest form is malformed.
            Some(max) if head.payload_len > max && head.kind == kind::PUT => {
                Some(WireError::Limit {
                    what: "record size",
                    value: head.payload_len as u64,
                    limit: max as u64,
                })
            }
            Some(max) if head.payload_len > max => Some(WireError::PayloadTooLong {
                kind: head.kind,
                len: head.payload_len as u64,
                max: max as u64,
            }),
            Some(_) => None,
        }
    };
    if let Some(refusal) = refusal {
        let skipped = tokio::io::copy(
            &mut (&mut *input).take(head.payload_len as u64),
            &mut tokio::io::sink(),
        )
        .await
        .map_err(read_error)?;
        if skipped < head.payload_len as u64 {
            return Err(WireError::TruncatedFrame);
        }
        return Err(refusal);
    }
    // Read into the buffer's spare capacity: zeroing it first (`read_exact` needs initialized
    // bytes) was a memset as long as every payload. `take` keeps the next frame's bytes out.
    let mut payload = BytesMut::with_capacity(head.payload_len);
    let mut rest = (&mut *input).take(head.payload_len as u64);
    while payload.len() < head.payload_len {
        if rest.read_buf(&mut payload).await.map_err(read_error)? == 0 {
            return Err(WireError::TruncatedFrame);
        }
    }
    Ok((head.kind, payload.freeze()))
}

fn read_error(e: std::io::Error) -> WireError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => WireError::TruncatedFrame,
        _ => WireError::Io(e.to_string()),
    }
}

/// Bytes of a fragment in a `PutFragment` frame beyond its payload, for capacity planning.
pub const FRAGMENT_FRAME_OVERHEAD: usize = LEN_PREFIX + BODY_HEAD + FRAGMENT_HEADER_LEN;

#[cfg(test)]
mod tests;

//! Every size, count, queue and timeout of DDSplit, named in one place with the reason for its number.

use std::time::Duration;

/// Largest record the service stores: 16 MiB keeps a whole record and its fragments in memory
/// per request while 1,000 connections stay within a few GiB at worst.
pub const RECORD_SIZE_MAX: usize = 16 * 1024 * 1024;

/// Largest k + m. Each fragment goes to a distinct node, and clusters of this project are small;
/// 16 keeps the exhaustive codec tests (every subset of k fragments) in seconds.
pub const FRAGMENT_COUNT_MAX: usize = 16;

/// Default number of data fragments (k).
pub const DATA_FRAGMENTS_DEFAULT: u8 = 4;

/// Default number of parity fragments (m): any two nodes of a record may be lost.
pub const PARITY_FRAGMENTS_DEFAULT: u8 = 2;

/// Bytes of a fragment header on the wire and on disk.
pub const FRAGMENT_HEADER_LEN: usize = 40;

/// Largest fragment payload: a record with k = 1 is one fragment the size of the record,
/// rounded up to the codec's even shard size.
pub const FRAGMENT_PAYLOAD_MAX: usize = RECORD_SIZE_MAX + 2;

/// Largest frame body (everything after the length prefix). A put of the largest record plus a
/// generous allowance for headers; a frame announcing more is refused before any allocation.
pub const FRAME_BODY_MAX: usize = RECORD_SIZE_MAX + 64 * 1024;

/// Most queries in one batch request: bounds the work one request can ask for.
pub const QUERY_COUNT_MAX: usize = 1024;

/// Most bytes answered by one batch query; a query whose answer would go past it gets an error
/// entry instead of data, so the response frame stays under [`FRAME_BODY_MAX`].
pub const QUERY_RESPONSE_BYTES_MAX: usize = RECORD_SIZE_MAX;

/// Most record ids in one repair request: like a batch query, it bounds the work of a request.
pub const REPAIR_IDS_MAX: usize = 1024;

/// Fragment keys a repair scan lists from each node per page. Every record found is read whole
/// (all k + m fragments) to check it, so a page is kept small enough to answer well within the
/// client's timeout.
pub const REPAIR_SCAN_KEYS_MAX: usize = 64;

/// Records of one repair request checked and rebuilt at the same time: each holds a whole
/// record and its fragments in memory.
pub const REPAIR_CONCURRENCY_MAX: usize = 4;

/// Requests a server handles at once, over all its connections. A connection whose request
/// would go past it waits *before* the request's payload is buffered, so a flood of requests
/// is held back by TCP flow control instead of growing memory: a server's request memory stays
/// below this many times the largest request's working set. 64 keeps two cores busy with room
/// to spare.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 64;

/// How long a frame's payload may take to arrive once its head has. A request holds one of the
/// [`REQUESTS_IN_FLIGHT_MAX`] slots while its payload arrives, so a sender that stalls must not
/// hold it for long; 30 s moves the largest frame at about 0.5 MiB/s.
pub const FRAME_PAYLOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Queries of one batch reassembled at the same time.
pub const QUERY_CONCURRENCY_MAX: usize = 8;

/// Most entries one list request returns; callers page with a cursor.
pub const LIST_ENTRIES_MAX: usize = 65_536;

/// Most nodes a gateway is configured with.
pub const NODES_MAX: usize = 256;

/// Spare nodes of a record: the nodes ranked just past its k + m, none of which holds one of
/// its fragments. A fragment whose node fails its write during a put goes to the first spare
/// not yet given one (a hinted placement); reads, deletes and repair look at all of them. Four
/// let a put with the default m = 2 place both fragments of two lost nodes while two spares
/// are down as well; each spare costs a degraded read or a delete one request more, and a put
/// whose writes keep failing at most one fragment timeout more.
pub const SPARE_NODES_MAX: usize = 4;

/// Fragment keys asked of a spare when looking for a record's hinted fragments. A put gives
/// each spare at most one fragment of a record; the largest k + m lists every fragment of a
/// record one node could hold, whatever happened.
pub const HINTED_KEYS_MAX: usize = FRAGMENT_COUNT_MAX;

/// Longest error message carried in an error frame; longer ones are cut.
pub const ERROR_MESSAGE_BYTES_MAX: usize = 4096;

/// Connections a server holds at once by default; the next one is refused with an error frame.
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;

/// Smallest accept queue a server asks the kernel for (the usual default). A server asks for
/// its whole connection limit when that is larger: a connect that finds the queue full has its
/// SYN dropped and waits for a retransmission (1 s later, then 3 s after the first), and twice
/// dropped it is past a client's [`CONNECT_TIMEOUT`]. Linux caps the queue at
/// `net.core.somaxconn`.
pub const LISTEN_BACKLOG_MIN: usize = 128;

/// Idle connections a gateway keeps open to each node for reuse.
pub const NODE_POOL_IDLE_MAX: usize = 64;

/// Log appends waiting for the node's log writer; writers wait (back-pressure) beyond it.
pub const LOG_QUEUE_MAX: usize = 1024;

/// Appends the log writer groups under one fsync.
pub const LOG_BATCH_MAX: usize = 256;

/// Bytes of a connection's read buffer and of its write buffer (client and server ends). Small
/// frames are batched through them; a read or write at least this long bypasses them (tokio's
/// `BufReader` and `BufWriter` do), so a fragment's or a record's payload goes between the
/// socket and its own buffer without a copy. With 64 KiB buffers every payload up to 64 KiB was
/// copied through them once on each end.
pub const CONN_BUFFER_BYTES: usize = 8 * 1024;

/// How long a gateway waits for one fragment operation on a node before it tries another node
/// (reads) or counts the write as failed. Long enough for an fsync'd 4 MiB write on a slow disk.
pub const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client waits to connect to a server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest HTTP request head the admin endpoint reads.
pub const ADMIN_REQUEST_BYTES_MAX: usize = 8 * 1024;

/// How long graceful shutdown waits for in-flight requests before it gives up on them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Default length of a CPU profile from `/debug/pprof/profile`: Go's default, so tools that
/// fetch profiles from Go services behave the same here.
pub const PROFILE_SECONDS_DEFAULT: u64 = 30;

/// Longest CPU profile the admin endpoint takes: long enough to catch a periodic stall, short
/// enough that a forgotten request does not hold the process's one sampler for long.
pub const PROFILE_SECONDS_MAX: u64 = 120;

/// Stack of each runtime thread (workers and the blocking pool). Tokio's default is 2 MiB; the
/// `story-inline-error` build keeps a 49 KB `Result` in the frame of every async layer and needs
/// about 1.75 MiB of it, and a CPU profile's signal handler walks the stack on top of that.
/// Stack that is never touched costs address space only.
pub const RUNTIME_THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

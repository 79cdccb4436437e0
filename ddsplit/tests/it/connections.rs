//! Load: 1,000 client connections held at once against a cluster of processes, all served; the
//! next one refused with an error frame; then all 1,000 send large puts at once (overload) while
//! the gateway's peak memory is read from /proc and must stay bounded.
//!
//! Every wait has a limit: the clients report each phase's outcome to the test, which fails at
//! the first error (or when a phase runs out of time) saying how many clients got through.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ddsplit::client::Client;
use ddsplit::error::ErrorCode;
use ddsplit::id::RecordId;
use ddsplit::limits::REQUESTS_IN_FLIGHT_MAX;
use ddsplit::wire::{Response, read_frame};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::support::{Cluster, ClusterOptions, http_get, record, within};

/// Client connections held at once: the gateway's `--max-connections`.
const CONNECTIONS: usize = 1000;
/// Bytes of each record in the overload phase.
const OVERLOAD_RECORD_BYTES: usize = 128 * 1024;
/// Puts each connection sends back to back in the overload phase.
const OVERLOAD_PUTS: usize = 2;
/// File descriptors the test needs: its own end of every connection, plus slack for the
/// harness. The gateway and nodes inherit the raised limit.
const FDS_NEEDED: u64 = CONNECTIONS as u64 + 512;
/// What a held connection may cost the gateway: its two 64 KiB buffers and its task (whose
/// future is large in the story build).
const CONNECTION_BYTES: u64 = 160 * 1024;
/// What the gateway may hold at its peak: every in-flight request's working set (the record,
/// its k + m fragments and the reassembled copy: 4 times the record, rounded up), every held
/// connection, and 192 MiB for the runtime and the allocator's slack. Without back-pressure
/// the overload phase holds every connection's records at once, and goes past it.
const GATEWAY_RSS_MAX: u64 = (REQUESTS_IN_FLIGHT_MAX * 4 * OVERLOAD_RECORD_BYTES) as u64
    + CONNECTIONS as u64 * CONNECTION_BYTES
    + (192 << 20);

/// How long the gateway may take to close the connection the harness made to see it listening.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long all clients may take to connect and have their first put answered: each put is
/// bounded by the client's own timeouts (18 s); a debug story build on two busy cores takes a
/// few seconds for all of them.
const CONNECT_PHASE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connection 1,001 may take to get its error frame and be closed.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one read of the gateway's `/metrics` may take (an HTTP read is bounded by the
/// harness's HTTP timeout, 30 s).
const METRICS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connected client waits for the overload phase to begin: the other clients'
/// connects, the refusal and a metrics read come first.
const GO_TIMEOUT: Duration = CONNECT_PHASE_TIMEOUT
    .saturating_add(REFUSAL_TIMEOUT)
    .saturating_add(METRICS_TIMEOUT);
/// How long the overload phase may take: a get, then the puts and gets of every client, each
/// bounded by the client's own timeouts; seconds in a debug story build.
const OVERLOAD_PHASE_TIMEOUT: Duration = Duration::from_secs(180);

/// What a client reports of one phase: its slowest request, or what went wrong.
type Outcome = Result<Duration, String>;

/// Raises this process's open-file limit to what the test needs (within the hard limit).
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < FDS_NEEDED {
            limit.rlim_cur = FDS_NEEDED.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= FDS_NEEDED,
        "this test needs {FDS_NEEDED} open files; the hard limit is {} (raise `ulimit -Hn`)",
        limit.rlim_max
    );
    limit.rlim_cur
}

/// The gateway asks for an accept queue as long as its connection limit, and the kernel cuts
/// it to `net.core.somaxconn`: shorter, the clients' connects at once overflow it, and those
/// whose SYN is dropped twice time out.
fn check_accept_queue() {
    let path = "/proc/sys/net/core/somaxconn";
    let somaxconn: usize = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .trim()
        .parse()
        .expect("somaxconn is a number");
    assert!(
        somaxconn >= CONNECTIONS,
        "this test connects {CONNECTIONS} clients at once and needs net.core.somaxconn >= \
         {CONNECTIONS}; it is {somaxconn} (raise it with `sysctl -w net.core.somaxconn=4096`)"
    );
}

/// Record `i` of the overload phase: a shared random body with `i` in its first bytes.
fn overload_record(base: &Bytes, i: u64) -> Bytes {
    let mut data = BytesMut::from(&base[..]);
    data[..8].copy_from_slice(&i.to_le_bytes());
    data.freeze()
}

/// The gateway's `ddsplit_connections_open`, from its admin endpoint.
fn open_connections(admin: SocketAddr) -> u64 {
    let (status, body) = http_get(admin, "/metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find(|l| l.starts_with("ddsplit_connections_open{role=\"gateway\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no gateway ddsplit_connections_open in\n{body}"))
}

/// Client `i`: a small put on a connection of its own, reported on `connected`; the connection
/// held until `go`; then the overload phase, whose outcome it returns.
async fn client(
    i: usize,
    gateway: SocketAddr,
    base: Bytes,
    connected: mpsc::UnboundedSender<Outcome>,
    mut go: watch::Receiver<bool>,
) -> Outcome {
    let mut client = Client::new(gateway);
    let small = record(i as u64, 100 + i);
    let started = Instant::now();
    let first = client
        .put(small.clone())
        .await
        .map_err(|e| format!("client {i}: first put: {e}"));
    let _ = connected.send(
        first
            .as_ref()
            .map(|_| started.elapsed())
            .map_err(String::clone),
    );
    let id = first?;

    match tokio::time::timeout(GO_TIMEOUT, go.wait_for(|go| *go)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return Err(format!("client {i}: the test ended before the overload")),
        Err(_) => {
            return Err(format!(
                "client {i}: no overload phase after {GO_TIMEOUT:?}"
            ));
        }
    }
    let mut slowest = Duration::ZERO;
    let mut timed = Instant::now();
    let mut lap = || {
        slowest = slowest.max(timed.elapsed());
        timed = Instant::now();
    };
    read_back(&mut client, i, id, &small).await?;
    lap();
    // Phase 2, overload: every connection puts large records at once.
    let mut stored = Vec::new();
    for n in 0..OVERLOAD_PUTS {
        let data = overload_record(&base, (i * OVERLOAD_PUTS + n) as u64);
        let id = client
            .put(data.clone())
            .await
            .map_err(|e| format!("client {i}: overload put: {e}"))?;
        lap();
        stored.push((id, data));
    }
    for (id, data) in stored {
        read_back(&mut client, i, id, &data).await?;
        lap();
    }
    Ok(slowest)
}

/// Client `i` reads record `id` and checks it is `expected`.
async fn read_back(
    client: &mut Client,
    i: usize,
    id: RecordId,
    expected: &Bytes,
) -> Result<(), String> {
    let back = client
        .get(id)
        .await
        .map_err(|e| format!("client {i}: get {id}: {e}"))?;
    if back != *expected {
        return Err(format!("client {i}: record {id} read back different"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_are_served_the_next_refused_and_memory_stays_bounded() {
    let fd_limit = raise_fd_limit();
    check_accept_queue();
    let max = CONNECTIONS.to_string();
    let mut cluster = Cluster::start_with(ClusterOptions {
        gateway_args: vec!["--max-connections".into(), max],
        fragment_timeout: "10s",
        gateway_admin: true,
        ..ClusterOptions::default()
    });
    let gateway = cluster.gateway;
    let admin = cluster
        .gateway_proc
        .admin
        .expect("the gateway has an admin endpoint");

    // The harness's connection to see the gateway listening holds one of the gateway's places
    // until its task has seen it close: counted, it would turn client 1,000 away.
    let deadline = Instant::now() + IDLE_TIMEOUT;
    tokio::task::block_in_place(|| {
        loop {
            let open = open_connections(admin);
            if open == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway still has {open} connections open {IDLE_TIMEOUT:?} after start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    });

    let (connected_tx, mut connected) = mpsc::unbounded_channel();
    let (go, go_rx) = watch::channel(false);
    let base = record(42, OVERLOAD_RECORD_BYTES);
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for i in 0..CONNECTIONS {
        clients.spawn(client(
            i,
            gateway,
            base.clone(),
            connected_tx.clone(),
            go_rx.clone(),
        ));
    }
    drop(connected_tx);

    // Phase 1: every client connected and served.
    let deadline = tokio::time::Instant::now() + CONNECT_PHASE_TIMEOUT;
    let (mut n, mut slowest_first) = (0, Duration::ZERO);
    while n < CONNECTIONS {
        match tokio::time::timeout_at(deadline, connected.recv()).await {
            Ok(Some(Ok(took))) => {
                n += 1;
                slowest_first = slowest_first.max(took);
            }
            Ok(Some(Err(e))) => {
                panic!("{n} of {CONNECTIONS} clients connected and served; first failure: {e}")
            }
            Ok(None) => panic!(
                "{n} of {CONNECTIONS} clients connected and served; the others ended unreported"
            ),
            Err(_) => panic!(
                "{n} of {CONNECTIONS} clients connected and served after \
                 {CONNECT_PHASE_TIMEOUT:?}"
            ),
        }
    }
    let connected_in = started.elapsed();
    let open = tokio::task::block_in_place(|| open_connections(admin));
    assert_eq!(open, CONNECTIONS as u64, "connections the gateway holds");

    // Connection 1,001: an error frame saying why, then the connection is closed.
    let refused = within(
        REFUSAL_TIMEOUT,
        &format!("connection {}: its error frame and close", CONNECTIONS + 1),
        async {
            let mut stream = tokio::net::TcpStream::connect(gateway).await.unwrap();
            let mut bytes = Vec::new();
            stream.read_to_end(&mut bytes).await.unwrap();
            bytes
        },
    )
    .await;
    let (kind, payload) = read_frame(&mut &refused[..])
        .await
        .unwrap()
        .expect("an error frame");
    match Response::decode(kind, payload).unwrap() {
        Response::Error {
            code: ErrorCode::Busy,
            message,
        } => {
            assert!(
                message.contains(&format!("limit of {CONNECTIONS} connections")),
                "{message}"
            )
        }
        other => panic!("connection {} got {other:?}", CONNECTIONS + 1),
    }
    let rss_held = cluster.gateway_proc.proc.as_ref().unwrap().peak_rss_bytes();

    // Phase 2: the overload, then every record read back.
    go.send(true).unwrap();
    let deadline = tokio::time::Instant::now() + OVERLOAD_PHASE_TIMEOUT;
    let (mut n, mut slowest) = (0, Duration::ZERO);
    loop {
        let joined = tokio::time::timeout_at(deadline, clients.join_next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{n} of {CONNECTIONS} clients through the overload phase after \
                     {OVERLOAD_PHASE_TIMEOUT:?}"
                )
            });
        match joined {
            None => break,
            Some(Ok(Ok(took))) => {
                n += 1;
                slowest = slowest.max(took);
            }
            Some(Ok(Err(e))) => panic!(
                "{n} of {CONNECTIONS} clients through the overload phase; first failure: {e}"
            ),
            Some(Err(e)) => panic!("a client task failed: {e}"),
        }
    }
    assert_eq!(n, CONNECTIONS);
    let total = started.elapsed();
    let gateway_rss = cluster.gateway_proc.proc.as_ref().unwrap().peak_rss_bytes();
    let node_rss = cluster
        .nodes
        .iter()
        .map(|n| n.proc.as_ref().unwrap().peak_rss_bytes())
        .max()
        .unwrap();
    let offered = CONNECTIONS * OVERLOAD_RECORD_BYTES;
    println!(
        "connections: {CONNECTIONS} held at once (fd limit {fd_limit}), all connected and served \
         in {connected_in:?} (slowest first put {slowest_first:?}); connection {} refused with \
         an error frame; overload: {CONNECTIONS} connections x {OVERLOAD_PUTS} puts of {} KiB \
         ({} MiB offered at once) + gets, all served (slowest request {slowest:?}), whole test \
         {total:?}; gateway peak RSS {} MiB with 1,000 idle connections, {} MiB after the \
         overload (bound {} MiB); largest node peak RSS {} MiB",
        CONNECTIONS + 1,
        OVERLOAD_RECORD_BYTES >> 10,
        offered >> 20,
        rss_held >> 20,
        gateway_rss >> 20,
        GATEWAY_RSS_MAX >> 20,
        node_rss >> 20,
    );
    assert!(
        gateway_rss < GATEWAY_RSS_MAX,
        "gateway peak RSS {} MiB over the bound of {} MiB: requests are not held back",
        gateway_rss >> 20,
        GATEWAY_RSS_MAX >> 20
    );
    cluster.gateway_proc.kill9();
}

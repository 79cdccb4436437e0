//! Load: 1,000 client connections held at once against a cluster of processes, all served; the
//! next one refused with an error frame; then all 1,000 send large puts at once (overload) while
//! the gateway's peak memory is read from /proc and must stay bounded.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ddsplit::client::Client;
use ddsplit::error::ErrorCode;
use ddsplit::limits::REQUESTS_IN_FLIGHT_MAX;
use ddsplit::wire::{Response, read_frame};
use tokio::sync::Barrier;

use crate::support::{Cluster, ClusterOptions, record};

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

/// Record `i` of the overload phase: a shared random body with `i` in its first bytes.
fn overload_record(base: &Bytes, i: u64) -> Bytes {
    let mut data = BytesMut::from(&base[..]);
    data[..8].copy_from_slice(&i.to_le_bytes());
    data.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_are_served_the_next_refused_and_memory_stays_bounded() {
    let fd_limit = raise_fd_limit();
    let max = CONNECTIONS.to_string();
    let mut cluster = Cluster::start_with(ClusterOptions {
        gateway_args: vec!["--max-connections".into(), max],
        fragment_timeout: "10s",
        ..ClusterOptions::default()
    });
    let gateway = cluster.gateway;
    let all_connected = Arc::new(Barrier::new(CONNECTIONS + 1));
    let refusal_checked = Arc::new(Barrier::new(CONNECTIONS + 1));
    let base = record(42, OVERLOAD_RECORD_BYTES);
    let started = Instant::now();
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let (all_connected, refusal_checked, base) = (
                Arc::clone(&all_connected),
                Arc::clone(&refusal_checked),
                base.clone(),
            );
            tokio::spawn(async move {
                // Phase 1: a small put on a connection of its own, held open until all have.
                let mut client = Client::new(gateway);
                let small = record(i as u64, 100 + i);
                let id = client
                    .put(small.clone())
                    .await
                    .unwrap_or_else(|e| panic!("client {i}: {e}"));
                all_connected.wait().await;
                refusal_checked.wait().await;
                assert_eq!(client.get(id).await.unwrap(), small);
                // Phase 2, overload: every connection puts large records at once.
                let mut stored = Vec::new();
                for n in 0..OVERLOAD_PUTS {
                    let data = overload_record(&base, (i * OVERLOAD_PUTS + n) as u64);
                    let id = client
                        .put(data.clone())
                        .await
                        .unwrap_or_else(|e| panic!("client {i} overload put: {e}"));
                    stored.push((id, data));
                }
                for (id, data) in stored {
                    assert!(
                        client.get(id).await.unwrap() == data,
                        "client {i}: record {id}"
                    );
                }
            })
        })
        .collect();
    all_connected.wait().await;
    let connected_in = started.elapsed();

    // Connection 1,001: an error frame saying why, then the connection is closed.
    let refused = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(gateway).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).unwrap();
        bytes
    })
    .await
    .unwrap();
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
    refusal_checked.wait().await;
    for client in clients {
        client.await.unwrap();
    }
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
         in {connected_in:?}; connection {} refused with an error frame; overload: {CONNECTIONS} \
         connections x {OVERLOAD_PUTS} puts of {} KiB ({} MiB offered at once) + gets, all \
         served, whole test {total:?}; gateway peak RSS {} MiB with 1,000 idle connections, {} \
         MiB after the overload (bound {} MiB); largest node peak RSS {} MiB",
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

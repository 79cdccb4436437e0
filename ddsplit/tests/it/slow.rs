//! A slow node, a black hole and an unreachable node, made by proxies between the gateway and
//! real node processes: every request finishes within the gateway's fragment timeout (plus the
//! reads that replace the lost ones), using the other nodes; none waits for the slow node.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ddsplit::error::{DistriErr, ErrorCode};
use ddsplit::id::RecordId;

use crate::support::proxy::Mode;
use crate::support::{Cluster, ClusterOptions, record};

/// The gateway's `--fragment-timeout` here.
const FRAGMENT_TIMEOUT_TEST: &str = "500ms";
/// How long the slow node holds back each answer: far past the fragment timeout.
const SLOW_NODE_DELAY: Duration = Duration::from_secs(20);
/// A request that took this long waited for the slow node (or hung) instead of giving up on it
/// after the fragment timeout. Not a performance bound: the gap to the timeout is wide.
const WAITED_FOR_SLOW_NODE: Duration = Duration::from_secs(8);

/// Runs `op`, returning its result and how long it took, and checks it did not wait.
async fn bounded<T>(what: &str, op: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = op.await;
    let took = started.elapsed();
    assert!(
        took < WAITED_FOR_SLOW_NODE,
        "{what} took {took:?}: it waited for a slow or unreachable node"
    );
    (out, took)
}

async fn read_all(cluster: &Cluster, stored: &[(RecordId, Bytes)], what: &str) -> Duration {
    let mut client = cluster.client();
    let mut slowest = Duration::ZERO;
    for (id, data) in stored {
        let (back, took) = bounded(what, client.get(*id)).await;
        let back = back.unwrap_or_else(|e| panic!("{what}: get {id}: {e}"));
        assert!(back == *data, "{what}: record {id} read back different");
        slowest = slowest.max(took);
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_unreachable_nodes_cost_at_most_the_fragment_timeout() {
    let cluster = Cluster::start_with(ClusterOptions {
        fragment_timeout: FRAGMENT_TIMEOUT_TEST,
        gateway_args: vec!["--write-quorum".into(), "5".into()],
        proxies: true,
        ..ClusterOptions::default()
    });
    let mut client = cluster.client();
    let mut stored = Vec::new();
    for i in 0..8u64 {
        let data = record(500 + i, 10_000 + i as usize * 20_000);
        stored.push((client.put(data.clone()).await.unwrap(), data));
    }

    // With a write quorum of 5 the sixth fragment write of a put may still be under way when
    // it is acknowledged: settle them (repair writes any that lost the race) so every record
    // starts at k + m.
    let ids: Vec<RecordId> = stored.iter().map(|(id, _)| *id).collect();
    assert!(client.repair(&ids).await.unwrap().is_clean());

    // Node 0 answers 20 s late, node 1 refuses connections: reads go to the other nodes.
    cluster.proxies[0].set_delay(SLOW_NODE_DELAY);
    cluster.proxies[1].set_mode(Mode::Refuse);
    let slow_and_refused = read_all(&cluster, &stored, "slow + refused").await;

    // Node 0 a black hole (accepts, never answers) instead.
    cluster.proxies[0].set_delay(Duration::ZERO);
    cluster.proxies[0].set_mode(Mode::BlackHole);
    let black_hole = read_all(&cluster, &stored, "black hole + refused").await;

    // Writes need 5 of 6 acknowledgements: with two nodes gone, a put fails, clearly and in
    // bounded time; with one gone, it succeeds.
    let (put, put_failed_in) = bounded("put, 2 nodes gone", client.put(record(1, 5000))).await;
    match put {
        Err(DistriErr::Remote {
            code: ErrorCode::QuorumNotReached,
            message,
        }) => assert!(message.contains("4 of 5"), "{message}"),
        other => panic!("put with two nodes gone: {other:?}"),
    }
    cluster.proxies[1].set_mode(Mode::Forward);
    let data = record(2, 70_000);
    let (put, put_ok_in) = bounded("put, black hole", client.put(data.clone())).await;
    stored.push((put.expect("put with one node gone"), data));
    let one_gone = read_all(&cluster, &stored, "black hole").await;

    // All back: repair rewrites the fragment the last put could not place, and everything is
    // at k + m again.
    cluster.proxies[0].set_mode(Mode::Forward);
    let ids: Vec<RecordId> = stored.iter().map(|(id, _)| *id).collect();
    let report = client.repair(&ids).await.unwrap();
    assert_eq!(report.fragments_rewritten, 1, "{report:?}");
    assert!(report.is_clean(), "{report:?}");
    println!(
        "slow nodes: slowest get {slow_and_refused:?} (slow + refused), {black_hole:?} (black hole \
         + refused), {one_gone:?} (black hole); put refused in {put_failed_in:?}, stored in \
         {put_ok_in:?}; fragment timeout {FRAGMENT_TIMEOUT_TEST}"
    );
}

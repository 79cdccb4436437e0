//! Graceful shutdown under load: SIGTERM and SIGINT to the gateway and to nodes while requests
//! are in flight. Requests already received are answered, the process exits 0, and nothing
//! acknowledged is lost.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ddsplit::client::Client;
use ddsplit::id::RecordId;
use ddsplit::limits::SHUTDOWN_GRACE;

use crate::support::{
    Cluster, ClusterOptions, EVERY_FRAGMENT, Proc, ddsplit_bin, free_addr, record, wait_listening,
    within,
};

/// Puts in flight when the signal arrives.
const IN_FLIGHT_PUTS: usize = 16;
/// How long each node's answers are held back, so puts are still in flight at the signal.
const NODE_ANSWER_DELAY: Duration = Duration::from_millis(1500);
/// Writers putting back to back while a node is signalled.
const WRITERS: usize = 4;
/// How long a put may take to be answered, or a writer to stop once told: one request,
/// bounded by the client's timeouts (18 s).
const PUT_TIMEOUT: Duration = Duration::from_secs(60);

fn spawn_puts(
    gateway: std::net::SocketAddr,
    n: usize,
    len: usize,
) -> Vec<tokio::task::JoinHandle<(Bytes, Result<RecordId, ddsplit::error::DistriErr>)>> {
    (0..n)
        .map(|i| {
            tokio::spawn(async move {
                let data = record(7000 + i as u64, len);
                let result = Client::new(gateway).put(data.clone()).await;
                (data, result)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_gateway_lets_in_flight_puts_finish() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        fragment_timeout: "5s",
        proxies: true,
        ..ClusterOptions::default()
    });
    for proxy in &cluster.proxies {
        proxy.set_delay(NODE_ANSWER_DELAY);
    }
    let puts = spawn_puts(cluster.gateway, IN_FLIGHT_PUTS, 30_000);
    // The puts are at the gateway, waiting for the nodes' delayed answers.
    tokio::time::sleep(NODE_ANSWER_DELAY / 3).await;
    let gateway = cluster.gateway_proc.proc.as_mut().unwrap();
    gateway.signal(libc::SIGTERM);
    let mut acked = Vec::new();
    for put in puts {
        let (data, result) = within(PUT_TIMEOUT, "a put in flight at SIGTERM", put)
            .await
            .unwrap();
        let id = result.unwrap_or_else(|e| panic!("a put in flight at SIGTERM failed: {e}"));
        acked.push((id, data));
    }
    let status = tokio::task::block_in_place(|| gateway.wait_exit(SHUTDOWN_GRACE))
        .expect("the gateway exits within the shutdown grace period");
    assert!(status.success(), "gateway exit after SIGTERM: {status}");
    assert!(
        std::net::TcpStream::connect(cluster.gateway).is_err(),
        "nothing listens after shutdown"
    );

    // A new gateway over the same nodes reads every acknowledged record.
    cluster.gateway_proc.proc = None;
    for proxy in &cluster.proxies {
        proxy.set_delay(Duration::ZERO);
    }
    tokio::task::block_in_place(|| cluster.gateway_proc.start());
    let mut client = cluster.client();
    for (id, data) in &acked {
        assert!(client.get(*id).await.unwrap() == *data, "record {id}");
    }
    println!(
        "gateway SIGTERM: {} puts in flight, {} acknowledged and read back",
        IN_FLIGHT_PUTS,
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_to_nodes_under_load_lose_nothing_acknowledged() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        fragment_timeout: "5s",
        gateway_args: EVERY_FRAGMENT.map(String::from).to_vec(),
        ..ClusterOptions::default()
    });
    let mut acked = Vec::new();
    let mut tried = 0;
    for (round, (node, signal)) in [(0, libc::SIGTERM), (3, libc::SIGINT)]
        .into_iter()
        .enumerate()
    {
        // Writers put 512 KiB records back to back; the signal lands in the middle.
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (gateway, stop) = (cluster.gateway, Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut client = Client::new(gateway);
                    let (mut tried, mut acked) = (0, Vec::new());
                    for i in 0u64.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let data = record((round as u64) << 40 | (w as u64) << 32 | i, 512 << 10);
                        tried += 1;
                        // A put whose fragment reached the node before it stopped is
                        // acknowledged; one that came after cannot reach the write quorum.
                        if let Ok(id) = client.put(data.clone()).await {
                            acked.push((id, data));
                        }
                    }
                    (tried, acked)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let proc = cluster.nodes[node].proc.as_mut().unwrap();
        proc.signal(signal);
        let status = tokio::task::block_in_place(|| proc.wait_exit(SHUTDOWN_GRACE))
            .expect("the node exits within the shutdown grace period");
        assert!(
            status.success(),
            "node {node} exit after signal {signal}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            let (n, ok) = within(PUT_TIMEOUT, "a writer to stop", writer)
                .await
                .unwrap();
            tried += n;
            acked.extend(ok);
        }
        cluster.nodes[node].proc = None;
        tokio::task::block_in_place(|| cluster.nodes[node].start());
    }
    // Every acknowledged record reads back, and still has all k + m fragments: the nodes kept
    // every fragment they acknowledged before stopping.
    let mut client = cluster.client();
    for (id, data) in &acked {
        assert!(client.get(*id).await.unwrap() == *data, "record {id}");
    }
    let ids: Vec<RecordId> = acked.iter().map(|(id, _)| *id).collect();
    let report = client.repair(&ids).await.unwrap();
    assert_eq!(report.records_healthy, acked.len() as u64, "{report:?}");
    assert!(!acked.is_empty());
    println!(
        "node SIGTERM/SIGINT: {tried} puts tried, {} acknowledged, all intact",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_cluster_stops_cleanly_on_sigterm() {
    let addr = free_addr();
    let mut child = Command::new(ddsplit_bin())
        .args(["local", "--no-admin", "--listen", &addr.to_string()])
        .env("DDSPLIT_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::task::block_in_place(|| wait_listening(addr, &mut child));
    let mut proc = Proc { child };
    let data = record(3, 1000);
    let id = Client::new(addr).put(data.clone()).await.unwrap();
    assert_eq!(Client::new(addr).get(id).await.unwrap(), data);
    proc.signal(libc::SIGTERM);
    let status = tokio::task::block_in_place(|| proc.wait_exit(SHUTDOWN_GRACE))
        .expect("ddsplit local exits within the shutdown grace period");
    assert!(status.success(), "{status}");
}

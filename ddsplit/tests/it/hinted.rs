//! Hinted placement on a cluster of eight node processes (k + m = 6 and two spares): with a
//! node down, puts place its fragments on a spare and still get all k + m fragments on disk;
//! reads find them there; deletes reach them; `ddsplit repair` moves them home, after which
//! any m nodes may go down.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use ddsplit::error::SuccessCode;
use ddsplit::gateway::placement::Placement;
use ddsplit::id::RecordId;
use ddsplit::limits::LIST_ENTRIES_MAX;
use ddsplit::store::{FragmentStore, RemoteStore};

use crate::support::{Cluster, EVERY_FRAGMENT, record};

const NODES: usize = 8;
/// k + m of the default split: ranks below it are homes, the ranks from it on are spares.
const HOMES: usize = 6;
const RECORDS: u64 = 30;
/// The node killed before the puts.
const DOWN: usize = 0;

/// The fragment indices each record has on the node at `addr`.
async fn holdings(addr: SocketAddr) -> BTreeMap<RecordId, Vec<u8>> {
    let keys = RemoteStore::with_default_timeout(addr)
        .list_fragments(None, LIST_ENTRIES_MAX)
        .await
        .unwrap_or_else(|e| panic!("listing the fragments of {addr}: {e}"));
    let mut held: BTreeMap<RecordId, Vec<u8>> = BTreeMap::new();
    for key in keys {
        held.entry(key.id).or_default().push(key.index);
    }
    held
}

/// Checks that every node of `nodes` (by index) holds exactly what `expected` says of each
/// stored record.
async fn assert_placed(
    addrs: &[SocketAddr],
    nodes: impl Iterator<Item = usize>,
    stored: &[(RecordId, Bytes)],
    expected: impl Fn(RecordId, usize) -> Vec<u8>,
) {
    for node in nodes {
        let held = holdings(addrs[node]).await;
        for (id, _) in stored {
            let got = held.get(id).cloned().unwrap_or_default();
            assert_eq!(got, expected(*id, node), "record {id} on node {node}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_nodes_fragments_go_to_a_spare_are_read_there_and_repair_moves_them_home() {
    // Quorum k + m: a put is acknowledged only once every fragment is on disk, the hinted one
    // too, so where each one went can be checked as soon as the client hears "stored".
    let mut cluster = Cluster::start(NODES, &EVERY_FRAGMENT);
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.addr).collect();
    let placement = Placement::new(&addrs);
    let rank_of = |id: RecordId, node: usize| {
        placement
            .ranked(id)
            .iter()
            .position(|&n| n == node)
            .unwrap()
    };
    cluster.nodes[DOWN].kill9();

    let mut client = cluster.client();
    let mut stored = Vec::new();
    for i in 0..RECORDS {
        let data = record(3000 + i, 1 + (i as usize * 7919) % 20_000);
        let id = client
            .put(data.clone())
            .await
            .unwrap_or_else(|e| panic!("put with node {DOWN} down: {e}"));
        stored.push((id, data));
    }
    // Each fragment is at home, but the down node's, which is on the first spare (rank k + m).
    let hinted_home = |id: RecordId, node: usize| -> Vec<u8> {
        let (rank, down_rank) = (rank_of(id, node), rank_of(id, DOWN));
        match rank {
            r if r < HOMES => vec![r as u8],
            r if r == HOMES && down_rank < HOMES => vec![down_rank as u8],
            _ => Vec::new(),
        }
    };
    assert_placed(
        &addrs,
        (0..NODES).filter(|&n| n != DOWN),
        &stored,
        hinted_home,
    )
    .await;
    let hinted: Vec<RecordId> = stored
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| rank_of(*id, DOWN) < HOMES)
        .collect();
    cluster.assert_all_read_back(&stored, "one node down").await;

    // A delete reaches the spare too: five homes and the hinted copy.
    let (deleted, _) = stored.remove(stored.iter().position(|(id, _)| *id == hinted[0]).unwrap());
    assert_eq!(
        client.delete(deleted).await.unwrap(),
        SuccessCode::Deleted { fragments: 6 }
    );
    assert!(client.get(deleted).await.unwrap_err().is_not_found());

    // Two more nodes down, both homes of a record whose fragment is on the spare: that record
    // now has three fragments at home and needs the spare's. Every record still reads, as each
    // has its six fragments on six nodes, none of them the first node down.
    let needs_spare = hinted[1];
    let ranked = placement.ranked(needs_spare);
    let more: Vec<usize> = ranked[..HOMES]
        .iter()
        .copied()
        .filter(|&n| n != DOWN)
        .take(2)
        .collect();
    for &node in &more {
        cluster.nodes[node].kill9();
    }
    cluster
        .assert_all_read_back(&stored, "three nodes down")
        .await;

    // All back; the repair scan writes the hinted fragments home and deletes the copies.
    for node in std::iter::once(DOWN).chain(more) {
        cluster.nodes[node].start();
    }
    let out = cluster.cli(&["repair", "--json"], None);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{report}");
    let moved = hinted.len() - 1;
    assert_eq!(report["records_checked"], stored.len(), "{report}");
    assert_eq!(report["records_repaired"], moved, "{report}");
    assert_eq!(report["fragments_hinted"], moved, "{report}");
    assert_eq!(report["fragments_moved_home"], moved, "{report}");
    assert_eq!(report["fragments_missing"], moved, "{report}");
    assert_eq!(report["fragments_rewritten"], moved, "{report}");
    let at_home = |id: RecordId, node: usize| -> Vec<u8> {
        let rank = rank_of(id, node);
        if rank < HOMES {
            vec![rank as u8]
        } else {
            Vec::new()
        }
    };
    assert_placed(&addrs, 0..NODES, &stored, at_home).await;

    // So any m = 2 nodes may go down: every pair in turn.
    for a in 0..NODES {
        for b in a + 1..NODES {
            cluster.nodes[a].kill9();
            cluster.nodes[b].kill9();
            cluster
                .assert_all_read_back(&stored, &format!("nodes {a} and {b} down"))
                .await;
            cluster.nodes[a].start();
            cluster.nodes[b].start();
        }
    }
    println!(
        "hinted placement: {} puts with node {DOWN} down, {} fragments hinted, {moved} moved \
         home by repair (one record deleted while hinted)",
        RECORDS,
        hinted.len()
    );
}

//! A cluster of six node processes and a gateway: the record operations, losing up to m nodes,
//! losing more, restarts, and a torn log tail.

use bytes::Bytes;
use ddsplit::error::{DistriErr, ErrorCode};
use ddsplit::id::RecordId;
use ddsplit::query::{ByteRange, DistriQuery};

use crate::support::{Cluster, EVERY_FRAGMENT, record};

/// Record sizes that cover one byte, sizes around the fragment count, and a large record.
const SIZES: [usize; 7] = [1, 3, 4, 5, 1000, 65_537, 1 << 20];

async fn put_all(cluster: &Cluster) -> Vec<(RecordId, Bytes)> {
    let mut client = cluster.client();
    let mut stored = Vec::new();
    for (i, len) in SIZES.iter().enumerate() {
        let data = record(i as u64, *len);
        let id = client.put(data.clone()).await.expect("put");
        stored.push((id, data));
    }
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_query_delete_round_trip() {
    let cluster = Cluster::start(6, &EVERY_FRAGMENT);
    let stored = put_all(&cluster).await;
    cluster.assert_all_read_back(&stored, "cluster").await;

    let mut client = cluster.client();
    let (big_id, big) = &stored[6];
    let missing = RecordId(12345);
    let answers = client
        .query(vec![
            DistriQuery::whole(stored[0].0),
            DistriQuery::new(
                *big_id,
                Some(ByteRange {
                    start: 100,
                    end: 70_000,
                }),
            ),
            DistriQuery::whole(missing),
            DistriQuery::new(stored[1].0, Some(ByteRange { start: 2, end: 9 })),
        ])
        .await
        .expect("query");
    assert_eq!(answers[0].as_ref().unwrap(), &stored[0].1);
    assert_eq!(answers[1].as_ref().unwrap(), &big.slice(100..70_000));
    assert_eq!(answers[2].as_ref().unwrap_err().0, ErrorCode::NotFound);
    assert_eq!(
        answers[3].as_ref().unwrap_err().0,
        ErrorCode::BadRequest,
        "range past the end"
    );

    let done = client.delete(stored[2].0).await.expect("delete");
    assert_eq!(done, ddsplit::error::SuccessCode::Deleted { fragments: 6 });
    let err = client.get(stored[2].0).await.unwrap_err();
    assert!(
        matches!(
            err,
            DistriErr::Remote {
                code: ErrorCode::NotFound,
                ..
            }
        ),
        "{err}"
    );
    let err = client.delete(stored[2].0).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let stats: serde_json::Value = serde_json::from_str(&client.stats().await.unwrap()).unwrap();
    let fragments: u64 = stats["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["stats"]["fragments"].as_u64().unwrap())
        .sum();
    assert_eq!(fragments, 6 * (SIZES.len() as u64 - 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_m_nodes_loses_nothing_and_losing_more_fails_cleanly() {
    let mut cluster = Cluster::start(6, &EVERY_FRAGMENT);
    let stored = put_all(&cluster).await;
    // Every pair of nodes down in turn (15 pairs): every record still reads back.
    for a in 0..6 {
        for b in a + 1..6 {
            cluster.nodes[a].kill9();
            cluster.nodes[b].kill9();
            cluster.assert_all_read_back(&stored, "cluster").await;
            cluster.nodes[a].start();
            cluster.nodes[b].start();
        }
    }
    // Three down: k = 4 of 6 can no longer be read. A clear error, never wrong bytes.
    for i in [0, 2, 4] {
        cluster.nodes[i].kill9();
    }
    let mut client = cluster.client();
    for (id, _) in &stored {
        match client.get(*id).await {
            Err(DistriErr::Remote {
                code: ErrorCode::Unavailable,
                message,
            }) => {
                assert!(message.contains("of the 4 fragments needed"), "{message}");
            }
            other => panic!("record {id} with 3 of 6 nodes down: {other:?}"),
        }
    }
    // Restarted, the three serve their fragments again from their logs: with two others down,
    // every read needs all three of them (plus node 5).
    for i in [0, 2, 4] {
        cluster.nodes[i].start();
    }
    cluster.nodes[1].kill9();
    cluster.nodes[3].kill9();
    cluster.assert_all_read_back(&stored, "cluster").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_log_tail_loses_only_the_torn_entry() {
    let mut cluster = Cluster::start(6, &EVERY_FRAGMENT);
    let stored = put_all(&cluster).await;
    let mut client = cluster.client();
    let last = client.put(record(99, 10_000)).await.expect("put");
    // Tear every node's log in the middle of its last entry (a fragment of `last`).
    let fragment_entry = 16 + 40 + 2500;
    for node in &mut cluster.nodes {
        node.kill9();
        let path = node.log_path();
        let len = crate::support::file_len(&path);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - fragment_entry as u64 / 2).unwrap();
        drop(file);
        node.start();
    }
    cluster.assert_all_read_back(&stored, "cluster").await;
    let err = client.get(last).await.unwrap_err();
    assert!(
        err.is_not_found(),
        "the torn record is gone from every node: {err}"
    );
    // The nodes take writes again after cutting the tail.
    let again = client
        .put(record(100, 777))
        .await
        .expect("put after recovery");
    assert_eq!(client.get(again).await.unwrap(), record(100, 777));
}

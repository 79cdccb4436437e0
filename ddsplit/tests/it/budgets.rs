//! Allocation budgets per request kind: what one request of each kind may allocate, client,
//! gateway and nodes together, in a cluster whose every task runs on the test's thread. A change
//! that adds allocations to a request fails the test of its kind, with the counts.

use bytes::Bytes;
use ddsplit::store::{FragmentStore, RemoteStore};
use ddsplit::wire::FragmentKey;
use diag::alloc::{AllocBudget, AllocCounts, AllocScope};

use crate::support::{on_one_thread_cluster, record};

// Each budget is the median measured when it was set (the same in three runs): one allocation
// more per request fails, so a change that means to spend one says so by raising its budget.
// Bytes have 1% of room (a record id's text, a header's length).

/// A put of a 64 KiB record through the gateway, the client's and the nodes' share included.
/// Measured: 44 allocations, 211,062 bytes (the record, its six fragments, their frames); 46
/// and 276,582 before the log wrote a batch from the fragments' own buffers (its batch buffer,
/// its offsets), 79 and 280,090 before frame heads went inline and payloads stopped being
/// shared to be read.
const PUT_64K: AllocBudget = AllocBudget::new("a gateway put of a 64 KiB record", 44, 213_200);

/// A get of a 64 KiB record through the gateway.
/// Measured: 29 allocations, 205,668 bytes (270,644 bytes before the record went to the client
/// as its shards side by side instead of joined into a new buffer; 61 and 274,392 before, as
/// for puts, and before the k reads became k slots of one join).
const GET_64K: AllocBudget = AllocBudget::new("a gateway get of a 64 KiB record", 29, 207_800);

/// One fragment read from a node, the client's share included.
/// Measured: 5 allocations, 33,201 bytes (11 and 33,429 before).
const NODE_GET: AllocBudget = AllocBudget::new("a node get of one fragment", 5, 33_600);

/// Requests before measuring: connections opened, pools and lazily built tables filled.
const WARMUP: usize = 8;

/// Requests measured per kind; the budget holds for their median. One request in ten or so
/// allocates a few times more than the others (a pooled connection replaced, a table that
/// grows), so the largest would make the budget loose; the median is the same run after run.
const MEASURED: usize = 21;

const RECORD_BYTES: usize = 64 * 1024;

/// The median counts of [`MEASURED`] puts, gets and node gets, in a fresh cluster.
fn median_counts() -> [AllocCounts; 3] {
    // The nodes' log writers are threads of their own, and fragment reads run on the blocking
    // pool (their buffers are allocated on this thread).
    on_one_thread_cluster(async |cluster, client| {
        let node = RemoteStore::new(cluster.node_addrs()[0], std::time::Duration::from_secs(5));
        let data: Bytes = record(7, RECORD_BYTES);
        let mut ids = Vec::new();
        for _ in 0..WARMUP {
            ids.push(client.put(data.clone()).await.unwrap());
        }
        let mut measured: [Vec<AllocCounts>; 3] = Default::default();
        for i in 0..MEASURED {
            let put = AllocScope::new();
            ids.push(client.put(data.clone()).await.unwrap());
            measured[0].push(put.counts());
            let get = AllocScope::new();
            assert_eq!(client.get(ids[i]).await.unwrap(), data);
            measured[1].push(get.counts());
            let fragment = first_fragment_on(&node, &ids).await;
            let node_get = AllocScope::new();
            node.get_fragment(fragment).await.unwrap();
            measured[2].push(node_get.counts());
        }
        measured.map(|counts| median(&counts))
    })
}

/// The median allocations and the median bytes of `counts`.
fn median(counts: &[AllocCounts]) -> AllocCounts {
    let middle = |mut values: Vec<u64>| {
        values.sort_unstable();
        values[values.len() / 2]
    };
    AllocCounts {
        allocations_total: middle(counts.iter().map(|c| c.allocations_total).collect()),
        bytes_allocated_total: middle(counts.iter().map(|c| c.bytes_allocated_total).collect()),
        ..AllocCounts::default()
    }
}

/// A fragment the node holds, found by listing (outside the measured scope).
async fn first_fragment_on(node: &RemoteStore, ids: &[ddsplit::id::RecordId]) -> FragmentKey {
    let keys = node.list_fragments(None, 1024).await.unwrap();
    keys.into_iter()
        .find(|k| ids.contains(&k.id))
        .expect("the node holds a fragment of some record")
}

#[test]
fn each_request_kind_allocates_within_its_budget() {
    assert!(
        diag::alloc::is_counting(),
        "the test binary counts allocations"
    );
    let [put, get, node_get] = median_counts();
    let results = [
        PUT_64K.check(&put),
        GET_64K.check(&get),
        NODE_GET.check(&node_get),
    ];
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(
        failed.is_empty(),
        "{}\n(median counts: put {put:?}, get {get:?}, node get {node_get:?})",
        failed.join("\n")
    );
    // A budget that nothing spends says nothing: each kind allocates at least its data.
    assert!(put.bytes_allocated_total >= RECORD_BYTES as u64, "{put:?}");
    assert!(get.bytes_allocated_total >= RECORD_BYTES as u64, "{get:?}");
}

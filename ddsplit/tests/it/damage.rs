//! Damaged node logs: bytes flipped, a torn tail and truncated files while a node is down, and
//! bit rot under a running node. Nodes restart and serve what is intact, damage is caught by
//! checksums (never served), the gateway reads each record from other fragments, and
//! `ddsplit repair` brings every record back to k + m fragments.

use bytes::Bytes;
use ddsplit::id::RecordId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::{Cluster, EVERY_FRAGMENT, file_len, record};

/// Bytes of a log entry's header: magic, kind, padding, body length, checksum.
const ENTRY_HEADER_LEN: usize = 16;
/// Seed of the damage positions.
const DAMAGE_SEED: u64 = 0xbad_109;

async fn put_records(cluster: &Cluster, n: u64) -> Vec<(RecordId, Bytes)> {
    let mut client = cluster.client();
    let mut stored = Vec::new();
    for i in 0..n {
        let data = record(1000 + i, 1 + (i as usize * 7919) % 150_000);
        stored.push((client.put(data.clone()).await.expect("put"), data));
    }
    stored
}

/// Offsets and lengths of each entry's body in a log file.
fn entry_bodies(log: &[u8]) -> Vec<(usize, usize)> {
    let mut bodies = Vec::new();
    let mut at = 0;
    while at + ENTRY_HEADER_LEN <= log.len() {
        assert_eq!(
            &log[at..at + 4],
            b"DDLE",
            "an intact log is a sequence of entries"
        );
        let len = u32::from_le_bytes(log[at + 8..at + 12].try_into().unwrap()) as usize;
        bodies.push((at + ENTRY_HEADER_LEN, len));
        at += ENTRY_HEADER_LEN + len;
    }
    bodies
}

/// Per-node recovery counters from the gateway's stats.
async fn recovery(cluster: &Cluster, node: usize) -> serde_json::Value {
    let stats: serde_json::Value =
        serde_json::from_str(&cluster.client().stats().await.unwrap()).unwrap();
    stats["nodes"][node]["stats"]["recovery"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_logs_restart_serve_what_is_intact_and_are_repaired() {
    let mut cluster = Cluster::start(6, &EVERY_FRAGMENT);
    let stored = put_records(&cluster, 40).await;
    let mut rng = StdRng::seed_from_u64(DAMAGE_SEED);

    // Round 1, two nodes (m) damaged while down: bytes flipped in the middle of node 0's log,
    // and node 1's log torn in the middle of its last entry.
    cluster.nodes[0].kill9();
    let path = cluster.nodes[0].log_path();
    let mut log = std::fs::read(&path).unwrap();
    let bodies = entry_bodies(&log);
    let mut flipped = 0;
    for (offset, len) in bodies.iter().skip(3).step_by(7) {
        log[offset + rng.gen_range(0..*len)] ^= 1 << rng.gen_range(0..8);
        flipped += 1;
    }
    std::fs::write(&path, &log).unwrap();
    cluster.nodes[0].start();

    cluster.nodes[1].kill9();
    let path = cluster.nodes[1].log_path();
    let last_body = *entry_bodies(&std::fs::read(&path).unwrap()).last().unwrap();
    let torn_len = (last_body.0 + last_body.1 / 2) as u64;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(torn_len)
        .unwrap();
    cluster.nodes[1].start();

    let flipped_recovery = recovery(&cluster, 0).await;
    assert_eq!(
        flipped_recovery["damaged_regions"], flipped,
        "each flipped entry is found by its checksum and skipped: {flipped_recovery}"
    );
    let torn_recovery = recovery(&cluster, 1).await;
    assert!(
        torn_recovery["truncated_bytes"].as_u64().unwrap() > 0,
        "the torn tail is cut: {torn_recovery}"
    );
    assert_eq!(
        file_len(&cluster.nodes[1].log_path()),
        (last_body.0 - ENTRY_HEADER_LEN) as u64,
        "the log ends where the torn entry began"
    );
    cluster.assert_all_read_back(&stored, "damage").await;

    // Repair (the scan, as `ddsplit repair` runs it) rewrites exactly the lost fragments.
    let mut client = cluster.client();
    let report = client.repair_all(|_| {}).await.unwrap();
    assert_eq!(report.records_checked, stored.len() as u64, "{report:?}");
    assert_eq!(
        report.fragments_missing,
        flipped + 1,
        "every skipped entry and the torn one: {report:?}"
    );
    assert_eq!(report.fragments_rewritten, flipped + 1, "{report:?}");
    assert!(report.is_clean(), "{report:?}");

    // Round 2: node 2's log truncated to half, node 3's to nothing.
    for (node, keep) in [(2, 0.5), (3, 0.0)] {
        cluster.nodes[node].kill9();
        let path = cluster.nodes[node].log_path();
        let len = file_len(&path);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len((len as f64 * keep) as u64)
            .unwrap();
        cluster.nodes[node].start();
    }
    cluster.assert_all_read_back(&stored, "damage").await;
    let report = client.repair_all(|_| {}).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(
        report.fragments_rewritten >= stored.len() as u64,
        "{report:?}"
    );

    // Every record is back at k + m: with the two nodes never damaged down, every read now
    // needs the repaired fragments of nodes 0..4.
    cluster.nodes[4].kill9();
    cluster.nodes[5].kill9();
    cluster.assert_all_read_back(&stored, "damage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_rot_under_a_running_node_is_never_served_and_repair_fixes_it() {
    let cluster = Cluster::start(6, &EVERY_FRAGMENT);
    let stored = put_records(&cluster, 20).await;
    // Rot the last payload byte of every fragment node 0 holds, while it runs: its index
    // still points at them, so only the fragment checksum stands between the rot and a reader.
    let path = cluster.nodes[0].log_path();
    let mut log = std::fs::read(&path).unwrap();
    let bodies = entry_bodies(&log);
    for (offset, len) in &bodies {
        log[offset + len - 1] ^= 0x5a;
    }
    std::fs::write(&path, &log).unwrap();
    // Node 0 holds a data fragment of most records: each read of those meets a corrupt
    // fragment, and must fall back to a parity one.
    cluster.assert_all_read_back(&stored, "damage").await;

    let out = cluster.cli(&["repair", "--json"], None);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{report}");
    assert_eq!(report["records_checked"], stored.len(), "{report}");
    assert_eq!(report["fragments_corrupt"], bodies.len(), "{report}");
    assert_eq!(report["fragments_rewritten"], bodies.len(), "{report}");

    // The plain summary of a second pass: everything healthy.
    let out = cluster.cli(&["repair"], None);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "records checked {}: healthy {}, repaired 0",
            stored.len(),
            stored.len()
        )),
        "{text}"
    );
}

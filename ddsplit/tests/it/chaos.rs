//! Kills under load: writers and readers run against seven node processes (k + m and one
//! spare) and a gateway while nodes (and now and then the gateway) are SIGKILLed and restarted
//! at seeded random moments. Puts go on while nodes are down (the default quorum, k + 1, and
//! hinted placements on the spare); no read may ever return wrong bytes, `repair` must bring
//! every acknowledged record back to k + m fragments at home, and every acknowledged record
//! must read back byte-identical after it, with any m nodes down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ddsplit::id::RecordId;
use ddsplit::query::{ByteRange, DistriQuery};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;

use crate::support::{Cluster, ClusterOptions, record, within};

/// Seed of the fault schedule and workload; `DDSPLIT_CHAOS_SEED` picks another.
const CHAOS_SEED_DEFAULT: u64 = 0x0dd5_9117;
/// How long faults are injected.
const CHAOS_DURATION: Duration = Duration::from_secs(12);
/// Concurrent writers and readers.
const WRITERS: usize = 4;
const READERS: usize = 4;
/// Largest record written (sizes are uniform in 1..=this).
const CHAOS_RECORD_BYTES_MAX: usize = 200_000;
/// m of the cluster's split: at most this many nodes are down at once.
const M: usize = 2;
/// Nodes: k + m and a spare, so that a fragment whose node is down has somewhere to go, and
/// a put with two of its nodes down is acknowledged with a fragment missing.
const NODES: usize = 7;
/// How long a writer or reader may take to stop once told: the request it is in, bounded by
/// the client's timeouts (18 s).
const WORKER_STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A record the gateway acknowledged: its id and how to regenerate its bytes.
#[derive(Clone, Copy)]
struct Acked {
    id: RecordId,
    seed: u64,
    len: usize,
}

#[derive(Default)]
struct Counts {
    puts_tried: AtomicU64,
    puts_acked: AtomicU64,
    /// Puts during which the same nodes stayed down, at least one of them.
    puts_tried_while_down: AtomicU64,
    puts_acked_while_down: AtomicU64,
    reads_tried: AtomicU64,
    reads_ok: AtomicU64,
    reads_failed: AtomicU64,
    wrong_bytes: AtomicU64,
}

/// Which nodes are down, as the writers see it: the count of nodes down, and how many times
/// a node went down or began to come back. A put that sees the same value before and after
/// ran with that many nodes down throughout.
#[derive(Default)]
struct Down(AtomicU64);

impl Down {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Whether a put that began at `before` and ended at `after` had a node down throughout.
    fn throughout(before: u64, after: u64) -> bool {
        before == after && before & 0xff > 0
    }

    /// A node is down (after its SIGKILL).
    fn went_down(&self) {
        self.0.fetch_add((1 << 8) + 1, Ordering::SeqCst);
    }

    /// A node is about to come back (before its restart).
    fn coming_back(&self) {
        self.0.fetch_add((1 << 8) - 1, Ordering::SeqCst);
    }
}

fn chaos_seed() -> u64 {
    std::env::var("DDSPLIT_CHAOS_SEED")
        .ok()
        .map(|s| s.parse().expect("DDSPLIT_CHAOS_SEED is a number"))
        .unwrap_or(CHAOS_SEED_DEFAULT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_kills_and_restarts_under_load() {
    let seed = chaos_seed();
    println!("chaos seed {seed} (set DDSPLIT_CHAOS_SEED to replay another)");
    // The default write quorum (k + 1): puts go on with nodes down, so records with hinted
    // and lost fragments are made under load and repair has work to do at the end.
    let cluster = Cluster::start_with(ClusterOptions {
        nodes: NODES,
        ..ClusterOptions::default()
    });
    let gateway = cluster.gateway;
    let cluster = Arc::new(Mutex::new(cluster));
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let counts = Arc::new(Counts::default());
    let down = Arc::new(Down::default());
    let stop = Arc::new(AtomicBool::new(false));

    let mut workers = Vec::new();
    for w in 0..WRITERS {
        let (acked, counts, down, stop) = (
            Arc::clone(&acked),
            Arc::clone(&counts),
            Arc::clone(&down),
            Arc::clone(&stop),
        );
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ (w as u64 + 1) << 32);
            let mut client = ddsplit::client::Client::new(gateway);
            while !stop.load(Ordering::Relaxed) {
                let (record_seed, len) = (
                    rng.r#gen::<u64>(),
                    rng.gen_range(1..=CHAOS_RECORD_BYTES_MAX),
                );
                counts.puts_tried.fetch_add(1, Ordering::Relaxed);
                let before = down.now();
                let put = client.put(record(record_seed, len)).await;
                let while_down = Down::throughout(before, down.now());
                if while_down {
                    counts.puts_tried_while_down.fetch_add(1, Ordering::Relaxed);
                }
                if let Ok(id) = put {
                    counts.puts_acked.fetch_add(1, Ordering::Relaxed);
                    if while_down {
                        counts.puts_acked_while_down.fetch_add(1, Ordering::Relaxed);
                    }
                    acked.lock().await.push(Acked {
                        id,
                        seed: record_seed,
                        len,
                    });
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for r in 0..READERS {
        let (acked, counts, stop) = (Arc::clone(&acked), Arc::clone(&counts), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ (r as u64 + 101) << 32);
            let mut client = ddsplit::client::Client::new(gateway);
            while !stop.load(Ordering::Relaxed) {
                let pick = {
                    let acked = acked.lock().await;
                    (!acked.is_empty()).then(|| acked[rng.gen_range(0..acked.len())])
                };
                let Some(rec) = pick else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let expected = record(rec.seed, rec.len);
                counts.reads_tried.fetch_add(1, Ordering::Relaxed);
                // Whole gets, and now and then a batch query with a byte range.
                let answer = if rng.gen_bool(0.8) {
                    client
                        .get(rec.id)
                        .await
                        .map(|data| (data, expected.clone()))
                } else {
                    let start = rng.gen_range(0..rec.len as u64);
                    let end = rng.gen_range(start + 1..=rec.len as u64);
                    let range = ByteRange { start, end };
                    client
                        .query(vec![DistriQuery::new(rec.id, Some(range))])
                        .await
                        .and_then(|mut answers| {
                            answers.remove(0).map_err(|(code, message)| {
                                ddsplit::error::DistriErr::Remote {
                                    code,
                                    message: message.into(),
                                }
                            })
                        })
                        .map(|data| (data, expected.slice(start as usize..end as usize)))
                };
                match answer {
                    Ok((got, want)) if got == want => {
                        counts.reads_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((got, want)) => {
                        eprintln!(
                            "WRONG BYTES for {}: {} bytes read, {} expected",
                            rec.id,
                            got.len(),
                            want.len()
                        );
                        counts.wrong_bytes.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        counts.reads_failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }

    // The fault schedule: at most m nodes down at once; the gateway killed now and then.
    let down_now = down;
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut node_kills, mut node_restarts, mut gateway_kills) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + CHAOS_DURATION;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..700))).await;
        let mut c = cluster.lock().await;
        let down: Vec<usize> = (0..c.nodes.len())
            .filter(|&i| c.nodes[i].proc.is_none())
            .collect();
        let up: Vec<usize> = (0..c.nodes.len())
            .filter(|&i| c.nodes[i].proc.is_some())
            .collect();
        let roll = rng.gen_range(0..100);
        if roll < 8 {
            c.gateway_proc.kill9();
            gateway_kills += 1;
            tokio::task::block_in_place(|| c.gateway_proc.start());
        } else if down.len() < M && (down.is_empty() || roll < 60) {
            let victim = up[rng.gen_range(0..up.len())];
            c.nodes[victim].kill9();
            down_now.went_down();
            node_kills += 1;
        } else if !down.is_empty() {
            let back = down[rng.gen_range(0..down.len())];
            down_now.coming_back();
            tokio::task::block_in_place(|| c.nodes[back].start());
            node_restarts += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        within(WORKER_STOP_TIMEOUT, "a writer or reader to stop", worker)
            .await
            .unwrap();
    }

    // Everything back up: every acknowledged record reads back byte-identical, from its
    // ranked nodes and its spare.
    let mut c = cluster.lock().await;
    for node in &mut c.nodes {
        if node.proc.is_none() {
            tokio::task::block_in_place(|| node.start());
            node_restarts += 1;
        }
    }
    let acked = acked.lock().await.clone();
    let mut client = c.client();
    for rec in &acked {
        let back = client
            .get(rec.id)
            .await
            .unwrap_or_else(|e| panic!("acknowledged record {} lost: {e}", rec.id));
        assert!(
            back == record(rec.seed, rec.len),
            "record {} read back different",
            rec.id
        );
    }

    // Repair: records that lost a fragment (written while nodes were down, or torn by a kill)
    // get it back, and fragments on the spare go home; afterwards every acknowledged record is
    // at k + m intact fragments, all at home.
    let ids: Vec<RecordId> = acked.iter().map(|r| r.id).collect();
    let repaired = client.repair(&ids).await.expect("repair");
    assert_eq!(repaired.records_unrepairable, 0, "{repaired:?}");
    assert_eq!(repaired.fragments_unreachable, 0, "{repaired:?}");
    assert_eq!(
        repaired.fragments_moved_home, repaired.fragments_hinted,
        "every hinted fragment moved home: {repaired:?}"
    );
    let after = client.repair(&ids).await.expect("second repair");
    assert_eq!(
        after.records_healthy,
        acked.len() as u64,
        "after repair every acknowledged record has all k + m fragments at home: {after:?}"
    );
    assert_eq!(after.fragments_hinted, 0, "{after:?}");
    // So any m nodes may now go down at once: two chosen by the seed.
    let a = rng.gen_range(0..c.nodes.len());
    let b = (a + rng.gen_range(1..c.nodes.len())) % c.nodes.len();
    c.nodes[a].kill9();
    c.nodes[b].kill9();
    for rec in &acked {
        let back = client
            .get(rec.id)
            .await
            .unwrap_or_else(|e| panic!("record {} with nodes {a} and {b} down: {e}", rec.id));
        assert!(
            back == record(rec.seed, rec.len),
            "record {} read back different",
            rec.id
        );
    }

    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "chaos: seed {seed}; faults: {node_kills} node SIGKILLs, {node_restarts} node restarts, \
         {gateway_kills} gateway SIGKILLs; puts {} tried, {} acknowledged, {} of {} acknowledged \
         while a node was down; reads {} tried, {} ok, {} failed cleanly, {} wrong; repair \
         rewrote {} fragments ({} missing, {} corrupt) and moved {} of {} hinted fragments home, \
         {} records; {} acknowledged records checked three times",
        n(&counts.puts_tried),
        n(&counts.puts_acked),
        n(&counts.puts_acked_while_down),
        n(&counts.puts_tried_while_down),
        n(&counts.reads_tried),
        n(&counts.reads_ok),
        n(&counts.reads_failed),
        n(&counts.wrong_bytes),
        repaired.fragments_rewritten,
        repaired.fragments_missing,
        repaired.fragments_corrupt,
        repaired.fragments_moved_home,
        repaired.fragments_hinted,
        repaired.records_repaired,
        acked.len(),
    );
    assert_eq!(n(&counts.wrong_bytes), 0, "a read returned wrong bytes");
    if n(&counts.puts_tried_while_down) > 0 {
        assert!(
            n(&counts.puts_acked_while_down) > 0,
            "no put was acknowledged while a node was down"
        );
    }
    assert!(
        node_kills >= 5,
        "the schedule injected too few faults to mean anything"
    );
    assert!(
        acked.len() >= 50,
        "too few records acknowledged to mean anything"
    );
}

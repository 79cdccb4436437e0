//! How close a split comes to the raw Reed-Solomon encode and to its floor, measured
//! interleaved: `cargo run --release -p ddsplit-benches --bin codec-ratio [ROUNDS]`.
//!
//! On a shared machine the speed of back-to-back criterion groups drifts by more than the gap
//! being measured, so each round times a batch of each of the three in turn (in a rotating
//! order) and the ratios are taken within the round. Printed per split and size: the median
//! time of each, and the median and range of the per-round ratios raw/split and floor/split
//! (1.0 means split is as fast; the goal is raw/split >= 0.8).
//! - raw: `reed_solomon_simd::encode` of shards already cut to size;
//! - floor: that encode plus the CRC-32C of every data and parity shard, which split must do;
//! - split: `ddsplit::codec::split`, headers and buffer sharing included.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ddsplit::codec::{CodecParams, split};
use ddsplit::id::RecordId;
use ddsplit_benches::record;

/// Rounds when none is given.
const ROUNDS_DEFAULT: usize = 15;
/// Each batch runs about this long, so timer resolution and one-off stalls stay small.
const BATCH_TARGET: Duration = Duration::from_millis(40);

const SPLITS: [(usize, usize); 2] = [(4, 2), (8, 4)];
const SIZES: [usize; 2] = [64 * 1024, 1024 * 1024];

fn main() {
    let rounds = match std::env::args().nth(1).map(|r| r.parse::<usize>()) {
        None => ROUNDS_DEFAULT,
        Some(Ok(r)) if r > 0 => r,
        Some(_) => {
            eprintln!("usage: codec-ratio [ROUNDS]  (a positive number; default {ROUNDS_DEFAULT})");
            std::process::exit(2);
        }
    };
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>22} {:>22}",
        "case", "raw µs", "floor µs", "split µs", "raw/split (range)", "floor/split (range)"
    );
    for (k, m) in SPLITS {
        for size in SIZES {
            report(k, m, size, rounds);
        }
    }
}

fn report(k: usize, m: usize, size: usize, rounds: usize) {
    let data = record(size);
    let params = CodecParams::new(k as u8, m as u8).expect("valid split");
    let shards = cut(&data, k, params.shard_len(size));
    let raw = || reed_solomon_simd::encode(k, m, &shards).expect("encode");
    let floor = || {
        let parity = reed_solomon_simd::encode(k, m, &shards).expect("encode");
        let sums = shards.iter().chain(&parity).map(|s| crc32c::crc32c(s));
        sums.fold(0u32, |all, sum| all ^ sum)
    };
    let split = || split(RecordId(1), &data, params).expect("split");
    let batch = (BATCH_TARGET.as_nanos() / time(1, &split).as_nanos().max(1)).max(1) as usize;
    let mut times: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        for turn in 0..3 {
            let which = (round + turn) % 3;
            let took = match which {
                0 => time(batch, &raw),
                1 => time(batch, &floor),
                _ => time(batch, &split),
            };
            times[which].push(took.as_secs_f64() * 1e6 / batch as f64);
        }
    }
    let ratios =
        |of: usize| -> Vec<f64> { (0..rounds).map(|r| times[of][r] / times[2][r]).collect() };
    let (raw_ratio, floor_ratio) = (ratios(0), ratios(1));
    println!(
        "{:<12} {:>10.1} {:>10.1} {:>10.1} {:>22} {:>22}",
        format!("k{k}m{m}/{}KiB", size / 1024),
        median(&times[0]),
        median(&times[1]),
        median(&times[2]),
        spread(&raw_ratio),
        spread(&floor_ratio),
    );
}

/// The record cut into k shards of `shard_len`, the last one padded with zeros.
fn cut(data: &Bytes, k: usize, shard_len: usize) -> Vec<Vec<u8>> {
    (0..k)
        .map(|i| {
            let mut shard = vec![0u8; shard_len];
            let start = (i * shard_len).min(data.len());
            let end = ((i + 1) * shard_len).min(data.len());
            shard[..end - start].copy_from_slice(&data[start..end]);
            shard
        })
        .collect()
}

fn time<T>(iterations: usize, work: &impl Fn() -> T) -> Duration {
    let start = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(work());
    }
    start.elapsed()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn spread(ratios: &[f64]) -> String {
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ratios.iter().copied().fold(0.0, f64::max);
    format!("{:.2} ({:.2}–{:.2})", median(ratios), min, max)
}

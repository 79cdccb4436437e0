//! Codec throughput: split, and split + reassemble, for (4,2) and (8,4) at 64 KiB and 1 MiB,
//! beside the raw Reed-Solomon encode of the same data and the floor of a split (that encode
//! plus the checksum of every shard) in the same run.
//!
//! `cargo bench -p ddsplit-benches --bench codec`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ddsplit::codec::{CodecParams, reassemble, split};
use ddsplit::id::RecordId;
use ddsplit_benches::record;

const SPLITS: [(u8, u8); 2] = [(4, 2), (8, 4)];
const SIZES: [usize; 2] = [64 * 1024, 1024 * 1024];

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for (k, m) in SPLITS {
        let params = CodecParams::new(k, m).expect("valid split");
        for size in SIZES {
            let data = record(size);
            let label = format!("k{k}m{m}/{}KiB", size / 1024);
            group.throughput(Throughput::Bytes(size as u64));
            // The baseline: the engine alone on shards already cut to size.
            let shard_len = params.shard_len(size);
            let shards: Vec<Vec<u8>> = (0..k as usize)
                .map(|i| {
                    let mut shard = vec![0u8; shard_len];
                    let start = (i * shard_len).min(size);
                    let end = ((i + 1) * shard_len).min(size);
                    shard[..end - start].copy_from_slice(&data[start..end]);
                    shard
                })
                .collect();
            group.bench_function(BenchmarkId::new("raw_encode", &label), |b| {
                b.iter(|| {
                    reed_solomon_simd::encode(k as usize, m as usize, &shards).expect("encode")
                })
            });
            // The floor of a split: the engine plus the CRC-32C of every shard it reads and
            // writes, which is what split adds (headers and buffer sharing aside).
            group.bench_function(BenchmarkId::new("encode_and_checksum", &label), |b| {
                b.iter(|| {
                    let parity =
                        reed_solomon_simd::encode(k as usize, m as usize, &shards).expect("encode");
                    let sums = shards.iter().chain(&parity).map(|s| crc32c::crc32c(s));
                    sums.fold(0u32, |all, sum| all ^ sum)
                })
            });
            group.bench_function(BenchmarkId::new("split", &label), |b| {
                b.iter(|| split(RecordId(1), &data, params).expect("split"))
            });
            group.bench_function(BenchmarkId::new("split_reassemble", &label), |b| {
                b.iter(|| {
                    let fragments = split(RecordId(1), &data, params).expect("split");
                    reassemble(&fragments).expect("reassemble")
                })
            });
            // Degraded read: the first m data fragments are lost, so the engine decodes.
            let fragments = split(RecordId(1), &data, params).expect("split");
            let survivors = fragments[m as usize..].to_vec();
            group.bench_function(BenchmarkId::new("reassemble_degraded", &label), |b| {
                b.iter(|| reassemble(&survivors).expect("reassemble"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);

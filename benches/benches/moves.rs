//! A record read through the gateway's eight async layers (see `ddsplit_benches::layers`), each
//! returning `Result<_, E>`: with the service's `DistriErr` (a few words, the corruption report
//! boxed) and with the `story-inline-error` build's (the report inline, about 48 KiB). No error
//! is ever made: the difference is what moving the `Result` costs on the happy path.
//!
//! `cargo bench -p ddsplit-benches --bench moves`

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ddsplit::codec::Fragment;
use ddsplit::error::DistriErr;
use ddsplit_benches::layers::{GATEWAY_READ_LAYERS, InlineDistriErr, LayerError, ReadPath, handle};
use ddsplit_benches::record;
use tokio::runtime::Runtime;

/// A small record, so the copies of the `Result` are not hidden behind copies of data.
const RECORD_BYTES: usize = 4 * 1024;

fn bench_one<E: LayerError>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    path: &ReadPath,
    name: &str,
) {
    let id = BenchmarkId::new(
        name,
        format!("result_{}B", size_of::<Result<Fragment, E>>()),
    );
    c.bench_function(id, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(handle::<E>(path, black_box(path.id())).await);
                }
                start.elapsed()
            })
        })
    });
}

fn moves(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let path = ReadPath::new(&record(RECORD_BYTES));
    let mut group = c.benchmark_group(format!("moves/gateway_read_{GATEWAY_READ_LAYERS}_layers"));
    bench_one::<DistriErr>(&mut group, &rt, &path, "boxed_error");
    bench_one::<InlineDistriErr>(&mut group, &rt, &path, "inline_error");
    group.finish();
}

criterion_group!(benches, moves);
criterion_main!(benches);

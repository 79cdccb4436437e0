//! The gateway's batch-query path, `ddsplit::query::answer_batch`, with the three places a query
//! can keep its answer: shared (`SharedAnswer`, the default build: a query is a few words), by
//! value (`InlineAnswer`, the `story-query-by-value` build: a 16 KiB buffer in every query, so
//! every push and pop of the batch's `Vec` moves 16 KiB), and that buffer boxed. The batch is
//! made the way the wire decoder makes it and answered from records in memory, so what differs
//! is the queries' traffic.
//!
//! `cargo bench -p ddsplit-benches --bench queries`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ddsplit::error::ErrorCode;
use ddsplit::limits::{QUERY_CONCURRENCY_MAX, QUERY_RESPONSE_BYTES_MAX};
use ddsplit::query::{AnswerSlot, InlineAnswer, Query, SharedAnswer, answer_batch, select};
use ddsplit_benches::queries::{BoxedAnswer, QueryWorkload};
use tokio::runtime::Runtime;

/// Batch sizes: the load generator's default, and a larger batch.
const BATCHES: [usize; 2] = [8, 64];

fn run_batch<S: AnswerSlot>(rt: &Runtime, workload: &QueryWorkload) -> usize {
    rt.block_on(async {
        let mut queries: Vec<Query<S>> = Vec::with_capacity(workload.batch.len());
        for &(id, range) in &workload.batch {
            queries.push(Query::new(id, range));
        }
        let answers = answer_batch(
            queries,
            QUERY_CONCURRENCY_MAX,
            QUERY_RESPONSE_BYTES_MAX,
            |id, range| {
                let record = workload.records[id.0 as usize].clone();
                async move {
                    let part =
                        select(range, record.len()).map_err(|e| (ErrorCode::BadRequest, e))?;
                    Ok(record.slice(part))
                }
            },
        )
        .await;
        answers
            .iter()
            .map(|a| a.as_ref().map_or(0, |d| d.len()))
            .sum()
    })
}

fn queries(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for batch in BATCHES {
        let workload = QueryWorkload::new(batch);
        let expected = run_batch::<SharedAnswer>(&rt, &workload);
        assert_eq!(run_batch::<InlineAnswer>(&rt, &workload), expected);
        assert_eq!(run_batch::<BoxedAnswer>(&rt, &workload), expected);
        let mut group = c.benchmark_group(format!("queries/batch_{batch}"));
        group.bench_function(
            BenchmarkId::new(
                "shared",
                format!("query_{}B", size_of::<Query<SharedAnswer>>()),
            ),
            |b| b.iter(|| black_box(run_batch::<SharedAnswer>(&rt, black_box(&workload)))),
        );
        group.bench_function(
            BenchmarkId::new(
                "by_value",
                format!("query_{}B", size_of::<Query<InlineAnswer>>()),
            ),
            |b| b.iter(|| black_box(run_batch::<InlineAnswer>(&rt, black_box(&workload)))),
        );
        group.bench_function(
            BenchmarkId::new(
                "boxed",
                format!("query_{}B", size_of::<Query<BoxedAnswer>>()),
            ),
            |b| b.iter(|| black_box(run_batch::<BoxedAnswer>(&rt, black_box(&workload)))),
        );
        group.finish();
    }
}

criterion_group!(benches, queries);
criterion_main!(benches);

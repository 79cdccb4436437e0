//! One fragment-store call three ways, on the same store in the same run: through
//! `#[async_trait]` and `Arc<dyn _>` (the `story-async-trait` build: a boxed future and a virtual
//! call per operation), native `async fn` in the trait called on the concrete type (static
//! dispatch), and through an enum of stores (the default build's `Store`). Two stores: an
//! in-memory map, where the call is most of the work, and ddsplit's `LocalStore` over a real log
//! (fsync off), where a read is an index lookup, a `pread` on the blocking pool and a checksum.
//!
//! `cargo bench -p ddsplit-benches --bench dispatch`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ddsplit::codec::{CodecParams, Fragment, split};
use ddsplit::id::RecordId;
use ddsplit::store::log::{FragmentLog, FsyncPolicy};
use ddsplit::store::{FragmentStore, LocalStore};
use ddsplit::wire::FragmentKey;
use ddsplit_benches::record;
use ddsplit_benches::stores::{EnumStore, MemoryStore, boxed};
use tokio::runtime::Runtime;

/// A record of the default load's median size.
const RECORD_BYTES: usize = 8 * 1024;

fn fragments() -> Vec<Fragment> {
    split(RecordId(1), &record(RECORD_BYTES), CodecParams::default()).expect("valid record")
}

/// Times `iters` reads of fragment 0 with `get`, on one task as the gateway's reads are.
fn time_gets<F, Fut>(rt: &Runtime, iters: u64, get: F) -> Duration
where
    F: Fn(FragmentKey) -> Fut,
    Fut: Future<Output = Fragment>,
{
    let key = FragmentKey {
        id: RecordId(1),
        index: 0,
    };
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(get(black_box(key)).await);
        }
        start.elapsed()
    })
}

/// Benchmarks `get_fragment` on the same store through the three kinds of dispatch.
fn three_ways<S>(c: &mut Criterion, rt: &Runtime, name: &str, make: impl Fn() -> S)
where
    S: FragmentStore + boxed::FragmentStore + 'static,
    EnumStore: From<S>,
{
    let mut group = c.benchmark_group(format!("dispatch/{name}_get_fragment"));
    let dynamic: Arc<dyn boxed::FragmentStore> = black_box(Arc::new(make()));
    group.bench_function("async_trait_dyn", |b| {
        b.iter_custom(|iters| {
            time_gets(rt, iters, |key| {
                let store = Arc::clone(&dynamic);
                async move { store.get_fragment(key).await.expect("stored") }
            })
        })
    });
    let concrete = make();
    group.bench_function("native_static", |b| {
        b.iter_custom(|iters| {
            time_gets(rt, iters, |key| {
                let store = black_box(&concrete);
                async move {
                    FragmentStore::get_fragment(store, key)
                        .await
                        .expect("stored")
                }
            })
        })
    });
    let by_enum = EnumStore::from(make());
    group.bench_function("enum", |b| {
        b.iter_custom(|iters| {
            time_gets(rt, iters, |key| {
                let store = black_box(&by_enum);
                async move { store.get_fragment(key).await.expect("stored") }
            })
        })
    });
    group.finish();
}

fn dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fragments = fragments();

    // Each dispatch gets its own map holding the same fragments.
    three_ways(c, &rt, "memory", || {
        let store = MemoryStore::new();
        rt.block_on(async {
            for fragment in &fragments {
                FragmentStore::put_fragment(&store, fragment.clone())
                    .await
                    .expect("put");
            }
        });
        store
    });

    // One log on disk; the three dispatches read it through their own `LocalStore` handle.
    let dir = tempfile::tempdir().expect("temp dir");
    let log = FragmentLog::open(dir.path(), FsyncPolicy::Never).expect("open log");
    rt.block_on(async {
        for fragment in &fragments {
            log.put(fragment.clone()).await.expect("put");
        }
    });
    three_ways(c, &rt, "local_log", || LocalStore::new(log.clone()));
}

criterion_group!(benches, dispatch);
criterion_main!(benches);

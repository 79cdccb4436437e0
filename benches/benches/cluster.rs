//! End-to-end put and get of 1 MiB records through a local cluster (gateway + 6 nodes on
//! loopback), beside, in the same run, a plain tokio loopback TCP transfer of the same bytes
//! and the floor of an erasure-coded store ([`ddsplit_benches::floor`]: the same transfers
//! and file writes as a k = 4, m = 2 put and get, with nothing else).
//!
//! `cargo bench -p ddsplit-benches --bench cluster`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ddsplit::client::Client;
use ddsplit::local::{LocalCluster, LocalClusterConfig};
use ddsplit::store::log::FsyncPolicy;
use ddsplit_benches::floor::{Floor, FloorShape};
use ddsplit_benches::record;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RECORD_BYTES: usize = 1024 * 1024;

/// A plain TCP peer: `P` + length + bytes is answered with one byte, `G` with the bytes.
async fn plain_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            stream.set_nodelay(true).expect("nodelay");
            tokio::spawn(async move {
                let blob = record(RECORD_BYTES);
                let mut buf = vec![0u8; RECORD_BYTES];
                loop {
                    let mut op = [0u8; 1];
                    if stream.read_exact(&mut op).await.is_err() {
                        return;
                    }
                    if op[0] == b'P' {
                        let len = stream.read_u32().await.expect("len") as usize;
                        stream.read_exact(&mut buf[..len]).await.expect("body");
                        stream.write_all(&[1]).await.expect("ack");
                    } else {
                        stream.write_all(&blob).await.expect("blob");
                    }
                }
            });
        }
    });
    addr
}

fn cluster(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let data = record(RECORD_BYTES);
    let mut group = c.benchmark_group("cluster_1MiB");
    group.throughput(Throughput::Bytes(RECORD_BYTES as u64));
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(8));

    let plain = rt.block_on(plain_server());
    let mut stream = rt.block_on(TcpStream::connect(plain)).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    group.bench_function("plain_tcp_put", |b| {
        b.iter(|| {
            rt.block_on(async {
                stream.write_u8(b'P').await.expect("op");
                stream.write_u32(RECORD_BYTES as u32).await.expect("len");
                stream.write_all(&data).await.expect("body");
                let mut ack = [0u8; 1];
                stream.read_exact(&mut ack).await.expect("ack");
            })
        })
    });
    let mut buf = vec![0u8; RECORD_BYTES];
    group.bench_function("plain_tcp_get", |b| {
        b.iter(|| {
            rt.block_on(async {
                stream.write_u8(b'G').await.expect("op");
                stream.read_exact(&mut buf).await.expect("blob");
            })
        })
    });

    floor(&rt, &mut group, &data);

    for fsync in [FsyncPolicy::Always, FsyncPolicy::Never] {
        let config = LocalClusterConfig {
            fsync,
            ..LocalClusterConfig::default()
        };
        let local = rt.block_on(LocalCluster::start(config)).expect("cluster");
        let mut client = Client::new(local.gateway_addr());
        let name = format!("ddsplit_put_fsync_{fsync:?}").to_lowercase();
        let mut ids = Vec::new();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        ids.push(client.put(data.clone()).await.expect("put"));
                    }
                    start.elapsed()
                })
            })
        });
        if fsync == FsyncPolicy::Never {
            let id = ids[0];
            group.bench_function("ddsplit_get", |b| {
                b.iter(|| rt.block_on(async { client.get(id).await.expect("get") }))
            });
        }
        rt.block_on(local.shutdown()).expect("shutdown");
    }
    group.finish();
}

/// The floor's put and get, shaped like the local cluster's default split and quorum.
fn floor(
    rt: &tokio::runtime::Runtime,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    data: &bytes::Bytes,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = ddsplit::codec::CodecParams::default();
    let shape = FloorShape {
        k: params.k() as usize,
        m: params.m() as usize,
        quorum: ddsplit::gateway::write_quorum_default(params),
    };
    let floor = rt.block_on(Floor::start(shape, dir.path())).expect("floor");
    let mut client = rt.block_on(floor.client()).expect("floor client");
    group.bench_function("floor_put", |b| {
        b.iter(|| rt.block_on(client.put(data)).expect("floor put"))
    });
    let mut back = Vec::new();
    group.bench_function("floor_get", |b| {
        b.iter(|| rt.block_on(client.get(&mut back)).expect("floor get"))
    });
}

criterion_group!(benches, cluster);
criterion_main!(benches);

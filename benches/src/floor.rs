//! The floor of a cluster put and get: the bytes an erasure-coded store must move, moved with
//! nothing else. A put sends the record to a middle peer (the gateway's place), which sends one
//! k-th of it to each of k + m peers over TCP; each peer appends its share to a file (no fsync)
//! and answers one byte; the put ends after `quorum` answers. A get asks k peers for their
//! share, each reads it back from its file, and the middle sends the k shares on to the client.
//!
//! No splitting, parity, checksums, framing, index or task probes: what DDSplit does above this
//! floor is its own cost, and the cluster bench shows it as the ratio to this.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

const PUT: u8 = b'P';
const GET: u8 = b'G';

/// The shape of the floor: shares per record and how many answers end a put.
#[derive(Clone, Copy, Debug)]
pub struct FloorShape {
    /// Data shares per record (DDSplit's k).
    pub k: usize,
    /// Extra shares per record (m): written, never read back.
    pub m: usize,
    /// Share writes answered before a put is (DDSplit's write quorum).
    pub quorum: usize,
}

/// A running floor cluster: k + m share peers and a middle peer, on loopback.
#[derive(Debug)]
pub struct Floor {
    middle: SocketAddr,
}

impl Floor {
    /// Starts the peers; their files go in `dir`.
    pub async fn start(shape: FloorShape, dir: &std::path::Path) -> anyhow::Result<Floor> {
        let mut peers = Vec::new();
        for i in 0..shape.k + shape.m {
            let file = File::create_new(dir.join(format!("share-{i}")))?;
            peers.push(share_peer(file).await?);
        }
        let middle = middle_peer(shape, peers).await?;
        Ok(Floor { middle })
    }

    /// A client connection to the middle peer.
    pub async fn client(&self) -> anyhow::Result<FloorClient> {
        let stream = TcpStream::connect(self.middle).await?;
        stream.set_nodelay(true)?;
        Ok(FloorClient { stream })
    }
}

/// One client connection of a floor cluster.
#[derive(Debug)]
pub struct FloorClient {
    stream: TcpStream,
}

impl FloorClient {
    /// Sends `record` to be stored; returns once the quorum of share writes answered.
    pub async fn put(&mut self, record: &Bytes) -> anyhow::Result<()> {
        self.stream.write_u8(PUT).await?;
        self.stream.write_u32(record.len() as u32).await?;
        self.stream.write_all(record).await?;
        self.stream.read_u8().await?;
        Ok(())
    }

    /// Reads the last stored record back into `out`.
    pub async fn get(&mut self, out: &mut Vec<u8>) -> anyhow::Result<()> {
        self.stream.write_u8(GET).await?;
        let len = self.stream.read_u32().await? as usize;
        out.resize(len, 0); // zeroed only when it grows: the bench reuses one buffer
        self.stream.read_exact(out).await?;
        Ok(())
    }
}

/// A share peer: `P` + length + bytes is appended to its file and answered with one byte; `G`
/// is answered with the last share written, read back from the file.
async fn share_peer(file: File) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let file = Arc::new(file);
    let end = Arc::new(AtomicU64::new(0));
    let last = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (file, end, last) = (Arc::clone(&file), Arc::clone(&end), Arc::clone(&last));
            tokio::spawn(async move {
                let _ = serve_shares(stream, &file, &end, &last).await;
            });
        }
    });
    Ok(addr)
}

async fn serve_shares(
    mut stream: TcpStream,
    file: &Arc<File>,
    end: &AtomicU64,
    last: &AtomicU64,
) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    // Reused from one read back to the next: neither allocated nor zeroed again.
    let mut readback = Vec::new();
    loop {
        let op = stream.read_u8().await?;
        let len = stream.read_u32().await? as usize;
        if op == PUT {
            let share = read_bytes(&mut stream, len).await?;
            let at = end.fetch_add(len as u64, Ordering::Relaxed);
            let file = Arc::clone(file);
            tokio::task::spawn_blocking(move || file.write_all_at(&share, at)).await??;
            last.store(at, Ordering::Relaxed);
            stream.write_u8(1).await?;
        } else {
            let (file, at) = (Arc::clone(file), last.load(Ordering::Relaxed));
            let mut bytes = std::mem::take(&mut readback);
            readback = tokio::task::spawn_blocking(move || {
                bytes.resize(len, 0);
                file.read_exact_at(&mut bytes, at).map(|()| bytes)
            })
            .await??;
            stream.write_all(&readback).await?;
        }
    }
}

/// `len` bytes from `stream`, read into a buffer that is not zeroed first.
async fn read_bytes(stream: &mut TcpStream, len: usize) -> anyhow::Result<Bytes> {
    let mut bytes = BytesMut::with_capacity(len);
    let mut rest = (&mut *stream).take(len as u64);
    while bytes.len() < len {
        if rest.read_buf(&mut bytes).await? == 0 {
            anyhow::bail!("the peer closed the connection mid-message");
        }
    }
    Ok(bytes.freeze())
}

/// The middle peer: one connection to each share peer per client connection.
async fn middle_peer(shape: FloorShape, peers: Vec<SocketAddr>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let peers = peers.clone();
            tokio::spawn(async move {
                let _ = serve_records(shape, stream, &peers).await;
            });
        }
    });
    Ok(addr)
}

async fn serve_records(
    shape: FloorShape,
    mut client: TcpStream,
    peers: &[SocketAddr],
) -> anyhow::Result<()> {
    client.set_nodelay(true)?;
    let mut conns = Vec::new();
    for peer in peers {
        let stream = TcpStream::connect(peer).await?;
        stream.set_nodelay(true)?;
        conns.push(Arc::new(Mutex::new(stream)));
    }
    let mut record_len = 0;
    loop {
        if client.read_u8().await? == PUT {
            record_len = client.read_u32().await? as usize;
            let record = read_bytes(&mut client, record_len).await?;
            put_shares(shape, &conns, &record).await?;
            client.write_u8(1).await?;
        } else {
            let shares = get_shares(shape, &conns, record_len).await?;
            client.write_u32(record_len as u32).await?;
            for share in &shares {
                client.write_all(share).await?;
            }
        }
    }
}

/// Writes one share of `record` to each peer (the extra m shares are copies of the first:
/// their bytes, not their contents, are what costs); waits for the quorum.
async fn put_shares(
    shape: FloorShape,
    conns: &[Arc<Mutex<TcpStream>>],
    record: &Bytes,
) -> anyhow::Result<()> {
    let share_len = record.len().div_ceil(shape.k);
    let mut writes: FuturesUnordered<_> = conns
        .iter()
        .enumerate()
        .map(|(i, conn)| {
            let start = (i % shape.k * share_len).min(record.len());
            let share = record.slice(start..(start + share_len).min(record.len()));
            let conn = Arc::clone(conn);
            async move {
                let mut stream = conn.lock_owned().await;
                stream.write_u8(PUT).await?;
                stream.write_u32(share.len() as u32).await?;
                stream.write_all(&share).await?;
                stream.read_u8().await?;
                anyhow::Ok(())
            }
        })
        .collect();
    let mut answered = 0;
    while let Some(write) = writes.next().await {
        write?;
        answered += 1;
        if answered == shape.quorum {
            break;
        }
    }
    // The writes past the quorum finish on their own, as DDSplit's do.
    tokio::spawn(async move { while writes.next().await.is_some() {} });
    Ok(())
}

/// The k data shares of the last record, read back from their peers concurrently.
async fn get_shares(
    shape: FloorShape,
    conns: &[Arc<Mutex<TcpStream>>],
    record_len: usize,
) -> anyhow::Result<Vec<Bytes>> {
    let share_len = record_len.div_ceil(shape.k);
    let reads = conns[..shape.k].iter().enumerate().map(|(i, conn)| {
        let len = share_len.min(record_len.saturating_sub(i * share_len));
        async move {
            let mut stream = conn.lock().await;
            stream.write_u8(GET).await?;
            stream.write_u32(len as u32).await?;
            read_bytes(&mut stream, len).await
        }
    });
    futures::future::try_join_all(reads).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_put_on_the_floor_reads_back_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let shape = FloorShape {
            k: 4,
            m: 2,
            quorum: 6,
        };
        let floor = Floor::start(shape, dir.path()).await.expect("floor");
        let mut client = floor.client().await.expect("client");
        for len in [1, 1000, 100_003] {
            let record = crate::record(len);
            client.put(&record).await.expect("put");
            let mut back = Vec::new();
            client.get(&mut back).await.expect("get");
            assert_eq!(back, record, "{len} bytes");
        }
        let written: u64 = (0..6)
            .map(|i| {
                std::fs::metadata(dir.path().join(format!("share-{i}")))
                    .expect("share")
                    .len()
            })
            .sum();
        let shares = |len: usize| (len.div_ceil(4) * 6) as u64;
        assert!(
            written >= shares(100_003) + shares(1000),
            "{written} bytes on disk"
        );
    }
}

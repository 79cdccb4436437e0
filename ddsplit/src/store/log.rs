//! The node's append-only fragment log: durable appends (group commit under one fsync), an
//! in-memory index rebuilt by scanning the log at start, and recovery that skips damaged entries
//! and cuts off a torn tail instead of refusing to start.
//!
//! ```text
//! entry := magic "DDLE" | kind: u8 | 0u8 x3 | body_len: u32 LE | crc32c: u32 LE | body
//! ```
//! The checksum covers kind, padding, length and body. A put's body is the encoded fragment
//! (header and payload), a delete's body the 16-byte record id.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::codec::{Fragment, FragmentHeader};
use crate::error::{DistriErr, SuccessCode};
use crate::id::RecordId;
use crate::limits::{FRAGMENT_HEADER_LEN, FRAGMENT_PAYLOAD_MAX, LOG_BATCH_MAX, LOG_QUEUE_MAX};
use crate::wire::FragmentKey;

/// File name of the log inside a node's data directory.
pub const LOG_FILE_NAME: &str = "fragments.log";

const ENTRY_MAGIC: [u8; 4] = *b"DDLE";
const ENTRY_HEADER_LEN: usize = 16;
/// Largest entry body: the largest fragment.
const ENTRY_BODY_MAX: usize = FRAGMENT_HEADER_LEN + FRAGMENT_PAYLOAD_MAX;
const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;
/// Bytes read at a time while looking for the next intact entry after damage.
const RESYNC_CHUNK: usize = 64 * 1024;

/// When the log is flushed to stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// fsync before acknowledging every write (appends arriving together share one fsync).
    #[default]
    Always,
    /// Never fsync: the OS writes back when it likes. Survives a process crash, not a power loss.
    Never,
}

/// What the start-up scan found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// Intact entries read.
    pub entries: u64,
    /// Damaged regions skipped in the middle of the log.
    pub damaged_regions: u64,
    /// Bytes in those regions.
    pub damaged_bytes: u64,
    /// Bytes cut off a torn or corrupt tail.
    pub truncated_bytes: u64,
}

/// Counters of a log, for stats.
#[derive(Clone, Debug, Serialize)]
pub struct LogStats {
    pub fragments: u64,
    pub fragment_bytes: u64,
    pub log_bytes: u64,
    pub appends_total: u64,
    pub fsyncs_total: u64,
    pub recovery: RecoveryReport,
    pub fsync: FsyncPolicy,
}

#[derive(Clone, Copy, Debug)]
struct Location {
    /// Offset of the entry's body (the encoded fragment) in the file.
    offset: u64,
    len: u32,
}

type Index = BTreeMap<FragmentKey, Location>;

enum Entry {
    Put(Fragment),
    Delete(RecordId),
}

struct Append {
    entry: Entry,
    done: oneshot::Sender<io::Result<SuccessCode>>,
}

struct Shared {
    file: File,
    index: RwLock<Index>,
    log_bytes: AtomicU64,
    appends_total: AtomicU64,
    fsyncs_total: AtomicU64,
    recovery: RecoveryReport,
    policy: FsyncPolicy,
    path: PathBuf,
}

/// A node's fragment log. Cheap to clone; the writer thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct FragmentLog {
    shared: Arc<Shared>,
    appends: mpsc::Sender<Append>,
}

impl std::fmt::Debug for FragmentLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FragmentLog")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl FragmentLog {
    /// Opens (or creates) the log in `dir`, recovers its index, and starts the writer thread.
    /// The directory and file are created owner-only.
    pub fn open(dir: &Path, policy: FsyncPolicy) -> io::Result<FragmentLog> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let path = dir.join(LOG_FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)?;
        // A log that existed before (copied in, restored from a backup) keeps the mode it came
        // with: make it owner-only too, since it holds every fragment the node stores.
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "fragment log was readable by others; made owner-only");
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        let (index, end, recovery) = recover(&file)?;
        if recovery.damaged_regions > 0 || recovery.truncated_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                damaged_regions = recovery.damaged_regions,
                damaged_bytes = recovery.damaged_bytes,
                truncated_bytes = recovery.truncated_bytes,
                "fragment log was damaged; skipped what failed its checksum"
            );
        }
        tracing::info!(path = %path.display(), entries = recovery.entries, fragments = index.len(), "fragment log opened");
        let shared = Arc::new(Shared {
            file,
            index: RwLock::new(index),
            log_bytes: AtomicU64::new(end),
            appends_total: AtomicU64::new(0),
            fsyncs_total: AtomicU64::new(0),
            recovery,
            policy,
            path,
        });
        let (appends, queue) = mpsc::channel(LOG_QUEUE_MAX);
        let writer_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("ddsplit-log-writer".into())
            .spawn(move || write_loop(&writer_shared, queue))?;
        Ok(FragmentLog { shared, appends })
    }

    /// Appends a fragment; returns once it is written (and fsync'd, under [`FsyncPolicy::Always`]).
    pub async fn put(&self, fragment: Fragment) -> Result<SuccessCode, DistriErr> {
        self.append(Entry::Put(fragment)).await
    }

    /// Appends a delete of every fragment of `id`; returns how many were deleted.
    pub async fn delete(&self, id: RecordId) -> Result<SuccessCode, DistriErr> {
        self.append(Entry::Delete(id)).await
    }

    /// Reads a fragment, verifying its checksum.
    pub async fn get(&self, key: FragmentKey) -> Result<Fragment, DistriErr> {
        let location = self
            .shared
            .index
            .read()
            .expect("index lock is never poisoned: no code panics while holding it")
            .get(&key)
            .copied()
            .ok_or(DistriErr::FragmentNotFound {
                id: key.id,
                index: key.index,
            })?;
        let shared = Arc::clone(&self.shared);
        // The buffer is allocated here, on the runtime thread, not on the blocking-pool thread:
        // glibc gives each thread its arena, and a buffer freed by a runtime thread into a
        // blocking thread's arena waits for that arena's lock (the blocking profile showed
        // `node.get` blocked in `_int_free` and `malloc` on the arena lock).
        // Not zeroed: the read fills it (zeroing was a memset as long as every read).
        let mut buf = Vec::with_capacity(location.len as usize);
        let bytes = tokio::task::spawn_blocking(move || {
            positioned::read_exact_at(
                &shared.file,
                &mut buf,
                location.len as usize,
                location.offset,
            )
            .map(|()| buf)
        })
        .await
        .map_err(|e| DistriErr::io("fragment read task", io::Error::other(e)))?
        .map_err(|e| DistriErr::io("reading fragment from log", e))?;
        // Verified in place: an error's excerpt borrows the buffer, and the fragment takes it.
        match Fragment::verify(&bytes) {
            Ok(header) if header.record_id == key.id && header.index == key.index => {
                Ok(Fragment::verified(header, Bytes::from(bytes)))
            }
            Ok(_) => Err(DistriErr::corrupt(
                key.id,
                key.index,
                "log entry holds another fragment".into(),
                &bytes,
            )),
            Err(e) => Err(DistriErr::corrupt(key.id, key.index, e.to_string(), &bytes)),
        }
    }

    /// Keys after `after` (exclusive), in order, at most `limit`.
    pub fn list(&self, after: Option<FragmentKey>, limit: usize) -> Vec<FragmentKey> {
        let index = self
            .shared
            .index
            .read()
            .expect("index lock is never poisoned");
        let range = match after {
            Some(key) => index.range((std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded)),
            None => index.range(..),
        };
        range.take(limit).map(|(k, _)| *k).collect()
    }

    /// Current counters.
    pub fn stats(&self) -> LogStats {
        let index = self
            .shared
            .index
            .read()
            .expect("index lock is never poisoned");
        LogStats {
            fragments: index.len() as u64,
            fragment_bytes: index.values().map(|l| l.len as u64).sum(),
            log_bytes: self.shared.log_bytes.load(Ordering::Relaxed),
            appends_total: self.shared.appends_total.load(Ordering::Relaxed),
            fsyncs_total: self.shared.fsyncs_total.load(Ordering::Relaxed),
            recovery: self.shared.recovery.clone(),
            fsync: self.shared.policy,
        }
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    async fn append(&self, entry: Entry) -> Result<SuccessCode, DistriErr> {
        let (done, result) = oneshot::channel();
        self.appends
            .send(Append { entry, done })
            .await
            .map_err(|_| DistriErr::ShuttingDown)?;
        result
            .await
            .map_err(|_| DistriErr::ShuttingDown)?
            .map_err(|e| DistriErr::io("appending to fragment log", e))
    }
}

/// Appends the head of `entry` to `heads`: the entry header, and the fragment header or the
/// record id. A put's payload follows it in the file straight from the fragment's buffer
/// ([`entry_slices`]); the checksum covers it all the same.
fn encode_entry_head(entry: &Entry, heads: &mut Vec<u8>) {
    let kind = match entry {
        Entry::Put(_) => KIND_PUT,
        Entry::Delete(_) => KIND_DELETE,
    };
    let body_len = entry_len(entry) as usize - ENTRY_HEADER_LEN;
    let start = heads.len();
    heads.extend_from_slice(&ENTRY_MAGIC);
    heads.extend_from_slice(&[kind, 0, 0, 0]);
    heads.extend_from_slice(&(body_len as u32).to_le_bytes());
    heads.extend_from_slice(&[0; 4]); // checksum, below
    let payload: &[u8] = match entry {
        Entry::Put(fragment) => {
            heads.extend_from_slice(&fragment.header().to_bytes());
            fragment.payload()
        }
        Entry::Delete(id) => {
            heads.extend_from_slice(&id.to_bytes());
            &[]
        }
    };
    let head_body = entry_checksum(
        &heads[start + 4..start + 12],
        &heads[start + ENTRY_HEADER_LEN..],
    );
    let crc = crc32c::crc32c_append(head_body, payload);
    heads[start + 12..start + 16].copy_from_slice(&crc.to_le_bytes());
}

/// Bytes of `entry` in the file.
fn entry_len(entry: &Entry) -> u64 {
    let body = match entry {
        Entry::Put(fragment) => fragment.encoded_len(),
        Entry::Delete(_) => 16,
    };
    (ENTRY_HEADER_LEN + body) as u64
}

/// Buffers of one batch's vectored write: a head and a payload per entry. On the writer
/// thread's stack, so a batch allocates no list of them.
const BATCH_SLICES_MAX: usize = 2 * LOG_BATCH_MAX;

/// Fills `out` with the batch's entries as the buffers of one vectored write: each entry's head
/// (its range of `heads`, in order, ending at `head_ends`) and then its payload; returns how
/// many buffers it filled.
fn entry_slices<'a>(
    batch: &'a [Append],
    heads: &'a [u8],
    head_ends: &[usize],
    out: &mut [IoSlice<'a>; BATCH_SLICES_MAX],
) -> usize {
    let (mut filled, mut head_start) = (0, 0);
    for (append, &head_end) in batch.iter().zip(head_ends) {
        out[filled] = IoSlice::new(&heads[head_start..head_end]);
        filled += 1;
        if let Entry::Put(fragment) = &append.entry {
            out[filled] = IoSlice::new(fragment.payload());
            filled += 1;
        }
        head_start = head_end;
    }
    filled
}

fn entry_checksum(kind_and_len: &[u8], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(kind_and_len), body)
}

/// The writer thread: takes appends in batches, writes them with one write and one fsync, then
/// updates the index and acknowledges. Index updates happen before acknowledgements, so a read
/// after an acknowledged put always finds it.
fn write_loop(shared: &Shared, mut queue: mpsc::Receiver<Append>) {
    // Reused from batch to batch, so an append allocates nothing here.
    let mut heads = Vec::new();
    let mut batch = Vec::with_capacity(LOG_BATCH_MAX);
    let mut offsets = Vec::with_capacity(LOG_BATCH_MAX);
    let mut head_ends = Vec::with_capacity(LOG_BATCH_MAX);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < LOG_BATCH_MAX {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        heads.clear();
        head_ends.clear();
        offsets.clear();
        let start = shared.log_bytes.load(Ordering::Relaxed);
        let mut end = start;
        for append in &batch {
            offsets.push(end + ENTRY_HEADER_LEN as u64);
            end += entry_len(&append.entry);
            encode_entry_head(&append.entry, &mut heads);
            head_ends.push(heads.len());
        }
        let mut slices = [IoSlice::new(&[]); BATCH_SLICES_MAX];
        let filled = entry_slices(&batch, &heads, &head_ends, &mut slices);
        let written = write_and_sync(shared, start, &mut slices[..filled]);
        match written {
            Ok(()) => {
                shared.log_bytes.store(end, Ordering::Relaxed);
                shared
                    .appends_total
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                let mut index = shared.index.write().expect("index lock is never poisoned");
                for (append, offset) in batch.drain(..).zip(offsets.drain(..)) {
                    let result = apply(&mut index, &append.entry, offset);
                    let _ = append.done.send(Ok(result));
                }
            }
            Err(e) => {
                // Put the file back to its last good length so the log stays a sequence of
                // whole entries; if that fails too, the next start cuts the tail.
                let _ = shared.file.set_len(start);
                tracing::error!(error = %e, path = %shared.path.display(), "fragment log append failed");
                for append in batch.drain(..) {
                    let _ = append
                        .done
                        .send(Err(io::Error::new(e.kind(), e.to_string())));
                }
            }
        }
    }
}

fn write_and_sync(shared: &Shared, at: u64, slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    positioned::write_all_at(&shared.file, slices, at)?;
    if shared.policy == FsyncPolicy::Always {
        shared.file.sync_data()?;
        shared.fsyncs_total.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

fn apply(index: &mut Index, entry: &Entry, body_offset: u64) -> SuccessCode {
    match entry {
        Entry::Put(fragment) => {
            let header = fragment.header();
            let key = FragmentKey {
                id: header.record_id,
                index: header.index,
            };
            index.insert(
                key,
                Location {
                    offset: body_offset,
                    len: fragment.encoded_len() as u32,
                },
            );
            SuccessCode::Stored
        }
        Entry::Delete(id) => SuccessCode::Deleted {
            fragments: remove_record(index, *id),
        },
    }
}

fn remove_record(index: &mut Index, id: RecordId) -> u32 {
    let keys: Vec<FragmentKey> = index
        .range(FragmentKey { id, index: 0 }..=FragmentKey { id, index: u8::MAX })
        .map(|(k, _)| *k)
        .collect();
    for key in &keys {
        index.remove(key);
    }
    keys.len() as u32
}

/// An entry read back from the log.
struct ScannedEntry {
    kind: u8,
    body_len: u32,
    key: FragmentKey,
}

/// Reads and checks the entry at `offset`; `None` if it is not a whole, intact entry.
fn read_entry(file: &File, offset: u64, file_len: u64) -> Option<ScannedEntry> {
    if offset + ENTRY_HEADER_LEN as u64 > file_len {
        return None;
    }
    let mut header = [0u8; ENTRY_HEADER_LEN];
    file.read_exact_at(&mut header, offset).ok()?;
    if header[0..4] != ENTRY_MAGIC {
        return None;
    }
    let kind = header[4];
    let body_len = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    let stored_crc = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
    let body_ok = match kind {
        KIND_PUT => (FRAGMENT_HEADER_LEN..=ENTRY_BODY_MAX).contains(&(body_len as usize)),
        KIND_DELETE => body_len == 16,
        _ => false,
    };
    if !body_ok || offset + (ENTRY_HEADER_LEN as u64) + body_len as u64 > file_len {
        return None;
    }
    let mut body = vec![0u8; body_len as usize];
    file.read_exact_at(&mut body, offset + ENTRY_HEADER_LEN as u64)
        .ok()?;
    if entry_checksum(&header[4..12], &body) != stored_crc {
        return None;
    }
    let key = if kind == KIND_PUT {
        let fragment = FragmentHeader::parse(&body).ok()?;
        FragmentKey {
            id: fragment.record_id,
            index: fragment.index,
        }
    } else {
        FragmentKey {
            id: RecordId::from_bytes(body[..16].try_into().expect("16 bytes")),
            index: 0,
        }
    };
    Some(ScannedEntry {
        kind,
        body_len,
        key,
    })
}

/// Offset of the next intact entry at or after `from`, if any.
fn find_next_entry(file: &File, from: u64, file_len: u64) -> Option<u64> {
    let mut chunk = vec![0u8; RESYNC_CHUNK + ENTRY_MAGIC.len()];
    let mut at = from;
    while at < file_len {
        let n = ((file_len - at) as usize).min(chunk.len());
        file.read_exact_at(&mut chunk[..n], at).ok()?;
        for i in 0..n.saturating_sub(ENTRY_MAGIC.len() - 1) {
            if chunk[i..i + 4] == ENTRY_MAGIC && read_entry(file, at + i as u64, file_len).is_some()
            {
                return Some(at + i as u64);
            }
        }
        at += RESYNC_CHUNK as u64;
    }
    None
}

/// Scans the whole log, builds the index, and cuts off a damaged tail.
fn recover(file: &File) -> io::Result<(Index, u64, RecoveryReport)> {
    let file_len = file.metadata()?.len();
    let mut index = Index::new();
    let mut report = RecoveryReport::default();
    let mut offset = 0u64;
    while offset < file_len {
        match read_entry(file, offset, file_len) {
            Some(entry) => {
                let body_offset = offset + ENTRY_HEADER_LEN as u64;
                if entry.kind == KIND_PUT {
                    index.insert(
                        entry.key,
                        Location {
                            offset: body_offset,
                            len: entry.body_len,
                        },
                    );
                } else {
                    remove_record(&mut index, entry.key.id);
                }
                report.entries += 1;
                offset = body_offset + entry.body_len as u64;
            }
            None => match find_next_entry(file, offset + 1, file_len) {
                Some(next) => {
                    report.damaged_regions += 1;
                    report.damaged_bytes += next - offset;
                    offset = next;
                }
                None => {
                    report.truncated_bytes = file_len - offset;
                    file.set_len(offset)?;
                    file.sync_all()?;
                    return Ok((index, offset, report));
                }
            },
        }
    }
    Ok((index, offset, report))
}

mod positioned;

#[cfg(test)]
mod tests;

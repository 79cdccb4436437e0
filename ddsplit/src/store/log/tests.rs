//! Log tests: durability across reopen, recovery from torn tails and damaged entries.

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::codec::{CodecParams, split};

fn fragments(id: u128, len: usize) -> Vec<Fragment> {
    let data: Bytes = (0..len)
        .map(|i| (i * 7 + id as usize) as u8)
        .collect::<Vec<_>>()
        .into();
    split(RecordId(id), &data, CodecParams::default()).unwrap()
}

fn key(id: u128, index: u8) -> FragmentKey {
    FragmentKey {
        id: RecordId(id),
        index,
    }
}

async fn put_all(log: &FragmentLog, fragments: &[Fragment]) {
    for f in fragments {
        assert_eq!(log.put(f.clone()).await.unwrap(), SuccessCode::Stored);
    }
}

#[tokio::test]
async fn fragments_survive_reopen_and_deletes_stay_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (fragments(1, 1000), fragments(2, 3000));
    {
        let log = FragmentLog::open(dir.path(), FsyncPolicy::Always).unwrap();
        put_all(&log, &a).await;
        put_all(&log, &b).await;
        assert_eq!(
            log.delete(RecordId(1)).await.unwrap(),
            SuccessCode::Deleted { fragments: 6 }
        );
        assert_eq!(log.get(key(2, 5)).await.unwrap(), b[5]);
    }
    let log = FragmentLog::open(dir.path(), FsyncPolicy::Always).unwrap();
    let stats = log.stats();
    assert_eq!((stats.fragments, stats.recovery.entries), (6, 13));
    assert_eq!(stats.recovery.truncated_bytes, 0);
    for (i, f) in b.iter().enumerate() {
        assert_eq!(&log.get(key(2, i as u8)).await.unwrap(), f);
    }
    assert!(matches!(
        log.get(key(1, 0)).await,
        Err(DistriErr::FragmentNotFound { .. })
    ));
    assert_eq!(log.list(None, 100).len(), 6);
    assert_eq!(log.list(Some(key(2, 3)), 100), vec![key(2, 4), key(2, 5)]);
    let mode = std::fs::metadata(log.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "log file must be owner-only");
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_everything_before_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let a = fragments(1, 5000);
    let full_len = {
        let log = FragmentLog::open(dir.path(), FsyncPolicy::Always).unwrap();
        put_all(&log, &a).await;
        log.stats().log_bytes
    };
    let path = dir.path().join(LOG_FILE_NAME);
    // Tear the last entry: keep all but its last 100 bytes.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(full_len - 100).unwrap();
    drop(file);
    let log = FragmentLog::open(dir.path(), FsyncPolicy::Always).unwrap();
    let stats = log.stats();
    assert_eq!(stats.fragments, 5);
    let last_entry_len = (ENTRY_HEADER_LEN + a[5].encoded_len()) as u64;
    assert_eq!(stats.recovery.truncated_bytes, last_entry_len - 100);
    assert_eq!(stats.log_bytes, full_len - last_entry_len);
    for (i, f) in a[..5].iter().enumerate() {
        assert_eq!(&log.get(key(1, i as u8)).await.unwrap(), f);
    }
    // The log takes appends again after the cut, and they survive another reopen.
    log.put(a[5].clone()).await.unwrap();
    drop(log);
    let log = FragmentLog::open(dir.path(), FsyncPolicy::Always).unwrap();
    assert_eq!(log.stats().fragments, 6);
    assert_eq!(log.get(key(1, 5)).await.unwrap(), a[5]);
}

#[tokio::test]
async fn a_damaged_entry_in_the_middle_is_skipped_and_later_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (fragments(1, 2000), fragments(2, 2000));
    {
        let log = FragmentLog::open(dir.path(), FsyncPolicy::Never).unwrap();
        put_all(&log, &a).await;
        put_all(&log, &b).await;
    }
    let path = dir.path().join(LOG_FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip a byte in the payload of record 1's fragment 2 (the third entry).
    let entry_len = ENTRY_HEADER_LEN + a[0].encoded_len();
    bytes[2 * entry_len + ENTRY_HEADER_LEN + FRAGMENT_HEADER_LEN + 10] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let log = FragmentLog::open(dir.path(), FsyncPolicy::Never).unwrap();
    let stats = log.stats();
    assert_eq!(stats.recovery.damaged_regions, 1);
    assert_eq!(stats.recovery.damaged_bytes, entry_len as u64);
    assert_eq!(stats.fragments, 11);
    assert!(matches!(
        log.get(key(1, 2)).await,
        Err(DistriErr::FragmentNotFound { .. })
    ));
    for (i, f) in b.iter().enumerate() {
        assert_eq!(&log.get(key(2, i as u8)).await.unwrap(), f);
    }
}

#[tokio::test]
async fn bit_rot_after_start_is_reported_as_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let a = fragments(3, 500);
    let log = FragmentLog::open(dir.path(), FsyncPolicy::Never).unwrap();
    put_all(&log, &a[..1]).await;
    let path = dir.path().join(LOG_FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = log.get(key(3, 0)).await.unwrap_err();
    assert!(matches!(err, DistriErr::Corrupt(_)), "{err}");
}

#[tokio::test]
async fn garbage_file_recovers_to_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(LOG_FILE_NAME),
        b"DDLE this is not a log at all DDLE",
    )
    .unwrap();
    let log = FragmentLog::open(dir.path(), FsyncPolicy::Never).unwrap();
    let stats = log.stats();
    assert_eq!(
        (
            stats.fragments,
            stats.log_bytes,
            stats.recovery.truncated_bytes
        ),
        (0, 0, 34)
    );
}

//! Fuzz target: arbitrary bytes as a node's log file. The log must open (recovery never refuses
//! a damaged log), account for every byte, serve only verified fragments, and take appends.
#![no_main]

use std::sync::OnceLock;

use ddsplit::store::log::{FragmentLog, FsyncPolicy, LOG_FILE_NAME};
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime starts")
    })
}

fuzz_target!(|data: &[u8]| {
    // Memory-backed when there is one: the target is about recovery, not the disk.
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    let dir = tempfile::tempdir_in(base).expect("a temporary directory");
    std::fs::write(dir.path().join(LOG_FILE_NAME), data).expect("write the log");
    let log = FragmentLog::open(dir.path(), FsyncPolicy::Never).expect("a damaged log still opens");
    let stats = log.stats();
    assert_eq!(
        stats.log_bytes + stats.recovery.truncated_bytes,
        data.len() as u64
    );
    for key in log.list(None, usize::MAX) {
        // Recovered entries passed their checksum: each reads back as its own fragment.
        let fragment = runtime()
            .block_on(log.get(key))
            .expect("a recovered fragment reads");
        assert_eq!(fragment.header().record_id, key.id);
        assert_eq!(fragment.header().index, key.index);
    }
});

//! The system call counter (`diag-syscount`) preloaded into a fixture whose calls are known.

use std::process::Command;

use diag::snapshot::{COUNTER_SYSCOUNT, SyscallFigures};

use crate::support::{FIXTURE_RUN_TIMEOUT, fixture, output_within, syscount, temp_dir};

#[test]
fn every_call_of_the_fixture_is_counted_with_its_errors_and_its_eventfd_apart() {
    let dir = temp_dir();
    let out = dir.path().join("counts.%p.txt");
    let output = output_within(
        Command::new(fixture("io-calls"))
            .arg(dir.path().join("data"))
            .env("LD_PRELOAD", syscount())
            .env("DIAG_SYSCALLS_OUT", &out),
        FIXTURE_RUN_TIMEOUT,
        "io-calls under the counter",
    );
    assert!(output.status.success(), "{output:?}");
    let written: Vec<_> = std::fs::read_dir(dir.path())
        .expect("the directory lists")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.to_string_lossy().contains("counts."))
        .collect();
    assert_eq!(written.len(), 1, "one count file, named by the process id");
    let text = std::fs::read_to_string(&written[0]).expect("the counts read");
    let figures = SyscallFigures::from_syscount(&text, 1).expect("counts");
    assert_eq!(figures.counter, COUNTER_SYSCOUNT);
    let calls = |name: &str| figures.calls.get(name).copied().unwrap_or(0);
    let errors = |name: &str| figures.errors.get(name).copied().unwrap_or(0);
    assert_eq!(calls("write"), 100, "{text}");
    assert_eq!(calls("fsync"), 1, "{text}");
    assert_eq!(calls("pread64"), 50, "{text}");
    assert_eq!((calls("read"), errors("read")), (1, 1), "{text}");
    assert_eq!(calls("eventfd2"), 1, "{text}");
    assert_eq!(calls("write (eventfd)"), 3, "{text}");
    assert_eq!(calls("close (eventfd)"), 1, "{text}");
    assert!(calls("openat") >= 1 && calls("close") >= 1, "{text}");
}

//! The system call counter (`diag-syscount`) preloaded into a fixture whose calls are known.

use std::process::Command;

use diag::snapshot::{
    COUNTER_SYSCOUNT, SampledStacks, SyscallFigures, TCP_WRITES_NAGLE, TCP_WRITES_NODELAY,
};

use crate::support::{FIXTURE_RUN_TIMEOUT, fixture, output_within, syscount, temp_dir};

#[test]
fn every_call_of_the_fixture_is_counted_with_its_errors_its_eventfd_and_tcp_writes_apart_and_its_site()
 {
    let dir = temp_dir();
    let out = dir.path().join("counts.%p.txt");
    let output = output_within(
        Command::new(fixture("io-calls"))
            .arg(dir.path().join("data"))
            .env("LD_PRELOAD", syscount())
            .env("DIAG_SYSCALLS_OUT", &out)
            .env("DIAG_SYSCALLS_SAMPLE_EVERY", "1"),
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
    let mut figures = SyscallFigures::from_syscount(&text, 1).expect("counts");
    assert_eq!(figures.counter, COUNTER_SYSCOUNT);
    let calls = |name: &str| figures.calls.get(name).copied().unwrap_or(0);
    let errors = |name: &str| figures.errors.get(name).copied().unwrap_or(0);
    assert_eq!(calls("write"), 100, "{text}");
    assert_eq!(calls("fsync"), 1, "{text}");
    let fsync_wall = figures.wall_ns.get("fsync").copied().unwrap_or(0);
    assert!(fsync_wall > 0 && figures.wall_ns.len() == 1, "{text}");
    assert_eq!(calls("pread64"), 50, "{text}");
    assert_eq!((calls("read"), errors("read")), (1, 1), "{text}");
    assert_eq!(calls("eventfd2"), 1, "{text}");
    assert_eq!(calls("write (eventfd)"), 3, "{text}");
    assert_eq!(calls("close (eventfd)"), 1, "{text}");
    assert!(calls("openat") >= 1 && calls("close") >= 1, "{text}");
    assert_eq!(calls("sendto"), 18, "{text}");
    assert_eq!(calls(TCP_WRITES_NAGLE), 10, "{text}");
    assert_eq!(calls(TCP_WRITES_NODELAY), 8, "{text}");

    // Every call's stack was taken: each is the fixture's `main`'s, at its line.
    let stacks = SampledStacks::parse(&text).expect("stacks");
    figures
        .attribute_sites(&stacks, &fixture("io-calls"), str::to_string)
        .expect("the stacks symbolize");
    let site = |call: &str| {
        let found: Vec<_> = figures.sites.iter().filter(|s| s.call == call).collect();
        assert_eq!(found.len(), 1, "{call}: {:#?}", figures.sites);
        found[0].clone()
    };
    let reads = site("pread64");
    assert_eq!(reads.function, "io_calls::main");
    assert_eq!((reads.samples, reads.calls), (50, 50.0));
    let location = reads.location.expect("a line");
    assert!(
        location.starts_with("fixtures/src/bin/io-calls.rs:"),
        "{location}"
    );
    assert_eq!(site("write").samples, 100);
    assert_eq!(site("write (eventfd)").function, "io_calls::main");
    assert_eq!(site(TCP_WRITES_NAGLE).function, "io_calls::tcp_writes");
}

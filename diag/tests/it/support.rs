//! Test harness: builds the fixture programs and the preload library once, in a target
//! directory of their own, and runs fixtures.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long the nested cargo may take to build the fixtures and the preload library: minutes
/// from a cold target directory on two busy cores.
const FIXTURE_BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How long a fixture program may run, traced or not: they finish in under a second.
pub const FIXTURE_RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `f` on a thread of its own and waits up to `limit` for it; past it, fails naming
/// `what`. For waits that cannot be given a limit themselves.
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (send, done) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = send.send(f());
    });
    match done.recv_timeout(limit) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => panic!("{what}: not done after {limit:?}"),
        // Nothing sent: `f` panicked, and its panic is the test's.
        Err(RecvTimeoutError::Disconnected) => std::panic::resume_unwind(
            thread
                .join()
                .expect_err("a thread that sent nothing panicked"),
        ),
    }
}

/// `command`'s exit status and output, as [`Command::output`] gives them, within `limit`; past
/// it, the process is killed and the test fails naming `what`.
pub fn output_within(command: &mut Command, limit: Duration, what: &str) -> Output {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    // Both pipes are read while waiting: a child blocked on a full pipe would never exit.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for a child process") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}, killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().expect("the stdout reader does not panic"),
        stderr: stderr.join().expect("the stderr reader does not panic"),
    }
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("diag/ is in the workspace")
        .to_path_buf()
}

/// Target directory for the fixtures: beside the test binary's own (`target/diag-fixtures`),
/// so the nested cargo never waits on the lock of the cargo running the tests.
fn fixtures_target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/it-HASH
    let target = exe
        .ancestors()
        .nth(3)
        .expect("test binaries live in target/<profile>/deps");
    target.join("diag-fixtures")
}

fn cargo_build(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = output_within(
        Command::new(cargo)
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", fixtures_target_dir())
            .arg("build")
            .args(args),
        FIXTURE_BUILD_TIMEOUT,
        &format!("cargo build {args:?}"),
    );
    assert!(
        output.status.success(),
        "cargo build {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Builds the fixtures and the preload libraries (profiling profile), once per test run.
fn built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        cargo_build(&[
            "--profile",
            "profiling",
            "-p",
            "diag-fixtures",
            "-p",
            "diag-memtrace",
            "-p",
            "diag-syscount",
        ]);
        fixtures_target_dir().join("profiling")
    })
}

/// The path of fixture `name` (built with full debug info).
pub fn fixture(name: &str) -> PathBuf {
    built().join(name)
}

/// The path of fixture `name` built with the `release` profile (line tables, no types).
pub fn fixture_without_types(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            cargo_build(&["--release", "-p", "diag-fixtures", "--bin", "no-copies"]);
            fixtures_target_dir().join("release")
        })
        .join(name)
}

/// The preload library.
pub fn preload() -> PathBuf {
    built().join("libdiag_memtrace.so")
}

/// The system call counter.
pub fn syscount() -> PathBuf {
    built().join("libdiag_syscount.so")
}

/// The `type NAME SIZE` lines fixture `name` prints on `--print-sizes`: `size_of` as the
/// compiler says.
pub fn printed_sizes(name: &str) -> Vec<(String, u64)> {
    let output = output_within(
        Command::new(fixture(name)).arg("--print-sizes"),
        FIXTURE_RUN_TIMEOUT,
        &format!("{name} --print-sizes"),
    );
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|line| {
            let rest = line.strip_prefix("type ").expect("a `type NAME SIZE` line");
            let (name, size) = rest.rsplit_once(' ').expect("NAME SIZE");
            (name.to_string(), size.parse().expect("a size"))
        })
        .collect()
}

/// The size fixture `name` prints for type `type_name`.
pub fn printed_size(name: &str, type_name: &str) -> u64 {
    printed_sizes(name)
        .into_iter()
        .find(|(n, _)| n == type_name)
        .unwrap_or_else(|| panic!("{name} --print-sizes has no {type_name}"))
        .1
}

/// A fresh temporary directory.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

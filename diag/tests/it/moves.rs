//! The memcpy tracer on the fixtures: large copies attributed to the right function and type.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diag::moves::{CopySite, MovesError, MovesReport, Trace, TraceRun, check_program};

use crate::support::{FIXTURE_RUN_TIMEOUT, fixture, preload, printed_size, temp_dir, within};

fn traced(name: &str, args: &[&str], threshold: u64) -> MovesReport {
    let dir = temp_dir();
    let program = fixture(name);
    let trace = TraceRun::new(preload(), program.display().to_string())
        .args(args.iter().copied())
        .threshold_bytes(threshold)
        .out_dir(dir.path())
        .capture_stdout(true);
    // `run` waits for the program without a limit of its own.
    let run = within(FIXTURE_RUN_TIMEOUT, &format!("traced {name}"), move || {
        trace.run()
    })
    .expect("the traced run works");
    assert!(run.status.success(), "{name} exits successfully");
    MovesReport::build(&run.trace, &program, None).expect("the report builds")
}

fn sites_of_size(report: &MovesReport, size: u64) -> Vec<&CopySite> {
    report.sites.iter().filter(|s| s.size == size).collect()
}

fn functions(site: &CopySite) -> Vec<&str> {
    site.frames.iter().map(|f| f.function.as_str()).collect()
}

#[test]
fn a_large_value_returned_in_a_loop_is_attributed_to_its_type_and_functions() {
    let size = printed_size("big-return", "big_return::Frame");
    let report = traced("big-return", &["--iterations", "20"], 1024);
    let sites = sites_of_size(&report, size);
    assert!(!sites.is_empty(), "copies of Frame are seen: {report:#?}");
    assert_eq!(
        report.sites.len(),
        sites.len(),
        "only Frame is copied in bulk: {report:#?}"
    );
    let copies: u64 = sites.iter().map(|s| s.count).sum();
    assert!(
        copies >= 20,
        "at least one copy per iteration, saw {copies}"
    );
    for site in &sites {
        assert_eq!(
            site.types.first().map(String::as_str),
            Some("big_return::Frame")
        );
        assert_eq!(site.bytes, site.count * size);
        let user = site.user_frame().expect("symbolized");
        assert!(
            user.function.starts_with("big_return::"),
            "{:?}",
            functions(site)
        );
        assert!(
            user.file
                .as_deref()
                .is_some_and(|f| f.ends_with("big-return.rs"))
        );
    }
    // `keep` copies the frame into the vector: its inlined `Vec::push`/`ptr::write` is the
    // innermost frame and `keep` the outermost.
    let keep = sites
        .iter()
        .find(|s| {
            s.outermost()
                .is_some_and(|f| f.function == "big_return::keep")
        })
        .expect("a copy compiled into keep");
    assert!(
        keep.innermost().is_some_and(|f| f.is_std()),
        "{:?}",
        functions(keep)
    );
}

#[test]
fn a_large_err_pushed_into_a_vector_is_attributed_to_the_result() {
    let size = printed_size(
        "big-result",
        "core::result::Result<big_result::Accepted, big_result::ParseErr>",
    );
    let report = traced("big-result", &[], 1024);
    let sites = sites_of_size(&report, size);
    assert!(!sites.is_empty(), "{report:#?}");
    for site in sites {
        assert!(
            site.types
                .iter()
                .any(|t| t == "core::result::Result<big_result::Accepted, big_result::ParseErr>"),
            "{:?}",
            site.types
        );
        assert_eq!(
            site.user_frame().map(|f| f.function.as_str()),
            Some("big_result::main")
        );
    }
}

#[test]
fn a_lopsided_enum_moved_through_a_vector_is_attributed_to_the_enum() {
    let size = printed_size("big-enum", "big_enum::Message");
    let report = traced("big-enum", &[], 1024);
    let sites = sites_of_size(&report, size);
    assert!(!sites.is_empty(), "{report:#?}");
    assert!(
        sites
            .iter()
            .all(|s| s.types.iter().any(|t| t == "big_enum::Message"))
    );
    assert!(sites.iter().all(|s| {
        s.user_frame()
            .is_some_and(|f| f.function.starts_with("big_enum::"))
    }));
}

#[test]
fn a_program_without_large_copies_shows_none_above_the_threshold() {
    let report = traced("no-copies", &[], 1024);
    assert!(
        report.trace.total_copies() > 0,
        "the tracer was loaded and counted small copies"
    );
    assert_eq!(report.sites, Vec::new());
    assert_eq!(report.trace.copies_in_buckets_from(1024), 0);
    assert!(report.render(10).contains("(none)"));
}

#[test]
fn copies_below_the_threshold_are_only_counted_in_the_histogram() {
    let size = printed_size("small-copies", "small_copies::Chunk");
    let report = traced("small-copies", &["--iterations", "1000"], 1024);
    assert_eq!(report.sites, Vec::new());
    let bucket = 64 - size.leading_zeros();
    let counted = report
        .trace
        .histogram
        .iter()
        .find(|&&(k, _)| k == bucket)
        .map_or(0, |&(_, c)| c);
    assert!(
        counted >= 1000,
        "{size}-byte copies are counted: {:?}",
        report.trace.histogram
    );
}

#[test]
fn the_threshold_decides_which_copies_record_their_site() {
    let report = traced("big-return", &["--iterations", "5"], 1 << 20);
    assert_eq!(report.sites, Vec::new());
    assert_eq!(report.trace.threshold_bytes, 1 << 20);
    assert!(
        report.trace.copies_in_buckets_from(64 * 1024) >= 5,
        "the histogram still counts them"
    );
}

#[test]
fn sigusr2_writes_a_snapshot_of_a_running_program() {
    let dir = temp_dir();
    let mut child = Command::new(fixture("big-return"))
        .args(["--iterations", "8", "--ready-then-sleep-ms", "20000"])
        .env("LD_PRELOAD", preload())
        .env("DIAG_MOVES_OUT", dir.path().join("moves.%p.txt"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("fixture starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let line = within(FIXTURE_RUN_TIMEOUT, "the fixture's ready line", move || {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("reads");
        line
    });
    assert_eq!(line.trim(), "ready");
    let pid = child.id();
    let status = Command::new("kill")
        .args(["-USR2", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let path = dir.path().join(format!("moves.{pid}.txt"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let trace = loop {
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(trace) = Trace::parse(&text)
            && !trace.sites.is_empty()
        {
            break trace;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot written at {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().expect("the fixture is still sleeping");
    let _ = child.wait();
    assert_eq!(trace.reason, "signal");
    assert_eq!(trace.pid, u64::from(pid));
    assert!(trace.sites.iter().map(|s| s.count).sum::<u64>() >= 8);
}

#[test]
fn programs_that_cannot_be_traced_get_a_clear_error() {
    // A shared library has no PT_INTERP, like a statically linked executable.
    let err = check_program(&preload().display().to_string()).expect_err("not traceable");
    assert!(matches!(err, MovesError::StaticBinary { .. }), "{err:?}");
    assert!(err.to_string().contains("statically linked"), "{err}");

    let err = check_program("no-such-program-diag-test").expect_err("not found");
    assert!(matches!(err, MovesError::ProgramNotFound(_)), "{err:?}");

    check_program(&fixture("no-copies").display().to_string()).expect("a Rust binary is traceable");
}

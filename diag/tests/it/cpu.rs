//! CPU profiles of this test binary: a busy loop is found by name, file and line; the pprof
//! protobuf decodes; the flamegraph is an SVG; one profile at a time.

use std::io::Read as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diag::cpu::protos::{self, Message as _};
use diag::cpu::{CpuError, CpuProfiler, HZ_MAX, TaskView};

/// The sampler is one per process: the tests that start it take turns.
static SAMPLER: Mutex<()> = Mutex::new(());

/// How long the busy loop runs: at 999 Hz (or the kernel's tick rate, if lower) and with the
/// other tests of this binary running beside it, still dozens of samples.
const BUSY_CPU: Duration = Duration::from_millis(400);

/// Samples the loop must get at least: other tests share the process (and the profile), so its
/// share is not asserted, only that it is clearly there.
const BUSY_SAMPLES_MIN: u64 = 10;

const BUSY_LOOP_FIRST_LINE: u32 = line!() + 2;
#[inline(never)]
fn busy_loop(cpu: Duration) -> u64 {
    let start = Instant::now();
    let mut x = 1u64;
    while start.elapsed() < cpu {
        for i in 0..100_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
    x
}
const BUSY_LOOP_LAST_LINE: u32 = line!() - 2;

#[test]
fn the_profile_of_a_busy_loop_names_its_function_file_and_line() {
    let _turn = SAMPLER.lock().unwrap_or_else(|e| e.into_inner());
    let profiler = CpuProfiler::start(HZ_MAX - 1).unwrap();
    std::hint::black_box(busy_loop(BUSY_CPU));
    let profile = profiler.stop().unwrap();
    assert!(profile.samples() > 0, "no samples at all");

    let in_loop: u64 = profile
        .stacks
        .iter()
        .filter(|s| {
            s.frames.iter().any(|f| {
                f.function.ends_with("cpu::busy_loop")
                    && f.file
                        .as_deref()
                        .is_some_and(|p| p.ends_with("tests/it/cpu.rs"))
                    && f.line
                        .is_some_and(|l| (BUSY_LOOP_FIRST_LINE..=BUSY_LOOP_LAST_LINE).contains(&l))
            })
        })
        .map(|s| s.samples)
        .sum();
    assert!(
        in_loop >= BUSY_SAMPLES_MIN,
        "samples are in busy_loop with its file and a line of it \
         ({BUSY_LOOP_FIRST_LINE}..={BUSY_LOOP_LAST_LINE}); {in_loop} of {}:\n{}",
        profile.samples(),
        profile.folded()
    );
    let folded = profile.folded();
    // Paths are relative to the current directory (the package's, under `cargo test`).
    assert!(
        folded.contains("it::cpu::busy_loop (tests/it/cpu.rs:"),
        "{folded}"
    );
    // The sampler's own frames (the unwinder in the signal handler) are not part of any stack.
    assert!(
        !folded.contains(";pprof::") && !folded.contains(";backtrace::"),
        "{folded}"
    );

    // The pprof protobuf: gzip'd, decodes, names the function and the file.
    let gz = profile.pprof_gzip().unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    let decoded = protos::Profile::decode(&raw[..]).unwrap();
    let total: i64 = decoded.sample.iter().map(|s| s.value[0]).sum();
    assert_eq!(total as u64, profile.samples());
    let named = decoded.function.iter().any(|f| {
        decoded.string_table[f.name as usize].ends_with("cpu::busy_loop")
            && decoded.string_table[f.filename as usize].ends_with("tests/it/cpu.rs")
    });
    assert!(named, "busy_loop is a function of the protobuf profile");

    // The flamegraph.
    let svg = String::from_utf8(profile.flamegraph_svg("test", &folded).unwrap()).unwrap();
    assert!(svg.starts_with("<?xml"), "{}", &svg[..100.min(svg.len())]);
    assert!(svg.contains("<svg") && svg.contains("busy_loop"));

    // The task view: no tokio here, so the loop is a user stack rooted at its outer function.
    let view = TaskView::new(["it"]).rule("it::cpu::busy_loop", "spin");
    let summary = profile.summary(&view);
    assert_eq!(
        summary.samples,
        summary.user_samples + summary.executor_samples + summary.other_samples
    );
    assert!(summary.tasks.get("spin").copied().unwrap_or(0) >= in_loop);
    assert!(
        profile.tasks_folded(&view).contains("\nspin;")
            || profile.tasks_folded(&view).starts_with("spin;")
    );
}

#[test]
fn one_profile_at_a_time_and_frequencies_in_range() {
    let _turn = SAMPLER.lock().unwrap_or_else(|e| e.into_inner());
    let first = CpuProfiler::start(99).unwrap();
    assert!(CpuProfiler::is_running());
    let second = CpuProfiler::start(99);
    assert!(matches!(second, Err(CpuError::Busy)), "{second:?}");
    assert!(
        second
            .unwrap_err()
            .to_string()
            .contains("one runs at a time")
    );
    drop(first);
    assert!(!CpuProfiler::is_running());
    // Free again once the first is gone.
    let third = CpuProfiler::start(99).unwrap();
    third.stop().unwrap();
    assert!(matches!(
        CpuProfiler::start(0),
        Err(CpuError::Frequency { hz: 0 })
    ));
    assert!(matches!(
        CpuProfiler::start(HZ_MAX + 1),
        Err(CpuError::Frequency { .. })
    ));
}

#[test]
fn an_idle_profile_is_a_valid_picture_that_says_no_samples_were_taken() {
    for folded in ["", "\n", "main;idle 0\n"] {
        let svg = diag::cpu::flamegraph_svg("idle process", folded)
            .unwrap_or_else(|e| panic!("{folded:?}: {e}"));
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{svg}");
        assert!(svg.contains("no samples"), "{folded:?}: {svg}");
    }
    let svg = diag::cpu::flamegraph_svg("busy", "main;work 3\n\nmain;idle 0\n").unwrap();
    assert!(!String::from_utf8(svg).unwrap().contains("no samples"));
}

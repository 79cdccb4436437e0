//! Fixed codec work for instruction counting: `codec-work CASE` splits (and reassembles) one
//! seeded record a fixed number of times, so `valgrind --tool=callgrind` counts the same
//! instructions on every run of the same binary. `cargo xtask gate` runs it.
//!
//! Cases: `split-4+2-64KiB`, `split-4+2-1MiB`, `reassemble-4+2-1MiB` (all data fragments
//! present: a concatenation) and `degraded-4+2-1MiB` (two data fragments lost: the decoder).
//! `codec-work cpu-features` prints the CPU features the codec's libraries choose their SIMD
//! paths by (Reed-Solomon: AVX2, SSSE3; CRC-32C: SSE4.2), as this process sees them: under
//! valgrind, those of valgrind's virtual CPU.

use std::process::ExitCode;

use bytes::Bytes;

use ddsplit::codec::{CodecParams, reassemble, split};
use ddsplit::id::RecordId;
use ddsplit_benches::record;

/// Repetitions of each case: enough that start-up is a small share of the count.
const REPETITIONS: usize = 4;

/// The cases, as `cargo xtask gate` names them.
const CASES: [&str; 4] = [
    "split-4+2-64KiB",
    "split-4+2-1MiB",
    "reassemble-4+2-1MiB",
    "degraded-4+2-1MiB",
];

fn main() -> ExitCode {
    let Some(case) = std::env::args().nth(1) else {
        eprintln!("usage: codec-work CASE\ncases: {}", CASES.join(", "));
        return ExitCode::from(2);
    };
    if case == "cpu-features" {
        println!("{}", cpu_features().join(" "));
        return ExitCode::SUCCESS;
    }
    let params = CodecParams::new(4, 2).expect("4+2 is a valid split");
    let (size, work): (usize, fn(&Bytes, CodecParams)) = match case.as_str() {
        "split-4+2-64KiB" => (64 * 1024, split_only),
        "split-4+2-1MiB" => (1 << 20, split_only),
        "reassemble-4+2-1MiB" => (1 << 20, split_reassemble),
        "degraded-4+2-1MiB" => (1 << 20, degraded),
        other => {
            eprintln!("no case {other:?}; cases: {}", CASES.join(", "));
            return ExitCode::from(2);
        }
    };
    let data = record(size);
    for _ in 0..REPETITIONS {
        work(&data, params);
    }
    ExitCode::SUCCESS
}

fn split_only(data: &Bytes, params: CodecParams) {
    std::hint::black_box(split(RecordId(1), data, params).expect("split"));
}

fn split_reassemble(data: &Bytes, params: CodecParams) {
    let fragments = split(RecordId(1), data, params).expect("split");
    let back = reassemble(&fragments).expect("reassemble");
    assert_eq!(back.len(), data.len());
}

fn degraded(data: &Bytes, params: CodecParams) {
    let fragments = split(RecordId(1), data, params).expect("split");
    let back = reassemble(&fragments[params.m() as usize..]).expect("reassemble");
    assert_eq!(back.len(), data.len());
}

/// The SIMD features the codec's dependencies detect at run time.
fn cpu_features() -> Vec<&'static str> {
    let mut found = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            found.push("avx2");
        }
        if std::arch::is_x86_feature_detected!("ssse3") {
            found.push("ssse3");
        }
        if std::arch::is_x86_feature_detected!("sse4.2") {
            found.push("sse4.2");
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            found.push("neon");
        }
    }
    if found.is_empty() {
        found.push("none");
    }
    found
}

//! A known regression, on purpose, for testing the tools that find regressions: with the
//! `inject-slowdown` feature every gateway request first does [`SLOWDOWN_ROUNDS`] rounds of
//! busy arithmetic in [`busy_work`] (about 5% of a local cluster's throughput), or as many as
//! `DDSPLIT_INJECT_ROUNDS` says. The default build compiles [`slowdown`] to nothing and never
//! reads the variable.

use std::sync::OnceLock;

/// Rounds of arithmetic per gateway request: a fixed amount of work, so the slowdown is the
/// same share of a request on a faster or slower machine.
pub const SLOWDOWN_ROUNDS: u64 = 30_000;

/// Environment variable that sets the rounds of the `inject-slowdown` build.
pub const INJECT_ROUNDS_ENV: &str = "DDSPLIT_INJECT_ROUNDS";

/// Does the injected work when the `inject-slowdown` feature is on; nothing otherwise.
#[inline(always)]
pub fn slowdown() {
    if cfg!(feature = "inject-slowdown") {
        std::hint::black_box(busy_work(rounds()));
    }
}

/// [`SLOWDOWN_ROUNDS`], or [`INJECT_ROUNDS_ENV`] when it holds a number (read once).
fn rounds() -> u64 {
    static ROUNDS: OnceLock<u64> = OnceLock::new();
    *ROUNDS.get_or_init(|| {
        std::env::var(INJECT_ROUNDS_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(SLOWDOWN_ROUNDS)
    })
}

/// `rounds` rounds of dependent arithmetic the optimiser cannot remove: what a profile of the
/// slowed build shows as the new hot spot.
#[inline(never)]
pub fn busy_work(rounds: u64) -> u64 {
    let mut x = std::hint::black_box(0x9e37_79b9_7f4a_7c15_u64);
    for i in 0..rounds {
        x = x.rotate_left(5) ^ i.wrapping_mul(0xff51_afd7_ed55_8ccd);
    }
    x
}

//! How the wall-time runs of two sides are paired, shared by `compare` and `gate`.

use crate::profile::{Progress, SideProfile};

/// Wall-time pairs run at first: with runs of `passes::DEFAULT_OPS` (about a second and a half
/// each), ten pairs take about 40 s here, and the sign test then needs 9 of 10 pairs to agree.
pub const DEFAULT_PAIRS: usize = 10;

/// Most pairs run when the first ones leave the verdict within the noise of the threshold (17 of
/// 24 must then agree).
pub const DEFAULT_PAIRS_MAX: usize = 24;

/// Which side runs first in wall pair `n`: A B, then B A, and so on, so that neither side
/// always runs first (a machine that warms up or slows down during a pair favours no side).
pub fn abba_order(n: usize) -> [usize; 2] {
    if n.is_multiple_of(2) { [0, 1] } else { [1, 0] }
}

/// Fresh pairs run to measure a change of the wall time again before it is believed: as many
/// as a comparison starts with.
pub const REPLICATION_PAIRS: usize = DEFAULT_PAIRS;

/// Runs wall pair `n` of the sides that are profiled (`None`: a side loaded from a snapshot),
/// in A B / B A order, each run marked as part of a replication batch or not.
pub fn run_pair(
    sides: [Option<&mut SideProfile>; 2],
    names: [&str; 2],
    n: usize,
    replication: bool,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut sides = sides;
    for i in abba_order(n) {
        if let Some(side) = sides[i].as_deref_mut() {
            progress.say(&format!("wall pair {}: {}", n + 1, names[i]));
            let ops_per_s = side.wall_run(n, replication)?;
            progress.done(&format!(
                "wall pair {}: {} {ops_per_s:.0} ops/s",
                n + 1,
                names[i]
            ));
        }
    }
    Ok(())
}

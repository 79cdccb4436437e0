//! How the wall-time runs of two sides are paired, shared by `compare` and `gate`.

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

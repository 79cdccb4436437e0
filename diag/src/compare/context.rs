//! What every stage reads: both sides, the thresholds, and the comparisons made before the
//! stages (CPU by category, wall time).

use super::{CpuComparison, Side, Thresholds, WallComparison};

/// What every finding producer reads.
pub(crate) struct Context<'a> {
    pub baseline: &'a Side<'a>,
    pub candidate: &'a Side<'a>,
    pub thresholds: &'a Thresholds,
    pub cpu: Option<&'a CpuComparison>,
    pub wall: Option<&'a WallComparison>,
}

impl Context<'_> {
    /// The project's path prefix (`ddsplit`), from the candidate's sizes figures.
    pub fn prefix(&self) -> String {
        self.candidate
            .snapshot
            .sizes
            .as_ref()
            .or(self.baseline.snapshot.sizes.as_ref())
            .map(|s| s.prefix.clone())
            .unwrap_or_default()
    }
}

//! Wall time with a noise model: the runs of the two sides are paired in the order they ran
//! (A B, B A ...), so a slow moment of the machine slows both runs of a pair, and the verdict
//! rests on the median of the paired ratios and on how much those ratios scatter.

use serde::{Deserialize, Serialize};

use crate::snapshot::WallRun;

/// Consistency factor of the median absolute deviation for normally distributed noise.
const MAD_TO_SIGMA: f64 = 1.4826;

/// Standard error of a median relative to that of a mean, for normal noise (sqrt(pi/2)).
const MEDIAN_SE_FACTOR: f64 = 1.2533;

/// A change is called only when it is this many standard errors from no change.
pub const WALL_SIGMAS: f64 = 3.0;

/// Smallest standard error believed: a handful of runs can agree by chance more closely than
/// the machine really repeats.
pub const WALL_SE_FLOOR: f64 = 0.003;

/// A change is called only when so many pairs agree on its direction that a coin would do as
/// well less than this often (one-sided sign test). The median and its standard error alone were
/// fooled by a machine whose throughput jumped between two levels: five same-against-same pairs
/// of ratios 0.83, 1.19, 1.18, 0.85, 0.86 gave "13.8% slower, beyond the noise", with only three
/// pairs slower. At five pairs this needs all five; at twelve, ten.
pub const WALL_SIGN_P: f64 = 0.05;

/// The middle and the ends of a set of measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (zeros when empty).
    pub fn of(values: &[f64]) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        Spread {
            median: median(values),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// What the wall-time runs say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WallVerdict {
    /// The candidate is slower by more than the threshold, beyond the noise.
    Slower,
    /// The candidate is faster by more than the threshold, beyond the noise.
    Faster,
    /// Any change is smaller than the threshold or than the noise.
    NoChange,
}

/// The two sides' wall-time runs, compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WallComparison {
    /// Pairs of runs compared.
    pub pairs: usize,
    /// Throughput of the baseline's runs, operations per second.
    pub baseline: Spread,
    /// Throughput of the candidate's runs.
    pub candidate: Spread,
    /// Median of the pairs' throughput ratios (candidate / baseline): 0.9 is 10% slower.
    pub ratio: f64,
    /// Smallest and largest pair ratio.
    pub ratio_range: (f64, f64),
    /// How much one pair's ratio scatters (robust standard deviation of the log ratios): the
    /// machine's noise for this workload.
    pub noise: f64,
    /// Standard error of the median log ratio.
    pub standard_error: f64,
    /// Pairs where the candidate was slower.
    pub slower_pairs: usize,
    /// Median latency (p50 and p99 of each run, microseconds) of the baseline.
    pub baseline_latency_us: (f64, f64),
    /// The same for the candidate.
    pub candidate_latency_us: (f64, f64),
    /// The verdict at the threshold used.
    pub verdict: WallVerdict,
    /// The throughput drop that counts as a regression.
    pub threshold: f64,
    /// The p99 latency of the pairs through the same noise model (median ratio candidate /
    /// baseline, its noise and standard error): tail latency can double while throughput stays.
    #[serde(default)]
    pub p99: PairedChange,
    /// The fresh batch of pairs run because no probe explained the change, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<Replication>,
}

/// A change of the wall time that no probe explains is measured again, in fresh pairs, before
/// it is believed: a burst of load from elsewhere on the machine can make one side's runs slower
/// in most pairs of a batch (and the pairs added while the verdict is unclear stop at the first
/// look that crosses, which favours a chance crossing). The change holds only if the fresh
/// batch moves the same way, by at least half the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Replication {
    /// Pairs in the fresh batch.
    pub pairs: usize,
    /// Median of their throughput ratios.
    pub ratio: f64,
    /// True when the fresh batch moved the same way as the verdict of all the pairs.
    pub held: bool,
}

/// How far, as a share of the threshold, a replication batch must move the same way.
pub const REPLICATION_SHARE_OF_THRESHOLD: f64 = 0.5;

/// How one figure changed over the pairs of runs: the median of the pairs' ratios, how much one
/// pair's ratio scatters, and the standard error of the median (all of the log ratios).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PairedChange {
    /// Median ratio, candidate / baseline.
    pub ratio: f64,
    /// Robust standard deviation of one pair's log ratio.
    pub noise: f64,
    /// Standard error of the median log ratio.
    pub standard_error: f64,
    /// Pairs in which the figure grew, of `pairs`.
    #[serde(default)]
    pub grew_pairs: usize,
    /// Pairs compared.
    #[serde(default)]
    pub pairs: usize,
}

impl PairedChange {
    /// The change of `baseline[i]` to `candidate[i]` over the pairs.
    pub fn of(baseline: &[f64], candidate: &[f64]) -> (PairedChange, Vec<f64>) {
        let logs: Vec<f64> = baseline
            .iter()
            .zip(candidate)
            .map(|(b, c)| (c.max(f64::MIN_POSITIVE) / b.max(f64::MIN_POSITIVE)).ln())
            .collect();
        let center = median(&logs);
        let deviations: Vec<f64> = logs.iter().map(|l| (l - center).abs()).collect();
        let noise = MAD_TO_SIGMA * median(&deviations);
        let standard_error =
            (MEDIAN_SE_FACTOR * noise / (logs.len().max(1) as f64).sqrt()).max(WALL_SE_FLOOR);
        let change = PairedChange {
            ratio: center.exp(),
            noise,
            standard_error,
            grew_pairs: logs.iter().filter(|l| **l > 0.0).count(),
            pairs: logs.len(),
        };
        (change, logs)
    }

    /// True when the figure grew by more than `growth` (0.5 is +50%), by more than
    /// [`WALL_SIGMAS`] standard errors, and in enough pairs to pass the sign test.
    pub fn grew_beyond(&self, growth: f64) -> bool {
        let change = self.ratio.max(f64::MIN_POSITIVE).ln();
        change > (1.0 + growth).ln()
            && change > WALL_SIGMAS * self.standard_error
            && sign_test_p(self.grew_pairs, self.pairs) < WALL_SIGN_P
    }
}

impl WallComparison {
    /// Pairs `baseline[i]` with `candidate[i]`; `None` without a pair.
    pub fn of(baseline: &[WallRun], candidate: &[WallRun], threshold: f64) -> Option<Self> {
        let pairs = baseline.len().min(candidate.len());
        if pairs == 0 {
            return None;
        }
        let (baseline, candidate) = (&baseline[..pairs], &candidate[..pairs]);
        let figure =
            |runs: &[WallRun], f: fn(&WallRun) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
        let ops = |r: &WallRun| r.ops_per_s;
        let (throughput_change, logs) =
            PairedChange::of(&figure(baseline, ops), &figure(candidate, ops));
        let p99 = |r: &WallRun| r.latency_us.p99 as f64;
        let (p99_change, _) = PairedChange::of(&figure(baseline, p99), &figure(candidate, p99));
        let center = throughput_change.ratio.ln();
        let (noise, standard_error) = (throughput_change.noise, throughput_change.standard_error);
        let limit = (1.0 - threshold).ln().abs();
        let slower_pairs = logs.iter().filter(|l| **l < 0.0).count();
        let faster_pairs = throughput_change.grew_pairs;
        let verdict = if center < -limit
            && center < -WALL_SIGMAS * standard_error
            && sign_test_p(slower_pairs, pairs) < WALL_SIGN_P
        {
            WallVerdict::Slower
        } else if center > limit
            && center > WALL_SIGMAS * standard_error
            && sign_test_p(faster_pairs, pairs) < WALL_SIGN_P
        {
            WallVerdict::Faster
        } else {
            WallVerdict::NoChange
        };
        let replication = replication_of(baseline, candidate, center, limit);
        let verdict = match replication {
            Some(r) if !r.held => WallVerdict::NoChange,
            _ => verdict,
        };
        let throughput = |runs: &[WallRun]| Spread::of(&figure(runs, ops));
        let p50 = |r: &WallRun| r.latency_us.p50 as f64;
        let latency = |runs: &[WallRun]| (median(&figure(runs, p50)), median(&figure(runs, p99)));
        Some(WallComparison {
            pairs,
            baseline: throughput(baseline),
            candidate: throughput(candidate),
            ratio: center.exp(),
            ratio_range: (
                logs.iter().copied().fold(f64::INFINITY, f64::min).exp(),
                logs.iter().copied().fold(f64::NEG_INFINITY, f64::max).exp(),
            ),
            noise,
            standard_error,
            slower_pairs,
            baseline_latency_us: latency(baseline),
            candidate_latency_us: latency(candidate),
            verdict,
            threshold,
            p99: p99_change,
            replication,
        })
    }

    /// True when more pairs could change the verdict: the measured change is within the noise
    /// of the threshold.
    pub fn is_ambiguous(&self) -> bool {
        let change = self.ratio.ln();
        let limit = (1.0 - self.threshold).ln().abs();
        let near_threshold = (change.abs() - limit).abs() < WALL_SIGMAS * self.standard_error;
        // Past the threshold and the noise, but too few pairs agree yet: more pairs decide.
        let undecided = change.abs() > limit
            && change.abs() > WALL_SIGMAS * self.standard_error
            && self.verdict == WallVerdict::NoChange;
        near_threshold || undecided
    }

    /// The throughput change as a fraction: -0.2 is 20% slower.
    pub fn change(&self) -> f64 {
        self.ratio - 1.0
    }
}

/// The replication batch's figures (the pairs whose runs are marked `replication`), and
/// whether it moved the way all the pairs did (`center`, their median log ratio) by half the
/// threshold (`limit`, a log ratio). Judged against the direction, not the verdict: pooled
/// with a batch that did not move, a change can fall back within the noise, and the batch has
/// then not repeated it.
fn replication_of(
    baseline: &[WallRun],
    candidate: &[WallRun],
    center: f64,
    limit: f64,
) -> Option<Replication> {
    let (b, c): (Vec<f64>, Vec<f64>) = baseline
        .iter()
        .zip(candidate)
        .filter(|(b, c)| b.replication && c.replication)
        .map(|(b, c)| (b.ops_per_s, c.ops_per_s))
        .unzip();
    if b.is_empty() {
        return None;
    }
    let (batch, _) = PairedChange::of(&b, &c);
    let moved = batch.ratio.max(f64::MIN_POSITIVE).ln();
    let needed = REPLICATION_SHARE_OF_THRESHOLD * limit;
    let held = if center < 0.0 {
        moved < -needed
    } else {
        moved > needed
    };
    Some(Replication {
        pairs: b.len(),
        ratio: batch.ratio,
        held,
    })
}

/// The chance that a fair coin gives at least `agreeing` heads in `pairs` tosses.
fn sign_test_p(agreeing: usize, pairs: usize) -> f64 {
    let mut p = 0.0;
    let mut choose = 1.0_f64; // C(pairs, 0)
    for i in 0..=pairs {
        if i >= agreeing {
            p += choose;
        }
        choose = choose * (pairs - i) as f64 / (i + 1) as f64;
    }
    p / 2f64.powi(pairs as i32)
}

/// The median of `values` (0 when empty).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(ops_per_s: &[f64]) -> Vec<WallRun> {
        ops_per_s
            .iter()
            .map(|&ops_per_s| WallRun {
                ops_per_s,
                ..WallRun::default()
            })
            .collect()
    }

    #[test]
    fn a_consistent_slowdown_beyond_the_threshold_is_slower() {
        // The machine drifts from 1000 to 1100 ops/s; the candidate is 10% slower in each pair.
        let base = runs(&[1000.0, 1020.0, 1050.0, 1080.0, 1100.0]);
        let cand = runs(&[900.0, 921.0, 943.0, 975.0, 987.0]);
        let wall = WallComparison::of(&base, &cand, 0.03).unwrap();
        assert_eq!(wall.verdict, WallVerdict::Slower);
        assert_eq!(wall.slower_pairs, 5);
        assert!((wall.ratio - 0.9).abs() < 0.01, "{}", wall.ratio);
        assert!(!wall.is_ambiguous());
    }

    #[test]
    fn a_change_that_a_fresh_batch_does_not_repeat_is_no_change() {
        // Ten pairs 10% slower, then a replication batch of five at no change.
        let mut base = runs(&[1000.0; 15]);
        let mut cand = runs(&[900.0; 15]);
        for i in 10..15 {
            base[i].replication = true;
            cand[i].replication = true;
            cand[i].ops_per_s = if i % 2 == 0 { 1005.0 } else { 995.0 };
        }
        let wall = WallComparison::of(&base, &cand, 0.03).unwrap();
        assert_eq!(wall.verdict, WallVerdict::NoChange, "{wall:?}");
        let r = wall.replication.unwrap();
        assert_eq!(r.pairs, 5);
        assert!(!r.held);
        // The same batch 8% slower: the change held.
        for run in &mut cand[10..] {
            run.ops_per_s = 920.0;
        }
        let wall = WallComparison::of(&base, &cand, 0.03).unwrap();
        assert_eq!(wall.verdict, WallVerdict::Slower);
        assert!(wall.replication.unwrap().held);
        // Five pairs 10% slower and a flat batch of five: pooled, within the noise, and the
        // batch did not repeat the change either.
        let (mut base, mut cand) = (runs(&[1000.0; 10]), runs(&[900.0; 10]));
        for i in 5..10 {
            base[i].replication = true;
            cand[i].replication = true;
            cand[i].ops_per_s = 1000.0;
        }
        let wall = WallComparison::of(&base, &cand, 0.03).unwrap();
        assert_eq!(wall.verdict, WallVerdict::NoChange);
        assert!(!wall.replication.unwrap().held, "{wall:?}");
    }

    #[test]
    fn scatter_larger_than_the_change_is_no_change() {
        let base = runs(&[1000.0, 1000.0, 1000.0, 1000.0]);
        let cand = runs(&[880.0, 1100.0, 950.0, 1060.0]);
        let wall = WallComparison::of(&base, &cand, 0.03).unwrap();
        assert_eq!(wall.verdict, WallVerdict::NoChange);
        assert!(wall.noise > 0.05, "{}", wall.noise);
    }

    #[test]
    fn changes_under_the_threshold_are_no_change_however_steady() {
        let base = runs(&[1000.0; 6]);
        let cand = runs(&[985.0; 6]);
        let wall = WallComparison::of(&base, &cand, 0.03).unwrap();
        assert_eq!(wall.verdict, WallVerdict::NoChange);
        assert_eq!(wall.standard_error, WALL_SE_FLOOR);
    }

    #[test]
    fn a_p99_that_doubles_with_throughput_flat_grew_beyond_the_threshold() {
        let with_p99 = |p99: &[u64]| -> Vec<WallRun> {
            p99.iter()
                .map(|&p99| {
                    let mut run = runs(&[1000.0]).remove(0);
                    run.latency_us.p99 = p99;
                    run
                })
                .collect()
        };
        let base = with_p99(&[900, 1000, 1100, 950, 1050]);
        let doubled = with_p99(&[1900, 2000, 2150, 1950, 2050]);
        let wall = WallComparison::of(&base, &doubled, 0.03).unwrap();
        assert_eq!(wall.verdict, WallVerdict::NoChange, "throughput is flat");
        assert!((wall.p99.ratio - 2.0).abs() < 0.1, "{:?}", wall.p99);
        assert!(wall.p99.grew_beyond(0.5));
        // The same runs scattered as widely as the change: not beyond the noise.
        let scattered = with_p99(&[500, 2000, 900, 2600, 1000]);
        let wall = WallComparison::of(&base, &scattered, 0.03).unwrap();
        assert!(!wall.p99.grew_beyond(0.5), "{:?}", wall.p99);
        let same = WallComparison::of(&base, &base, 0.03).unwrap();
        assert!(!same.p99.grew_beyond(0.5));
    }

    #[test]
    fn a_machine_jumping_between_two_levels_is_not_a_change() {
        // Same against same: three pairs 14-17% slower, two 18-19% faster.
        let base = runs(&[5630.0, 3437.0, 3375.0, 4259.0, 4158.0]);
        let cand = runs(&[4671.0, 4083.0, 3972.0, 3628.0, 3586.0]);
        let wall = WallComparison::of(&base, &cand, 0.03).unwrap();
        assert_eq!(wall.verdict, WallVerdict::NoChange, "{wall:?}");
        assert!(wall.is_ambiguous(), "more pairs should decide");
        assert!((sign_test_p(5, 5) - 1.0 / 32.0).abs() < 1e-12);
        assert!((sign_test_p(0, 7) - 1.0).abs() < 1e-12);
        assert!(sign_test_p(10, 12) < WALL_SIGN_P && sign_test_p(9, 12) > WALL_SIGN_P);
    }

    #[test]
    fn faster_is_a_verdict_of_its_own() {
        // Five pairs: fewer cannot agree often enough to pass the sign test.
        let wall = WallComparison::of(&runs(&[1000.0; 5]), &runs(&[1200.0; 5]), 0.03).unwrap();
        assert_eq!(wall.verdict, WallVerdict::Faster);
        let three = WallComparison::of(&runs(&[1000.0; 3]), &runs(&[1200.0; 3]), 0.03).unwrap();
        assert_eq!(three.verdict, WallVerdict::NoChange);
        assert!(three.is_ambiguous(), "three pairs ask for more");
        assert_eq!(WallComparison::of(&[], &runs(&[1.0]), 0.03), None);
    }
}

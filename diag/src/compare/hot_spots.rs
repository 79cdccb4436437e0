//! CPU hot spots: functions whose CPU per operation grew beyond the sampling noise, except the
//! functions an earlier finding already names.

use std::collections::{BTreeMap, BTreeSet};

use super::claims::{Claims, Stage};
use super::names::short_name;
use super::{Context, Evidence, Finding, FindingKind, fmt_us, function_identity};
use crate::snapshot::{CpuFigures, is_own_code};

/// CPU hot spots reported, at most.
const HOT_SPOTS_MAX: usize = 3;

/// A function's CPU change is reported only beyond this many standard deviations of the
/// sampling noise (samples are Poisson: the variance of a count is the count).
const HOT_SPOT_SIGMAS: f64 = 4.0;

/// ... and only when it is at least this share of the baseline's CPU per operation: smaller
/// changes do not explain a throughput change worth a finding.
const HOT_SPOT_SHARE_MIN: f64 = 0.02;

/// The hot spots stage, after every stage that names functions: functions whose CPU per
/// operation grew beyond the sampling noise, except those an earlier finding names.
pub(crate) fn findings(cx: &Context<'_>, claims: &Claims) -> Stage {
    let (Some(b), Some(c)) = (&cx.baseline.snapshot.cpu, &cx.candidate.snapshot.cpu) else {
        return Stage::default();
    };
    if b.ops == 0 || c.ops == 0 {
        return Stage::default();
    }
    let mut grown: Vec<Grown<'_>> = grown_beyond_noise(b, c, claims.allocator)
        .into_iter()
        .filter(|g| {
            !claims
                .functions
                .iter()
                .any(|n| function_identity(n) == g.identity)
        })
        .collect();
    grown.sort_by(|x, y| (y.after - y.before).total_cmp(&(x.after - x.before)));
    grown
        .into_iter()
        .take(HOT_SPOTS_MAX)
        .map(|g| hot_spot(b, c, &g))
        .collect::<Vec<_>>()
        .into()
}

/// A function's CPU per operation on both sides: every name the profiles give it (an async
/// fn's body and the closures inside it are one function), ns per operation.
struct Grown<'a> {
    identity: String,
    names: Vec<&'a str>,
    /// The file of its busiest location (either side).
    file: Option<&'a str>,
    before: f64,
    after: f64,
    /// Whether the growth is beyond the sampling noise and worth a finding.
    significant: bool,
    /// The identities of the functions it is called from (on either side's stacks).
    callers: BTreeSet<String>,
}

/// Share of a function's growth that another function of the same file, or its caller or
/// callee, must have lost for the growth to be code moved between them (a helper extracted, a
/// body split, a callee inlined into it), not new work.
const MOVED_SHARE_MIN: f64 = 0.7;

/// The functions, by identity, whose CPU per operation grew beyond the sampling noise and by a
/// share of the baseline's CPU worth a finding, unless another function of their file or
/// their stacks (a caller, a callee) lost as much (the code moved); without their time inside
/// the allocator when `without_alloc` (a finding explains that).
fn grown_beyond_noise<'a>(
    b: &'a CpuFigures,
    c: &'a CpuFigures,
    without_alloc: bool,
) -> Vec<Grown<'a>> {
    // The runtime's and the libraries' own stacks (a parked worker, the I/O driver) are the
    // executor's share, shown apart; a hot spot names the program's code (or the allocator).
    let all: Vec<Grown<'a>> = every_function(b, c, without_alloc)
        .into_iter()
        .filter(|g| {
            g.names
                .iter()
                .any(|n| is_own_code(n, g.file) || crate::snapshot::is_allocator_routine(n))
        })
        .collect();
    let moved_from = |g: &Grown<'_>| {
        all.iter().any(|o| {
            let same_file = o.file.is_some() && o.file == g.file;
            let same_stacks = g.callers.contains(&o.identity) || o.callers.contains(&g.identity);
            o.identity != g.identity
                && (same_file || same_stacks)
                && o.before - o.after >= MOVED_SHARE_MIN * (g.after - g.before)
        })
    };
    let moved: Vec<bool> = all.iter().map(|g| g.significant && moved_from(g)).collect();
    all.into_iter()
        .zip(moved)
        .filter(|(g, moved)| g.significant && !moved)
        .map(|(g, _)| g)
        .collect()
}

/// Every function of either profile with its CPU per operation on both sides.
fn every_function<'a>(b: &'a CpuFigures, c: &'a CpuFigures, without_alloc: bool) -> Vec<Grown<'a>> {
    let mut by_identity: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for f in b.functions.iter().chain(&c.functions) {
        by_identity
            .entry(function_identity(&f.function))
            .or_default()
            .insert(f.function.as_str());
    }
    let base_total = b.ns_per_op(None);
    by_identity
        .into_iter()
        .map(|(identity, names)| {
            let samples = |side: &CpuFigures| -> f64 {
                names
                    .iter()
                    .map(|f| side.function_samples(f, without_alloc) as f64)
                    .sum()
            };
            let (nb, nc) = (samples(b), samples(c));
            let (rb, rc) = (b.samples_to_ns_per_op(nb), c.samples_to_ns_per_op(nc));
            // Standard deviation of each rate from the Poisson noise of its count.
            let sd = (b.samples_to_ns_per_op(nb.sqrt()).powi(2)
                + c.samples_to_ns_per_op(nc.sqrt()).powi(2))
            .sqrt();
            let names: Vec<&str> = names.into_iter().collect();
            // The share of the rest of the program: against a total that holds its own
            // growth, a function that grew 17% of the whole program's CPU hid its change.
            let (rest_b, rest_c) = (b.samples as f64 - nb, c.samples as f64 - nc);
            let significant = rc - rb > HOT_SPOT_SIGMAS * sd
                && rc - rb > HOT_SPOT_SHARE_MIN * base_total
                && share_grew(nb, nc, rest_b, rest_c)
                && every_part_grew(b, c, &names);
            Grown {
                identity,
                callers: callers_of(b, c, &names),
                file: busiest_file(b, c, &names),
                names,
                before: rb,
                after: rc,
                significant,
            }
        })
        .collect()
}

/// Whether `names` took more samples per operation in the candidate's part than in the
/// baseline's, in every pair of parts (parts `i` of the two sides ran next to each other, A B
/// then B A): a machine that slowed down during one part raises one pair, a change of the
/// program both. True when the profiles have no parts to pair (a pass run whole).
fn every_part_grew(b: &CpuFigures, c: &CpuFigures, names: &[&str]) -> bool {
    if b.parts.len() < 2 || b.parts.len() != c.parts.len() {
        return true;
    }
    b.parts
        .iter()
        .zip(&c.parts)
        .all(|(pb, pc)| pc.per_op(names) > pb.per_op(names))
}

/// The identities of the callers the profiles record for any of `names`.
fn callers_of(b: &CpuFigures, c: &CpuFigures, names: &[&str]) -> BTreeSet<String> {
    b.functions
        .iter()
        .chain(&c.functions)
        .filter(|f| names.contains(&f.function.as_str()))
        .filter_map(|f| f.caller.as_deref())
        .map(function_identity)
        .collect()
}

/// The file of the busiest location of any of `names`, in either profile.
fn busiest_file<'a>(b: &'a CpuFigures, c: &'a CpuFigures, names: &[&str]) -> Option<&'a str> {
    b.functions
        .iter()
        .chain(&c.functions)
        .filter(|f| names.contains(&f.function.as_str()))
        .filter_map(|f| Some((f.samples, f.location.as_deref()?)))
        .max_by_key(|(samples, _)| *samples)
        .map(|(_, location)| crate::snapshot::file_of(location))
}

/// Share of a hot spot's growth that time in `memset` on its behalf must be for the finding to
/// say the function zeroes memory.
pub const ZEROING_SHARE_MIN: f64 = 0.5;

/// What to try when a function's extra CPU is filling memory.
const ZEROING_FIX: &str = "most of the extra time fills memory with zeroes (`vec![0; n]`, \
     `BytesMut::zeroed`, `calloc`, `resize`, `fill(0)`): when the buffer is overwritten next (a \
     read into it, a copy over it), reserve capacity without zeroing (`Vec::with_capacity` or \
     `BytesMut::with_capacity`, then `read_buf` or `spare_capacity_mut`), or reuse a buffer kept \
     between calls";

/// CPU per operation inside `memset` on behalf of any of `names`, on one side.
fn zeroing_ns(side: &CpuFigures, names: &[&str]) -> f64 {
    let samples: u64 = side
        .functions
        .iter()
        .filter(|f| names.contains(&f.function.as_str()))
        .map(|f| f.zeroing_samples)
        .sum();
    side.samples_to_ns_per_op(samples as f64)
}

/// The finding of one function whose CPU per operation grew.
fn hot_spot(b: &CpuFigures, c: &CpuFigures, g: &Grown<'_>) -> Finding {
    let location = location_of(c, &g.names);
    let (function, before, after) = (g.names[0], g.before, g.after);
    let caller = main_caller(c, g);
    let (zeroing_before, zeroing_after) = (zeroing_ns(b, &g.names), zeroing_ns(c, &g.names));
    let zeroes = zeroing_after - zeroing_before >= ZEROING_SHARE_MIN * (after - before);
    let mut evidence = vec![Evidence::new(
        "CPU per operation",
        fmt_us(before),
        fmt_us(after),
    )];
    if zeroes {
        evidence.push(Evidence::new(
            "of it in `memset` (filling memory)",
            fmt_us(zeroing_before),
            fmt_us(zeroing_after),
        ));
    }
    Finding {
        kind: FindingKind::HotSpot,
        title: format!(
            "`{}`{} uses {} more CPU per operation{}",
            short_name(function),
            caller
                .as_ref()
                .map_or_else(String::new, |(name, _)| format!(
                    ", called from `{}`,",
                    short_name(name)
                )),
            fmt_us(after - before),
            if zeroes {
                format!(
                    ", {} of it zeroing memory",
                    fmt_us(zeroing_after - zeroing_before)
                )
            } else {
                String::new()
            }
        ),
        evidence,
        sites: std::iter::once(format!("`{}` ({})", short_name(function), location))
            .chain(caller.as_ref().map(|(name, location)| match location {
                Some(location) => format!("`{}` ({location})", short_name(name)),
                // Inlined callers often have no line of their own.
                None => format!("`{}`", short_name(name)),
            }))
            .collect(),
        functions: g.names.iter().map(|n| n.to_string()).collect(),
        cost_ns_per_op: Some(after - before),
        share: None,
        fix: if zeroes {
            ZEROING_FIX.into()
        } else if crate::snapshot::is_allocator_routine(function) {
            "this is the global allocator itself: the candidate's allocator spends more per \
             operation here than the baseline's (zeroing or searching memory it reuses, where \
             another hands out fresh pages); keep the faster allocator, or allocate less (reuse \
             buffers)"
                .into()
        } else {
            "open the differential flamegraph at this function: the red frames above it are what \
             grew"
                .into()
        },
        // A hot spot explains a slowdown; on its own it is not a threshold.
        regression: false,
        symptom: false,
        blocked_call: None,
        counts_per_op: None,
    }
}

/// The program's function the candidate's profile records above the hot spot in most of its
/// samples, with its location: the loop or the call that asks for the work is often there (a
/// derived `eq` called once per entry of a scan), not in the function the samples land in.
fn main_caller(c: &CpuFigures, g: &Grown<'_>) -> Option<(String, Option<String>)> {
    let caller = c
        .functions
        .iter()
        .filter(|f| g.names.contains(&f.function.as_str()))
        .max_by_key(|f| f.samples)?
        .caller
        .clone()?;
    if function_identity(&caller) == g.identity || !is_own_code(&caller, None) {
        return None;
    }
    let location = c
        .functions
        .iter()
        .filter(|f| f.function == caller)
        .max_by_key(|f| f.samples)
        .and_then(|f| f.location.clone());
    Some((caller, location))
}

/// Whether a function's share of the samples grew beyond the noise, against the rest of its
/// side's samples: the machine can run everything slower during one side's CPU pass (another
/// program, a lower clock), which raises every function's CPU per operation alike. Under no
/// change, each of the function's `nb + nc` samples falls on the candidate's side with the
/// probability of the candidate's share of the rest; more than [`HOT_SPOT_SIGMAS`] binomial
/// deviations above that is a change of share.
fn share_grew(nb: f64, nc: f64, total_b: f64, total_c: f64) -> bool {
    share_grew_by(nb, nc, total_b, total_c, HOT_SPOT_SIGMAS)
}

/// Whether a part's share of its side's samples grew by more than `sigmas` binomial
/// deviations (see [`share_grew`]).
pub(crate) fn share_grew_by(nb: f64, nc: f64, total_b: f64, total_c: f64, sigmas: f64) -> bool {
    if total_b <= 0.0 || total_c <= 0.0 {
        return false;
    }
    let n = nb + nc;
    let p = total_c / (total_b + total_c);
    let sd = (n * p * (1.0 - p)).sqrt().max(1.0);
    (nc - n * p) / sd > sigmas
}

/// The candidate's location of the function's name with the most samples.
fn location_of(cpu: &CpuFigures, names: &[&str]) -> String {
    cpu.functions
        .iter()
        .filter(|f| names.contains(&f.function.as_str()) && f.location.is_some())
        .max_by_key(|f| f.samples)
        .and_then(|f| f.location.clone())
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_moved_into_a_helper_of_the_same_file_is_no_hot_spot() {
        let other = "main;app::other (app/src/other.rs:1) 10000\n";
        let b = CpuFigures::from_folded(
            &format!("{other}main;app::Gateway::put (app/src/gateway.rs:10) 400\n"),
            1000,
            1000,
        );
        let extracted = CpuFigures::from_folded(
            &format!(
                "{other}main;app::Gateway::put (app/src/gateway.rs:10) 40\n\
                 main;app::Gateway::put;app::prepare (app/src/gateway.rs:50) 360\n"
            ),
            1000,
            1000,
        );
        assert!(grown_beyond_noise(&b, &extracted, false).is_empty());
        // New work in another file while `put` stays as it was is a hot spot.
        let added = CpuFigures::from_folded(
            &format!(
                "{other}main;app::Gateway::put (app/src/gateway.rs:10) 400\n\
                 main;app::Gateway::put;app::codec::check (app/src/codec.rs:50) 360\n"
            ),
            1000,
            1000,
        );
        let grown = grown_beyond_noise(&b, &added, false);
        assert_eq!(grown.len(), 1);
        assert_eq!(grown[0].names, ["app::codec::check"]);
    }

    #[test]
    fn code_moved_between_a_function_and_its_caller_or_callee_is_no_hot_spot() {
        let other = "main;app::other (app/src/other.rs:1) 10000\n";
        let side = |stacks: &str| CpuFigures::from_folded(&format!("{other}{stacks}"), 1000, 1000);
        // A helper in another file takes over the write its caller made.
        let writes = side("main;app::log::append (app/src/log.rs:10);libc_pwrite 400\n");
        let extracted = side(
            "main;app::log::append (app/src/log.rs:10);app::io::write_all (app/src/io.rs:5);libc_pwrite 390\n",
        );
        assert!(grown_beyond_noise(&writes, &extracted, false).is_empty());
        // A callee inlined into its caller: the caller is charged what the callee was.
        let b =
            side("main;app::gen::fill (lib/src/gen.rs:3);app::rng::next (lib/src/rng.rs:9) 400\n");
        let inlined = side("main;app::gen::fill (lib/src/gen.rs:3) 400\n");
        assert!(grown_beyond_noise(&b, &inlined, false).is_empty());
        // New work under the same caller, while the caller keeps its own time, is a hot spot.
        let added = side(
            "main;app::log::append (app/src/log.rs:10);libc_pwrite 400\n\
             main;app::log::append (app/src/log.rs:10);app::io::checksum (app/src/io.rs:9) 390\n",
        );
        let grown = grown_beyond_noise(&writes, &added, false);
        assert_eq!(grown.len(), 1);
        assert_eq!(grown[0].names, ["app::io::checksum"]);
    }

    #[test]
    fn an_async_fn_and_the_closures_inside_it_are_one_hot_spot() {
        let folded = |body: u64, inner: u64| {
            format!(
                "main;app::other (app/src/other.rs:1) 10000\n\
                 main;app::Gateway::read::{{{{closure}}}} (app/src/gateway.rs:304) {body}\n\
                 main;app::Gateway::read::{{{{closure}}}}::{{{{closure}}}} (app/src/gateway.rs:292) {inner}\n"
            )
        };
        let b = CpuFigures::from_folded(&folded(30, 20), 1000, 1000);
        let c = CpuFigures::from_folded(&folded(400, 300), 1000, 1000);
        let grown = grown_beyond_noise(&b, &c, false);
        assert_eq!(
            grown.len(),
            1,
            "{:?}",
            grown.iter().map(|g| &g.names).collect::<Vec<_>>()
        );
        assert_eq!(grown[0].names.len(), 2);
        let finding = hot_spot(&b, &c, &grown[0]);
        assert_eq!(
            finding.title,
            "`Gateway::read` uses 650.0 µs more CPU per operation"
        );
        assert_eq!(finding.sites, ["`Gateway::read` (app/src/gateway.rs:304)"]);
    }

    #[test]
    fn a_hot_spot_names_the_program_function_that_calls_it() {
        let side = |eq: u64| {
            CpuFigures::from_folded(
                &format!(
                    "main;app::other (app/src/other.rs:1) 10000\n\
                     main;app::log::FragmentLog::get (app/src/log.rs:40) 50\n\
                     main;app::log::FragmentLog::get (app/src/log.rs:40);\
                     <app::id::RecordId as core::cmp::PartialEq>::eq (app/src/id.rs:5) {eq}\n"
                ),
                1000,
                1000,
            )
        };
        let (b, c) = (side(10), side(400));
        let grown = grown_beyond_noise(&b, &c, false);
        assert_eq!(grown.len(), 1);
        let finding = hot_spot(&b, &c, &grown[0]);
        let eq = short_name(grown[0].names[0]);
        assert_eq!(
            finding.title,
            format!("`{eq}`, called from `FragmentLog::get`, uses 390.0 µs more CPU per operation")
        );
        assert_eq!(finding.sites[1], "`FragmentLog::get` (app/src/log.rs:40)");
    }

    #[test]
    fn a_hot_spot_is_measured_against_the_rest_of_the_program() {
        // 300 → 450 samples while the rest grew 7.5%: against totals that hold its own growth
        // the share moved 3.8 binomial deviations, against the rest 4.5.
        let side = |f: u64, rest: u64| {
            CpuFigures::from_folded(
                &format!(
                    "main;app::other (app/src/other.rs:1) {rest}\n\
                     main;app::log::scan (app/src/log.rs:9) {f}\n"
                ),
                1000,
                1000,
            )
        };
        let (b, c) = (side(300, 2000), side(450, 2150));
        let grown = grown_beyond_noise(&b, &c, false);
        assert_eq!(grown.len(), 1);
        assert_eq!(grown[0].names, ["app::log::scan"]);
    }

    #[test]
    fn a_growth_in_one_pair_of_parts_only_is_no_hot_spot() {
        let part = |f: u64| {
            format!(
                "main;app::other (app/src/other.rs:1) 5000\n\
                 main;app::log::write_and_sync (app/src/log.rs:9) {f}\n"
            )
        };
        let side = |parts: [u64; 2]| {
            let texts = parts.map(part);
            let mut figures = CpuFigures::from_folded(&texts.concat(), 1000, 1000);
            figures.attach_parts(&[(&texts[0], 500), (&texts[1], 500)]);
            figures
        };
        let b = side([100, 100]);
        // 600 samples in one part against 100 in each of the others: one slow minute.
        let one_part = side([100, 600]);
        assert!(grown_beyond_noise(&b, &one_part, false).is_empty());
        let both = side([350, 350]);
        let grown = grown_beyond_noise(&b, &both, false);
        assert_eq!(grown.len(), 1);
        assert_eq!(grown[0].names, ["app::log::write_and_sync"]);
    }
}

//! Findings from the heap profiles and allocation counters: tasks spawned per call (the site's
//! stack goes through a spawn, `spawns.rs`), boxed futures (an allocation per call through
//! `Box::pin`, the mark of `#[async_trait]`) and other allocation sites that appeared or grew.

use super::claims::{Claims, GrownType, Stage};
use super::names::short_name;
use super::spawns;
use super::types::{is_boxed_trait_block, site_key};
use super::{
    ALLOC_CHANGE_PER_OP_MIN, Context, Evidence, Finding, FindingKind, fmt_bytes, fmt_count,
};
use crate::snapshot::{CpuCategory, HeapFigures, HeapSite, per_op};

/// Allocation sites reported on their own, at most.
const SITE_FINDINGS_MAX: usize = 5;

/// Boxed-future sites named in their finding, at most.
const BOXED_SITES_SHOWN_MAX: usize = 6;

/// One site on both sides, per operation.
struct SiteChange<'a> {
    site: &'a HeapSite,
    before: f64,
    after: f64,
    /// The future type boxed here, when the block size is a future's.
    future: Option<String>,
    /// Bytes allocated here in the baseline (`None`: no site of its key there) and the
    /// candidate.
    before_bytes: Option<u64>,
    after_bytes: u64,
}

impl SiteChange<'_> {
    fn delta(&self) -> f64 {
        self.after - self.before
    }
}

/// The heap stage, after the types: boxed futures and allocation sites. The copies of a
/// future into its box are the boxed futures' (claimed), except those of sizes the types
/// claimed.
pub(crate) fn findings(cx: &Context<'_>, claims: &Claims, notes: &mut Vec<String>) -> Stage {
    let mut out = Stage::default();
    let (b, c) = (cx.baseline.snapshot, cx.candidate.snapshot);
    let counted = match (&b.alloc, &c.alloc) {
        (Some(ba), Some(ca)) => Some((ba.allocations_per_op(), ca.allocations_per_op())),
        _ => None,
    };
    let (Some(bh), Some(ch)) = (&b.heap, &c.heap) else {
        notes.push("no heap profile on one side: allocation sites not compared".into());
        out.findings
            .extend(boxed_from_sizes(cx, counted).or_else(|| counter_finding(cx, counted)));
        return out;
    };
    let changes = site_changes(cx, bh, ch);
    let (grown, moved) = moved_apart(grown_sites(cx, &changes), counted);
    if !moved.is_empty() {
        let names: Vec<String> = moved
            .iter()
            .map(|s| format!("`{}`", short_name(&s.site.function)))
            .collect();
        notes.push(format!(
            "allocation sites that appeared or grew while the whole process's allocations per \
             operation did not (they moved there from elsewhere, no finding): {}",
            names.join(", ")
        ));
    }
    // The extra CPU in the allocator is shared among the sites by the allocations each adds.
    let total_added: f64 = grown.iter().map(|s| s.delta()).sum();
    let alloc_cost = cx.cpu.map(|cpu| cpu.delta(CpuCategory::Alloc).max(0.0));
    let cost_of = |added: f64| -> Option<f64> {
        let cost = alloc_cost?;
        (total_added > 0.0).then(|| cost * added / total_added)
    };
    // A spawn's allocation is its task's cell: the spawn is the cause, not the box or the size.
    let (spawning, grown): (Vec<&SiteChange<'_>>, Vec<&SiteChange<'_>>) = grown
        .into_iter()
        .partition(|s| spawns::spawned_on(s.site).is_some());
    out.findings
        .extend(spawn_findings(cx, &spawning, &cost_of, &mut out.claims));
    let (boxed, mut other): (Vec<&SiteChange<'_>>, Vec<&SiteChange<'_>>) =
        grown.into_iter().partition(|s| s.future.is_some());
    if !boxed.is_empty() {
        let cost = cost_of(boxed.iter().map(|s| s.delta()).sum());
        let (finding, claimed) = boxed_finding(cx, &boxed, counted, &claims.sizes, cost);
        out.findings.push(finding);
        out.claims.sites.extend(claimed);
    }
    other.sort_by(|a, b| b.delta().total_cmp(&a.delta()));
    for group in by_function(&other).iter().take(SITE_FINDINGS_MAX) {
        let added = group.iter().map(|s| s.delta()).sum();
        let mut finding = function_finding(group, counted, cost_of(added));
        if let Some(t) = buffer_of(group[0], &claims.grown) {
            mark_buffer_symptom(&mut finding, t);
        }
        out.findings.push(finding);
    }
    if out.findings.is_empty() {
        out.findings.extend(counter_finding(cx, counted));
    }
    out
}

/// The findings of the sites that spawn more tasks, the largest first; it also carries the
/// copies of the futures into their tasks (claimed: they are the spawn's cost).
fn spawn_findings(
    cx: &Context<'_>,
    spawning: &[&SiteChange<'_>],
    cost_of: &dyn Fn(f64) -> Option<f64>,
    claims: &mut Claims,
) -> Vec<Finding> {
    let mut spawning = spawning.to_vec();
    spawning.sort_by(|a, b| b.delta().total_cmp(&a.delta()));
    let mut findings: Vec<Finding> = spawning
        .iter()
        .map(|s| spawns::finding(s.site, s.before, s.after, cost_of(s.delta())))
        .collect();
    let copies = spawns::TaskCopies::of(cx).filter(|c| c.after > c.before);
    if let (Some(first), Some(copies)) = (findings.first_mut(), copies) {
        first.evidence.push(copies.evidence());
        if let Some(cost) = copies.cost(cx) {
            first.cost_ns_per_op = Some(first.cost_ns_per_op.unwrap_or(0.0) + cost);
        }
        claims.copy_functions.extend(copies.functions);
    }
    findings
}

/// The sites whose allocations per operation grew past the site threshold.
fn grown_sites<'a, 'b>(cx: &Context<'_>, changes: &'b [SiteChange<'a>]) -> Vec<&'b SiteChange<'a>> {
    let growth = cx.thresholds.site_alloc_growth;
    changes
        .iter()
        .filter(|s| {
            s.delta() >= ALLOC_CHANGE_PER_OP_MIN
                && (s.before == 0.0 || s.delta() / s.before >= growth)
        })
        .collect()
}

/// The grown sites apart from those whose growth the whole process's allocations per operation
/// (`counted`, both sides) do not show: an allocation that moved to a new site (a function
/// renamed or split, a buffer made elsewhere) while others went away is no new cost. A site's
/// growth is real when the process grew by at least half as much.
fn moved_apart<'a, 'b>(
    grown: Vec<&'b SiteChange<'a>>,
    counted: Option<(f64, f64)>,
) -> (Vec<&'b SiteChange<'a>>, Vec<&'b SiteChange<'a>>) {
    let Some((before, after)) = counted else {
        return (grown, Vec::new());
    };
    let process_growth = after - before;
    grown
        .into_iter()
        .partition(|s| process_growth >= ALLOC_CHANGE_PER_OP_MIN.max(0.5 * s.delta()))
}

/// The finding of one allocation site that appeared or grew (`counted`: the whole process's
/// allocations per operation, both sides).
/// The grown sites grouped by their function, in the order of each function's largest site: a
/// connection's two buffers and its stream are one function's allocations, one finding.
fn by_function<'s, 'a>(sites: &[&'s SiteChange<'a>]) -> Vec<Vec<&'s SiteChange<'a>>> {
    let mut groups: Vec<Vec<&SiteChange<'a>>> = Vec::new();
    for &site in sites {
        match groups
            .iter_mut()
            .find(|g| g[0].site.function == site.site.function)
        {
            Some(group) => group.push(site),
            None => groups.push(vec![site]),
        }
    }
    groups
}

/// The finding of one function's grown sites: the first's, with the counts of them all and
/// every site where there are several.
fn function_finding(
    group: &[&SiteChange<'_>],
    counted: Option<(f64, f64)>,
    cost: Option<f64>,
) -> Finding {
    let mut finding = site_finding(group[0], counted, cost);
    if group.len() > 1 {
        let before = group.iter().map(|s| s.before).sum();
        let after = group.iter().map(|s| s.after).sum();
        finding.title = format!(
            "{}, at {} places",
            alloc_title(&short_name(&group[0].site.function), before, after),
            group.len()
        );
        finding.evidence[0] = Evidence::new(
            "allocations per operation here (all its places)",
            fmt_count(before),
            fmt_count(after),
        );
        finding.sites = group.iter().map(|s| site_line(s)).collect();
        finding.counts_per_op = Some((before, after));
    }
    finding
}

fn alloc_title(name: &str, before: f64, after: f64) -> String {
    if before == 0.0 {
        format!(
            "new allocations in `{name}`: {} per operation",
            fmt_count(after)
        )
    } else {
        format!(
            "allocations in `{name}` grew from {} to {} per operation",
            fmt_count(before),
            fmt_count(after)
        )
    }
}

fn site_line(s: &SiteChange<'_>) -> String {
    let location = s.site.location.as_deref().unwrap_or("no line recorded");
    format!(
        "`{}` ({location}){}",
        short_name(&s.site.function),
        via(s.site)
    )
}

fn site_finding(s: &SiteChange<'_>, counted: Option<(f64, f64)>, cost: Option<f64>) -> Finding {
    let name = short_name(&s.site.function);
    let mut evidence = vec![
        Evidence::new(
            "allocations per operation here",
            fmt_count(s.before),
            fmt_count(s.after),
        ),
        Evidence::new(
            "bytes per allocation",
            "",
            fmt_bytes(s.site.bytes_per_block() as f64),
        ),
    ];
    evidence.extend(whole_process_evidence(counted));
    Finding {
        kind: FindingKind::Allocations,
        title: alloc_title(&name, s.before, s.after),
        evidence,
        sites: vec![site_line(s)],
        functions: vec![s.site.function.clone()],
        cost_ns_per_op: cost,
        share: None,
        fix: "allocate once and reuse (a buffer kept by the caller), keep small values on the \
              stack, or share the data (`Bytes`, `Arc`) instead of copying it into a new \
              allocation"
            .into(),
        regression: true,
        symptom: false,
        blocked_call: None,
        counts_per_op: Some((s.before, s.after)),
    }
}

/// Smallest element size for the buffer rule: every byte count is a whole number of
/// elements of a smaller type too often by chance.
const BUFFER_ELEMENT_MIN: u64 = 64;

/// The grown type a site's blocks are buffers of (a `Vec<Fragment>`): on both sides the bytes
/// allocated there are a whole number of the type's size of that side. A larger element
/// changes how often a buffer reallocates (a `Vec` starts at capacity 1 instead of 4 once
/// elements pass 1 KiB), so the site's extra allocations are the type's growth at work.
fn buffer_of<'g>(s: &SiteChange<'_>, grown: &'g [GrownType]) -> Option<&'g GrownType> {
    let before_bytes = s.before_bytes.filter(|b| *b > 0)?;
    grown.iter().find(|t| {
        t.before > 0
            && t.after >= BUFFER_ELEMENT_MIN
            && t.after != t.before
            && before_bytes.is_multiple_of(t.before)
            && s.after_bytes.is_multiple_of(t.after)
    })
}

/// Makes a site's finding the symptom of the growth of the type its blocks hold.
fn mark_buffer_symptom(f: &mut Finding, t: &GrownType) {
    f.title.push_str(&format!(
        " (buffers of `{}`, which grew from {} to {})",
        t.short_name,
        fmt_bytes(t.before as f64),
        fmt_bytes(t.after as f64)
    ));
    f.fix = format!(
        "a symptom of `{}`'s growth: its buffers reallocate more often now that each element \
         is larger; fix that first, then compare again",
        t.short_name
    );
    f.regression = false;
    f.symptom = true;
}

/// The whole process's allocations per operation, as a line of evidence.
fn whole_process_evidence(counted: Option<(f64, f64)>) -> Option<Evidence> {
    counted.map(|(before, after)| {
        Evidence::new(
            "allocations per operation, whole process",
            fmt_count(before),
            fmt_count(after),
        )
    })
}

/// The changes of the candidate's allocation sites. A site is matched across builds by what it
/// is, not where it is: its function, its file and the frame it allocates through, line left
/// out, so a site whose lines moved (code added above it) is the same site; sites of one
/// function, file and frame are added up on both sides.
fn site_changes<'a>(
    cx: &Context<'_>,
    before: &'a HeapFigures,
    after: &'a HeapFigures,
) -> Vec<SiteChange<'a>> {
    let futures: Vec<(&str, u64)> = cx
        .candidate
        .sizes
        .map(|s| {
            s.futures
                .iter()
                .map(|f| (f.name.as_str(), f.size))
                .collect()
        })
        .unwrap_or_default();
    let mut grouped: Vec<(SiteKey<'a>, &'a HeapSite, u64, u64)> = Vec::new();
    for site in &after.sites {
        let key = SiteKey::of(site);
        match grouped.iter_mut().find(|(k, ..)| *k == key) {
            Some((_, _, blocks, bytes)) => {
                *blocks += site.blocks;
                *bytes += site.bytes;
            }
            None => grouped.push((key, site, site.blocks, site.bytes)),
        }
    }
    let mut stand_ins = StandIns::of(before, after);
    grouped
        .into_iter()
        .map(|(key, site, blocks, bytes)| {
            let size = bytes.checked_div(blocks).unwrap_or(0);
            let exact: Vec<&HeapSite> = before
                .sites
                .iter()
                .filter(|b| SiteKey::of(b) == key)
                .collect();
            let base = if exact.is_empty() {
                stand_ins.take(&key, size)
            } else {
                exact.iter().map(|b| b.blocks).sum::<u64>()
            };
            SiteChange {
                site,
                before: per_op(base, before.ops),
                after: per_op(blocks, after.ops),
                future: boxed_future(site, size, &futures),
                before_bytes: (!exact.is_empty()).then(|| exact.iter().map(|b| b.bytes).sum()),
                after_bytes: bytes,
            }
        })
        .collect()
}

/// How far a moved allocation's mean block size may be from its stand-in's, as a fraction:
/// blocks of varying size (a record's buffer) average a little differently in two runs.
const MOVED_BLOCK_SIZE_SLACK: f64 = 0.05;

/// The baseline's sites that have no site of their key in the candidate: when a candidate
/// site has none in the baseline either, one of these in the same function and file stands in
/// for it (the nearest in block size), so the site is compared by its count, not called new.
/// Inlining decides which frame is "just inside" the function (`join_all` in one build,
/// `JoinAll::poll` in the next), so one allocation can change its key without changing; its
/// blocks may change size with what they hold (a `join_all` of smaller futures).
struct StandIns<'a> {
    sites: Vec<&'a HeapSite>,
}

impl<'a> StandIns<'a> {
    fn of(before: &'a HeapFigures, after: &HeapFigures) -> StandIns<'a> {
        let in_after = |b: &HeapSite| after.sites.iter().any(|a| SiteKey::of(a) == SiteKey::of(b));
        StandIns {
            sites: before.sites.iter().filter(|b| !in_after(b)).collect(),
        }
    }

    /// The blocks of the stand-in for `key`, taken so it stands in once; 0 when there is none.
    /// The stand-in is in the same function and file (the block size nearest `size`), or else
    /// anywhere with the same frame and the same block size (within
    /// [`MOVED_BLOCK_SIZE_SLACK`]): an allocation whose code moved into another function (a
    /// helper extracted) is the same allocation.
    fn take(&mut self, key: &SiteKey<'_>, size: u64) -> u64 {
        let same_place = |b: &&HeapSite| {
            let k = SiteKey::of(b);
            k.function == key.function && k.file == key.file
        };
        let nearest = self
            .sites
            .iter()
            .enumerate()
            .filter(|(_, b)| same_place(b))
            .min_by_key(|(_, b)| b.bytes_per_block().abs_diff(size))
            .map(|(i, _)| i);
        let moved = || {
            self.sites
                .iter()
                .enumerate()
                .filter(|(_, b)| SiteKey::of(b).via == key.via)
                .map(|(i, b)| (i, b.bytes_per_block().abs_diff(size)))
                .filter(|(_, diff)| *diff as f64 <= MOVED_BLOCK_SIZE_SLACK * size as f64)
                .min_by_key(|(_, diff)| *diff)
                .map(|(i, _)| i)
        };
        nearest
            .or_else(moved)
            .map_or(0, |i| self.sites.swap_remove(i).blocks)
    }
}

/// What a heap site is, whatever its line: function, file, and the frame just inside it that
/// allocates (`Vec::with_capacity`, `Box::pin`). Only that frame: the deeper ones vary between
/// two runs of one binary (the allocator's own frames are cut at different depths).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SiteKey<'a> {
    function: &'a str,
    file: Option<&'a str>,
    via: Option<&'a str>,
}

impl<'a> SiteKey<'a> {
    fn of(site: &'a HeapSite) -> SiteKey<'a> {
        SiteKey {
            function: &site.function,
            file: site.location.as_deref().map(crate::snapshot::file_of),
            via: site.via.first().map(String::as_str),
        }
    }
}

/// The future a site boxes, when the evidence says it boxes one: its blocks go through
/// `Box::pin` (the `#[async_trait]` shim, `Box::pin(fut)`), or through `Box::new` with the size
/// of a future (`Box::new(fut) as Pin<Box<dyn Future>>`). A block that only has a future's size
/// (a `Vec`'s buffer of 320 B) is not one. The future named is the one of that size, preferring
/// the allocating function's own; `Some("")` when a pinned block's size matches no future.
fn boxed_future(site: &HeapSite, size: u64, futures: &[(&str, u64)]) -> Option<String> {
    let through = |frames: [&str; 2]| {
        site.via
            .iter()
            .any(|v| frames.iter().any(|f| v.contains(f)))
    };
    let pinned = through(["Box<T>::pin", "Box<T,A>::pin"]);
    let boxed = pinned || through(["Box<T>::new", "Box<T,A>::new"]);
    if !boxed {
        return None;
    }
    let mut matching: Vec<&str> = futures
        .iter()
        .filter(|(_, s)| *s == size)
        .map(|(n, _)| *n)
        .collect();
    matching.sort_by_key(|n| (!is_boxed_trait_block(n), n.len()));
    match matching.first() {
        Some(n) => Some(n.to_string()),
        None if pinned => Some(String::new()),
        None => None,
    }
}

/// The finding of the sites that box a future per call, with the copies of the futures into
/// their boxes (claimed, except those of `claimed_sizes`, the types' copies).
fn boxed_finding(
    cx: &Context<'_>,
    boxed: &[&SiteChange<'_>],
    counted: Option<(f64, f64)>,
    claimed_sizes: &[u64],
    cost: Option<f64>,
) -> (Finding, Vec<String>) {
    let before: f64 = boxed.iter().map(|s| s.before).sum();
    let after: f64 = boxed.iter().map(|s| s.after).sum();
    // `#[async_trait]` boxes an async block in a *trait* method (`<T as Trait>::m`); the same
    // block boxed by hand in an inherent method is just a `Box::pin`.
    let async_trait = boxed.iter().any(|s| {
        s.future.as_deref().is_some_and(is_boxed_trait_block) && is_trait_method(&s.site.function)
    });
    let sizes = block_sizes(boxed);
    let mut evidence = vec![Evidence::new(
        "boxed futures per operation",
        fmt_count(before),
        fmt_count(after),
    )];
    evidence.extend(whole_process_evidence(counted));
    evidence.push(Evidence::new(
        "bytes per boxed future",
        "",
        sizes_text(&sizes),
    ));
    let into_boxes = copies_into_boxes(cx, &sizes, claimed_sizes);
    let (mut claimed, mut copy_cost) = (Vec::new(), None);
    if let Some(copies) = into_boxes {
        evidence.push(copies.evidence);
        claimed = copies.sites;
        copy_cost = copies.cost;
    }
    let (functions, sites) = boxed_sites(boxed);
    let finding = Finding {
        kind: FindingKind::BoxedFuture,
        title: boxed_title(boxed, after - before, async_trait),
        evidence,
        sites,
        functions,
        cost_ns_per_op: match (cost, copy_cost) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        },
        share: None,
        fix: if async_trait {
            ASYNC_TRAIT_FIX
        } else {
            BOX_PIN_FIX
        }
        .into(),
        regression: true,
        symptom: false,
        blocked_call: None,
        counts_per_op: None,
    };
    (finding, claimed)
}

/// The sizes of the boxed futures' blocks, smallest first.
fn block_sizes(boxed: &[&SiteChange<'_>]) -> Vec<u64> {
    let mut sizes: Vec<u64> = boxed.iter().map(|s| s.site.bytes_per_block()).collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// `1,184 B, 2,048 B`.
fn sizes_text(sizes: &[u64]) -> String {
    let texts: Vec<String> = sizes.iter().map(|s| fmt_bytes(*s as f64)).collect();
    texts.join(", ")
}

/// What to do about futures boxed by hand.
const BOX_PIN_FIX: &str = "futures are boxed per call (`Box::pin`): call the `async fn` \
     directly, or keep one boxed future alive and reuse it";

/// The copies that move futures into their boxes.
struct IntoBoxes {
    evidence: Evidence,
    /// Their sites ([`site_key`]).
    sites: Vec<String>,
    /// Their share of the extra CPU in `memcpy`.
    cost: Option<f64>,
}

/// Moving a future into its box copies it: the candidate's copies of a boxed future's size
/// (`sizes`), except sizes a grown type claimed.
fn copies_into_boxes(cx: &Context<'_>, sizes: &[u64], claimed_sizes: &[u64]) -> Option<IntoBoxes> {
    let (Some(bm), Some(cm)) = (&cx.baseline.snapshot.moves, &cx.candidate.snapshot.moves) else {
        return None;
    };
    let own: Vec<_> = cm
        .sites
        .iter()
        .filter(|s| sizes.contains(&s.size) && !claimed_sizes.contains(&s.size))
        .collect();
    if own.is_empty() {
        return None;
    }
    let bytes = per_op(own.iter().map(|s| s.bytes).sum(), cm.ops);
    let large_delta = (cm.large_bytes_per_op() - bm.large_bytes_per_op()).max(0.0);
    Some(IntoBoxes {
        evidence: Evidence::new(
            "bytes copied into the boxes per operation",
            "",
            fmt_bytes(bytes),
        ),
        sites: own.iter().map(|s| site_key(s)).collect(),
        cost: cx
            .cpu
            .filter(|_| large_delta > 0.0)
            .map(|cpu| cpu.delta(CpuCategory::Copy).max(0.0) * (bytes / large_delta).min(1.0)),
    })
}

/// The boxing sites, most allocations added first: their functions, and the first sites' lines.
fn boxed_sites(boxed: &[&SiteChange<'_>]) -> (Vec<String>, Vec<String>) {
    let mut sites: Vec<&&SiteChange<'_>> = boxed.iter().collect();
    sites.sort_by(|a, b| b.delta().total_cmp(&a.delta()));
    let functions = sites.iter().map(|s| s.site.function.clone()).collect();
    let lines = sites
        .iter()
        .take(BOXED_SITES_SHOWN_MAX)
        .map(|s| {
            format!(
                "`{}` ({}): {}/op{}",
                short_name(&s.site.function),
                s.site.location.clone().unwrap_or_else(|| "?".into()),
                fmt_count(s.after),
                via(s.site)
            )
        })
        .collect();
    (functions, lines)
}

/// `a boxed future per call of `Store::get`, ...: N allocations per operation`.
fn boxed_title(boxed: &[&SiteChange<'_>], added: f64, async_trait: bool) -> String {
    let mut methods: Vec<String> = boxed
        .iter()
        .map(|s| method_name(&s.site.function))
        .collect();
    methods.dedup();
    format!(
        "a boxed future per call of {}: {} allocations per operation{}",
        methods
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", "),
        fmt_count(added),
        if async_trait {
            " (the `#[async_trait]` pattern)"
        } else {
            ""
        }
    )
}

/// Without heap profiles: futures of trait methods that became async blocks (the shape
/// `#[async_trait]` gives them, each boxed per call), from the sizes reports alone.
fn boxed_from_sizes(cx: &Context<'_>, counted: Option<(f64, f64)>) -> Option<Finding> {
    let (before, after) = (cx.baseline.sizes?, cx.candidate.sizes?);
    let boxed: Vec<_> = after
        .futures
        .iter()
        .filter(|f| is_boxed_trait_block(&f.name) && before.type_named(&f.name).is_none())
        .collect();
    if boxed.is_empty() {
        return None;
    }
    let mut methods: Vec<String> = boxed
        .iter()
        .map(|f| format!("`{}`", short_name(&f.function)))
        .collect();
    methods.sort();
    methods.dedup();
    let sites: Vec<String> = boxed
        .iter()
        .map(|f| format!("`{}`: {}", short_name(&f.name), fmt_bytes(f.size as f64)))
        .collect();
    let largest = boxed.iter().map(|f| f.size).max().unwrap_or(0);
    let mut evidence = vec![Evidence::new(
        "trait methods returning a boxed async block",
        "0",
        boxed.len().to_string(),
    )];
    evidence.extend(whole_process_evidence(counted));
    let grew = counted.is_some_and(|(b, c)| c - b >= ALLOC_CHANGE_PER_OP_MIN);
    Some(Finding {
        kind: FindingKind::BoxedFuture,
        title: format!(
            "{} future{} of trait methods boxed per call (the `#[async_trait]` pattern, up to {} \
             each): {}",
            boxed.len(),
            if boxed.len() == 1 { "" } else { "s" },
            fmt_bytes(largest as f64),
            methods.join(", ")
        ),
        evidence,
        sites,
        functions: boxed.iter().map(|f| f.function.clone()).collect(),
        cost_ns_per_op: if grew {
            cx.cpu.map(|c| c.delta(CpuCategory::Alloc).max(0.0))
        } else {
            None
        },
        share: None,
        fix: ASYNC_TRAIT_FIX.into(),
        regression: grew,
        symptom: false,
        blocked_call: None,
        counts_per_op: None,
    })
}

/// `<T as Trait>::method`, closures and all.
fn is_trait_method(function: &str) -> bool {
    function.starts_with('<') && function.contains(" as ")
}

/// What to do about `#[async_trait]`.
const ASYNC_TRAIT_FIX: &str = "`#[async_trait]` turns every `async fn` of the trait into a \
     method returning `Pin<Box<dyn Future>>`: each call allocates its future and calls through \
     a vtable. Declare the methods as native `async fn` in the trait (stable since Rust 1.75) \
     and call them through the concrete type or an enum of the implementations";

/// A finding from the whole-process counters alone, when the heap profile cannot say where.
fn counter_finding(cx: &Context<'_>, counted: Option<(f64, f64)>) -> Option<Finding> {
    let (before, after) = counted?;
    let delta = after - before;
    if delta < ALLOC_CHANGE_PER_OP_MIN
        || (before > 0.0 && delta / before < cx.thresholds.alloc_growth)
    {
        return None;
    }
    Some(Finding {
        kind: FindingKind::Allocations,
        title: format!(
            "allocations per operation grew from {} to {}",
            fmt_count(before),
            fmt_count(after)
        ),
        evidence: vec![Evidence::new(
            "allocations per operation",
            fmt_count(before),
            fmt_count(after),
        )],
        sites: Vec::new(),
        functions: Vec::new(),
        cost_ns_per_op: cx.cpu.map(|c| c.delta(CpuCategory::Alloc).max(0.0)),
        share: None,
        fix: "profile the heap (the heap pass, dhat) to see which sites allocate more".into(),
        regression: true,
        symptom: false,
        blocked_call: None,
        counts_per_op: None,
    })
}

/// `<a::Remote as a::Store>::get` → `Store::get`; other functions: their short name.
fn method_name(function: &str) -> String {
    if let Some(rest) = function.strip_prefix('<')
        && let Some((_, after_as)) = rest.split_once(" as ")
        && let Some((trait_path, method)) = after_as.split_once(">::")
    {
        return format!("{}::{}", short_name(trait_path), method);
    }
    short_name(function)
}

/// `, via Box::pin` when the allocation went through a std helper worth naming.
fn via(site: &HeapSite) -> String {
    match site.via.first() {
        Some(v) if v.contains("Box") => format!(", via `{}`", short_name(v)),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::method_name;

    #[test]
    fn trait_methods_are_named_by_trait() {
        assert_eq!(
            method_name(
                "<ddsplit::store::RemoteStore as ddsplit::store::FragmentStore>::get_fragment"
            ),
            "FragmentStore::get_fragment"
        );
        assert_eq!(method_name("ddsplit::codec::split"), "split");
    }
}

//! Findings from the sizes reports and the copies: types that grew, grouped under the type
//! that caused the growth (`Result<_, DistriErr>`, `Option<DistriErr>` and the futures that hold
//! them all grew because `DistriErr` did), with the copies of them the tracer saw.

use std::collections::{HashMap, HashSet};

use super::claims::{Claims, GrownType, Stage};
use super::names::short_name;
use super::renames::without_renames;
use super::{
    Context, Evidence, Finding, FindingKind, Thresholds, fmt_bytes, fmt_count, site_size,
    size_or_absent,
};
use crate::sizes::{
    EnumImbalance, FieldInfo, HeldField, SizesReport, is_future_name, last_segment, parent_path,
    without_generic_arguments,
};
use crate::snapshot::{CpuCategory, MoveFigures, MoveSite, per_op};

/// A copy whose size has no type is charged to a grown type up to this fraction larger than
/// it: copies of a value's payload leave out its tag and padding.
const PARTIAL_COPY_FRACTION: f64 = 0.01;

/// Futures reported on their own (those not explained by a grown type), at most.
const FUTURE_FINDINGS_MAX: usize = 3;

/// `Result` types carrying the root shown as evidence, at most.
const RESULTS_SHOWN_MAX: usize = 2;

/// Copy sites named in a finding, at most.
const SITES_SHOWN_MAX: usize = 4;

/// A type whose size changed between the sides.
#[derive(Debug, Clone)]
struct Changed {
    name: String,
    before: u64,
    after: u64,
}

impl Changed {
    fn delta(&self) -> u64 {
        self.after.saturating_sub(self.before)
    }
}

/// A type that grew, and the types and futures that grew because of it.
#[derive(Debug)]
struct Group {
    root: Changed,
    /// Types whose names contain the root's.
    members: Vec<Changed>,
    /// Futures (and other types) that grew by holding the root or a member.
    followers: Vec<Changed>,
}

impl Group {
    fn all(&self) -> impl Iterator<Item = &Changed> {
        std::iter::once(&self.root)
            .chain(&self.members)
            .chain(&self.followers)
    }
}

/// The first stage: the findings of types and futures that grew. It claims the sizes of their
/// types, the copy sites charged to them, and the functions whose every copy is.
pub(crate) fn findings(cx: &Context<'_>, notes: &mut Vec<String>) -> Stage {
    let mut out = Stage::default();
    let (Some(before), Some(after)) = (cx.baseline.sizes, cx.candidate.sizes) else {
        notes.push("no sizes report on one side: type sizes not compared".into());
        return out;
    };
    let changed = changed_types(before, after, &cx.prefix());
    let (mut groups, futures) = group(&changed, cx.thresholds.type_growth_bytes, after);
    let moves = SideMoves::of(cx);
    for g in &mut groups {
        g.members.sort_by_key(|m| m.name.len());
    }
    for g in &groups {
        let finding = grown_type_finding(cx, g, after, &moves, &mut out.claims);
        out.findings.push(finding);
    }
    for g in futures.iter().take(FUTURE_FINDINGS_MAX) {
        let finding = grown_future_finding(cx, g, after, &moves, &mut out.claims);
        out.findings.push(finding);
    }
    out
}

/// The copies of both sides, and how much the candidate's large copies per operation grew (the
/// whole a finding's copies are a share of).
struct SideMoves<'a> {
    baseline: Option<&'a MoveFigures>,
    candidate: Option<&'a MoveFigures>,
    large_delta: f64,
}

impl<'a> SideMoves<'a> {
    fn of(cx: &Context<'a>) -> SideMoves<'a> {
        let baseline = cx.baseline.snapshot.moves.as_ref();
        let candidate = cx.candidate.snapshot.moves.as_ref();
        let large_delta = match (baseline, candidate) {
            (Some(b), Some(c)) => (c.large_bytes_per_op() - b.large_bytes_per_op()).max(0.0),
            _ => 0.0,
        };
        SideMoves {
            baseline,
            candidate,
            large_delta,
        }
    }
}

/// The finding of a group of grown types, with the copies charged to it: it claims them, and
/// the sizes of its types.
fn grown_type_finding(
    cx: &Context<'_>,
    g: &Group,
    after: &SizesReport,
    moves: &SideMoves<'_>,
    claims: &mut Claims,
) -> Finding {
    // The types whose methods copy on the group's behalf: its own, and the field that makes
    // its root large (an inline buffer filled by its `store`).
    let mut owners: HashSet<&str> = g.all().map(|t| t.name.as_str()).collect();
    if let Some(field) = own_large_field(g, after) {
        owners.insert(field.type_name.as_str());
    }
    let copies = moves
        .candidate
        .map(|c| attribute(c, g, &owners, |t| t.after, true));
    let base_copies = moves
        .baseline
        .map(|b| attribute(b, g, &owners, |t| t.before, false));
    if let Some(c) = &copies {
        claims.sites.extend(c.sites.iter().map(site_key));
        claims
            .copy_functions
            .extend(c.functions.iter().map(|f| f.0.clone()));
    }
    claim_sizes(g, claims);
    group_finding(cx, g, after, copies, base_copies, moves.large_delta)
}

/// The finding of a future that grew for a reason of its own, with the copies of it (inside
/// wrappers too): it claims them, and the sizes of the futures of its group.
fn grown_future_finding(
    cx: &Context<'_>,
    g: &Group,
    after: &SizesReport,
    moves: &SideMoves<'_>,
    claims: &mut Claims,
) -> Finding {
    let owners = HashSet::new();
    let copies = moves.candidate.map(|c| {
        let mut copies = attribute(c, g, &owners, |t| t.after, false);
        let wrapped = grown_by(moves.baseline, c, g, &copies.sites);
        copies.sites.extend(wrapped);
        copies
    });
    let base_copies = moves
        .baseline
        .map(|b| attribute(b, g, &owners, |t| t.before, false));
    if let Some(c) = &copies {
        claims.sites.extend(c.sites.iter().map(site_key));
    }
    claim_sizes(g, claims);
    let mut finding = future_finding(&g.root, after, cx.thresholds);
    add_future_copies(cx, &mut finding, g, copies, base_copies, moves.large_delta);
    finding
}

/// Claims the sizes of a group's types, and the types themselves for the heap stage.
fn claim_sizes(g: &Group, claims: &mut Claims) {
    claims.sizes.extend(g.all().map(|t| t.after));
    claims.grown.extend(g.all().map(|t| GrownType {
        short_name: short_name(&t.name),
        before: t.before,
        after: t.after,
    }));
}

/// Largest difference, in bytes, between a copy site's growth and a future's for the copy to be
/// of that future inside a wrapper (alignment and the wrapper's own fields moving).
const WRAPPED_GROWTH_SLACK: u64 = 64;

/// Copy sites of the candidate that copy a future of `group` inside a wrapper the sizes report
/// does not list as grown (a `tracing::Instrumented`, a monitor's future, a `FuturesUnordered`
/// task): a site whose copies have a type naming one of the group's futures in its generic
/// arguments, or whose copies grew by one of their growths since the baseline's at the same
/// function and file. Sites already in `claimed` are left out.
fn grown_by(
    baseline: Option<&MoveFigures>,
    candidate: &MoveFigures,
    group: &Group,
    claimed: &[MoveSite],
) -> Vec<MoveSite> {
    let deltas: Vec<u64> = group.all().map(Changed::delta).collect();
    let smallest = deltas.iter().copied().min().unwrap_or(0);
    let file = crate::snapshot::file_of;
    let claimed: HashSet<String> = claimed.iter().map(site_key).collect();
    let grew_as_root = |c: &MoveSite| {
        baseline.is_some_and(|baseline| {
            baseline.sites.iter().any(|b| {
                b.function == c.function
                    && file(&b.location) == file(&c.location)
                    && b.size < c.size
                    && deltas
                        .iter()
                        .any(|d| (c.size - b.size).abs_diff(*d) <= WRAPPED_GROWTH_SLACK)
            })
        })
    };
    let names_one = |c: &MoveSite| {
        c.types
            .iter()
            .any(|t| group.all().any(|g| contains_type(t, &g.name)))
    };
    candidate
        .sites
        .iter()
        .filter(|c| c.size > smallest && !claimed.contains(&site_key(c)))
        .filter(|c| names_one(c) || grew_as_root(c))
        .cloned()
        .collect()
}

/// The copies of a grown future and of the futures that grew by holding it: the finding's
/// evidence, sites and cost (its share of the extra CPU in `memcpy`).
fn add_future_copies(
    cx: &Context<'_>,
    finding: &mut Finding,
    g: &Group,
    copies: Option<Copies>,
    base_copies: Option<Copies>,
    large_delta: f64,
) {
    if !g.followers.is_empty() {
        finding.evidence.push(Evidence::new(
            "futures that grew by holding it",
            "",
            g.followers.len().to_string(),
        ));
    }
    let Some(c) = copies else { return };
    let base = base_copies.as_ref().map_or(0.0, Copies::bytes_per_op);
    let added = c.bytes_per_op() - base;
    finding.evidence.push(Evidence::new(
        "bytes copied per operation (it and the futures holding it)",
        fmt_bytes(base),
        fmt_bytes(c.bytes_per_op()),
    ));
    if added > 0.0 {
        finding.title.push_str(&format!(
            "; copies of it and of the futures holding it move {} more per operation",
            fmt_bytes(added)
        ));
        if let Some(cpu) = cx.cpu.filter(|_| large_delta > 0.0) {
            finding.cost_ns_per_op =
                Some(cpu.delta(CpuCategory::Copy).max(0.0) * (added / large_delta).min(1.0));
        }
    }
    finding
        .sites
        .extend(copy_site_lines(&c.sites_by_bytes(), c.ops));
}

/// Copy sites charged to a group, per operation.
struct Copies {
    sites: Vec<MoveSite>,
    /// Functions whose every copy is charged (methods of the group's types), with the copies
    /// and bytes of theirs that are past the site table's cut.
    functions: Vec<(String, u64, u64)>,
    ops: u64,
}

impl Copies {
    fn bytes_per_op(&self) -> f64 {
        let beyond: u64 = self.functions.iter().map(|f| f.2).sum();
        per_op(
            self.sites.iter().map(|s| s.bytes).sum::<u64>() + beyond,
            self.ops,
        )
    }

    /// The sites, most bytes first.
    fn sites_by_bytes(&self) -> Vec<MoveSite> {
        let mut sites = self.sites.clone();
        sites.sort_by_key(|s| std::cmp::Reverse(s.bytes));
        sites
    }

    fn count_per_op(&self) -> f64 {
        let beyond: u64 = self.functions.iter().map(|f| f.1).sum();
        per_op(
            self.sites.iter().map(|s| s.count).sum::<u64>() + beyond,
            self.ops,
        )
    }
}

/// Whether `function` is a method of one of `owners` (`<T as Trait>::m` or `T::m`).
fn is_method_of(function: &str, owners: &HashSet<&str>) -> bool {
    owners.iter().any(|name| {
        let trait_method = function
            .strip_prefix('<')
            .and_then(|f| f.strip_prefix(name))
            .is_some_and(|rest| rest.starts_with(" as "));
        let own_method = function
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with("::"));
        trait_method || own_method
    })
}

/// A key naming one copy site of one size.
pub(crate) fn site_key(site: &MoveSite) -> String {
    format!("{}|{}|{}", site.function, site.location, site.size)
}

/// The copy sites of `moves` that moved a type of `group` (sizes from `size`); with `partial`,
/// also copies a little smaller than a grown type when no type has their exact size, and the
/// copies made inside the methods of `owners`.
fn attribute(
    moves: &MoveFigures,
    group: &Group,
    owners: &HashSet<&str>,
    size: impl Fn(&Changed) -> u64,
    partial: bool,
) -> Copies {
    let shapes = CopyShapes::of(moves, group, &size);
    // A method of a grown type copies on its behalf (an inline buffer filled in place).
    let is_method_of_group = |function: &str| partial && is_method_of(function, owners);
    let sites: Vec<MoveSite> = moves
        .sites
        .iter()
        .filter(|s| is_method_of_group(&s.function) || shapes.matches(s, partial))
        .cloned()
        .collect();
    // The methods' copies past the site table's cut: from the totals by function.
    let functions = moves
        .functions
        .iter()
        .filter(|f| is_method_of_group(&f.function))
        .map(|f| {
            let (count, bytes) = sites
                .iter()
                .filter(|s| s.function == f.function)
                .fold((0, 0), |(c, b), s| (c + s.count, b + s.bytes));
            (
                f.function.clone(),
                f.count.saturating_sub(count),
                f.bytes.saturating_sub(bytes),
            )
        })
        .collect();
    Copies {
        sites,
        functions,
        ops: moves.ops,
    }
}

/// What a copy of a group's types looks like: their names, their sizes (those the tracer
/// records), and the size windows of their parts.
struct CopyShapes<'a> {
    names: HashSet<&'a str>,
    sizes: Vec<u64>,
    /// A copy of no known type whose size lies between a grown type's growth and its size is a
    /// part of it (the grown field with some of its neighbours, without the tag).
    windows: Vec<(u64, u64)>,
}

impl<'a> CopyShapes<'a> {
    fn of(moves: &MoveFigures, group: &'a Group, size: &impl Fn(&Changed) -> u64) -> Self {
        CopyShapes {
            names: group.all().map(|t| t.name.as_str()).collect(),
            sizes: group
                .all()
                .map(size)
                .filter(|&s| s >= moves.threshold_bytes)
                .collect(),
            windows: group
                .all()
                .filter(|t| t.delta() >= moves.threshold_bytes)
                .map(|t| (t.delta(), size(t)))
                .collect(),
        }
    }

    /// Whether `s` copied one of the types: of its name or its size; with `partial`, an
    /// untyped copy of a part of one, or a little smaller than one.
    fn matches(&self, s: &MoveSite, partial: bool) -> bool {
        let in_window = |n: u64| self.windows.iter().any(|&(lo, hi)| lo <= n && n <= hi);
        let nearly = |n: u64| {
            self.sizes
                .iter()
                .any(|&t| n <= t && (t - n) as f64 <= t as f64 * PARTIAL_COPY_FRACTION)
        };
        s.size > 0
            && (s.types.iter().any(|t| self.names.contains(t.as_str()))
                || self.sizes.contains(&s.size)
                || (partial && s.types.is_empty() && (in_window(s.size) || nearly(s.size))))
    }
}

/// Types that grew or appeared (an appeared type takes the size of a disappeared one of the
/// same name without generics, `Query<Inline>` for `Query<Shared>`; one that is a disappeared
/// one renamed or moved is no change), for the project's types.
fn changed_types(before: &SizesReport, after: &SizesReport, prefix: &str) -> Vec<Changed> {
    let diff = before.diff(after).filtered(prefix);
    // Several types can erase to one name (the futures of one method in two impls): take the
    // largest, so a renaming never reads as growth.
    let mut gone: HashMap<String, u64> = HashMap::new();
    for t in &diff.disappeared {
        let size = gone.entry(erase_generics(&t.name)).or_default();
        *size = (*size).max(t.size);
    }
    let mut changed: Vec<Changed> = diff
        .grew
        .iter()
        .map(|c| Changed {
            name: c.name.clone(),
            before: c.before,
            after: c.after,
        })
        .collect();
    for t in without_renames(&diff.appeared, &diff.disappeared, before, after) {
        let before = gone.get(&erase_generics(&t.name)).copied().unwrap_or(0);
        if t.size > before {
            changed.push(Changed {
                name: t.name.clone(),
                before,
                after: t.size,
            });
        }
    }
    changed
}

/// Groups the changes of at least `threshold` bytes under root types; returns the groups
/// (largest growth first) and the groups of futures that grew for reasons of their own.
fn group(changed: &[Changed], threshold: u64, after: &SizesReport) -> (Vec<Group>, Vec<Group>) {
    let types: Vec<&Changed> = changed
        .iter()
        .filter(|c| c.delta() >= threshold && !is_compiler_made(&c.name))
        .collect();
    let mut groups = type_groups(&types, after);
    // Futures and other compiler-made types: followers of the group whose types they hold
    // (directly, or through a future they await that follows it), or of the group that grew by
    // the same bytes; else findings of their own.
    let held_of = |name: &str| held_types(after, name);
    let compiler_made: Vec<&Changed> = changed
        .iter()
        .filter(|c| is_compiler_made(&c.name) && c.delta() >= threshold)
        .collect();
    let pending = attach_followers(&mut groups, compiler_made, &held_of);
    // A block of the `#[async_trait]` shape is the heap pass's (a boxed future) unless another
    // future holds it inline: then it is a plain `async move` block and its growth is copied.
    let own: Vec<Changed> = pending
        .into_iter()
        .filter(|c| {
            is_future_name(&c.name)
                && (!is_boxed_trait_block(&c.name) || is_held_inline(after, &c.name))
        })
        .cloned()
        .collect();
    (groups, future_groups(own, &held_of))
}

/// A type holds another when it names it (`Result<_, DistriErr>`) or has a field or a
/// variant's field of it (`Append { entry: Entry }`, `Entry::Compact(CompactPlan)`).
fn holds(after: &SizesReport, outer: &Changed, inner: &Changed) -> bool {
    outer.name != inner.name
        && (contains_type(&outer.name, &inner.name)
            || field_types(after, &outer.name)
                .iter()
                .any(|t| contains_type(t, &inner.name)))
}

/// The grown types of the program grouped under their roots, largest growth first: a root
/// holds no other grown type (the innermost thing that changed), and a member holds the root or
/// another member.
fn type_groups(types: &[&Changed], after: &SizesReport) -> Vec<Group> {
    let mut groups: Vec<Group> = types
        .iter()
        .filter(|c| !types.iter().any(|o| holds(after, c, o)))
        .map(|c| Group {
            root: (*c).clone(),
            members: Vec::new(),
            followers: Vec::new(),
        })
        .collect();
    let mut rest: Vec<&Changed> = types
        .iter()
        .copied()
        .filter(|c| !groups.iter().any(|g| g.root.name == c.name))
        .collect();
    // Until no type joins: a type may hold a member that joined in this round.
    loop {
        let before = rest.len();
        rest.retain(|c| {
            match groups
                .iter_mut()
                .find(|g| g.all().any(|t| holds(after, c, t)))
            {
                Some(g) => {
                    g.members.push((*c).clone());
                    false
                }
                None => true,
            }
        });
        if rest.len() == before {
            break;
        }
    }
    groups.sort_by(|a, b| {
        b.root
            .delta()
            .cmp(&a.root.delta())
            .then_with(|| a.root.name.cmp(&b.root.name))
    });
    groups
}

/// The types the future `name` holds across its awaits (none when it is not a future).
fn held_types(after: &SizesReport, name: &str) -> Vec<String> {
    after
        .futures
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.held.iter().map(|h| h.type_name.clone()).collect())
        .unwrap_or_default()
}

/// True when some future holds a value of type `name` across an await (awaits it inline).
fn is_held_inline(after: &SizesReport, name: &str) -> bool {
    after
        .futures
        .iter()
        .any(|f| f.held.iter().any(|h| h.type_name == name))
}

/// Makes each of `pending` a follower of the group it holds a type of, or of the group whose
/// root grew by the same bytes; returns those that follow no group.
fn attach_followers<'a>(
    groups: &mut [Group],
    mut pending: Vec<&'a Changed>,
    held_of: &dyn Fn(&str) -> Vec<String>,
) -> Vec<&'a Changed> {
    // Until none joins: a future may hold one that joined in this round.
    loop {
        let before = pending.len();
        pending.retain(|c| {
            let mut texts = held_of(&c.name);
            texts.push(c.name.clone());
            let owner = groups.iter_mut().find(|g| {
                g.root.delta() == c.delta()
                    || texts.iter().any(|t| {
                        contains_type(t, &g.root.name)
                            || g.members
                                .iter()
                                .chain(&g.followers)
                                .any(|m| contains_type(t, &m.name))
                    })
            });
            match owner {
                Some(g) => {
                    g.followers.push((*c).clone());
                    false
                }
                None => true,
            }
        });
        if pending.len() == before {
            break;
        }
    }
    pending
}

/// Futures that grew for a reason of their own, grouped under the innermost: a future that
/// awaits (holds) another grown future grew because of it, so the inner one is the finding and
/// the outer ones are its followers, their copies its cost.
fn future_groups(mut own: Vec<Changed>, held_of: &dyn Fn(&str) -> Vec<String>) -> Vec<Group> {
    // Innermost first: a future is smaller than the futures that hold it.
    own.sort_by(|a, b| a.after.cmp(&b.after).then_with(|| a.name.cmp(&b.name)));
    let mut groups: Vec<Group> = Vec::new();
    for f in own {
        let held = held_of(&f.name);
        let holds = |g: &Group| {
            g.all()
                .any(|inner| held.iter().any(|h| contains_type(h, &inner.name)))
        };
        match groups.iter_mut().find(|g| holds(g)) {
            Some(g) => g.followers.push(f),
            None => groups.push(Group {
                root: f,
                members: Vec::new(),
                followers: Vec::new(),
            }),
        }
    }
    // Nested futures the sizes report does not link, grown by the same bytes, are one cause.
    let mut seen_deltas = HashSet::new();
    groups.retain(|g| seen_deltas.insert(g.root.delta()));
    groups.sort_by_key(|g| std::cmp::Reverse(g.root.delta()));
    groups
}

/// The finding of a group of grown types: its sizes, the copies charged to it, and the fix.
fn group_finding(
    cx: &Context<'_>,
    g: &Group,
    after: &SizesReport,
    copies: Option<Copies>,
    base_copies: Option<Copies>,
    large_delta: f64,
) -> Finding {
    let mut evidence = size_evidence(g);
    let imbalance = imbalance_to_box(g, after);
    if let Some(e) = imbalance {
        evidence.push(Evidence::new(
            format!("largest variant of `{}`", short_name(&e.name)),
            "",
            format!(
                "`{}` {} (next: {})",
                e.variant,
                fmt_bytes(e.variant_size as f64),
                fmt_bytes(e.next_size as f64)
            ),
        ));
    }
    let copied = copies.as_ref().map_or(0.0, Copies::bytes_per_op);
    let charge = copies.map(|c| charge_copies(cx, c, base_copies.as_ref(), large_delta));
    let (cost, sites, functions) = match charge {
        Some(charge) => {
            evidence.extend(charge.evidence);
            (charge.cost, charge.sites, charge.functions)
        }
        None => (None, Vec::new(), Vec::new()),
    };
    Finding {
        kind: FindingKind::TypeGrew,
        title: group_title(g, copied),
        evidence,
        sites,
        functions,
        cost_ns_per_op: cost,
        share: None,
        fix: group_fix(g, after, imbalance),
        regression: true,
        symptom: false,
        blocked_call: None,
        counts_per_op: None,
    }
}

/// The sizes of the group's root and of the `Result`s that carry it, and how many types grew
/// with it.
fn size_evidence(g: &Group) -> Vec<Evidence> {
    let size = |t: &Changed| {
        Evidence::new(
            format!("size of `{}`", short_name(&t.name)),
            size_or_absent(t.before),
            fmt_bytes(t.after as f64),
        )
    };
    let mut evidence = vec![size(&g.root)];
    evidence.extend(
        g.members
            .iter()
            .filter(|m| m.name.starts_with("core::result::Result<"))
            .take(RESULTS_SHOWN_MAX)
            .map(size),
    );
    let futures = g
        .followers
        .iter()
        .filter(|f| is_future_name(&f.name))
        .count();
    let grown = g.members.len() + g.followers.len();
    if grown > 0 {
        evidence.push(Evidence::new(
            "types that grew with it",
            "",
            format!(
                "{grown} ({futures} future{})",
                if futures == 1 { "" } else { "s" }
            ),
        ));
    }
    evidence
}

/// A lopsided enum to box: the root itself, or a member whose large variant is not simply the
/// root (`Option<Root>` says nothing the root does not).
fn imbalance_to_box<'a>(g: &Group, after: &'a SizesReport) -> Option<&'a EnumImbalance> {
    std::iter::once(&g.root)
        .chain(&g.members)
        .find_map(|t| after.imbalanced_enums.iter().find(|e| e.name == t.name))
        .filter(|e| {
            e.name == g.root.name
                || after
                    .type_named(&e.name)
                    .and_then(|t| t.largest_field())
                    .is_none_or(|f| f.type_name != g.root.name)
        })
}

/// What a group's copies add to its finding.
struct CopyCharge {
    evidence: Vec<Evidence>,
    /// Its share of the extra CPU in `memcpy`, when the copies grew.
    cost: Option<f64>,
    sites: Vec<String>,
    functions: Vec<String>,
}

/// The copies charged to a group against the baseline's: bytes and copies per operation, the
/// cost (the group's share of the growth of large copies), and the sites, most bytes first.
fn charge_copies(
    cx: &Context<'_>,
    copies: Copies,
    base: Option<&Copies>,
    large_delta: f64,
) -> CopyCharge {
    let evidence = vec![
        Evidence::new(
            "bytes copied per operation",
            base.map_or_else(|| "?".into(), |b| fmt_bytes(b.bytes_per_op())),
            fmt_bytes(copies.bytes_per_op()),
        ),
        Evidence::new(
            "copies per operation",
            base.map_or_else(|| "?".into(), |b| fmt_count(b.count_per_op())),
            fmt_count(copies.count_per_op()),
        ),
    ];
    let added = copies.bytes_per_op() - base.map_or(0.0, Copies::bytes_per_op);
    let cost = cx
        .cpu
        .filter(|_| large_delta > 0.0 && added > 0.0)
        .map(|cpu| cpu.delta(CpuCategory::Copy).max(0.0) * (added / large_delta).min(1.0));
    let by_bytes = copies.sites_by_bytes();
    CopyCharge {
        evidence,
        cost,
        functions: by_bytes.iter().map(|s| s.function.clone()).collect(),
        sites: copy_site_lines(&by_bytes, copies.ops),
    }
}

/// The first copy sites, one line each: function, location, size and copies per operation.
fn copy_site_lines(sites: &[MoveSite], ops: u64) -> Vec<String> {
    sites
        .iter()
        .take(SITES_SHOWN_MAX)
        .map(|s| {
            format!(
                "`{}` ({}): {} × {}/op",
                short_name(&s.function),
                s.location,
                site_size(s),
                fmt_count(per_op(s.count, ops))
            )
        })
        .collect()
}

/// `` `Root` grew from A to B`` (or appeared), and what its copies move.
fn group_title(g: &Group, copied: f64) -> String {
    let root = short_name(&g.root.name);
    let grew = if g.root.before == 0 {
        format!("`{root}` ({}) appeared", fmt_bytes(g.root.after as f64))
    } else {
        format!(
            "`{root}` grew from {} to {}",
            fmt_bytes(g.root.before as f64),
            fmt_bytes(g.root.after as f64)
        )
    };
    if copied > 0.0 {
        format!(
            "{grew}; copies of it move {} per operation",
            fmt_bytes(copied)
        )
    } else {
        grew
    }
}

/// The fix: box the large variant of a lopsided enum, else the field that makes the root
/// large: the root's own (a struct holding a buffer), or the root inside a struct that holds it
/// (`Query<Inline>` holding `answer: Inline`); else box the root.
fn group_fix(g: &Group, after: &SizesReport, imbalance: Option<&EnumImbalance>) -> String {
    let root = short_name(&g.root.name);
    let holder = g.members.iter().find_map(|m| {
        let t = after.type_named(&m.name)?;
        let field = t.largest_field()?;
        (t.kind == crate::sizes::TypeKind::Struct && field.type_name == g.root.name)
            .then(|| (short_name(&m.name), field))
    });
    match (imbalance, own_large_field(g, after), holder) {
        (Some(e), _, _) => format!(
            "{}; every `Result` and future that carries a `{}` then stays a few words, whatever \
             the variant (the story's lesson: a value costs the size of its largest variant to \
             move, even when that variant is never built)",
            e.suggestion,
            short_name(&e.name)
        ),
        (None, None, Some((owner, f))) => format!(
            "`{owner}` holds `{}: {root}` ({}): put it behind a `Box` or an `Arc` (or keep it \
             elsewhere and hold an index), so moving a `{owner}` copies a pointer; push and pop \
             references or indices rather than the values",
            f.name,
            fmt_bytes(f.size as f64)
        ),
        (None, Some(f), _) => format!(
            "`{root}` holds `{}: {}` ({}): put it behind a `Box` or an `Arc` (or keep it elsewhere \
             and hold an index), so moving a `{root}` copies a pointer; push and pop references or \
             indices rather than the values",
            f.name,
            short_name(&f.type_name),
            fmt_bytes(f.size as f64)
        ),
        (None, None, None) => format!(
            "`{root}` is {} to move: box it or pass it by reference",
            fmt_bytes(g.root.after as f64)
        ),
    }
}

/// The finding of a future that grew: its size, the largest value it holds across an await,
/// and the fix.
fn future_finding(f: &Changed, after: &SizesReport, thresholds: &Thresholds) -> Finding {
    let threshold = thresholds.type_growth_bytes;
    let info = after.futures.iter().find(|i| i.name == f.name);
    let held = info.and_then(|i| {
        i.held
            .iter()
            .filter(|h| !h.is_future)
            .max_by_key(|h| h.size)
    });
    let name = short_name(&f.name);
    let mut evidence = vec![Evidence::new(
        format!("size of `{name}`"),
        size_or_absent(f.before),
        fmt_bytes(f.after as f64),
    )];
    if let Some(h) = held {
        evidence.push(Evidence::new(
            format!("held across `.await` ({})", h.suspend),
            "",
            format!(
                "`{}: {}` {}",
                h.name,
                short_name(&h.type_name),
                fmt_bytes(h.size as f64)
            ),
        ));
    }
    let function = info.map_or_else(|| name.clone(), |i| short_name(&i.function));
    Finding {
        kind: FindingKind::TypeGrew,
        title: if f.before == 0 {
            format!(
                "a new future in `{function}`: {}",
                fmt_bytes(f.after as f64)
            )
        } else {
            format!(
                "the future of `{function}` grew from {} to {}",
                fmt_bytes(f.before as f64),
                fmt_bytes(f.after as f64)
            )
        },
        evidence,
        sites: vec![format!("`{function}`")],
        functions: info.map(|i| vec![i.function.clone()]).unwrap_or_default(),
        cost_ns_per_op: None,
        share: None,
        fix: held_fix(held),
        // A future that is new (no counterpart in the baseline) is a regression only when it
        // is large in itself: new code brings new futures.
        regression: f.delta() >= threshold
            && (f.before > 0 || f.after >= thresholds.new_future_fail_bytes),
        symptom: false,
        blocked_call: None,
        counts_per_op: None,
    }
}

/// The fix for a future that grew: end the use of what it holds across an await, or box it.
fn held_fix(held: Option<&HeldField>) -> String {
    match held {
        Some(h) => format!(
            "`{}` ({}) is kept alive across an `.await`, so it lives inside the future and every \
             move of the future copies it: box it, or end its use before the await",
            h.name,
            short_name(&h.type_name)
        ),
        None => "a value held across an `.await` makes the future large: box it, or end its use \
                 before the await"
            .into(),
    }
}

/// The field that makes the group's root large, when one field is most of it (a struct holding a
/// buffer).
fn own_large_field<'a>(g: &Group, after: &'a SizesReport) -> Option<&'a FieldInfo> {
    after
        .type_named(&g.root.name)
        .and_then(|t| t.largest_field())
        .filter(|f| f.size * 2 >= g.root.after)
}

/// The types of a type's fields, and of its variants' fields.
fn field_types(report: &SizesReport, name: &str) -> Vec<String> {
    report.type_named(name).map_or_else(Vec::new, |t| {
        t.fields
            .iter()
            .chain(t.variants.iter().flat_map(|v| &v.fields))
            .map(|f| f.type_name.clone())
            .collect()
    })
}

/// Futures, closures and async blocks: types the compiler names, not the program.
fn is_compiler_made(name: &str) -> bool {
    name.contains("env#") || name.contains("{closure")
}

/// An async block directly inside a method of an impl: what `#[async_trait]` makes of every
/// `async fn` (`<Local as Store>::put_fragment::{async_block_env#0}`). The impl is named by its
/// owner (`<Local as Store>`, `a::Local`), or by its number when the owner is unknown.
pub(crate) fn is_boxed_trait_block(name: &str) -> bool {
    let method = parent_path(name);
    let owner = parent_path(method);
    let owner_last = last_segment(owner);
    let in_impl = owner_last.starts_with("{impl#")
        || (owner.starts_with('<') && owner.ends_with('>'))
        || owner_last.starts_with(|c: char| c.is_ascii_uppercase());
    last_segment(name).starts_with("{async_block_env#")
        && !method.is_empty()
        && !last_segment(method).starts_with('{')
        && in_impl
}

/// `a::B<c::D>` without generic arguments: `a::B` (the owner of a trait method, `<a::S as
/// a::T>`, stays). Also without impl block numbers (`{impl#4}`), which shift when an impl is
/// added elsewhere in the module.
fn erase_generics(name: &str) -> String {
    let out = without_generic_arguments(name);
    let mut erased = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("{impl#") {
        erased.push_str(&rest[..i]);
        erased.push_str("{impl}");
        rest = rest[i..].split_once('}').map_or("", |(_, r)| r);
    }
    erased.push_str(rest);
    erased
}

/// True when `haystack` names the type `needle` (as itself or inside generic arguments).
fn contains_type(haystack: &str, needle: &str) -> bool {
    haystack.match_indices(needle).any(|(i, _)| {
        let before_ok = i == 0
            || matches!(
                haystack[..i].chars().next_back(),
                Some('<' | ' ' | '&' | '(' | '[' | '*' | ',')
            );
        let after = haystack[i + needle.len()..].chars().next();
        let after_ok = !matches!(after, Some(c) if c.is_alphanumeric() || c == '_' || c == ':');
        before_ok && after_ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_found_inside_generic_arguments_only_whole() {
        assert!(contains_type("core::option::Option<a::Err>", "a::Err"));
        assert!(contains_type("a::Err", "a::Err"));
        assert!(!contains_type("a::ErrKind", "a::Err"));
        assert!(!contains_type("b::a::Err", "a::Err"));
        assert_eq!(erase_generics("a::Q<b::Inline>"), "a::Q");
        assert_eq!(
            erase_generics("<a::S<u8> as a::T>::put::{async_fn_env#0}<b::C>"),
            "<a::S as a::T>::put::{async_fn_env#0}"
        );
        assert_eq!(
            erase_generics("a::store::{impl#4}::put::{async_fn_env#0}"),
            "a::store::{impl}::put::{async_fn_env#0}"
        );
    }

    fn future(name: &str, size: u64, held: &[(&str, u64)]) -> crate::sizes::FutureInfo {
        crate::sizes::FutureInfo {
            name: name.into(),
            function: parent_path(name).into(),
            size,
            held: held
                .iter()
                .map(|(type_name, size)| HeldField {
                    suspend: "Suspend0".into(),
                    name: "__awaitee".into(),
                    type_name: (*type_name).into(),
                    size: *size,
                    is_future: true,
                })
                .collect(),
        }
    }

    fn changed(name: &str, before: u64, after: u64) -> Changed {
        Changed {
            name: name.into(),
            before,
            after,
        }
    }

    fn report_of(futures: Vec<crate::sizes::FutureInfo>) -> SizesReport {
        let types = futures
            .iter()
            .map(|f| crate::sizes::TypeInfo {
                name: f.name.clone(),
                size: f.size,
                align: Some(8),
                kind: crate::sizes::TypeKind::Future,
                variants: Vec::new(),
                fields: Vec::new(),
            })
            .collect();
        SizesReport {
            format_version: crate::sizes::FORMAT_VERSION,
            binary: "a".into(),
            types,
            imbalanced_enums: Vec::new(),
            futures,
            stack_frames: crate::sizes::StackFrames::default(),
        }
    }

    /// A function renamed (or moved to another module) is no new future; one of the same size
    /// that holds other things is.
    #[test]
    fn a_renamed_future_of_the_same_shape_is_no_change() {
        let held = [("a::Store::get::{async_fn_env#0}", 1_312), ("u8", 1)];
        let before = report_of(vec![future(
            "a::Gateway::read_from::{async_fn_env#0}",
            1_360,
            &held,
        )]);
        let renamed = report_of(vec![future(
            "a::fetch::Gateway::fetch_from::{async_fn_env#0}",
            1_360,
            &held,
        )]);
        assert!(changed_types(&before, &renamed, "a").is_empty());
        let other = [
            ("a::Store::put::{async_fn_env#0}", 1_200),
            ("u8", 1),
            ("u64", 8),
        ];
        let new = report_of(vec![future(
            "a::Gateway::write_to::{async_fn_env#0}",
            1_360,
            &other,
        )]);
        let changed = changed_types(&before, &new, "a");
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert_eq!((changed[0].before, changed[0].after), (0, 1_360));
    }

    /// A grown future awaited through an enum's future and a method's `async move` block (the
    /// shape of an `#[async_trait]` body, but held inline) is one cause, not two.
    #[test]
    fn a_future_grown_through_an_inline_method_block_is_one_group() {
        let local = "<a::Local as a::Store>::get::{async_fn_env#0}";
        let either = "<a::Either as a::Store>::get::{async_fn_env#0}";
        let block = "a::Gateway::read_from::{async_block_env#0}";
        let outer = "a::Gateway::read::{async_fn#0}::{closure#0}::{async_block_env#0}";
        let report = SizesReport {
            format_version: crate::sizes::FORMAT_VERSION,
            binary: "a".into(),
            types: Vec::new(),
            imbalanced_enums: Vec::new(),
            futures: vec![
                future(local, 16_528, &[]),
                future(either, 16_576, &[(local, 16_528)]),
                future(block, 16_624, &[(either, 16_576)]),
                future(outer, 16_704, &[(block, 16_624)]),
            ],
            stack_frames: crate::sizes::StackFrames::default(),
        };
        let grown = vec![
            changed(local, 144, 16_528),
            changed(either, 1_312, 16_576),
            changed(block, 1_360, 16_624),
            changed(outer, 1_440, 16_704),
        ];
        let (types, futures) = group(&grown, 1024, &report);
        assert!(types.is_empty());
        assert_eq!(futures.len(), 1, "{futures:?}");
        assert_eq!(futures[0].root.name, local);
        assert_eq!(futures[0].followers.len(), 3);
        // Held by nobody, the same block is left to the boxed-future finding.
        let alone = vec![changed(block, 0, 16_624)];
        let (_, futures) = group(&alone, 1024, &report);
        assert_eq!(futures.len(), 1, "held inline by `outer`");
        let mut unheld = report.clone();
        unheld.futures.retain(|f| f.name != outer);
        let (_, futures) = group(&alone, 1024, &unheld);
        assert!(futures.is_empty(), "{futures:?}");
    }

    #[test]
    fn the_async_trait_shape_is_an_async_block_directly_in_an_impl_method() {
        assert!(is_boxed_trait_block(
            "app::store::{impl#8}::put::{async_block_env#0}"
        ));
        assert!(!is_boxed_trait_block(
            "app::store::{impl#8}::put::{async_fn_env#0}"
        ));
        assert!(!is_boxed_trait_block("app::run::{async_block_env#0}"));
        // Impls named by their owner.
        assert!(is_boxed_trait_block(
            "<app::store::Local as app::store::Store>::put::{async_block_env#0}"
        ));
        assert!(is_boxed_trait_block(
            "app::gateway::Gateway::read_from::{async_block_env#0}"
        ));
        assert!(!is_boxed_trait_block(
            "<app::store::Local as app::store::Store>::put::{async_fn_env#0}"
        ));
    }
}

//! The comparison as markdown: the verdict, the overview table, the ranked findings with their
//! evidence and fix, the task kinds, and the builds.

use std::fmt::Write as _;

use super::{Comparison, Figure, Finding, Replication, WallComparison, WallVerdict, fmt_us};
use crate::snapshot::BuildIdentity;

/// A cost below this (nanoseconds per operation) is reported as not measurable.
pub(crate) const COST_VISIBLE_NS: f64 = 50.0;

/// The report in markdown.
pub fn render_markdown(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# `{}` → `{}`\n", c.baseline.label, c.candidate.label);
    let _ = writeln!(out, "{}\n", verdict_line(c));
    if let Some(lead) = lead(c) {
        let _ = writeln!(out, "{lead}\n");
    }
    if let Some(w) = &c.wall {
        out.push_str(&throughput_line(w));
    }
    out.push_str(&figures_table(&c.figures));
    if let Some(cpu) = &c.cpu {
        let (b, k) = cpu.executor_share();
        let _ = writeln!(
            out,
            "\nShare of CPU in the executor (scheduling, parking, I/O driver) against the \
             program's code: {:.1}% → {:.1}%.",
            b * 100.0,
            k * 100.0
        );
    }

    let _ = writeln!(out, "\n## Findings, most costly first\n");
    if c.findings.is_empty() {
        let _ = writeln!(
            out,
            "No finding: nothing measured crossed a threshold or the noise."
        );
    }
    for (i, f) in c.findings.iter().enumerate() {
        out.push_str(&finding(i + 1, f));
    }

    // Kinds that did no work on either side say nothing.
    let notable: Vec<_> = c
        .tasks
        .iter()
        .filter(|t| t.polls_per_op.0 > 0.0 || t.polls_per_op.1 > 0.0)
        .collect();
    if !notable.is_empty() {
        out.push_str(&task_table(&notable));
    }
    if !c.resources.is_empty() {
        out.push_str(&resource_table(&c.resources));
    }
    if !c.notes.is_empty() {
        let _ = writeln!(out, "\n## Notes\n");
        for n in &c.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    let _ = writeln!(out, "\n## Builds\n");
    let _ = writeln!(out, "- baseline: {}", identity(&c.baseline));
    let _ = writeln!(out, "- candidate: {}", identity(&c.candidate));
    for cost in &c.probe_costs {
        let _ = writeln!(out, "- {}", probe_cost(cost));
    }
    out
}

/// What a probe took from the process it measured, in the CPU of both sides.
fn probe_cost(cost: &super::ProbeCost) -> String {
    let side = |share: Option<f64>| {
        share.map_or("not measured".to_string(), |s| format!("{:.2}%", s * 100.0))
    };
    format!(
        "what the probes cost: {} used {} (baseline) and {} (candidate) of the process's CPU",
        cost.probe,
        side(cost.share.0),
        side(cost.share.1)
    )
}

/// Where each task kind's wall time goes, per operation: on the CPU inside polls, blocked
/// inside polls, idle (waiting to be woken), scheduled (woken, waiting for a thread).
fn task_table(kinds: &[&super::TaskChange]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## Where each task kind's time goes (per operation, baseline → candidate)\n\n\
         Polls run on the CPU or block off it (a blocking call on the runtime thread); between \
         polls a task is idle (waiting to be woken: I/O, timers, locks, other tasks) or \
         scheduled (woken, queued for a thread).\n"
    );
    let _ = writeln!(
        out,
        "| task kind | polls | on the CPU in polls | blocked in polls | idle | scheduled | slow polls | |\n\
         |---|---:|---:|---:|---:|---:|---:|---|"
    );
    for t in kinds {
        let (cpu, blocked) = t.poll_split();
        let blocked = match blocked {
            Some((b, c)) => format!("{} → {}", fmt_us(b), fmt_us(c)),
            None => "not profiled".into(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {:.2} → {:.2} | {} → {} | {blocked} | {} → {} | {} → {} | {:.3} → {:.3} | {} |",
            t.kind,
            t.polls_per_op.0,
            t.polls_per_op.1,
            fmt_us(cpu.0),
            fmt_us(cpu.1),
            fmt_us(t.idle_ns_per_op.0),
            fmt_us(t.idle_ns_per_op.1),
            fmt_us(t.scheduled_ns_per_op.0),
            fmt_us(t.scheduled_ns_per_op.1),
            t.slow_polls_per_op.0,
            t.slow_polls_per_op.1,
            if t.notable { "**slower polls**" } else { "" }
        );
    }
    out
}

/// What the tasks waited on, per operation, in the console pass of both sides.
fn resource_table(resources: &[super::ResourceChange]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## What the tasks wait on (console pass, per operation, baseline → candidate)\n\n\
         Completed waits on each `tokio::sync` resource or timer, by where it was created (the \
         workload at the console's pace, in each side's tokio-console build).\n\n\
         | resource | created at | waits | time waiting |\n|---|---|---:|---:|"
    );
    for r in resources {
        let _ = writeln!(
            out,
            "| `{}` | {} | {:.2} → {:.2} | {} → {} |",
            r.concrete_type,
            r.location,
            r.waits_per_op.0,
            r.waits_per_op.1,
            fmt_us(r.wait_ns_per_op.0),
            fmt_us(r.wait_ns_per_op.1)
        );
    }
    out
}

/// The throughput of the pairs of runs on both sides, their ratios and the noise.
fn throughput_line(w: &WallComparison) -> String {
    format!(
        "Throughput of {} interleaved pairs of runs: baseline {:.0}–{:.0} ops/s, candidate \
         {:.0}–{:.0} ops/s; pair ratios {:.3}–{:.3} (median {:.3}); the machine's noise for one \
         pair is ±{:.1}%.{}\n\n",
        w.pairs,
        w.baseline.min,
        w.baseline.max,
        w.candidate.min,
        w.candidate.max,
        w.ratio_range.0,
        w.ratio_range.1,
        w.ratio,
        w.noise * 100.0,
        w.replication
            .map(|r| replication_sentence(r, w.verdict))
            .unwrap_or_default()
    )
}

/// What the fresh pairs, run to measure a change again before it is believed, showed.
fn replication_sentence(r: Replication, verdict: WallVerdict) -> String {
    let what = match (r.held, verdict) {
        (false, _) => {
            "the change did not repeat, so it is taken for the machine's, not the candidate's"
        }
        (true, WallVerdict::NoChange) => {
            "they moved the same way, but all the pairs together are within the noise"
        }
        (true, _) => "the change repeated",
    };
    format!(
        " The change was measured again in {} fresh pairs: their median ratio is {:.3}; {what}.",
        r.pairs, r.ratio
    )
}

/// One sentence: regression or not, and the throughput change with its noise.
pub(crate) fn verdict_line(c: &Comparison) -> String {
    let crossed = c.findings.iter().filter(|f| f.regression).count();
    let head = if !c.blockers.is_empty() {
        "**Could not compare everything.**"
    } else if c.regression {
        "**Regression.**"
    } else {
        "**No regression.**"
    };
    let wall = match &c.wall {
        Some(w) => {
            let what = match w.verdict {
                WallVerdict::Slower => "slower, beyond the noise",
                WallVerdict::Faster => "faster, beyond the noise",
                WallVerdict::NoChange => "within the threshold or the noise",
            };
            format!(
                " Throughput {:+.1}% ({what}; threshold −{:.0}%, standard error {:.1}%).",
                w.change() * 100.0,
                w.threshold * 100.0,
                w.standard_error * 100.0
            )
        }
        None => " Throughput not compared.".into(),
    };
    let mut line = format!(
        "{head}{wall} {crossed} finding{} crossed a threshold.",
        if crossed == 1 { "" } else { "s" }
    );
    if !c.missing_passes.is_empty() {
        let _ = write!(line, " Passes missing: {}.", c.missing_passes.join(", "));
    }
    for blocker in &c.blockers {
        let _ = write!(line, " {blocker}.");
    }
    line
}

/// The report's first sentence after the verdict: the cause ranked first, its share of the
/// slowdown, where it is and the fix; then how much of the slowdown the findings explain.
pub(crate) fn lead(c: &Comparison) -> Option<String> {
    let slower = c
        .wall
        .as_ref()
        .is_some_and(|w| w.verdict == WallVerdict::Slower);
    let first = most_likely_cause(c, slower)?;
    // A slowdown only when the wall time says so; otherwise the costs are shares of the extra
    // runtime-thread time the profiles measured.
    let of_what = if slower {
        "the slowdown"
    } else {
        "the extra runtime-thread time"
    };
    let share = match first.share {
        Some(share) if first.cost_ns_per_op.is_some_and(|n| n >= COST_VISIBLE_NS) => {
            format!(", est. {:.0}% of {of_what}", share * 100.0)
        }
        _ => String::new(),
    };
    let place = first
        .sites
        .first()
        .filter(|s| !first.title.contains(s.as_str()))
        .map_or(String::new(), |s| format!(", at {s}"));
    let fix = first.fix.split(": ").next().unwrap_or(&first.fix);
    let mut line = format!(
        "**Most likely cause:** {}{share}{place}. **Try:** {fix}.",
        first.title
    );
    let explained = explained_share(c);
    if c.findings.iter().any(|f| f.share.is_some()) {
        let _ = write!(
            line,
            " The findings explain an estimated {:.0}% of {of_what}; {:.0}% is unexplained.",
            explained * 100.0,
            (1.0 - explained) * 100.0
        );
    }
    Some(line)
}

/// The finding the lead names. When the wall time is slower, the costliest cause (findings
/// are ranked by cost): a hot spot explains a slowdown without a threshold of its own, and a
/// cheaper finding that crossed one must not be named before it. Otherwise the first finding
/// that crossed a threshold.
fn most_likely_cause(c: &Comparison, slower: bool) -> Option<&Finding> {
    let costly =
        |f: &&Finding| !f.symptom && f.cost_ns_per_op.is_some_and(|n| n >= COST_VISIBLE_NS);
    let first_regression = c.findings.iter().find(|f| f.regression);
    match c.findings.iter().find(costly) {
        Some(cause) if slower => Some(cause),
        _ => first_regression,
    }
}

/// The share of the change the findings explain together, at most all of it. A symptom's cost
/// is part of its cause's: counting both would explain the change twice.
pub(crate) fn explained_share(c: &Comparison) -> f64 {
    c.findings
        .iter()
        .filter(|f| !f.symptom)
        .filter_map(|f| f.share)
        .sum::<f64>()
        .min(1.0)
}

fn figures_table(figures: &[Figure]) -> String {
    let mut out =
        String::from("| per operation | baseline | candidate | change |\n|---|---:|---:|---:|\n");
    for f in figures {
        let change = if f.baseline == 0.0 && f.candidate == 0.0 {
            "".to_string()
        } else if f.baseline == 0.0 {
            "new".to_string()
        } else {
            format!("{:+.1}%", (f.candidate / f.baseline - 1.0) * 100.0)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            f.what,
            value(f.baseline, &f.unit),
            value(f.candidate, &f.unit),
            change
        );
    }
    out
}

fn value(v: f64, unit: &str) -> String {
    let number = if v.abs() >= 1000.0 {
        crate::sizes::render_bytes(v.round() as u64)
    } else if v.abs() >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    };
    if unit.is_empty() {
        number
    } else {
        format!("{number} {unit}")
    }
}

fn finding(rank: usize, f: &Finding) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### {rank}. {}\n", f.title);
    let mut tags = vec![f.kind.label().to_string()];
    tags.push(cost_tag(f));
    if f.regression {
        tags.push("**crossed a threshold**".into());
    }
    let _ = writeln!(out, "*{}*\n", tags.join(" · "));
    if !f.evidence.is_empty() {
        let _ = writeln!(out, "| evidence | baseline | candidate |\n|---|---:|---:|");
        for e in &f.evidence {
            let _ = writeln!(out, "| {} | {} | {} |", e.what, e.baseline, e.candidate);
        }
        out.push('\n');
    }
    if !f.sites.is_empty() {
        let _ = writeln!(out, "Where:");
        for s in &f.sites {
            let _ = writeln!(out, "- {s}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "**Fix to try:** {}\n", f.fix);
    out
}

/// What a finding is estimated to cost, in words.
pub(crate) fn cost_tag(f: &Finding) -> String {
    match (f.share, f.cost_ns_per_op) {
        (_, Some(cost)) if cost < COST_VISIBLE_NS => "no cost measurable in this run".into(),
        (Some(share), Some(cost)) => format!(
            "est. {:.0}% of the extra runtime-thread time ({} per operation)",
            share * 100.0,
            fmt_us(cost)
        ),
        (None, Some(cost)) => format!("est. {} per operation", fmt_us(cost)),
        _ => "cost not estimated".into(),
    }
}

fn identity(b: &BuildIdentity) -> String {
    format!(
        "`{}` — revision {}{}, sources {}, features [{}], {}, profile `{}`, {}",
        b.label,
        b.revision.as_deref().unwrap_or("?"),
        if b.dirty {
            " (with uncommitted changes)"
        } else {
            ""
        },
        b.source_hash.as_deref().unwrap_or("not recorded"),
        b.features.join(", "),
        b.rustc,
        b.profile,
        b.machine
    )
}

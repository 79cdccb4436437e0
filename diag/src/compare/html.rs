//! The comparison as one self-contained HTML page: the verdict, the overview, the findings as
//! cards, the task kinds, and the flamegraphs embedded (each in its own `<object>`, so their
//! scripts stay interactive and apart).

use std::fmt::Write as _;

use super::render::{lead, verdict_line};
use super::{Comparison, Figure, Finding, TaskChange, fmt_us};

/// A picture to embed: a title and an SVG document.
#[derive(Debug, Clone)]
pub struct Picture {
    /// Shown above it.
    pub title: String,
    /// The SVG document.
    pub svg: String,
}

/// The page, with `pictures` (flamegraphs) embedded at the end.
pub fn render_html(c: &Comparison, pictures: &[Picture]) -> String {
    let mut out = head(c);
    out.push_str(&figures_table(&c.figures));
    let _ = writeln!(out, "<h2>Findings, most costly first</h2>");
    if c.findings.is_empty() {
        let _ = writeln!(
            out,
            "<p>No finding: nothing measured crossed a threshold or the noise.</p>"
        );
    }
    for (i, f) in c.findings.iter().enumerate() {
        out.push_str(&finding_card(i + 1, f));
    }
    out.push_str(&task_table(&c.tasks));
    for p in pictures {
        let _ = writeln!(
            out,
            "<h2>{}</h2><object class=\"flame\" type=\"image/svg+xml\" data=\"data:image/svg+xml;base64,{}\"></object>",
            escape(&p.title),
            base64(p.svg.as_bytes())
        );
    }
    if !c.notes.is_empty() {
        let _ = writeln!(out, "<h2>Notes</h2><ul>");
        for n in &c.notes {
            let _ = writeln!(out, "<li>{}</li>", inline(n));
        }
        let _ = writeln!(out, "</ul>");
    }
    let _ = writeln!(out, "</body></html>");
    out
}

/// The document's head, the two builds, the verdict and the lead sentence.
fn head(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{} → {}</title><style>{STYLE}</style></head><body>\n",
        escape(&c.baseline.label),
        escape(&c.candidate.label)
    );
    let _ = writeln!(
        out,
        "<h1><code>{}</code> → <code>{}</code></h1>",
        escape(&c.baseline.label),
        escape(&c.candidate.label)
    );
    let class = if c.regression { "bad" } else { "good" };
    let _ = writeln!(
        out,
        "<p class=\"verdict {class}\">{}</p>",
        inline(&verdict_line(c))
    );
    if let Some(lead) = lead(c) {
        let _ = writeln!(out, "<p class=\"lead\">{}</p>", inline(&lead));
    }
    out
}

/// The overview: every per-operation figure on both sides, with its change.
fn figures_table(figures: &[Figure]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<table><tr><th>per operation</th><th>baseline</th><th>candidate</th><th>change</th></tr>"
    );
    for f in figures {
        let change = if f.baseline == 0.0 {
            String::new()
        } else {
            format!("{:+.1}%", (f.candidate / f.baseline - 1.0) * 100.0)
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{:.2} {unit}</td><td>{:.2} {unit}</td><td>{change}</td></tr>",
            escape(&f.what),
            f.baseline,
            f.candidate,
            unit = escape(&f.unit)
        );
    }
    let _ = writeln!(out, "</table>");
    out
}

/// One finding as a card: title, tags, evidence, sites and the fix.
fn finding_card(rank: usize, f: &Finding) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<section class=\"finding{}\"><h3>{}. {}</h3>",
        if f.regression { " crossed" } else { "" },
        rank,
        inline(&f.title)
    );
    let cost = super::render::cost_tag(f);
    let _ = writeln!(
        out,
        "<p class=\"tags\">{} · {}{}</p>",
        f.kind.label(),
        escape(&cost),
        if f.regression {
            " · <b>crossed a threshold</b>"
        } else {
            ""
        }
    );
    if !f.evidence.is_empty() {
        let _ = writeln!(
            out,
            "<table><tr><th>evidence</th><th>baseline</th><th>candidate</th></tr>"
        );
        for e in &f.evidence {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                inline(&e.what),
                inline(&e.baseline),
                inline(&e.candidate)
            );
        }
        let _ = writeln!(out, "</table>");
    }
    if !f.sites.is_empty() {
        let _ = writeln!(out, "<ul>");
        for s in &f.sites {
            let _ = writeln!(out, "<li>{}</li>", inline(s));
        }
        let _ = writeln!(out, "</ul>");
    }
    let _ = writeln!(
        out,
        "<p class=\"fix\"><b>Fix to try:</b> {}</p></section>",
        inline(&f.fix)
    );
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}\
code{background:#f3f3f3;padding:0 .2em;border-radius:3px}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}\
td:first-child,th:first-child{text-align:left}\
.verdict{font-size:1.15em;padding:.6em;border-radius:4px}.bad{background:#fde2e2}.good{background:#e2f5e2}\
.finding{border:1px solid #ccc;border-radius:6px;padding:.2em 1em;margin:1em 0}.crossed{border-color:#d33}\
tr.crossed{background:#fff3f3}.bar{display:flex;height:.8em;width:24em;margin:.15em 0}\
.bar span{display:block;height:100%}.cpu{background:#e8743b}.blocked{background:#c0392b}\
.idle{background:#9bbfe0}.sched{background:#f2c14e}.tags{color:#666}.fix{background:#f6f9ff;padding:.5em}\
.flame{width:100%;min-height:500px;border:1px solid #ddd}";

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Escapes text, then turns `code` and **bold** into their tags.
fn inline(text: &str) -> String {
    let escaped = escape(text);
    let mut out = String::new();
    for (i, part) in escaped.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            for (j, p) in part.split("**").enumerate() {
                if j % 2 == 1 {
                    let _ = write!(out, "<b>{p}</b>");
                } else {
                    out.push_str(p);
                }
            }
        }
    }
    out
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Where each task kind's time goes per operation, with a stacked bar per side (on the CPU,
/// blocked, idle, scheduled) drawn to one scale for every row.
fn task_table(tasks: &[TaskChange]) -> String {
    let rows: Vec<&TaskChange> = tasks
        .iter()
        .filter(|t| t.polls_per_op.0 > 0.0 || t.polls_per_op.1 > 0.0)
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let scale = rows
        .iter()
        .flat_map(|t| {
            [
                time_parts(t, Side::Baseline),
                time_parts(t, Side::Candidate),
            ]
        })
        .map(|p| p.iter().sum::<f64>())
        .fold(0.0, f64::max)
        .max(1.0);
    let mut out = String::from(
        "<h2>Where each task kind's time goes (per operation)</h2><p>Bars: baseline above, \
         candidate below; <span class=\"cpu\">&nbsp;on the CPU in polls&nbsp;</span> \
         <span class=\"blocked\">&nbsp;blocked in polls&nbsp;</span> \
         <span class=\"idle\">&nbsp;idle (waiting to be woken)&nbsp;</span> \
         <span class=\"sched\">&nbsp;scheduled (queued after a wake)&nbsp;</span></p>\
         <table><tr><th>task kind</th><th>time per operation</th><th>polls/op</th>\
         <th>on the CPU</th><th>blocked</th><th>idle</th><th>scheduled</th><th>slow polls/op</th></tr>\n",
    );
    for t in rows {
        out.push_str(&task_row(t, scale));
    }
    out.push_str("</table>\n");
    out
}

/// Which side of a task change.
#[derive(Clone, Copy)]
enum Side {
    Baseline,
    Candidate,
}

/// One side's time per operation of a task kind: on the CPU in polls, blocked in polls, idle,
/// scheduled.
fn time_parts(t: &TaskChange, side: Side) -> [f64; 4] {
    let (cpu, blocked) = t.poll_split();
    let pick = |p: (f64, f64)| match side {
        Side::Baseline => p.0,
        Side::Candidate => p.1,
    };
    [
        pick(cpu),
        blocked.map_or(0.0, pick),
        pick(t.idle_ns_per_op),
        pick(t.scheduled_ns_per_op),
    ]
}

/// One side's stacked bar, `scale` nanoseconds wide.
fn bar(parts: [f64; 4], scale: f64) -> String {
    let mut out = String::from("<div class=\"bar\">");
    for (value, class) in parts.iter().zip(["cpu", "blocked", "idle", "sched"]) {
        let _ = write!(
            out,
            "<span class=\"{class}\" style=\"width:{:.2}%\" title=\"{class} {}\"></span>",
            value / scale * 100.0,
            fmt_us(*value)
        );
    }
    out.push_str("</div>");
    out
}

/// One task kind's row: both bars, polls, each part of its time, slow polls.
fn task_row(t: &TaskChange, scale: f64) -> String {
    let (b, c) = (
        time_parts(t, Side::Baseline),
        time_parts(t, Side::Candidate),
    );
    let pair = |i: usize| format!("{} → {}", fmt_us(b[i]), fmt_us(c[i]));
    format!(
        "<tr{}><td><code>{}</code></td><td>{}{}</td><td>{:.2} → {:.2}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{:.3} → {:.3}</td></tr>\n",
        if t.notable { " class=\"crossed\"" } else { "" },
        escape(&t.kind),
        bar(b, scale),
        bar(c, scale),
        t.polls_per_op.0,
        t.polls_per_op.1,
        pair(0),
        if t.blocked_ns_per_op.is_some() {
            pair(1)
        } else {
            "not profiled".into()
        },
        pair(2),
        pair(3),
        t.slow_polls_per_op.0,
        t.slow_polls_per_op.1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"<svg/>"), "PHN2Zy8+");
    }

    #[test]
    fn inline_markup_is_escaped_then_tagged() {
        assert_eq!(
            inline("`Result<A, B>` is **big**"),
            "<code>Result&lt;A, B&gt;</code> is <b>big</b>"
        );
    }
}

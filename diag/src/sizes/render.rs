//! The sizes report and its diff as text tables for a terminal.

use std::fmt::Write;

use super::{SizesDiff, SizesReport};

/// How many rows of each table to print by default.
pub const DEFAULT_TOP: usize = 20;

/// What to print.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Rows per table. Default [`DEFAULT_TOP`].
    pub top: usize,
    /// How many held fields to list under each future. Default 4.
    pub held_per_future: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            top: DEFAULT_TOP,
            held_per_future: 4,
        }
    }
}

/// Formats a byte count with thousands separators: `51,208`.
pub fn bytes(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The report as text tables: types, lopsided enums, futures, stack frames.
pub fn render_report(report: &SizesReport, options: &RenderOptions) -> String {
    let mut out = String::new();
    let top = options.top;
    let w = &mut out;
    let _ = writeln!(
        w,
        "sizes of {} ({} types)",
        report.binary,
        report.types.len()
    );
    let _ = writeln!(w, "\nLargest types");
    let _ = writeln!(w, "{:>12} {:>5}  {:<7} name", "bytes", "align", "kind");
    for t in report.types.iter().take(top) {
        let align = t.align.map_or("?".to_string(), |a| a.to_string());
        let kind = format!("{:?}", t.kind).to_lowercase();
        let _ = writeln!(
            w,
            "{:>12} {:>5}  {:<7} {}",
            bytes(t.size),
            align,
            kind,
            t.name
        );
    }

    let _ = writeln!(w, "\nEnums whose largest variant dwarfs the rest");
    if report.imbalanced_enums.is_empty() {
        let _ = writeln!(w, "  (none)");
    }
    for e in report.imbalanced_enums.iter().take(top) {
        let next = match &e.next_variant {
            Some(n) => format!("next `{n}` {} B", bytes(e.next_size)),
            None => "no other variant".to_string(),
        };
        let _ = writeln!(
            w,
            "{:>12}  {}\n              variant `{}` {} B, {next}\n              fix: {}",
            bytes(e.size),
            e.name,
            e.variant,
            bytes(e.variant_size),
            e.suggestion
        );
    }

    let _ = writeln!(w, "\nLargest futures (what they hold across awaits)");
    if report.futures.is_empty() {
        let _ = writeln!(w, "  (none)");
    }
    for f in report.futures.iter().take(top) {
        let _ = writeln!(w, "{:>12}  {}", bytes(f.size), f.name);
        for h in f.held.iter().take(options.held_per_future) {
            let awaited = if h.is_future { " (awaited future)" } else { "" };
            let _ = writeln!(
                w,
                "{:>12}    {}: holds `{}`: {}{awaited}",
                bytes(h.size),
                h.suspend,
                h.name,
                h.type_name
            );
        }
    }

    let _ = writeln!(w, "\nLargest stack frames");
    if let Some(note) = &report.stack_frames.note {
        let _ = writeln!(w, "  note: {note}");
    }
    if report.stack_frames.functions.is_empty() && report.stack_frames.note.is_none() {
        let _ = writeln!(
            w,
            "  (none of {} bytes or more)",
            bytes(super::FRAME_BYTES_REPORT_MIN)
        );
    }
    for f in report.stack_frames.functions.iter().take(top) {
        let _ = writeln!(
            w,
            "{:>12}  {} [{}]",
            bytes(f.frame_bytes),
            f.function,
            f.source
        );
    }
    out
}

/// The diff as text: grew, shrank, appeared, disappeared.
pub fn render_diff(diff: &SizesDiff, options: &RenderOptions) -> String {
    let mut out = String::new();
    let w = &mut out;
    if diff.is_empty() {
        let _ = writeln!(w, "no type changed size");
        return out;
    }
    let sections: [(&str, Vec<String>); 4] = [
        (
            "grew",
            diff.grew
                .iter()
                .map(|c| {
                    format!(
                        "{:>+12}  {} ({} -> {})",
                        c.delta(),
                        c.name,
                        bytes(c.before),
                        bytes(c.after)
                    )
                })
                .collect(),
        ),
        (
            "shrank",
            diff.shrank
                .iter()
                .map(|c| {
                    format!(
                        "{:>+12}  {} ({} -> {})",
                        c.delta(),
                        c.name,
                        bytes(c.before),
                        bytes(c.after)
                    )
                })
                .collect(),
        ),
        (
            "appeared",
            diff.appeared
                .iter()
                .map(|t| format!("{:>12}  {}", bytes(t.size), t.name))
                .collect(),
        ),
        (
            "disappeared",
            diff.disappeared
                .iter()
                .map(|t| format!("{:>12}  {}", bytes(t.size), t.name))
                .collect(),
        ),
    ];
    for (title, rows) in sections {
        let _ = writeln!(w, "{title} ({})", rows.len());
        for row in rows.iter().take(options.top) {
            let _ = writeln!(w, "{row}");
        }
        if rows.len() > options.top {
            let _ = writeln!(w, "  ... {} more", rows.len() - options.top);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_groups_thousands() {
        assert_eq!(bytes(0), "0");
        assert_eq!(bytes(999), "999");
        assert_eq!(bytes(51208), "51,208");
        assert_eq!(bytes(1234567), "1,234,567");
    }
}

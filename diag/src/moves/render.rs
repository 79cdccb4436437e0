//! The copy report as text for a terminal.

use std::fmt::Write;

use super::MovesReport;
use crate::sizes::render_bytes as bytes;

/// The histogram, then the top `top` large-copy sites with their functions and types.
pub fn render(report: &MovesReport, top: usize) -> String {
    let mut out = String::new();
    let w = &mut out;
    let t = &report.trace;
    let _ = writeln!(
        w,
        "copies traced in {} (pid {}): {} memcpy/memmove calls",
        t.exe,
        t.pid,
        bytes(t.total_copies())
    );
    let _ = writeln!(w, "\nCopies by size");
    let _ = writeln!(w, "{:>23}  {:>12}", "size", "copies");
    for &(k, count) in &t.histogram {
        let range = match k {
            0 => "0".to_string(),
            _ => format!("{} .. {}", bytes(1 << (k - 1)), bytes((1u64 << k) - 1)),
        };
        let _ = writeln!(w, "{range:>23}  {:>12}", bytes(count));
    }
    let _ = writeln!(
        w,
        "\nLarge copies (>= {} bytes): {} copies, {} bytes, {} sites",
        bytes(t.threshold_bytes),
        bytes(report.large_copies()),
        bytes(report.large_bytes()),
        report.sites.len()
    );
    if report.sites.is_empty() {
        let _ = writeln!(w, "  (none)");
    }
    for site in report.sites.iter().take(top) {
        let what = match (site.size_range, site.types.first()) {
            (Some((min, max)), _) => format!("various sizes, {} .. {} B", bytes(min), bytes(max)),
            (None, Some(ty)) => format!("`{ty}`"),
            (None, None) => "no type of this size".to_string(),
        };
        let size = match site.size_range {
            Some(_) => "*".to_string(),
            None => bytes(site.size),
        };
        let _ = writeln!(
            w,
            "{:>12} B x {:>8} = {:>14} B  {}",
            size,
            bytes(site.count),
            bytes(site.bytes),
            what
        );
        for other in site.types.iter().skip(1) {
            let _ = writeln!(w, "{:>50} or `{other}`", "");
        }
        match (site.innermost(), site.outermost()) {
            (Some(inner), Some(outer)) => {
                if let Some(user) = site.user_frame() {
                    let _ = writeln!(w, "      in {} at {}", user.function, user.location());
                }
                if inner != outer {
                    let _ = writeln!(
                        w,
                        "      innermost {} at {}",
                        inner.function,
                        inner.location()
                    );
                    let _ = writeln!(w, "      outermost {}", outer.function);
                }
            }
            _ => {
                let _ = writeln!(w, "      at {:#x} (not symbolized)", site.runtime_address);
            }
        }
    }
    if report.sites.len() > top {
        let _ = writeln!(w, "  ... {} more sites", report.sites.len() - top);
    }
    for note in &report.notes {
        let _ = writeln!(w, "note: {note}");
    }
    out
}

//! How the findings write names and figures: function identities, bytes, counts, microseconds.

use crate::snapshot::MoveSite;

/// A function's name without the closures and generic arguments profilers and debug info add
/// differently: `a::B::call::{{closure}}` and `a::B::call` are the same function here.
pub(crate) fn function_identity(name: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for ch in name.chars() {
        match ch {
            '<' if !out.is_empty() => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(ch),
            _ => {}
        }
    }
    out.replace("::{{closure}}", "").replace("::{closure}", "")
}

/// `a / b`, 0 when `b` is 0.
pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

/// A size, or `absent` for a type or frame one side does not have (size 0).
pub(crate) fn size_or_absent(bytes: u64) -> String {
    if bytes == 0 {
        "absent".into()
    } else {
        fmt_bytes(bytes as f64)
    }
}

/// The size of a copy site's copies: the tracer's row of various sizes (size 0) gives its mean.
pub(crate) fn site_size(site: &MoveSite) -> String {
    if site.size == 0 {
        format!(
            "{} on average",
            fmt_bytes(site.bytes as f64 / site.count.max(1) as f64)
        )
    } else {
        fmt_bytes(site.size as f64)
    }
}

/// A number of bytes with thousands separators (MiB from 10 MiB on).
pub(crate) fn fmt_bytes(n: f64) -> String {
    if n >= 10.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else {
        format!("{} B", crate::sizes::render_bytes(n.round() as u64))
    }
}

/// A per-operation count: whole numbers as such, small ones with decimals.
pub(crate) fn fmt_count(n: f64) -> String {
    if n.abs() >= 100.0 {
        crate::sizes::render_bytes(n.round() as u64)
    } else {
        format!("{n:.2}")
    }
}

/// Nanoseconds as microseconds.
pub(crate) fn fmt_us(ns: f64) -> String {
    format!("{:.1} µs", ns / 1e3)
}

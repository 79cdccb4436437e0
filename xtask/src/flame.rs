//! Flamegraph SVGs from folded stacks with `inferno`: one profile, or the difference of two
//! (the candidate's stacks coloured by how much each grew or shrank).

use anyhow::Context;

/// A flamegraph of `folded` stacks titled `title`.
pub fn flamegraph(folded: &str, title: &str) -> anyhow::Result<String> {
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_string();
    options.count_name = "samples".into();
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut svg)
        .context("cannot draw the flamegraph")?;
    String::from_utf8(svg).context("the flamegraph is not UTF-8")
}

/// A differential flamegraph: the `after` stacks, red where they have more samples than in
/// `before`, blue where fewer. Both profiles ran the same workload, so counts are not scaled.
pub fn differential(before: &str, after: &str, title: &str) -> anyhow::Result<String> {
    let mut diff = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options::default(),
        before.as_bytes(),
        after.as_bytes(),
        &mut diff,
    )
    .context("cannot compute the differential profile")?;
    let diff = String::from_utf8(diff).context("the differential profile is not UTF-8")?;
    flamegraph(&diff, title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_is_drawn_as_an_svg_naming_the_frames() {
        let before = "main;a 10\nmain;b 10\n";
        let after = "main;a 10\nmain;b 30\n";
        let svg = differential(before, after, "t").unwrap();
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg"),
            "{}",
            &svg[..100]
        );
        assert!(
            svg.contains(">b<") || svg.contains("b (30 samples"),
            "frame b is named"
        );
    }
}

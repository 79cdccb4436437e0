//! The sizes report (DWARF) on DDSplit's own binary: the story's large types and futures are in
//! the story build and nowhere else. The test binary is built with the same features as the
//! `ddsplit` binary under test, so `cargo test` checks the default build and `cargo test
//! --features story` the story build.

use std::path::Path;

use diag::sizes::{SizesReport, is_future_name};

use crate::support::ddsplit_bin;

/// A `Result` or future at least this large carries the story's inline error (48 KiB excerpt).
const INLINE_ERROR_BYTES_MIN: u64 = 48 * 1024;

/// Store futures of the default build stay under this (a few hundred bytes in a release build,
/// a few KiB unoptimised).
const STORE_FUTURE_BYTES_MAX: u64 = 8 * 1024;

/// Futures of the fragment store's methods:
/// `<ddsplit::store::LocalStore as ddsplit::store::FragmentStore>::put_fragment::{...}`.
fn store_futures(report: &SizesReport) -> Vec<(&str, u64)> {
    report
        .futures
        .iter()
        .filter(|f| {
            let owner = f.function.trim_start_matches('<');
            owner.starts_with("ddsplit::store::") && is_future_name(&f.name)
        })
        .filter(|f| {
            ["put_fragment", "get_fragment", "delete_fragments"]
                .iter()
                .any(|m| f.function.ends_with(m) || f.name.contains(&format!("::{m}::")))
        })
        .map(|f| (f.name.as_str(), f.size))
        .collect()
}

#[test]
fn the_story_types_are_large_in_the_story_build_only() {
    let report = SizesReport::from_binary(Path::new(ddsplit_bin())).unwrap();
    let err = report.type_named("ddsplit::error::DistriErr").unwrap();
    let result = report
        .type_named("core::result::Result<ddsplit::status::SuccessCode, ddsplit::error::DistriErr>")
        .unwrap();
    let futures = store_futures(&report);
    assert!(!futures.is_empty(), "the store's futures are in the report");
    let largest = futures.iter().map(|(_, s)| *s).max().unwrap();
    let lopsided = report
        .imbalanced_enums
        .iter()
        .any(|e| e.name == "ddsplit::error::DistriErr" && e.variant == "Corrupt");

    if cfg!(feature = "story-inline-error") {
        assert!(
            err.size >= INLINE_ERROR_BYTES_MIN,
            "DistriErr is {} bytes",
            err.size
        );
        assert!(
            result.size >= INLINE_ERROR_BYTES_MIN,
            "the Result is {} bytes",
            result.size
        );
        assert!(
            lopsided,
            "the inline Corrupt variant is reported as the one to box"
        );
        assert!(
            largest >= INLINE_ERROR_BYTES_MIN,
            "store futures: {futures:?}"
        );
    } else {
        assert!(err.size <= 48, "DistriErr is {} bytes", err.size);
        assert!(result.size <= 56, "the Result is {} bytes", result.size);
        assert!(!lopsided);
        assert!(
            largest <= STORE_FUTURE_BYTES_MAX,
            "store futures: {futures:?}"
        );
    }
    // `#[async_trait]` turns each method's body into an async block boxed per call.
    let boxed = futures
        .iter()
        .any(|(name, _)| name.contains("{async_block_env#"));
    assert_eq!(
        boxed,
        cfg!(feature = "story-async-trait"),
        "store futures: {futures:?}"
    );

    let query = report
        .types
        .iter()
        .find(|t| t.name.starts_with("ddsplit::query::Query<"))
        .unwrap();
    if cfg!(feature = "story-query-by-value") {
        assert!(
            query.size >= 16 * 1024,
            "{} is {} bytes",
            query.name,
            query.size
        );
    } else {
        assert!(query.size <= 96, "{} is {} bytes", query.name, query.size);
    }
}

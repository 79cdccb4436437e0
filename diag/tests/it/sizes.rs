//! The sizes report on the fixtures, checked against the sizes each fixture prints itself.

use diag::sizes::{SizesError, SizesReport, TypeKind};

use crate::support::{fixture, fixture_without_types, printed_size, printed_sizes, temp_dir};

const FIXTURES: [&str; 5] = [
    "big-enum",
    "big-result",
    "big-future",
    "big-return",
    "no-copies",
];

fn report(name: &str) -> SizesReport {
    SizesReport::from_binary(&fixture(name)).expect("fixtures have debug info")
}

#[test]
fn every_printed_size_matches_the_dwarf_report() {
    for name in FIXTURES {
        let report = report(name);
        let printed = printed_sizes(name);
        assert!(!printed.is_empty(), "{name} prints its sizes");
        for (type_name, size) in printed {
            let found = report
                .type_named(&type_name)
                .unwrap_or_else(|| panic!("{name}: the report has no type {type_name}"));
            assert_eq!(found.size, size, "{name}: size of {type_name}");
        }
    }
}

#[test]
fn types_are_listed_largest_first_and_found_by_size() {
    let report = report("big-enum");
    assert!(report.types.windows(2).all(|w| w[0].size >= w[1].size));
    let size = printed_size("big-enum", "big_enum::Message");
    let names: Vec<&str> = report
        .lookup_by_size(size)
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names.first(), Some(&"big_enum::Message"), "{names:?}");
    let message = report.type_named("big_enum::Message").expect("listed");
    assert_eq!(message.kind, TypeKind::Enum);
    assert_eq!(message.align, Some(8));
}

#[test]
fn an_enum_with_a_48_kib_variant_is_reported_with_the_variant_to_box() {
    let report = report("big-enum");
    let e = report
        .imbalanced_enums
        .iter()
        .find(|e| e.name == "big_enum::Message")
        .expect("Message is lopsided");
    assert_eq!(e.size, printed_size("big-enum", "big_enum::Message"));
    assert_eq!(e.variant, "Large");
    assert_eq!(e.variant_size, 48 * 1024);
    assert_eq!(e.next_variant.as_deref(), Some("Text"));
    assert_eq!(e.next_size, 16);
    assert!(
        e.suggestion.starts_with("box the variant `Large`"),
        "{}",
        e.suggestion
    );
}

#[test]
fn a_result_with_a_large_err_is_reported() {
    let report = report("big-result");
    let name = "core::result::Result<big_result::Accepted, big_result::ParseErr>";
    let e = report
        .imbalanced_enums
        .iter()
        .find(|e| e.name == name)
        .expect("the Result is lopsided");
    assert_eq!(e.variant, "Err");
    assert_eq!(
        e.variant_size,
        printed_size("big-result", "big_result::ParseErr")
    );
    assert_eq!(e.next_variant.as_deref(), Some("Ok"));
    assert_eq!(e.next_size, 16, "Accepted is a u64 and a u32, padded");
    let err = report
        .imbalanced_enums
        .iter()
        .find(|e| e.name == "big_result::ParseErr")
        .expect("the error itself is lopsided");
    assert_eq!(
        (err.variant.as_str(), err.variant_size),
        ("Corrupt", 32 * 1024)
    );
    // The filter keeps a std generic whose argument is the program's type.
    let filtered = report.filtered("big_result");
    assert!(filtered.type_named(name).is_some());
    assert!(filtered.types.iter().all(|t| t.name.contains("big_result")));
}

#[test]
fn a_future_holding_a_buffer_across_an_await_shows_the_buffer_and_its_awaiter() {
    let report = report("big-future");
    let inner = report
        .future_of("big_future::hold_buffer")
        .expect("hold_buffer's future");
    assert_eq!(
        inner.size,
        printed_size("big-future", "big_future::hold_buffer::{async_fn_env#0}")
    );
    let buffer = &inner.held[0];
    assert_eq!(
        (
            buffer.suspend.as_str(),
            buffer.name.as_str(),
            buffer.type_name.as_str(),
            buffer.size
        ),
        ("Suspend0", "buffer", "[u8; 16384]", 16384)
    );
    assert!(!buffer.is_future);

    let outer = report
        .future_of("big_future::outer")
        .expect("outer's future");
    assert_eq!(
        outer.size,
        printed_size("big-future", "big_future::outer::{async_fn_env#0}")
    );
    let awaited = &outer.held[0];
    assert_eq!(awaited.name, "__awaitee");
    assert_eq!(
        awaited.type_name,
        "big_future::hold_buffer::{async_fn_env#0}"
    );
    assert_eq!(awaited.size, inner.size);
    assert!(awaited.is_future);
}

#[test]
fn the_function_returning_a_large_value_has_a_large_stack_frame() {
    let report = report("big-return");
    assert_eq!(report.stack_frames.note, None);
    let frame = report
        .stack_frames
        .functions
        .iter()
        .find(|f| f.function.starts_with("big_return::"))
        .expect("a big_return function with a large frame");
    assert!(frame.frame_bytes >= 64 * 1024, "{frame:?}");
}

#[test]
fn json_round_trips_and_the_diff_of_two_programs_lists_their_own_types() {
    let enums = report("big-enum");
    let dir = temp_dir();
    let path = dir.path().join("sizes.json");
    std::fs::write(&path, enums.to_json()).expect("writable");
    assert_eq!(SizesReport::from_json_file(&path).expect("readable"), enums);

    let returns = report("big-return");
    let diff = enums.diff(&returns);
    assert!(diff.appeared.iter().any(|t| t.name == "big_return::Frame"));
    assert!(
        diff.disappeared
            .iter()
            .any(|t| t.name == "big_enum::Message")
    );
    assert!(enums.diff(&enums).is_empty());
}

#[test]
fn a_binary_without_type_info_gets_an_error_that_says_how_to_build_one() {
    let err = SizesReport::from_binary(&fixture_without_types("no-copies"))
        .expect_err("release builds have line tables only");
    assert!(matches!(err, SizesError::NoDebugInfo { .. }), "{err:?}");
    assert!(err.to_string().contains("--profile profiling"), "{err}");

    let dir = temp_dir();
    let not_elf = dir.path().join("not-a-binary");
    std::fs::write(&not_elf, b"hello").expect("writable");
    let err = SizesReport::from_binary(&not_elf).expect_err("not an object file");
    assert!(matches!(err, SizesError::Binary(_)), "{err:?}");
}

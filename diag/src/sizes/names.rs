//! Names and sizes of the types in a [`UnitArena`]: qualified names from the namespace chain,
//! synthesized names for arrays and pointers, sizes through typedefs and arrays.

use gimli::constants as dw;

use super::arena::{DieIdx, UnitArena};

/// How deep a chain of type references is followed before giving up (guards against cycles).
const TYPE_CHAIN_DEPTH_MAX: u32 = 32;

/// The qualified name of a type or namespace DIE: its name prefixed with the names of the
/// enclosing namespaces and types, joined with `::`. `None` for anonymous DIEs.
pub fn qualified_name(arena: &UnitArena<'_>, idx: DieIdx) -> Option<String> {
    let die = arena.die(idx);
    let name = die.name?;
    let mut segments = vec![name];
    let mut cursor = die.parent;
    while let Some(p) = cursor {
        let parent = arena.die(p);
        if parent.tag == dw::DW_TAG_compile_unit {
            break;
        }
        if let Some(n) = parent.name {
            segments.push(n);
        }
        cursor = parent.parent;
    }
    let mut out = String::new();
    for (i, segment) in segments.iter().rev().enumerate() {
        if i > 0 {
            out.push_str("::");
        }
        out.push_str(&String::from_utf8_lossy(segment));
    }
    Some(out)
}

/// True when every ancestor of `idx` up to the unit is a namespace: a type defined at module
/// level (or in a function's namespace, as closures and futures are), not a variant's struct.
pub fn is_top_level(arena: &UnitArena<'_>, idx: DieIdx) -> bool {
    let mut cursor = arena.die(idx).parent;
    while let Some(p) = cursor {
        let parent = arena.die(p);
        match parent.tag {
            dw::DW_TAG_compile_unit => return true,
            dw::DW_TAG_namespace => cursor = parent.parent,
            _ => return false,
        }
    }
    true
}

/// A readable name for the type at `idx`: qualified for named types, `[T; N]` for arrays,
/// `*const T` for unnamed pointers.
pub fn type_name(arena: &UnitArena<'_>, idx: DieIdx) -> String {
    type_name_at_depth(arena, idx, 0)
}

fn type_name_at_depth(arena: &UnitArena<'_>, idx: DieIdx, depth: u32) -> String {
    let die = arena.die(idx);
    if depth > TYPE_CHAIN_DEPTH_MAX {
        return "?".to_string();
    }
    let target = |d: u32| match die.type_ref.and_then(|o| arena.at(o)) {
        Some(t) => type_name_at_depth(arena, t, d + 1),
        None => "()".to_string(),
    };
    match die.tag {
        dw::DW_TAG_structure_type
        | dw::DW_TAG_union_type
        | dw::DW_TAG_enumeration_type
        | dw::DW_TAG_typedef
        | dw::DW_TAG_class_type => qualified_name(arena, idx).unwrap_or_else(|| "{anon}".into()),
        dw::DW_TAG_array_type => {
            let element = target(depth);
            let counts: Vec<String> = arena
                .children_with(idx, dw::DW_TAG_subrange_type)
                .map(|s| {
                    arena
                        .die(s)
                        .count
                        .map_or("?".to_string(), |c| c.to_string())
                })
                .collect();
            counts
                .iter()
                .rev()
                .fold(element, |inner, count| format!("[{inner}; {count}]"))
        }
        dw::DW_TAG_pointer_type | dw::DW_TAG_reference_type => match die.name {
            Some(n) => String::from_utf8_lossy(n).into_owned(),
            None => format!("*const {}", target(depth)),
        },
        dw::DW_TAG_const_type | dw::DW_TAG_volatile_type => target(depth),
        dw::DW_TAG_subroutine_type => "fn(..)".to_string(),
        _ => match die.name {
            Some(n) => String::from_utf8_lossy(n).into_owned(),
            None => "?".to_string(),
        },
    }
}

/// The size in bytes of the type at `idx`, following typedefs and multiplying array bounds.
pub fn type_size(arena: &UnitArena<'_>, idx: DieIdx) -> Option<u64> {
    type_size_at_depth(arena, idx, 0)
}

fn type_size_at_depth(arena: &UnitArena<'_>, idx: DieIdx, depth: u32) -> Option<u64> {
    if depth > TYPE_CHAIN_DEPTH_MAX {
        return None;
    }
    let die = arena.die(idx);
    if let Some(size) = die.byte_size {
        return Some(size);
    }
    let target = || die.type_ref.and_then(|o| arena.at(o));
    match die.tag {
        dw::DW_TAG_array_type => {
            let element = type_size_at_depth(arena, target()?, depth + 1)?;
            let mut n = 1u64;
            for s in arena.children_with(idx, dw::DW_TAG_subrange_type) {
                n = n.saturating_mul(arena.die(s).count?);
            }
            Some(element.saturating_mul(n))
        }
        dw::DW_TAG_typedef | dw::DW_TAG_const_type | dw::DW_TAG_volatile_type => {
            type_size_at_depth(arena, target()?, depth + 1)
        }
        dw::DW_TAG_pointer_type | dw::DW_TAG_reference_type => Some(8),
        _ => None,
    }
}

/// True when a type name is the future of an `async fn` or async block (a coroutine's state).
pub fn is_future_name(name: &str) -> bool {
    let last = last_segment(name);
    last.starts_with("{async_fn_env#")
        || last.starts_with("{async_block_env#")
        || last.starts_with("{async_closure_env#")
        || last.starts_with("{coroutine_env#")
}

/// The last `::`-separated segment of a path, ignoring `::` inside generic arguments.
pub fn last_segment(name: &str) -> &str {
    let mut depth = 0i32;
    let bytes = name.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' | b'(' | b'[' => depth += 1,
            b'>' | b')' | b']' => depth -= 1,
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b':') => {
                start = i + 2;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    &name[start..]
}

/// The `::`-separated segments of a path, ignoring `::` inside generic arguments.
pub fn top_level_segments(name: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = name;
    loop {
        let last = last_segment(rest);
        out.push(last);
        if last.len() == rest.len() {
            break;
        }
        rest = rest[..rest.len() - last.len()].trim_end_matches("::");
    }
    out.reverse();
    out
}

/// The path before the last segment (for a future: the function it belongs to).
pub fn parent_path(name: &str) -> &str {
    let last = last_segment(name);
    name[..name.len() - last.len()].trim_end_matches("::")
}

/// `path` without the `<...>` that follow a name (or a compiler-made segment): `<a::S<u8> as
/// a::T<b::U>>` is `<a::S as a::T>`.
pub fn without_generic_arguments(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut skipped_depth = 0usize;
    let mut previous = ' ';
    for ch in path.chars() {
        if skipped_depth > 0 {
            match ch {
                '<' => skipped_depth += 1,
                '>' => skipped_depth -= 1,
                _ => {}
            }
        } else if ch == '<' && (previous.is_alphanumeric() || matches!(previous, '_' | '}')) {
            skipped_depth = 1;
        } else {
            out.push(ch);
        }
        previous = ch;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_segment_ignores_generic_arguments() {
        assert_eq!(
            last_segment("core::result::Result<a::B, c::D>"),
            "Result<a::B, c::D>"
        );
        assert_eq!(last_segment("f::g::{async_fn_env#0}"), "{async_fn_env#0}");
        assert_eq!(last_segment("u8"), "u8");
        assert_eq!(parent_path("f::g::{async_fn_env#0}"), "f::g");
        assert_eq!(parent_path("u8"), "");
    }

    #[test]
    fn future_names_are_recognised() {
        assert!(is_future_name("a::b::{async_fn_env#0}"));
        assert!(is_future_name("a::b::{async_block_env#3}"));
        assert!(is_future_name(
            "a::b::{async_fn_env#0}<alloc::alloc::Global>"
        ));
        assert!(!is_future_name("a::b::{closure_env#0}"));
        assert!(!is_future_name("a::async_fn_env"));
    }
}

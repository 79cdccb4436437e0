//! Type and function names short enough to read in a report:
//! `core::result::Result<ddsplit::error::SuccessCode, ddsplit::error::DistriErr>` becomes
//! `Result<SuccessCode, DistriErr>`.

/// `name` with every path cut to its last segment; a compiler-made segment (`{async_fn_env#0}`,
/// `{impl#3}`) keeps the named segment before it so it still says whose it is.
pub fn short_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut path = String::new();
    let mut depth_braces = 0usize;
    for ch in name.chars() {
        let in_path = ch.is_alphanumeric() || ch == '_' || ch == ':' || ch == '#' || ch == '$';
        if ch == '{' {
            depth_braces += 1;
        }
        if ch == '}' {
            depth_braces = depth_braces.saturating_sub(1);
        }
        if in_path || depth_braces > 0 || ch == '{' || ch == '}' {
            path.push(ch);
        } else {
            out.push_str(&shorten_path(&path));
            path.clear();
            out.push(ch);
        }
    }
    out.push_str(&shorten_path(&path));
    out
}

fn shorten_path(path: &str) -> String {
    if !path.contains("::") {
        return path.to_string();
    }
    // `>::method` after a generic type: the path starts with `::`, which stays.
    let lead = if path.starts_with("::") { "::" } else { "" };
    let segments: Vec<&str> = path
        .split("::")
        .filter(|s| !s.is_empty() && !s.starts_with("{impl") && !s.contains("{closure}"))
        .collect();
    let short = match segments.as_slice() {
        [] => path.to_string(),
        [.., last] if last.starts_with('{') => {
            // `{async_block_env#0}` under a function: keep the function's name, and its
            // type's for a method (`Gateway::put::{async_fn_env#0}`).
            let named = segments.iter().rposition(|s| !s.starts_with('{'));
            match named {
                Some(at) if at > 0 && is_type_name(segments[at - 1]) => {
                    format!("{}::{}::{last}", segments[at - 1], segments[at])
                }
                Some(at) => format!("{}::{last}", segments[at]),
                None => last.to_string(),
            }
        }
        // A method of a type: `RemoteStore::call`.
        [.., owner, last]
            if is_type_name(owner) && last.starts_with(|c: char| c.is_ascii_lowercase()) =>
        {
            format!("{owner}::{last}")
        }
        [.., last] => last.to_string(),
    };
    format!("{lead}{short}")
}

/// A segment that names a type, not a module or function: types are CamelCase.
fn is_type_name(segment: &str) -> bool {
    segment.starts_with(|c: char| c.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::short_name;

    #[test]
    fn paths_are_cut_to_their_last_segment_inside_generics_too() {
        assert_eq!(
            short_name(
                "core::result::Result<ddsplit::error::SuccessCode, ddsplit::error::DistriErr>"
            ),
            "Result<SuccessCode, DistriErr>"
        );
        assert_eq!(
            short_name("ddsplit::query::Query<ddsplit::query::InlineAnswer>"),
            "Query<InlineAnswer>"
        );
        assert_eq!(short_name("(u8, [u8; 4])"), "(u8, [u8; 4])");
        assert_eq!(
            short_name("<a::store::Remote as a::store::Store>::get"),
            "<Remote as Store>::get"
        );
        assert_eq!(short_name("alloc::boxed::Box<T>::pin"), "Box<T>::pin");
    }

    #[test]
    fn methods_keep_their_type_and_closures_are_dropped() {
        assert_eq!(
            short_name("ddsplit::store::RemoteStore::call::{{closure}}"),
            "RemoteStore::call"
        );
        assert_eq!(short_name("ddsplit::codec::split"), "split");
    }

    #[test]
    fn futures_of_methods_keep_their_owner() {
        assert_eq!(
            short_name("ddsplit::gateway::Gateway::put::{async_fn_env#0}"),
            "Gateway::put::{async_fn_env#0}"
        );
        assert_eq!(
            short_name(
                "<ddsplit::store::Local as ddsplit::store::Store>::put_fragment::{async_fn_env#0}"
            ),
            "<Local as Store>::put_fragment::{async_fn_env#0}"
        );
    }

    #[test]
    fn compiler_made_segments_keep_their_function() {
        assert_eq!(
            short_name("ddsplit::store::{impl#8}::put_fragment::{async_block_env#0}"),
            "put_fragment::{async_block_env#0}"
        );
        assert_eq!(
            short_name(
                "ddsplit::gateway::{impl#2}::query::{async_fn#0}::{closure#0}::{async_block_env#0}"
            ),
            "query::{async_block_env#0}"
        );
    }
}

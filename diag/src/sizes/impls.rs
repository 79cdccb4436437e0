//! The types behind the compiler's `{impl#N}` path segments.
//!
//! DWARF names a method's future `ddsplit::store::{impl#8}::put_fragment::{async_fn_env#0}`.
//! The number is the impl block's position in its module: it tells a reader nothing, and it
//! changes when an impl block is added above, so the same future would look new in the next
//! build. The symbols of the methods inside the block say whose it is
//! (`<ddsplit::store::LocalStore as ddsplit::store::FragmentStore>::put_fragment`), so the
//! segment is replaced with that owner, without generic arguments (one impl block serves every
//! instantiation).

use std::collections::{HashMap, HashSet};

use gimli::constants as dw;

use super::arena::{DieIdx, UnitArena};
use super::names::{last_segment, qualified_name, top_level_segments, without_generic_arguments};

/// What an impl namespace (`ddsplit::store::{impl#8}`) stands for, learned from its methods.
#[derive(Debug, Default)]
pub struct ImplOwners {
    by_path: HashMap<String, String>,
}

impl ImplOwners {
    /// Learns the owners of the impl namespaces of one unit from the symbols of the functions
    /// inside them: a method, or a closure or async body within one (often the only ones left
    /// when the method itself was inlined). The first function seen decides.
    pub fn learn(&mut self, arena: &UnitArena<'_>) {
        let mut seen: HashSet<DieIdx> = HashSet::new();
        for die in &arena.dies {
            let (Some(symbol), Some(name)) = (die.linkage_name, die.name) else {
                continue;
            };
            if die.tag != dw::DW_TAG_subprogram {
                continue;
            }
            let Some((imp, below)) = impl_above(arena, die.parent, name) else {
                continue;
            };
            if !seen.insert(imp) {
                continue;
            }
            let Some(path) = qualified_name(arena, imp) else {
                continue;
            };
            if self.by_path.contains_key(&path) {
                continue;
            }
            let symbol = String::from_utf8_lossy(symbol);
            if let Some(owner) = owner_of(&symbol, &below) {
                self.by_path.insert(path, owner);
            }
        }
    }

    /// `name` with every `path::{impl#N}` whose owner is known replaced by that owner.
    pub fn rename(&self, name: &str) -> String {
        let mut out = String::with_capacity(name.len());
        let mut rest = name;
        while let Some(at) = rest.find("{impl#") {
            let Some(close) = rest[at..].find('}').map(|c| at + c + 1) else {
                break;
            };
            let start = rest[..at]
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(0, |i| i + 1);
            out.push_str(&rest[..start]);
            let key = &rest[start..close];
            out.push_str(self.by_path.get(key).map_or(key, String::as_str));
            rest = &rest[close..];
        }
        out.push_str(rest);
        out
    }
}

/// The impl namespace enclosing a function through namespaces only, and the names from the
/// method down to the function (`["run", "{async_fn#0}"]`).
fn impl_above<'a>(
    arena: &UnitArena<'a>,
    mut cursor: Option<DieIdx>,
    function: &'a [u8],
) -> Option<(DieIdx, Vec<String>)> {
    let mut below = vec![String::from_utf8_lossy(function).into_owned()];
    while let Some(at) = cursor {
        let namespace = arena.die(at);
        if namespace.tag != dw::DW_TAG_namespace {
            return None;
        }
        let name = namespace.name?;
        if name.starts_with(b"{impl#") {
            below.reverse();
            return Some((at, below));
        }
        below.push(String::from_utf8_lossy(name).into_owned());
        cursor = namespace.parent;
    }
    None
}

/// The owner of an impl from the symbol of a function `below` it (the method's name first):
/// the demangled path without as many trailing segments, generic arguments dropped, `<Type>`
/// of an inherent impl unwrapped to `Type`. `None` unless the segment after the owner is the
/// method's name, so a symbol whose path does not line up with the DWARF names proves nothing.
fn owner_of(symbol: &str, below: &[String]) -> Option<String> {
    let demangled = format!("{:#}", rustc_demangle::try_demangle(symbol).ok()?);
    let segments = top_level_segments(&demangled);
    let at = segments
        .len()
        .checked_sub(below.len())
        .filter(|&at| at > 0)?;
    let method = without_generic_arguments(&below[0]);
    if without_generic_arguments(segments[at]) != method {
        return None;
    }
    let owner = without_generic_arguments(&segments[..at].join("::"));
    let inherent = owner
        .strip_prefix('<')
        .and_then(|o| o.strip_suffix('>'))
        .filter(|o| !o.contains(" as "));
    let owner = inherent.map_or(owner.clone(), str::to_string);
    // An impl in another module than its type: `a::b::<impl a::Type>` is `a::Type`'s.
    let owner = match last_segment(&owner).strip_prefix("<impl ") {
        Some(elsewhere) => elsewhere.trim_end_matches('>').to_string(),
        None => owner,
    };
    (!owner.is_empty() && !owner.contains('{')).then_some(owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn below(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn owners(pairs: &[(&str, &str)]) -> ImplOwners {
        ImplOwners {
            by_path: pairs
                .iter()
                .map(|(p, o)| (p.to_string(), o.to_string()))
                .collect(),
        }
    }

    #[test]
    fn impl_segments_become_their_owner_inside_generic_arguments_too() {
        let known = owners(&[
            ("a::store::{impl#8}", "<a::store::Local as a::store::Store>"),
            ("a::server::{impl#3}", "a::server::Server"),
        ]);
        assert_eq!(
            known.rename("a::store::{impl#8}::put::{async_fn_env#0}"),
            "<a::store::Local as a::store::Store>::put::{async_fn_env#0}"
        );
        assert_eq!(
            known.rename("drop_in_place<a::server::{impl#3}::run::{async_fn_env#0}<a::H>>"),
            "drop_in_place<a::server::Server::run::{async_fn_env#0}<a::H>>"
        );
        // An impl whose methods had no symbol keeps its number.
        assert_eq!(
            known.rename("a::other::{impl#1}::f::{async_fn_env#0}"),
            "a::other::{impl#1}::f::{async_fn_env#0}"
        );
    }

    #[test]
    fn owners_drop_generic_arguments_and_unwrap_inherent_impls() {
        assert_eq!(
            without_generic_arguments("<a::S<u8, b::C<d::E>> as a::T<b::U>>"),
            "<a::S as a::T>"
        );
        // Symbols as this toolchain writes them: legacy for the program, v0 for std.
        let inherent = "_ZN7ddsplit5store10LocalStore3get17h0123456789abcdefE";
        assert_eq!(
            owner_of(inherent, &below(&["get"])).as_deref(),
            Some("ddsplit::store::LocalStore")
        );
        // The segment after the owner must be the method the DWARF names.
        assert_eq!(owner_of(inherent, &below(&["put"])), None);
        let method = "_ZN71_$LT$ddsplit..store..Store$u20$as$u20$ddsplit..store..FragmentStore$GT$12put_fragment17h67f2684867d08b20E";
        assert_eq!(
            owner_of(method, &below(&["put_fragment"])).as_deref(),
            Some("<ddsplit::store::Store as ddsplit::store::FragmentStore>")
        );
        let generic = "_RNvXs_NtNtCsgEmfK2I1SDS_4core5slice5indexSINtNtNtB8_3mem12maybe_uninit11MaybeUninitTjNtNtNtNtCsjrHSEGnQ3l9_3std12backtrace_rs9symbolize5gimli7MappingEEINtNtNtB8_3ops5index8IndexMutINtNtB2u_5range5RangejEE9index_mutB1t_";
        assert_eq!(
            owner_of(generic, &below(&["index_mut<usize>"])).as_deref(),
            Some("<[core::mem::maybe_uninit::MaybeUninit] as core::ops::index::IndexMut>")
        );
        assert_eq!(owner_of("not a symbol", &below(&["f"])), None);
        let elsewhere = "_ZN7ddsplit7gateway6repair43_$LT$impl$u20$ddsplit..gateway..Gateway$GT$10write_home17h0123456789abcdefE";
        assert_eq!(
            owner_of(elsewhere, &below(&["write_home"])).as_deref(),
            Some("ddsplit::gateway::Gateway")
        );
        // A closure inside a method: two segments below the owner.
        let closure = "_ZN7ddsplit6server15Server$LT$H$GT$3run28_$u7b$$u7b$closure$u7d$$u7d$17h0123456789abcdefE";
        assert_eq!(
            owner_of(closure, &below(&["run", "{async_fn#0}"])).as_deref(),
            Some("ddsplit::server::Server")
        );
    }
}

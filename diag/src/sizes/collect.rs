//! Walks every unit of a binary's DWARF and collects one [`TypeInfo`] per distinct type name.

use std::collections::HashMap;

use gimli::constants as dw;

use super::arena::{DieIdx, UnitArena};
use super::impls::ImplOwners;
use super::names::{
    is_future_name, is_top_level, last_segment, qualified_name, type_name, type_size,
};
use super::{FieldInfo, SizesError, TypeInfo, TypeKind, VariantInfo};
use crate::binary::Reader;

/// Structs at least this large keep their fields in the report.
pub const STRUCT_FIELDS_BYTES_MIN: u64 = 256;

/// Collects the types of all units, first definition of each name wins (they are identical
/// across units: a name is a monomorphized type).
pub fn collect_types(dwarf: &gimli::Dwarf<Reader<'_>>) -> Result<Vec<TypeInfo>, SizesError> {
    let mut by_name: HashMap<String, TypeInfo> = HashMap::new();
    let mut owners = ImplOwners::default();
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        let arena = UnitArena::read(dwarf, &unit)?;
        owners.learn(&arena);
        for idx in 0..arena.dies.len() {
            let idx = DieIdx::try_from(idx).expect("arena indices fit in u32");
            let die = arena.die(idx);
            let is_type = matches!(
                die.tag,
                dw::DW_TAG_structure_type
                    | dw::DW_TAG_union_type
                    | dw::DW_TAG_enumeration_type
                    | dw::DW_TAG_class_type
            );
            if !is_type || die.declaration || die.name.is_none() {
                continue;
            }
            let Some(size) = die.byte_size else { continue };
            if !is_top_level(&arena, idx) {
                continue;
            }
            let Some(name) = qualified_name(&arena, idx) else {
                continue;
            };
            if by_name.contains_key(&name) {
                continue;
            }
            let info = type_info(&arena, idx, name.clone(), size);
            by_name.insert(name, info);
        }
    }
    Ok(with_impls_named(by_name.into_values().collect(), &owners))
}

/// The types with their `{impl#N}` segments replaced by the impl's owner (see [`ImplOwners`]),
/// except where two types would then share a name: those keep the compiler's names.
fn with_impls_named(mut types: Vec<TypeInfo>, owners: &ImplOwners) -> Vec<TypeInfo> {
    let mut renamed: HashMap<String, String> = types
        .iter()
        .map(|t| (t.name.clone(), owners.rename(&t.name)))
        .collect();
    let mut users: HashMap<&str, usize> = HashMap::new();
    for new in renamed.values() {
        *users.entry(new.as_str()).or_default() += 1;
    }
    let shared: Vec<String> = renamed
        .iter()
        .filter(|(_, new)| users[new.as_str()] > 1)
        .map(|(old, _)| old.clone())
        .collect();
    for old in shared {
        renamed.insert(old.clone(), old);
    }
    let name_of = |old: &str| {
        renamed
            .get(old)
            .cloned()
            .unwrap_or_else(|| owners.rename(old))
    };
    for t in &mut types {
        t.name = name_of(&t.name);
        let fields = t.fields.iter_mut();
        for f in fields.chain(t.variants.iter_mut().flat_map(|v| v.fields.iter_mut())) {
            f.type_name = name_of(&f.type_name);
        }
    }
    types
}

fn type_info(arena: &UnitArena<'_>, idx: DieIdx, name: String, size: u64) -> TypeInfo {
    let die = arena.die(idx);
    let variant_part = arena.children_with(idx, dw::DW_TAG_variant_part).next();
    let kind = match die.tag {
        dw::DW_TAG_union_type => TypeKind::Union,
        dw::DW_TAG_enumeration_type => TypeKind::CEnum,
        _ if is_future_name(&name) => TypeKind::Future,
        _ if last_segment(&name).starts_with("{closure_env#") => TypeKind::Closure,
        _ if variant_part.is_some() => TypeKind::Enum,
        _ => TypeKind::Struct,
    };
    let variants = match variant_part {
        Some(part) => variants(arena, part),
        None => Vec::new(),
    };
    // Only large structs keep their fields: enough to say which field makes them large,
    // without a report the size of the binary's whole type table.
    let fields = if kind == TypeKind::Struct && size >= STRUCT_FIELDS_BYTES_MIN {
        arena
            .children_with(idx, dw::DW_TAG_member)
            .map(|f| field(arena, f))
            .collect()
    } else {
        Vec::new()
    };
    TypeInfo {
        name,
        size,
        align: die.alignment,
        kind,
        variants,
        fields,
    }
}

fn variants(arena: &UnitArena<'_>, part: DieIdx) -> Vec<VariantInfo> {
    let mut out = Vec::new();
    for variant in arena.children_with(part, dw::DW_TAG_variant) {
        for member in arena.children_with(variant, dw::DW_TAG_member) {
            let member_die = arena.die(member);
            let Some(ty) = member_die.type_ref.and_then(|o| arena.at(o)) else {
                continue;
            };
            let ty_die = arena.die(ty);
            let name = ty_die
                .name
                .or(member_die.name)
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_else(|| "?".to_string());
            let fields: Vec<FieldInfo> = arena
                .children_with(ty, dw::DW_TAG_member)
                .map(|f| field(arena, f))
                .collect();
            let size = fields.iter().map(|f| f.size).sum();
            out.push(VariantInfo { name, size, fields });
        }
    }
    out
}

fn field(arena: &UnitArena<'_>, member: DieIdx) -> FieldInfo {
    let die = arena.die(member);
    let ty = die.type_ref.and_then(|o| arena.at(o));
    let type_name = ty.map_or_else(|| "?".to_string(), |t| type_name(arena, t));
    let name = die
        .name
        .map_or_else(String::new, |n| String::from_utf8_lossy(n).into_owned());
    FieldInfo {
        // `__awaitee` is the future being awaited, whatever its type (a boxed `dyn Future` too).
        is_future: is_future_name(&type_name) || name == "__awaitee",
        name,
        size: ty.and_then(|t| type_size(arena, t)).unwrap_or(0),
        offset: die.member_offset.unwrap_or(0),
        type_name,
    }
}

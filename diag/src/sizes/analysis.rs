//! Findings derived from the collected types: lopsided enums and futures that hold a lot.

use super::names::parent_path;
use super::{EnumImbalance, FutureInfo, HeldField, TypeInfo, TypeKind};

/// A variant is reported only when it holds at least this many bytes: below that, boxing costs
/// an allocation for little saved copying.
pub const IMBALANCE_VARIANT_BYTES_MIN: u64 = 256;

/// ... and is at least this many times the next largest variant.
pub const IMBALANCE_RATIO_MIN: u64 = 4;

/// Enums (including `Result` and `Option` instantiations) whose largest variant dwarfs the
/// rest, most wasted bytes first.
pub fn imbalanced_enums(types: &[TypeInfo]) -> Vec<EnumImbalance> {
    let mut out: Vec<EnumImbalance> = types
        .iter()
        .filter(|t| t.kind == TypeKind::Enum && t.variants.len() >= 2)
        .filter_map(imbalance)
        .collect();
    out.sort_by(|a, b| {
        (b.variant_size - b.next_size)
            .cmp(&(a.variant_size - a.next_size))
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

fn imbalance(t: &TypeInfo) -> Option<EnumImbalance> {
    let mut by_size: Vec<_> = t.variants.iter().collect();
    by_size.sort_by_key(|v| std::cmp::Reverse(v.size));
    let largest = by_size[0];
    let next = by_size.get(1);
    let next_size = next.map_or(0, |v| v.size);
    if largest.size < IMBALANCE_VARIANT_BYTES_MIN
        || largest.size < IMBALANCE_RATIO_MIN.saturating_mul(next_size)
    {
        return None;
    }
    let biggest_field = largest.fields.iter().max_by_key(|f| f.size);
    let suggestion = match biggest_field {
        Some(f) if t.name.starts_with("core::option::Option<") && next_size == 0 => format!(
            "`Option` adds nothing to its payload `{}`: shrink that type (its own large variant or \
             field), or store `Option<Box<{}>>`",
            f.type_name,
            super::last_segment(&f.type_name),
        ),
        Some(f) => format!(
            "box the variant `{}`: its field `{}: {}` is {} bytes; `Box<{}>` makes it 8",
            largest.name,
            f.name,
            f.type_name,
            super::render::bytes(f.size),
            super::last_segment(&f.type_name),
        ),
        None => format!("box the variant `{}`", largest.name),
    };
    Some(EnumImbalance {
        name: t.name.clone(),
        size: t.size,
        variant: largest.name.clone(),
        variant_size: largest.size,
        next_variant: next.map(|v| v.name.clone()),
        next_size,
        suggestion,
    })
}

/// The futures among `types`, largest first, with the fields their `SuspendN` variants hold.
pub fn futures(types: &[TypeInfo]) -> Vec<FutureInfo> {
    types
        .iter()
        .filter(|t| t.kind == TypeKind::Future)
        .map(|t| {
            let mut held: Vec<HeldField> = t
                .variants
                .iter()
                .filter(|v| v.name.starts_with("Suspend"))
                .flat_map(|v| {
                    v.fields.iter().map(move |f| HeldField {
                        suspend: v.name.clone(),
                        name: f.name.clone(),
                        type_name: f.type_name.clone(),
                        size: f.size,
                        is_future: f.is_future,
                    })
                })
                .collect();
            held.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.suspend.cmp(&b.suspend)));
            FutureInfo {
                name: t.name.clone(),
                function: parent_path(&t.name).to_string(),
                size: t.size,
                held,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{FieldInfo, VariantInfo};
    use super::*;

    fn variant(name: &str, size: u64) -> VariantInfo {
        VariantInfo {
            name: name.into(),
            size,
            fields: vec![FieldInfo {
                name: "__0".into(),
                type_name: format!("app::{name}Payload"),
                size,
                offset: 8,
                is_future: false,
            }],
        }
    }

    fn enum_of(variants: Vec<VariantInfo>) -> TypeInfo {
        TypeInfo {
            name: "app::E".into(),
            size: 4096,
            align: Some(8),
            kind: TypeKind::Enum,
            variants,
            fields: Vec::new(),
        }
    }

    #[test]
    fn a_lopsided_enum_is_reported_with_the_variant_to_box() {
        let found = imbalanced_enums(&[enum_of(vec![variant("Small", 8), variant("Big", 4000)])]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].variant, "Big");
        assert_eq!(found[0].variant_size, 4000);
        assert_eq!(found[0].next_variant.as_deref(), Some("Small"));
        assert_eq!(found[0].next_size, 8);
        assert!(
            found[0].suggestion.starts_with("box the variant `Big`"),
            "{}",
            found[0].suggestion
        );
    }

    #[test]
    fn balanced_or_small_enums_are_not_reported() {
        assert!(
            imbalanced_enums(&[enum_of(vec![variant("A", 2000), variant("B", 1000)])]).is_empty()
        );
        assert!(imbalanced_enums(&[enum_of(vec![variant("A", 100), variant("B", 0)])]).is_empty());
    }
}

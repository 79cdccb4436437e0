//! Types and futures that were renamed or moved, not added: a refactor that renames a function
//! or moves a type to another module changes its path (and those of the futures it awaits),
//! not its layout. An appeared type is the renamed one of a disappeared type when both have
//! the same size and the same shape, names of types left out: a future's fields held across
//! awaits, by name and size; another type's fields and variants, by name and size.

use crate::sizes::{SizesReport, TypeSize, is_future_name};

/// A type's layout without the names of types: (field or variant name, size), sorted. `None`
/// when the report does not say (a type without fields or variants, a future it does not list):
/// then nothing can be said to match it.
fn shape(report: &SizesReport, name: &str) -> Option<Vec<(String, u64)>> {
    let mut parts: Vec<(String, u64)> = if is_future_name(name) {
        let future = report.futures.iter().find(|f| f.name == name)?;
        future
            .held
            .iter()
            .map(|h| (h.name.clone(), h.size))
            .collect()
    } else {
        let ty = report.type_named(name)?;
        let fields = ty.fields.iter().map(|f| (f.name.clone(), f.size));
        let variants = ty.variants.iter().map(|v| (v.name.clone(), v.size));
        fields.chain(variants).collect()
    };
    if parts.is_empty() {
        return None;
    }
    parts.sort();
    Some(parts)
}

/// The appeared types that are not renamed ones of `disappeared`: each disappeared type
/// answers for one appeared type at most.
pub(crate) fn without_renames<'a>(
    appeared: &'a [TypeSize],
    disappeared: &[TypeSize],
    before: &SizesReport,
    after: &SizesReport,
) -> Vec<&'a TypeSize> {
    // Each vanished type's shape, read once: only those with one can match.
    let mut unmatched: Vec<(&TypeSize, Vec<(String, u64)>)> = disappeared
        .iter()
        .filter_map(|d| Some((d, shape(before, &d.name)?)))
        .collect();
    appeared
        .iter()
        .filter(|t| {
            let Some(new_shape) = shape(after, &t.name) else {
                return true;
            };
            let old = unmatched.iter().position(|(d, old_shape)| {
                d.size == t.size
                    && is_future_name(&d.name) == is_future_name(&t.name)
                    && *old_shape == new_shape
            });
            match old {
                Some(i) => {
                    unmatched.swap_remove(i);
                    false
                }
                None => true,
            }
        })
        .collect()
}

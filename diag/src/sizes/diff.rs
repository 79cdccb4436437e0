//! The difference between two sizes reports: types that grew, shrank, appeared, disappeared.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::SizesReport;

/// A type whose size changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeChange {
    /// The type's name.
    pub name: String,
    /// Size in the baseline.
    pub before: u64,
    /// Size in the candidate.
    pub after: u64,
}

impl SizeChange {
    /// `after - before`, signed.
    pub fn delta(&self) -> i128 {
        i128::from(self.after) - i128::from(self.before)
    }
}

/// A type and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeSize {
    /// The type's name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What changed between a baseline and a candidate report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizesDiff {
    /// Types larger in the candidate, largest growth first.
    pub grew: Vec<SizeChange>,
    /// Types smaller in the candidate, largest shrink first.
    pub shrank: Vec<SizeChange>,
    /// Types only in the candidate, largest first.
    pub appeared: Vec<TypeSize>,
    /// Types only in the baseline, largest first.
    pub disappeared: Vec<TypeSize>,
}

impl SizesDiff {
    /// True when no type changed.
    pub fn is_empty(&self) -> bool {
        self.grew.is_empty()
            && self.shrank.is_empty()
            && self.appeared.is_empty()
            && self.disappeared.is_empty()
    }

    /// A copy keeping only the entries that mention `prefix` (see [`super::TypeInfo::mentions`]).
    pub fn filtered(&self, prefix: &str) -> Self {
        let keep = |name: &str| super::mentions(name, prefix);
        Self {
            grew: self
                .grew
                .iter()
                .filter(|c| keep(&c.name))
                .cloned()
                .collect(),
            shrank: self
                .shrank
                .iter()
                .filter(|c| keep(&c.name))
                .cloned()
                .collect(),
            appeared: self
                .appeared
                .iter()
                .filter(|c| keep(&c.name))
                .cloned()
                .collect(),
            disappeared: self
                .disappeared
                .iter()
                .filter(|c| keep(&c.name))
                .cloned()
                .collect(),
        }
    }
}

pub(super) fn diff(before: &SizesReport, after: &SizesReport) -> SizesDiff {
    let old: HashMap<&str, u64> = before
        .types
        .iter()
        .map(|t| (t.name.as_str(), t.size))
        .collect();
    let new: HashMap<&str, u64> = after
        .types
        .iter()
        .map(|t| (t.name.as_str(), t.size))
        .collect();
    let mut out = SizesDiff::default();
    for t in &after.types {
        match old.get(t.name.as_str()) {
            None => out.appeared.push(TypeSize {
                name: t.name.clone(),
                size: t.size,
            }),
            Some(&b) if b < t.size => {
                out.grew.push(SizeChange {
                    name: t.name.clone(),
                    before: b,
                    after: t.size,
                });
            }
            Some(&b) if b > t.size => {
                out.shrank.push(SizeChange {
                    name: t.name.clone(),
                    before: b,
                    after: t.size,
                });
            }
            Some(_) => {}
        }
    }
    for t in &before.types {
        if !new.contains_key(t.name.as_str()) {
            out.disappeared.push(TypeSize {
                name: t.name.clone(),
                size: t.size,
            });
        }
    }
    out.grew
        .sort_by(|a, b| b.delta().cmp(&a.delta()).then_with(|| a.name.cmp(&b.name)));
    out.shrank
        .sort_by(|a, b| a.delta().cmp(&b.delta()).then_with(|| a.name.cmp(&b.name)));
    out.appeared
        .sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name)));
    out.disappeared
        .sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name)));
    out
}

#[cfg(test)]
mod tests {
    use super::super::{StackFrames, TypeInfo, TypeKind};
    use super::*;

    fn report(types: &[(&str, u64)]) -> SizesReport {
        SizesReport {
            format_version: super::super::FORMAT_VERSION,
            binary: "x".into(),
            types: types
                .iter()
                .map(|(n, s)| TypeInfo {
                    name: n.to_string(),
                    size: *s,
                    align: None,
                    kind: TypeKind::Struct,
                    variants: Vec::new(),
                    fields: Vec::new(),
                })
                .collect(),
            imbalanced_enums: Vec::new(),
            futures: Vec::new(),
            stack_frames: StackFrames::default(),
        }
    }

    #[test]
    fn diff_sorts_changes_into_four_lists() {
        let before = report(&[
            ("a::Grows", 8),
            ("a::Shrinks", 64),
            ("a::Same", 4),
            ("a::Gone", 2),
        ]);
        let after = report(&[
            ("a::Grows", 4096),
            ("a::Shrinks", 16),
            ("a::Same", 4),
            ("a::New", 1),
        ]);
        let d = before.diff(&after);
        assert_eq!(
            d.grew,
            vec![SizeChange {
                name: "a::Grows".into(),
                before: 8,
                after: 4096
            }]
        );
        assert_eq!(
            d.shrank,
            vec![SizeChange {
                name: "a::Shrinks".into(),
                before: 64,
                after: 16
            }]
        );
        assert_eq!(
            d.appeared,
            vec![TypeSize {
                name: "a::New".into(),
                size: 1
            }]
        );
        assert_eq!(
            d.disappeared,
            vec![TypeSize {
                name: "a::Gone".into(),
                size: 2
            }]
        );
        assert!(before.diff(&before).is_empty());
    }
}

//! What the stages hand on: each stage's findings and what it claims, so that a later stage
//! leaves out what an earlier one explained. Each field of [`Claims`] says which stage fills
//! it; a stage that reads a field runs after the stages that fill it (the order of
//! [`compare`](super::compare)).

use super::{Finding, FindingKind};

/// What the stages so far explained.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    /// Sizes of every type a type finding explains (the type stage): the heap stage leaves the
    /// copies of these sizes to the types.
    pub sizes: Vec<u64>,
    /// The types a type finding explains, with both sizes (the type stage): the heap stage
    /// calls a site whose blocks are all buffers of one of them a symptom of its growth.
    pub grown: Vec<GrownType>,
    /// Copy sites ([`site_key`](super::types::site_key)) a grown type or a boxed future explains
    /// (the type and heap stages): the copies stage leaves them out.
    pub sites: Vec<String>,
    /// Functions whose every copy a finding explains (the type stage; the heap stage: tokio's
    /// functions that move spawned futures into their tasks): the copies stage leaves them out.
    pub copy_functions: Vec<String>,
    /// Functions named by the findings so far (every stage, from [`Finding::functions`]): the
    /// CPU hot spots leave them out.
    pub functions: Vec<String>,
    /// Kinds of the findings so far that crossed a threshold, or are the symptoms of one that
    /// did (every stage): a whole-process total of one of these kinds is their evidence, not a
    /// finding of its own.
    pub crossed: Vec<FindingKind>,
    /// The allocator stage named a change of allocator, which explains the time inside it: the
    /// CPU hot spots leave each function's allocator time out.
    pub allocator: bool,
}

impl Claims {
    fn extend(&mut self, other: Claims) {
        self.sizes.extend(other.sizes);
        self.grown.extend(other.grown);
        self.sites.extend(other.sites);
        self.copy_functions.extend(other.copy_functions);
        self.functions.extend(other.functions);
        self.crossed.extend(other.crossed);
        self.allocator |= other.allocator;
    }
}

/// A type that grew, as the heap stage needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GrownType {
    /// Its name as the program wrote it (`Fragment`).
    pub short_name: String,
    pub before: u64,
    pub after: u64,
}

/// What one stage found, and what it claims besides the functions its findings name.
#[derive(Debug, Default)]
pub(crate) struct Stage {
    pub findings: Vec<Finding>,
    pub claims: Claims,
}

/// A stage that claims nothing but its findings' functions.
impl From<Vec<Finding>> for Stage {
    fn from(findings: Vec<Finding>) -> Stage {
        Stage {
            findings,
            claims: Claims::default(),
        }
    }
}

impl From<Option<Finding>> for Stage {
    fn from(finding: Option<Finding>) -> Stage {
        Stage::from(Vec::from_iter(finding))
    }
}

/// The findings of the stages run so far, in the order they ran, and all they claim.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub findings: Vec<Finding>,
    pub claims: Claims,
}

impl Found {
    /// Adds the next stage: its findings, its claims, the functions its findings name and the
    /// kinds of those that crossed a threshold or are symptoms.
    pub fn add(&mut self, stage: Stage) {
        self.claims.extend(stage.claims);
        for f in &stage.findings {
            self.claims.functions.extend(f.functions.iter().cloned());
            // A symptom's cause crossed: the total of the symptom's kind is its evidence.
            if f.regression || f.symptom {
                self.claims.crossed.push(f.kind);
            }
        }
        self.findings.extend(stage.findings);
    }
}

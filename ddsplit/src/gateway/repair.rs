//! Repair: bring a record back to k + m intact fragments after nodes lost or damaged some.
//!
//! The gateway reads *every* fragment of the record (not just k), rebuilds the record from the
//! intact ones, splits it again (the split is deterministic, so the rebuilt fragments are
//! byte-identical to the ones first written), checks that the rebuilt fragments equal the
//! intact ones it read, and writes back only those that were missing or failed their checksum.
//! A scan walks the fragment keys every node lists, a page at a time, and repairs each record
//! it finds: it is a scrub, and it finds damage in records nobody reads.
//!
//! Repair is an explicit operation (`ddsplit repair`), not done on every degraded read: see
//! ARCHITECTURE.md ("Repair is explicit").

use std::collections::BTreeSet;

use futures::stream::{self, FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};

use super::{Gateway, off_thread_if_large};
use crate::codec::{self, Fragment};
use crate::error::{DistriErr, ErrorCode};
use crate::id::RecordId;
// Trait objects (the story build) call trait methods without the import.
use crate::limits::{REPAIR_CONCURRENCY_MAX, REPAIR_SCAN_KEYS_MAX};
#[cfg_attr(feature = "story-async-trait", allow(unused_imports))]
use crate::store::FragmentStore;
use crate::wire::FragmentKey;

/// Most record ids kept in a report's `unrepairable` list; the count is always exact.
pub const REPAIR_REPORT_IDS_MAX: usize = 64;

/// What a repair request found and did. Reports of several requests add up with
/// [`RepairReport::merge`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairReport {
    /// Records looked at.
    pub records_checked: u64,
    /// Records whose k + m fragments were all intact.
    pub records_healthy: u64,
    /// Records that had lost or damaged fragments, all of which were written back.
    pub records_repaired: u64,
    /// Records no node holds a fragment of (deleted, or never stored).
    pub records_not_found: u64,
    /// Records that could not be brought back to k + m: fewer than k intact fragments, or a
    /// rewrite failed (counted in `fragments_unwritable`).
    pub records_unrepairable: u64,
    /// Fragments found missing from the node that should hold them.
    pub fragments_missing: u64,
    /// Fragments that failed their checksum.
    pub fragments_corrupt: u64,
    /// Fragments that could not be checked: the node did not answer.
    pub fragments_unreachable: u64,
    /// Missing or corrupt fragments rebuilt and written back.
    pub fragments_rewritten: u64,
    /// Rebuilt fragments whose write failed.
    pub fragments_unwritable: u64,
    /// Unrepairable records with the reason (at most [`REPAIR_REPORT_IDS_MAX`]).
    pub unrepairable: Vec<(RecordId, String)>,
    /// Nodes whose fragment list could not be read during a scan.
    pub nodes_unreachable: Vec<String>,
    /// Scan cursor: pass it as `after` for the next page; `None` when the scan is complete.
    pub next: Option<RecordId>,
}

impl RepairReport {
    /// Adds `other`'s counts to this report (the cursor is `other`'s).
    pub fn merge(&mut self, other: RepairReport) {
        self.records_checked += other.records_checked;
        self.records_healthy += other.records_healthy;
        self.records_repaired += other.records_repaired;
        self.records_not_found += other.records_not_found;
        self.records_unrepairable += other.records_unrepairable;
        self.fragments_missing += other.fragments_missing;
        self.fragments_corrupt += other.fragments_corrupt;
        self.fragments_unreachable += other.fragments_unreachable;
        self.fragments_rewritten += other.fragments_rewritten;
        self.fragments_unwritable += other.fragments_unwritable;
        for entry in other.unrepairable {
            if self.unrepairable.len() < REPAIR_REPORT_IDS_MAX {
                self.unrepairable.push(entry);
            }
        }
        for node in other.nodes_unreachable {
            if !self.nodes_unreachable.contains(&node) {
                self.nodes_unreachable.push(node);
            }
        }
        self.next = other.next;
    }

    /// Whether everything looked at is (now) at k + m intact fragments.
    pub fn is_clean(&self) -> bool {
        self.records_unrepairable == 0
            && self.fragments_unreachable == 0
            && self.nodes_unreachable.is_empty()
    }
}

/// The state of one fragment as the repair found it.
enum Found {
    Intact(Fragment),
    Missing,
    Corrupt,
    Unreachable,
}

impl Gateway {
    /// Repairs each record of `ids` (at most [`crate::limits::REPAIR_IDS_MAX`], checked by the
    /// wire decoder), [`REPAIR_CONCURRENCY_MAX`] at a time.
    pub async fn repair(&self, ids: &[RecordId]) -> RepairReport {
        let mut report = RepairReport::default();
        let mut outcomes = stream::iter(ids.iter().copied().map(|id| self.repair_record(id)))
            .buffer_unordered(REPAIR_CONCURRENCY_MAX);
        while let Some(outcome) = outcomes.next().await {
            report.merge(outcome);
        }
        report.next = None;
        report
    }

    /// Repairs the next page of records after `after` that any node holds a fragment of.
    ///
    /// Each node lists at most [`REPAIR_SCAN_KEYS_MAX`] keys after the cursor. A node whose
    /// page is full may hold more records past its last key, so the page covers the records up
    /// to the smallest such last key (the horizon); every record up to it has been listed by
    /// every node that holds it. The horizon is the next cursor.
    pub async fn repair_scan(&self, after: Option<RecordId>) -> RepairReport {
        let after_key = after.map(|id| FragmentKey { id, index: u8::MAX });
        let listings: Vec<_> = self
            .stores
            .iter()
            .zip(&self.node_addrs)
            .map(|(store, addr)| async move {
                (
                    addr,
                    store.list_fragments(after_key, REPAIR_SCAN_KEYS_MAX).await,
                )
            })
            .collect::<FuturesUnordered<_>>()
            .collect()
            .await;
        let mut ids = BTreeSet::new();
        let mut horizon: Option<RecordId> = None;
        let mut nodes_unreachable = Vec::new();
        for (addr, listing) in listings {
            match listing {
                Ok(keys) => {
                    if keys.len() >= REPAIR_SCAN_KEYS_MAX
                        && let Some(last) = keys.last()
                    {
                        horizon = Some(horizon.map_or(last.id, |h| h.min(last.id)));
                    }
                    ids.extend(keys.iter().map(|k| k.id));
                }
                Err(e) => {
                    tracing::warn!(node = %addr, error = %e, "repair scan: the node's fragment list could not be read");
                    nodes_unreachable.push(addr.to_string());
                }
            }
        }
        let page: Vec<RecordId> = match horizon {
            Some(h) => ids.range(..=h).copied().collect(),
            None => ids.into_iter().collect(),
        };
        debug_assert!(
            after.is_none_or(|a| page.iter().all(|id| *id > a)),
            "a scan page only holds records after its cursor"
        );
        let mut report = self.repair(&page).await;
        report.nodes_unreachable = nodes_unreachable;
        report.next = horizon;
        report
    }

    /// Checks every fragment of `id` and writes back the missing and corrupt ones.
    async fn repair_record(&self, id: RecordId) -> RepairReport {
        let mut report = RepairReport {
            records_checked: 1,
            ..RepairReport::default()
        };
        let ranked = self.placement.ranked(id);
        let total = self.params.total();
        let found: Vec<Found> = futures::future::join_all((0..total).map(|index| {
            let store = self.stores[ranked[index]].clone();
            async move {
                let key = FragmentKey {
                    id,
                    index: index as u8,
                };
                match store.get_fragment(key).await.and_then(|f| self.check_split(f)) {
                    Ok(fragment) => Found::Intact(fragment),
                    Err(e) => match e.code() {
                        ErrorCode::NotFound => Found::Missing,
                        ErrorCode::Corrupt => {
                            tracing::warn!(%id, index, error = %e, "repair: corrupt fragment");
                            Found::Corrupt
                        }
                        _ => {
                            tracing::warn!(%id, index, error = %e, "repair: fragment could not be checked");
                            Found::Unreachable
                        }
                    },
                }
            }
        }))
        .await;
        let mut intact = Vec::with_capacity(total);
        let mut to_write = Vec::new();
        for (index, state) in found.into_iter().enumerate() {
            match state {
                Found::Intact(fragment) => intact.push(fragment),
                Found::Missing => {
                    report.fragments_missing += 1;
                    to_write.push(index);
                }
                Found::Corrupt => {
                    report.fragments_corrupt += 1;
                    to_write.push(index);
                }
                Found::Unreachable => report.fragments_unreachable += 1,
            }
        }
        if intact.len() == total {
            report.records_healthy = 1;
            return report;
        }
        if intact.is_empty() && report.fragments_missing as usize == total {
            report.records_not_found = 1;
            return report;
        }
        let k = self.params.k() as usize;
        if intact.len() < k {
            let reason = format!(
                "{} intact fragments, {k} needed to rebuild ({} missing, {} corrupt, {} unreachable)",
                intact.len(),
                report.fragments_missing,
                report.fragments_corrupt,
                report.fragments_unreachable
            );
            return unrepairable(report, id, reason);
        }
        if to_write.is_empty() {
            // Only unreachable fragments: nothing can be written to their nodes now.
            return report;
        }
        let rebuilt = match self.rebuild(id, intact).await {
            Ok(rebuilt) => rebuilt,
            Err(e) => return unrepairable(report, id, e.to_string()),
        };
        let writes: Vec<_> = to_write
            .iter()
            .map(|&index| {
                let store = self.stores[ranked[index]].clone();
                let fragment = rebuilt[index].clone();
                async move { store.put_fragment(fragment).await }
            })
            .collect::<FuturesUnordered<_>>()
            .collect()
            .await;
        for write in writes {
            match write {
                Ok(_) => report.fragments_rewritten += 1,
                Err(e) => {
                    tracing::warn!(%id, error = %e, "repair: writing a rebuilt fragment failed");
                    report.fragments_unwritable += 1;
                }
            }
        }
        if report.fragments_unwritable > 0 {
            let reason = format!(
                "{} rebuilt fragments could not be written",
                report.fragments_unwritable
            );
            return unrepairable(report, id, reason);
        }
        report.records_repaired = 1;
        report
    }

    /// Rebuilds all k + m fragments of `id` from its intact ones, and checks that each intact
    /// fragment equals its rebuilt twin: a rebuilt fragment is written only if the rebuild
    /// reproduces every fragment that was read.
    async fn rebuild(
        &self,
        id: RecordId,
        intact: Vec<Fragment>,
    ) -> Result<Vec<Fragment>, DistriErr> {
        let params = self.params;
        let len = intact[0].header().record_len as usize;
        off_thread_if_large(len, move || {
            let record = codec::reassemble(&intact)?;
            let rebuilt = codec::split(id, &record, params)?;
            for fragment in &intact {
                let index = fragment.header().index as usize;
                if rebuilt[index] != *fragment {
                    return Err(DistriErr::corrupt(
                        id,
                        index as u8,
                        "the rebuilt fragment differs from the stored one; nothing written".into(),
                        &[],
                    ));
                }
            }
            Ok(rebuilt)
        })
        .await?
    }
}

/// The report as a few lines for a person.
pub fn summary(report: &RepairReport) -> String {
    let mut out = format!(
        "records checked {}: healthy {}, repaired {}, unrepairable {}, not found {}\n\
         fragments: missing {}, corrupt {}, rewritten {}, unwritable {}, unreachable {}\n",
        report.records_checked,
        report.records_healthy,
        report.records_repaired,
        report.records_unrepairable,
        report.records_not_found,
        report.fragments_missing,
        report.fragments_corrupt,
        report.fragments_rewritten,
        report.fragments_unwritable,
        report.fragments_unreachable,
    );
    for node in &report.nodes_unreachable {
        out.push_str(&format!("node {node} could not be scanned\n"));
    }
    for (id, reason) in &report.unrepairable {
        out.push_str(&format!("unrepairable {id}: {reason}\n"));
    }
    if report.records_unrepairable as usize > report.unrepairable.len() {
        out.push_str("(more unrepairable records not listed)\n");
    }
    out
}

fn unrepairable(mut report: RepairReport, id: RecordId, reason: String) -> RepairReport {
    tracing::warn!(%id, %reason, "repair: record cannot be brought back to k + m fragments");
    report.records_unrepairable = 1;
    report.unrepairable.push((id, reason));
    report
}

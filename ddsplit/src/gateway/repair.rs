//! Repair: bring a record back to k + m intact fragments on its k + m ranked nodes after nodes
//! lost or damaged some, or were down while it was written.
//!
//! The gateway reads *every* fragment of the record (not just k), at home and on its spares
//! (hinted placements, [`super::hints`]), rebuilds the record from the intact ones, splits it
//! again (the split is deterministic, so the rebuilt fragments are byte-identical to the ones
//! first written), checks that the rebuilt fragments equal the intact ones it read, and writes
//! home only those that were missing or failed their checksum there. Then it deletes the
//! copies on spares whose fragments are all at home again. A scan walks the fragment keys
//! every node lists, a page at a time, and repairs each record it finds: it is a scrub, and it
//! finds damage in records nobody reads.
//!
//! Repair is an explicit operation (`ddsplit repair`), not done on every degraded read: see
//! ARCHITECTURE.md ("Repair is explicit").

use std::collections::BTreeSet;

use futures::stream::{self, FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};

use super::{Gateway, hints, off_thread_if_large};
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
    /// Fragments found missing from the node that should hold them (their home).
    pub fragments_missing: u64,
    /// Fragments that failed their checksum.
    pub fragments_corrupt: u64,
    /// Fragments that could not be checked: the node did not answer.
    pub fragments_unreachable: u64,
    /// Missing or corrupt fragments rebuilt and written back.
    pub fragments_rewritten: u64,
    /// Rebuilt fragments whose write failed.
    pub fragments_unwritable: u64,
    /// Fragments found on a spare node instead of (or as well as) at home: placed there while
    /// their home node was down. (Absent from the reports of gateways without spares.)
    #[serde(default)]
    pub fragments_hinted: u64,
    /// Hinted fragments now at home whose copy on the spare was deleted.
    #[serde(default)]
    pub fragments_moved_home: u64,
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
        self.fragments_hinted += other.fragments_hinted;
        self.fragments_moved_home += other.fragments_moved_home;
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

    /// Whether everything looked at is (now) at k + m intact fragments, all at home.
    pub fn is_clean(&self) -> bool {
        self.records_unrepairable == 0
            && self.fragments_unreachable == 0
            && self.fragments_moved_home == self.fragments_hinted
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

/// What the spares of a record hold of it.
#[derive(Default)]
struct Hinted {
    /// Each spare that holds fragments of the record, with their indices.
    holders: Vec<(usize, Vec<u8>)>,
    /// The copies the holders hold, as read.
    copies: Vec<(u8, Found)>,
    /// Spares whose fragment list could not be read.
    unreachable: u64,
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

    /// Checks every fragment of `id`, at home and on its spares; writes home the missing and
    /// corrupt ones, rebuilt; then deletes the spares' copies of fragments that are home.
    async fn repair_record(&self, id: RecordId) -> RepairReport {
        let mut report = RepairReport {
            records_checked: 1,
            ..RepairReport::default()
        };
        let ranked = self.placement.ranked(id);
        let (home, hinted) = futures::future::join(
            self.check_home(id, &ranked),
            self.check_spares(id, self.spares(&ranked)),
        )
        .await;
        let total = self.params.total();
        let mut intact = Vec::with_capacity(total);
        let mut at_home = vec![false; total];
        let mut to_write = Vec::new();
        for (index, state) in home.into_iter().enumerate() {
            match state {
                Found::Intact(fragment) => {
                    at_home[index] = true;
                    intact.push(fragment);
                }
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
        let Hinted {
            holders,
            copies,
            unreachable,
        } = hinted;
        report.fragments_unreachable += unreachable;
        report.fragments_hinted = copies.len() as u64;
        for (index, state) in copies {
            match state {
                Found::Intact(fragment) if !at_home[index as usize] => {
                    if !intact.iter().any(|f| f.header().index == index) {
                        intact.push(fragment);
                    }
                }
                Found::Corrupt => report.fragments_corrupt += 1,
                Found::Unreachable => report.fragments_unreachable += 1,
                Found::Intact(_) | Found::Missing => {}
            }
        }
        if to_write.is_empty() && holders.is_empty() {
            // All at home (healthy), or only unreachable fragments: nothing can be done now.
            report.records_healthy = u64::from(report.fragments_unreachable == 0);
            return report;
        }
        if intact.is_empty() && report.fragments_missing as usize == total && holders.is_empty() {
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
        if !to_write.is_empty() {
            let rebuilt = match self.rebuild(id, intact).await {
                Ok(rebuilt) => rebuilt,
                Err(e) => return unrepairable(report, id, e.to_string()),
            };
            self.write_home(id, &ranked, &rebuilt, &to_write, &mut at_home, &mut report)
                .await;
        }
        self.clear_spares(id, &holders, &at_home, &mut report).await;
        if report.fragments_unwritable > 0 {
            let reason = format!(
                "{} rebuilt fragments could not be written",
                report.fragments_unwritable
            );
            return unrepairable(report, id, reason);
        }
        report.records_repaired = u64::from(report.fragments_moved_home == report.fragments_hinted);
        report
    }

    /// The state of each of the k + m fragments of `id` at its home, the node ranked for it.
    async fn check_home(&self, id: RecordId, ranked: &[usize]) -> Vec<Found> {
        let total = self.params.total();
        futures::future::join_all(
            (0..total).map(|index| self.check_fragment(ranked[index], id, index as u8)),
        )
        .await
    }

    /// What the `spares` of `id` hold of it.
    async fn check_spares(&self, id: RecordId, spares: &[usize]) -> Hinted {
        let listings =
            futures::future::join_all(spares.iter().map(|&node| async move {
                (node, hints::indices_held(&self.stores[node], id).await)
            }))
            .await;
        let total = self.params.total();
        let mut hinted = Hinted::default();
        let mut reads = Vec::new();
        for (node, listing) in listings {
            match listing {
                Ok(indices) if indices.is_empty() => {}
                Ok(indices) => {
                    // An index past k + m is of another split: never read, never deleted.
                    reads.extend(
                        indices
                            .iter()
                            .filter(|&&index| (index as usize) < total)
                            .map(|&index| async move {
                                (index, self.check_fragment(node, id, index).await)
                            }),
                    );
                    hinted.holders.push((node, indices));
                }
                Err(e) => {
                    tracing::warn!(%id, node = %self.node_addrs[node], error = %e, "repair: a spare's fragment list could not be read");
                    hinted.unreachable += 1;
                }
            }
        }
        hinted.copies = futures::future::join_all(reads).await;
        hinted
    }

    /// The state of fragment `index` of `id` on `node`.
    async fn check_fragment(&self, node: usize, id: RecordId, index: u8) -> Found {
        let key = FragmentKey { id, index };
        match self.stores[node]
            .get_fragment(key)
            .await
            .and_then(|f| self.check_split(f))
        {
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

    /// Writes the `rebuilt` fragments `to_write` to their homes, marking those written.
    async fn write_home(
        &self,
        id: RecordId,
        ranked: &[usize],
        rebuilt: &[Fragment],
        to_write: &[usize],
        at_home: &mut [bool],
        report: &mut RepairReport,
    ) {
        let writes: Vec<_> = to_write
            .iter()
            .map(|&index| {
                let store = self.stores[ranked[index]].clone();
                let fragment = rebuilt[index].clone();
                async move { (index, store.put_fragment(fragment).await) }
            })
            .collect::<FuturesUnordered<_>>()
            .collect()
            .await;
        for (index, write) in writes {
            match write {
                Ok(_) => {
                    report.fragments_rewritten += 1;
                    at_home[index] = true;
                }
                Err(e) => {
                    tracing::warn!(%id, index, error = %e, "repair: writing a rebuilt fragment failed");
                    report.fragments_unwritable += 1;
                }
            }
        }
    }

    /// Deletes the copies of `id` on each spare of `holders` whose fragments are all at home
    /// now; a spare holding one that is not keeps them all.
    async fn clear_spares(
        &self,
        id: RecordId,
        holders: &[(usize, Vec<u8>)],
        at_home: &[bool],
        report: &mut RepairReport,
    ) {
        let home = |index: &u8| at_home.get(*index as usize).copied().unwrap_or(false);
        let deletes = futures::future::join_all(
            holders
                .iter()
                .filter(|(_, indices)| indices.iter().all(home))
                .map(|(node, indices)| async move {
                    (indices.len(), self.stores[*node].delete_fragments(id).await)
                }),
        )
        .await;
        for (copies, delete) in deletes {
            match delete {
                Ok(_) => report.fragments_moved_home += copies as u64,
                Err(e) => {
                    tracing::warn!(%id, error = %e, "repair: deleting a hinted copy failed")
                }
            }
        }
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
         fragments: missing {}, corrupt {}, rewritten {}, unwritable {}, unreachable {}, \
         on spares {}, moved home {}\n",
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
        report.fragments_hinted,
        report.fragments_moved_home,
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

//! Hinted placement: while a fragment's node is down, a put writes that fragment to a spare
//! (a node ranked past the record's k + m, which holds no other fragment of it), so the record
//! keeps its full redundancy; reads look at the spares once the ranked holders have failed,
//! and repair moves the fragments home.
//!
//! Nothing records where a hinted fragment went: a node lists the keys it holds, and a
//! fragment's key carries its index, so listing a record's keys on its spares finds them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::codec::Fragment;
use crate::error::DistriErr;
use crate::id::RecordId;
use crate::limits::HINTED_KEYS_MAX;
// Trait objects (the story build) call trait methods without the import.
#[cfg_attr(feature = "story-async-trait", allow(unused_imports))]
use crate::store::FragmentStore;
use crate::store::StoreHandle;
use crate::wire::FragmentKey;

/// The spares of one put, each handed out once, in rank order.
pub(super) struct Spares {
    stores: Vec<StoreHandle>,
    next: AtomicUsize,
}

impl Spares {
    /// The spares of a put; `None` when there are none (no fragment is kept for a retry then).
    pub(super) fn new(stores: Vec<StoreHandle>) -> Option<Arc<Spares>> {
        (!stores.is_empty()).then(|| {
            Arc::new(Spares {
                stores,
                next: AtomicUsize::new(0),
            })
        })
    }

    fn take(&self) -> Option<&StoreHandle> {
        self.stores.get(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// Writes `fragment` to its home node; if that write fails, to the next spare not yet given a
/// fragment of the record, and so on while spares last. The error is the last write's.
pub(super) async fn write_fragment(
    home: StoreHandle,
    fragment: Fragment,
    spares: Option<Arc<Spares>>,
) -> Result<(), DistriErr> {
    let Some(spares) = spares else {
        return home.put_fragment(fragment).await.map(drop);
    };
    let mut error = match home.put_fragment(fragment.clone()).await {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    while let Some(spare) = spares.take() {
        let h = fragment.header();
        tracing::warn!(id = %h.record_id, index = h.index, %error, "fragment write failed; placing the fragment on a spare node");
        match spare.put_fragment(fragment.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) => error = e,
        }
    }
    Err(error)
}

/// The indices of the fragments of `id` that `store` holds.
pub(super) async fn indices_held(store: &StoreHandle, id: RecordId) -> Result<Vec<u8>, DistriErr> {
    // Keys are ordered by record, then index: the record's keys come right after the last key
    // of the record before it.
    let after = id.0.checked_sub(1).map(|before| FragmentKey {
        id: RecordId(before),
        index: u8::MAX,
    });
    let keys = store.list_fragments(after, HINTED_KEYS_MAX).await?;
    Ok(keys
        .into_iter()
        .take_while(|key| key.id == id)
        .map(|key| key.index)
        .collect())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::codec::{CodecParams, split};
    use crate::store::log::{FragmentLog, FsyncPolicy};
    use crate::store::{LocalStore, local_handle};

    fn fragments(id: u128) -> Vec<Fragment> {
        split(
            RecordId(id),
            &Bytes::from_static(b"0123456789"),
            CodecParams::default(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_node_lists_exactly_the_fragments_it_holds_of_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let log = FragmentLog::open(dir.path(), FsyncPolicy::Never).unwrap();
        let store = local_handle(LocalStore::new(log));
        // Neighbours on both sides, and the smallest id (no record before it).
        for (id, index) in [(0, 3), (6, 5), (7, 1), (7, 4), (8, 0)] {
            let fragment = fragments(id).swap_remove(index);
            store.put_fragment(fragment).await.unwrap();
        }
        let held = |id| indices_held(&store, RecordId(id));
        assert_eq!(held(7).await.unwrap(), vec![1, 4]);
        assert_eq!(held(0).await.unwrap(), vec![3]);
        assert_eq!(held(6).await.unwrap(), vec![5]);
        assert!(held(5).await.unwrap().is_empty());
        assert!(held(9).await.unwrap().is_empty());
    }
}

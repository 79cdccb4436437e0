//! The fragment store called three ways, for the `dispatch` bench: `#[async_trait]` through
//! `Arc<dyn _>` (the `story-async-trait` build), native `async fn` in the trait with static
//! dispatch, and enum dispatch (the default build's `ddsplit::store::Store`).
//!
//! A cargo feature is fixed for a whole build, so one bench cannot hold `ddsplit` built both
//! ways. The native trait is `ddsplit::store::FragmentStore` itself (this crate builds `ddsplit`
//! with default features). [`boxed::FragmentStore`] is a copy of it, method for method, with the
//! `#[async_trait]` attribute the story build adds; its impls forward to the native ones, which
//! is what `#[async_trait]` on ddsplit's own impls generates (`Box::pin(async move { body })`).
//! [`EnumStore`] mirrors `ddsplit::store::Store`: two variants, one `match` per method.

use std::collections::BTreeMap;
use std::sync::RwLock;

use ddsplit::codec::Fragment;
use ddsplit::error::{DistriErr, SuccessCode};
use ddsplit::id::RecordId;
use ddsplit::limits::LIST_ENTRIES_MAX;
use ddsplit::store::{FragmentStore, LocalStore};
use ddsplit::wire::FragmentKey;

/// Fragments in a map: the store's work without I/O, so what is left is the call itself.
#[derive(Debug, Default)]
pub struct MemoryStore {
    fragments: RwLock<BTreeMap<FragmentKey, Fragment>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl FragmentStore for MemoryStore {
    async fn put_fragment(&self, fragment: Fragment) -> Result<SuccessCode, DistriErr> {
        let key = FragmentKey {
            id: fragment.header().record_id,
            index: fragment.header().index,
        };
        self.fragments
            .write()
            .expect("no code panics while holding the lock")
            .insert(key, fragment);
        Ok(SuccessCode::Stored)
    }

    async fn get_fragment(&self, key: FragmentKey) -> Result<Fragment, DistriErr> {
        self.fragments
            .read()
            .expect("no code panics while holding the lock")
            .get(&key)
            .cloned()
            .ok_or(DistriErr::FragmentNotFound {
                id: key.id,
                index: key.index,
            })
    }

    async fn delete_fragments(&self, id: RecordId) -> Result<SuccessCode, DistriErr> {
        let mut fragments = self
            .fragments
            .write()
            .expect("no code panics while holding the lock");
        let before = fragments.len();
        fragments.retain(|key, _| key.id != id);
        Ok(SuccessCode::Deleted {
            fragments: (before - fragments.len()) as u32,
        })
    }

    async fn list_fragments(
        &self,
        after: Option<FragmentKey>,
        limit: usize,
    ) -> Result<Vec<FragmentKey>, DistriErr> {
        let fragments = self
            .fragments
            .read()
            .expect("no code panics while holding the lock");
        Ok(fragments
            .keys()
            .filter(|key| after.is_none_or(|after| **key > after))
            .take(limit.min(LIST_ENTRIES_MAX))
            .copied()
            .collect())
    }

    async fn stats(&self) -> Result<String, DistriErr> {
        let fragments = self
            .fragments
            .read()
            .expect("no code panics while holding the lock");
        Ok(format!("{{\"fragments\":{}}}", fragments.len()))
    }
}

/// The `story-async-trait` build's trait: `ddsplit::store::FragmentStore` with `#[async_trait]`.
pub mod boxed {
    use super::*;

    /// A copy of `ddsplit::store::FragmentStore`; every call returns `Pin<Box<dyn Future>>`.
    #[async_trait::async_trait]
    pub trait FragmentStore: Send + Sync {
        /// Stores a fragment durably.
        async fn put_fragment(&self, fragment: Fragment) -> Result<SuccessCode, DistriErr>;
        /// Reads a fragment.
        async fn get_fragment(&self, key: FragmentKey) -> Result<Fragment, DistriErr>;
        /// Deletes every fragment of a record held by this store.
        async fn delete_fragments(&self, id: RecordId) -> Result<SuccessCode, DistriErr>;
        /// Fragment keys after `after`, in order, at most `limit`.
        async fn list_fragments(
            &self,
            after: Option<FragmentKey>,
            limit: usize,
        ) -> Result<Vec<FragmentKey>, DistriErr>;
        /// Counters, as a JSON object.
        async fn stats(&self) -> Result<String, DistriErr>;
    }

    /// Implements the boxed trait by forwarding to the native impl of the same type.
    macro_rules! forward {
        ($ty:ty) => {
            #[async_trait::async_trait]
            impl FragmentStore for $ty {
                async fn put_fragment(&self, fragment: Fragment) -> Result<SuccessCode, DistriErr> {
                    super::FragmentStore::put_fragment(self, fragment).await
                }
                async fn get_fragment(&self, key: FragmentKey) -> Result<Fragment, DistriErr> {
                    super::FragmentStore::get_fragment(self, key).await
                }
                async fn delete_fragments(&self, id: RecordId) -> Result<SuccessCode, DistriErr> {
                    super::FragmentStore::delete_fragments(self, id).await
                }
                async fn list_fragments(
                    &self,
                    after: Option<FragmentKey>,
                    limit: usize,
                ) -> Result<Vec<FragmentKey>, DistriErr> {
                    super::FragmentStore::list_fragments(self, after, limit).await
                }
                async fn stats(&self) -> Result<String, DistriErr> {
                    super::FragmentStore::stats(self).await
                }
            }
        };
    }

    forward!(MemoryStore);
    forward!(LocalStore);
}

/// A store of either kind, dispatched by `match` like `ddsplit::store::Store`.
#[derive(Debug)]
pub enum EnumStore {
    Memory(MemoryStore),
    Local(LocalStore),
}

impl FragmentStore for EnumStore {
    async fn put_fragment(&self, fragment: Fragment) -> Result<SuccessCode, DistriErr> {
        match self {
            EnumStore::Memory(s) => s.put_fragment(fragment).await,
            EnumStore::Local(s) => s.put_fragment(fragment).await,
        }
    }

    async fn get_fragment(&self, key: FragmentKey) -> Result<Fragment, DistriErr> {
        match self {
            EnumStore::Memory(s) => s.get_fragment(key).await,
            EnumStore::Local(s) => s.get_fragment(key).await,
        }
    }

    async fn delete_fragments(&self, id: RecordId) -> Result<SuccessCode, DistriErr> {
        match self {
            EnumStore::Memory(s) => s.delete_fragments(id).await,
            EnumStore::Local(s) => s.delete_fragments(id).await,
        }
    }

    async fn list_fragments(
        &self,
        after: Option<FragmentKey>,
        limit: usize,
    ) -> Result<Vec<FragmentKey>, DistriErr> {
        match self {
            EnumStore::Memory(s) => s.list_fragments(after, limit).await,
            EnumStore::Local(s) => s.list_fragments(after, limit).await,
        }
    }

    async fn stats(&self) -> Result<String, DistriErr> {
        match self {
            EnumStore::Memory(s) => s.stats().await,
            EnumStore::Local(s) => s.stats().await,
        }
    }
}

impl From<MemoryStore> for EnumStore {
    fn from(store: MemoryStore) -> EnumStore {
        EnumStore::Memory(store)
    }
}

impl From<LocalStore> for EnumStore {
    fn from(store: LocalStore) -> EnumStore {
        EnumStore::Local(store)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ddsplit::codec::{CodecParams, split};
    use ddsplit::store::log::{FragmentLog, FsyncPolicy};

    use super::*;

    fn fragments() -> Vec<Fragment> {
        split(RecordId(3), &crate::record(5000), CodecParams::default()).expect("split")
    }

    /// Every operation through the three dispatches gives the same answers.
    async fn check_three_ways<S>(make: impl Fn() -> S)
    where
        S: FragmentStore + boxed::FragmentStore + 'static,
        EnumStore: From<S>,
    {
        let fragments = fragments();
        let concrete = make();
        let dynamic: Arc<dyn boxed::FragmentStore> = Arc::new(make());
        let by_enum = EnumStore::from(make());
        for fragment in &fragments {
            FragmentStore::put_fragment(&concrete, fragment.clone())
                .await
                .expect("put");
            dynamic.put_fragment(fragment.clone()).await.expect("put");
            by_enum.put_fragment(fragment.clone()).await.expect("put");
        }
        for fragment in &fragments {
            let key = FragmentKey {
                id: RecordId(3),
                index: fragment.header().index,
            };
            let native = FragmentStore::get_fragment(&concrete, key)
                .await
                .expect("get");
            assert_eq!(&native, fragment);
            assert_eq!(dynamic.get_fragment(key).await.expect("get"), native);
            assert_eq!(by_enum.get_fragment(key).await.expect("get"), native);
        }
        let keys = FragmentStore::list_fragments(&concrete, None, 100)
            .await
            .expect("list");
        assert_eq!(keys.len(), fragments.len());
        assert_eq!(dynamic.list_fragments(None, 100).await.expect("list"), keys);
        assert_eq!(by_enum.list_fragments(None, 100).await.expect("list"), keys);
        let missing = FragmentKey {
            id: RecordId(4),
            index: 0,
        };
        assert!(
            dynamic
                .get_fragment(missing)
                .await
                .unwrap_err()
                .is_not_found()
        );
        assert!(
            by_enum
                .get_fragment(missing)
                .await
                .unwrap_err()
                .is_not_found()
        );
    }

    #[tokio::test]
    async fn memory_store_answers_alike_three_ways() {
        check_three_ways(MemoryStore::new).await;
    }

    #[tokio::test]
    async fn local_store_answers_alike_three_ways() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Three handles on one log: each put lands three times, each read finds the last.
        let log = FragmentLog::open(dir.path(), FsyncPolicy::Never).expect("open log");
        check_three_ways(|| LocalStore::new(log.clone())).await;
    }
}

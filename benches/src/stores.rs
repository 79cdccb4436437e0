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

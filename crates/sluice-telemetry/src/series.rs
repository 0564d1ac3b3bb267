//! Resolved series: the metric handles a request's label tuple leads to, found once and kept.
//!
//! Without this, every usage record would look up about a dozen series in their families,
//! each lookup taking the family's lock and hashing a label set built from freshly allocated
//! strings. Here a record costs one hash of its borrowed label tuple (and one more per upstream
//! attempt); labels are built, and series created in their families, only the first time a
//! tuple is seen. Series a request does not touch (time to first token of a non-stream, a
//! token type it did not use) are still created only when first observed, so the exposition
//! is the same as if every observation went through its family.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use foldhash::fast::RandomState;

/// Tuples kept before the cache starts over: far above what bounded labels produce, so only
/// a pathological mix (thousands of raw key ids with `metrics.per-key`) ever reaches it.
const MAX_TUPLES: usize = 4096;

/// Owned label tuples (`K`) and their handles (`V`), found by the hash of a borrowed tuple
/// and an equality check against it, so a hit allocates nothing.
pub(crate) struct Cache<K, V> {
    hasher: RandomState,
    slots: HashMap<u64, Vec<(K, V)>, RandomState>,
    len: usize,
}

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Self {
            hasher: RandomState::default(),
            slots: HashMap::default(),
            len: 0,
        }
    }
}

impl<K, V> Cache<K, V> {
    /// The handles of the tuple `borrowed` (which `matches` recognises in its owned form),
    /// resolved by `make` the first time.
    pub(crate) fn get<B: Hash>(
        &mut self,
        borrowed: &B,
        matches: impl Fn(&K) -> bool,
        make: impl FnOnce() -> (K, V),
    ) -> &mut V {
        let hash = self.hasher.hash_one(borrowed);
        let found = self
            .slots
            .get(&hash)
            .and_then(|slot| slot.iter().position(|(k, _)| matches(k)));
        if found.is_none() && self.len >= MAX_TUPLES {
            self.slots.clear();
            self.len = 0;
        }
        let slot = self.slots.entry(hash).or_default();
        let at = match found {
            Some(at) => at,
            None => {
                slot.push(make());
                self.len += 1;
                slot.len() - 1
            }
        };
        &mut slot[at].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tuple_is_resolved_once_and_the_cache_stays_bounded() {
        let mut cache: Cache<String, u32> = Cache::default();
        let mut made = 0;
        for _ in 0..3 {
            let v = cache.get(
                &"a",
                |k| k == "a",
                || {
                    made += 1;
                    ("a".to_owned(), 0)
                },
            );
            *v += 1;
        }
        assert_eq!(made, 1);
        assert_eq!(*cache.get(&"a", |k| k == "a", || unreachable!()), 3);
        for i in 0..MAX_TUPLES + 10 {
            let key = i.to_string();
            cache.get(&key.as_str(), |k| *k == key, || (key.clone(), 1));
        }
        assert!(cache.len <= MAX_TUPLES);
        assert!(cache.slots.values().map(Vec::len).sum::<usize>() <= MAX_TUPLES);
    }
}

//! Duplicate request filters: Scrapy's `RFPDupeFilter` — a request whose fingerprint
//! was seen before is dropped unless it has `dont_filter`. Fingerprints are kept as
//! 20 raw bytes, not hex strings, in a [`FingerprintSet`] that costs about 24 bytes
//! of memory per fingerprint (a `HashSet` costs 24 to 48, and up to 66 while it grows:
//! `examples/frontier_memory.rs` measures it).

use std::fmt;

use crate::http::fingerprint::Fingerprint;
use crate::http::Request;

/// An in-memory fingerprint set.
///
/// ```
/// use arachne::dupefilter::MemoryDupeFilter;
/// use arachne::http::Request;
///
/// let mut f = MemoryDupeFilter::default();
/// let r = Request::get("http://127.0.0.1/?b=2&a=1").unwrap();
/// assert!(!f.request_seen(&r));
/// assert!(f.request_seen(&Request::get("http://127.0.0.1/?a=1&b=2").unwrap()));
/// ```
#[derive(Debug, Default)]
pub struct MemoryDupeFilter {
    seen: FingerprintSet,
}

impl MemoryDupeFilter {
    /// Records the request; `true` if it was seen already (a duplicate).
    pub fn request_seen(&mut self, request: &Request) -> bool {
        !self.seen.insert(request.fingerprint())
    }

    /// How many distinct fingerprints are held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// An exact set of request fingerprints, compact in memory: no false positives (a
/// duplicate filter must never drop a new request), about 24 bytes of memory per
/// fingerprint and no doubling spike while it grows.
///
/// Fingerprints are SHA-1 digests, so their leading bits are uniform: the set is
/// split by them into shards of 32 to 64 fingerprints on average, each a sorted
/// `Vec` (binary search; an insert moves half a shard, a few hundred bytes). When
/// the average passes 64 every shard is split in two by its next bit — each half is
/// already sorted — one shard at a time, so growing never holds two copies of the
/// set. A shard's `Vec` grows by a sixteenth, not by doubling.
///
/// ```
/// use arachne::dupefilter::FingerprintSet;
///
/// let mut seen = FingerprintSet::default();
/// assert!(seen.insert([7; 20]));
/// assert!(!seen.insert([7; 20]));
/// assert!(seen.contains(&[7; 20]) && !seen.contains(&[8; 20]));
/// assert_eq!(seen.len(), 1);
/// ```
#[derive(Default, Clone)]
pub struct FingerprintSet {
    /// `1 << bits` shards (none before the first insert); shard `i` holds the
    /// fingerprints whose leading `bits` bits are `i`, sorted.
    shards: Vec<Vec<Fingerprint>>,
    bits: u32,
    len: usize,
}

/// The average shard length past which the shards are split.
const MAX_AVERAGE_SHARD: usize = 64;

impl FingerprintSet {
    /// An empty set; nothing is allocated before the first insert.
    pub fn new() -> Self {
        FingerprintSet::default()
    }

    /// Adds a fingerprint; `true` if it was not there yet (as `HashSet::insert`).
    pub fn insert(&mut self, fingerprint: Fingerprint) -> bool {
        if self.shards.is_empty() {
            self.shards.push(Vec::new());
        }
        let index = shard_index(&fingerprint, self.bits);
        let Some(shard) = self.shards.get_mut(index) else {
            // `shard_index` is below `1 << bits` == `shards.len()`.
            return false;
        };
        let Err(at) = shard.binary_search(&fingerprint) else {
            return false;
        };
        if shard.len() == shard.capacity() {
            shard.reserve_exact(shard.len() / 16 + 2);
        }
        shard.insert(at, fingerprint);
        self.len += 1;
        if self.len > self.shards.len() * MAX_AVERAGE_SHARD {
            self.split();
        }
        true
    }

    /// Whether the fingerprint is in the set.
    pub fn contains(&self, fingerprint: &Fingerprint) -> bool {
        self.shards
            .get(shard_index(fingerprint, self.bits))
            .is_some_and(|shard| shard.binary_search(fingerprint).is_ok())
    }

    /// How many fingerprints are held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Doubles the shards: each splits at its first fingerprint whose next bit is 1.
    fn split(&mut self) {
        let bits = self.bits + 1;
        let old = std::mem::take(&mut self.shards);
        let mut shards = Vec::with_capacity(old.len() * 2);
        for shard in old {
            let at = shard.partition_point(|fp| shard_index(fp, bits) & 1 == 0);
            // Exact-size copies; the old shard is freed before the next is split.
            shards.push(shard[..at].to_vec());
            shards.push(shard[at..].to_vec());
        }
        self.shards = shards;
        self.bits = bits;
    }
}

impl fmt::Debug for FingerprintSet {
    /// The size, not a million fingerprints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FingerprintSet")
            .field("len", &self.len)
            .field("shards", &self.shards.len())
            .finish()
    }
}

/// The shard of a fingerprint: its leading `bits` bits.
fn shard_index(fingerprint: &Fingerprint, bits: u32) -> usize {
    let mut lead = [0u8; 8];
    lead.copy_from_slice(&fingerprint[..8]);
    let lead = u64::from_be_bytes(lead);
    match bits {
        0 => 0,
        1..=63 => (lead >> (64 - bits)) as usize,
        // 2^64 shards: never reached.
        _ => lead as usize,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    /// A fingerprint from a counter, spread as SHA-1 spreads them.
    fn fp(i: u64) -> Fingerprint {
        crate::http::fingerprint::fingerprint(
            "GET",
            &url::Url::parse("http://x/").unwrap(),
            &i.to_le_bytes(),
        )
    }

    /// Many inserts (several splits): each is new once, then seen; the others are not.
    #[test]
    fn exact_across_splits() {
        let mut set = FingerprintSet::new();
        for i in 0..50_000 {
            assert!(set.insert(fp(i)), "{i} is new");
        }
        assert_eq!(set.len(), 50_000);
        assert!(set.shards.len() >= 50_000 / MAX_AVERAGE_SHARD);
        for i in 0..50_000 {
            assert!(!set.insert(fp(i)), "{i} was seen");
            assert!(set.contains(&fp(i)));
        }
        for i in 50_000..60_000 {
            assert!(!set.contains(&fp(i)), "{i} was never inserted");
        }
        assert_eq!(set.len(), 50_000);
        // Every shard is sorted and holds only its own prefix.
        for (i, shard) in set.shards.iter().enumerate() {
            assert!(shard.windows(2).all(|w| w[0] < w[1]));
            assert!(shard.iter().all(|f| shard_index(f, set.bits) == i));
        }
    }

    /// Fingerprints that all share their leading bytes still work (one crowded shard).
    #[test]
    fn skewed_fingerprints() {
        let mut set = FingerprintSet::new();
        let skewed = |i: u32| {
            let mut f = [0u8; 20];
            f[16..].copy_from_slice(&i.to_be_bytes());
            f
        };
        for i in (0..2_000).rev() {
            assert!(set.insert(skewed(i)));
        }
        assert!((0..2_000).all(|i| set.contains(&skewed(i)) && !set.insert(skewed(i))));
        assert!(!set.contains(&[0xff; 20]));
        assert_eq!(set.len(), 2_000);
    }

    proptest! {
        /// The set answers as a `HashSet` does, for any sequence with repeats.
        #[test]
        fn same_as_hashset(ops in proptest::collection::vec((0u64..600, any::<bool>()), 0..3_000)) {
            let mut set = FingerprintSet::new();
            let mut model = HashSet::new();
            for (i, insert) in ops {
                let f = fp(i);
                if insert {
                    prop_assert_eq!(set.insert(f), model.insert(f));
                } else {
                    prop_assert_eq!(set.contains(&f), model.contains(&f));
                }
            }
            prop_assert_eq!(set.len(), model.len());
        }
    }
}

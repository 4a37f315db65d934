//! Distinct-value counting with bounded memory: exact up to [`EXACT_LIMIT`] values, then a
//! HyperLogLog++ estimate (`cardinality-estimator`).
//!
//! Values are counted by their 64-bit xxh3 hash (a collision among 100,000 values has odds of
//! about 3·10⁻¹⁰). Counters of different segments merge into the same result whatever the order
//! or the cut points: an exact set only turns into an estimate once the union itself exceeds the
//! limit, and an estimate depends only on the set of hashes inserted.

use std::collections::HashSet;

use cardinality_estimator::CardinalityEstimator;
use nohash_hasher::BuildNoHashHasher;

/// Above this many distinct values a column's count becomes an estimate.
pub const EXACT_LIMIT: usize = 100_000;

type HashSetOfHashes = HashSet<u64, BuildNoHashHasher<u64>>;

#[derive(Debug, Clone)]
pub enum Distinct {
    Exact(HashSetOfHashes),
    Estimated(Box<CardinalityEstimator<u64>>),
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct::Exact(HashSetOfHashes::default())
    }
}

impl Distinct {
    /// A counter that estimates from the start (for a column already past the limit).
    pub fn estimated() -> Self {
        Distinct::Estimated(Box::new(CardinalityEstimator::<u64>::new()))
    }

    pub fn hash(value: &[u8]) -> u64 {
        xxhash_rust::xxh3::xxh3_64(value)
    }

    #[inline]
    pub fn insert_hash(&mut self, hash: u64) {
        match self {
            Distinct::Exact(set) => {
                if set.insert(hash) && set.len() > EXACT_LIMIT {
                    self.become_estimate();
                }
            }
            Distinct::Estimated(estimator) => estimator.insert_hash(hash),
        }
    }

    fn become_estimate(&mut self) {
        if let Distinct::Exact(set) = self {
            let mut estimator = Box::new(CardinalityEstimator::<u64>::new());
            for &hash in set.iter() {
                estimator.insert_hash(hash);
            }
            *self = Distinct::Estimated(estimator);
        }
    }

    pub fn merge(&mut self, other: Distinct) {
        match (&mut *self, other) {
            (Distinct::Exact(mine), Distinct::Exact(theirs)) => {
                if mine.len() < theirs.len() {
                    let small = std::mem::replace(mine, theirs);
                    mine.extend(small);
                } else {
                    mine.extend(theirs);
                }
                if mine.len() > EXACT_LIMIT {
                    self.become_estimate();
                }
            }
            (Distinct::Estimated(mine), Distinct::Exact(theirs)) => {
                for hash in theirs {
                    mine.insert_hash(hash);
                }
            }
            (Distinct::Exact(_), Distinct::Estimated(theirs)) => {
                let mine = std::mem::replace(self, Distinct::Estimated(theirs));
                if let Distinct::Exact(set) = mine {
                    for hash in set {
                        self.insert_hash(hash);
                    }
                }
            }
            (Distinct::Estimated(mine), Distinct::Estimated(theirs)) => mine.merge(&theirs),
        }
    }

    /// `(count, is_estimate)`.
    pub fn count(&self) -> (u64, bool) {
        match self {
            Distinct::Exact(set) => (set.len() as u64, false),
            Distinct::Estimated(estimator) => (estimator.estimate() as u64, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(values: impl Iterator<Item = u64>) -> Distinct {
        let mut d = Distinct::default();
        for v in values {
            d.insert_hash(Distinct::hash(&v.to_le_bytes()));
        }
        d
    }

    #[test]
    fn exact_below_the_limit_even_across_merges() {
        let mut a = filled(0..60_000);
        let b = filled(30_000..90_000);
        a.merge(b);
        assert_eq!(a.count(), (90_000, false));
    }

    #[test]
    fn estimate_above_the_limit_is_close_and_order_independent() {
        let mut a = filled(0..150_000);
        a.merge(filled(100_000..300_000));
        let mut b = filled(100_000..300_000);
        b.merge(filled(0..150_000));
        let mut c = Distinct::default();
        for part in [0..70_000u64, 70_000..200_000, 200_000..300_000] {
            c.merge(filled(part));
        }
        let (estimate, approx) = a.count();
        assert!(approx);
        assert_eq!(a.count(), b.count());
        assert_eq!(a.count(), c.count());
        let error = (estimate as f64 - 300_000.0).abs() / 300_000.0;
        assert!(error < 0.05, "estimate {estimate} is {error:.3} off");
    }
}

//! Distinct-value counting with bounded memory: exact up to a limit (at most [`EXACT_LIMIT`]
//! values), then a HyperLogLog++ estimate (`hyperloglogplus`).
//!
//! An exact set is a hash table while it is small enough to stay in the core's cache, then a
//! sorted vector with a buffer of pending values sorted in by blocks (`State::Sorted`).
//!
//! Values are counted by their 64-bit xxh3 hash (a collision among 100,000 values has odds of
//! about 3·10⁻¹⁰). Counters of different segments merge into the same result whatever the order
//! or the cut points: an exact set only turns into an estimate once the union itself exceeds the
//! limit, and an estimate depends only on the set of hashes inserted: its registers are the
//! maximum over the set, and the estimate is computed from them when asked, in register
//! order. (`cardinality-estimator`, used before, kept a running floating-point sum of the
//! registers, so the same set inserted in another order could differ by one.) Memory is bounded twice:
//! the [`Policy`] (fixed by the number of columns, so the same for every segment) limits each
//! set, and every exact set pays for its entries from the analysis's [`MemoryBudget`]; a set
//! that cannot pay becomes an estimate at once (then the result may depend on the cut points,
//! and the report says the budget was spent).

use std::collections::HashSet;
use std::sync::Arc;

use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
use nohash_hasher::BuildNoHashHasher;

use super::budget::{Account, MemoryBudget};

/// Above this many distinct values a column's count becomes an estimate.
pub const EXACT_LIMIT: usize = 100_000;

/// What one exact entry costs, table slack included.
pub const ENTRY_BYTES: usize = 24;

type HashSetOfHashes = HashSet<u64, BuildNoHashHasher<u64>>;

/// A sketch over hashes already computed (xxh3): the hasher passes them through.
type Sketch = HyperLogLogPlus<u64, BuildNoHashHasher<u64>>;

/// 4,096 registers (≈ 3 KiB, ±1.6 %): for files with few columns.
const FINE_PRECISION: u8 = 12;
/// 256 registers (≈ 200 bytes, ±6.5 %): for wide files, where a fine sketch per column would
/// cost more than the budget.
const COARSE_PRECISION: u8 = 8;

fn sketch(coarse: bool) -> Box<Sketch> {
    let precision = if coarse {
        COARSE_PRECISION
    } else {
        FINE_PRECISION
    };
    match Sketch::new(precision, BuildNoHashHasher::default()) {
        Ok(sketch) => Box::new(sketch),
        // Both precisions are within the crate's 4..=18.
        Err(err) => unreachable!("precision {precision}: {err:?}"),
    }
}

/// How the counters of one file's columns behave: the same for all its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Exact up to this many values.
    pub exact_limit: usize,
    /// Estimates use the coarse sketch.
    pub coarse: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            exact_limit: EXACT_LIMIT,
            coarse: false,
        }
    }
}

/// An exact set that grows past this many values is kept sorted instead of hashed: a table
/// of 4,096 values (about 36 KiB with its control bytes) is about what the first-level cache
/// holds. Past it, a column of mostly new values (an id, an amount) paid a growing table's
/// misses and rehashes; sorting them in blocks costs less (the zip of 200 CSV members, whose
/// members hold 30,000 rows each: -3% CPU against 16,384; no difference at 8,192).
const SORTED_FROM: usize = 4_096;
/// Hashes a sorted set gathers before it sorts them in.
const PENDING: usize = 16_384;

#[derive(Debug, Clone)]
enum State {
    /// A small set: a hash table that stays in the core's cache.
    Exact(HashSetOfHashes),
    /// A large exact set (past `SORTED_FROM`): `sorted` holds its values, ascending and unique;
    /// `pending` the values added since, unsorted and maybe repeated, until `PENDING` of them
    /// are sorted and merged in. A hash table of 100,000 values (over 1 MiB) leaves the core's
    /// cache, and then every insertion waits for memory, twice (control bytes, then the slot);
    /// appending, sorting 16,384 values in cache and merging two sorted runs only stream.
    Sorted { sorted: Vec<u64>, pending: Vec<u64> },
    /// Of the precision the policy says (`coarse` or not): the same for every segment.
    Estimate(Box<Sketch>),
}

#[derive(Debug, Clone)]
pub struct Distinct {
    state: State,
    policy: Policy,
    account: Account,
}

impl Distinct {
    /// An exact counter (until its limit or its budget says otherwise).
    pub fn new(policy: Policy, budget: &Arc<MemoryBudget>) -> Self {
        Distinct {
            state: State::Exact(HashSetOfHashes::default()),
            policy,
            account: Account::new(budget),
        }
    }

    /// A counter that estimates from the start (for a column already past the limit).
    pub fn estimated(policy: Policy, budget: &Arc<MemoryBudget>) -> Self {
        let mut distinct = Distinct::new(policy, budget);
        distinct.become_estimate();
        distinct
    }

    #[inline]
    pub fn hash(value: &[u8]) -> u64 {
        xxhash_rust::xxh3::xxh3_64(value)
    }

    #[inline]
    pub fn insert_hash(&mut self, hash: u64) {
        match &mut self.state {
            State::Exact(set) => {
                // Growing fourfold rather than twofold: half the rehashing of a set that
                // grows from nothing to its limit, once per segment or member.
                if set.len() == set.capacity() {
                    set.reserve((set.len() * 3).clamp(16, self.policy.exact_limit));
                }
                if set.insert(hash) {
                    if set.len() > self.policy.exact_limit || !self.account.spend(ENTRY_BYTES) {
                        self.become_estimate();
                    } else if set.len() > SORTED_FROM {
                        self.become_sorted();
                    }
                }
            }
            State::Sorted { pending, .. } => {
                pending.push(hash);
                if pending.len() >= PENDING {
                    self.settle();
                }
            }
            State::Estimate(sketch) => sketch.insert(&hash),
        }
    }

    /// A large exact set goes sorted (`State::Sorted`).
    fn become_sorted(&mut self) {
        let State::Exact(set) = &mut self.state else {
            return;
        };
        // The pending buffer is paid for once, as its values would be.
        if !self.account.spend(PENDING * std::mem::size_of::<u64>()) {
            self.become_estimate();
            return;
        }
        let mut sorted: Vec<u64> = set.drain().collect();
        sort_hashes(&mut sorted);
        self.state = State::Sorted {
            sorted,
            pending: Vec::with_capacity(PENDING),
        };
    }

    /// Sorts a sorted set's pending values in.
    fn settle(&mut self) {
        let State::Sorted { pending, .. } = &mut self.state else {
            return;
        };
        if pending.is_empty() {
            return;
        }
        let mut values = std::mem::take(pending);
        sort_hashes(&mut values);
        values.dedup();
        self.merge_sorted_in(&values);
        values.clear();
        // The buffer is kept for the next values (its capacity is paid for).
        if let State::Sorted { pending, .. } = &mut self.state {
            *pending = values;
        }
    }

    /// Merges `values` (ascending, unique) into a sorted set; it becomes an estimate if it grew
    /// past the limit or the budget.
    fn merge_sorted_in(&mut self, values: &[u64]) {
        let State::Sorted { sorted, .. } = &mut self.state else {
            return;
        };
        let before = sorted.len();
        merge_sorted(sorted, values);
        let added = sorted.len() - before;
        if sorted.len() > self.policy.exact_limit || !self.account.spend(added * ENTRY_BYTES) {
            self.become_estimate();
        }
    }

    fn become_estimate(&mut self) {
        if self.is_estimate() {
            return;
        }
        let mut estimate = sketch(self.policy.coarse);
        match std::mem::replace(&mut self.state, State::Exact(HashSetOfHashes::default())) {
            State::Exact(set) => {
                for hash in set {
                    estimate.insert(&hash);
                }
            }
            State::Sorted { sorted, pending } => {
                for hash in sorted.into_iter().chain(pending) {
                    estimate.insert(&hash);
                }
            }
            State::Estimate(_) => {}
        }
        self.state = State::Estimate(estimate);
        self.account.reset();
    }

    fn is_estimate(&self) -> bool {
        matches!(self.state, State::Estimate(_))
    }

    pub fn merge(&mut self, mut other: Distinct) {
        other.settle();
        self.settle();
        let Distinct { state: theirs, .. } = other;
        match theirs {
            State::Exact(theirs) => {
                for hash in theirs {
                    self.insert_hash(hash);
                }
            }
            State::Sorted {
                sorted: theirs,
                pending: _,
            } => {
                if matches!(self.state, State::Exact(_)) && !theirs.is_empty() {
                    // The union is at least as large as theirs: sorted too.
                    self.become_sorted();
                }
                if matches!(self.state, State::Sorted { .. }) {
                    self.merge_sorted_in(&theirs);
                } else {
                    for hash in theirs {
                        self.insert_hash(hash);
                    }
                }
            }
            State::Estimate(theirs) => {
                self.become_estimate();
                if let State::Estimate(mine) = &mut self.state
                    && let Err(err) = mine.merge(&*theirs)
                {
                    // One policy per file: both sides always have the same precision.
                    debug_assert!(false, "sketches of different precision: {err:?}");
                }
            }
        }
    }

    /// `(count, is_estimate)`.
    pub fn count(&self) -> (u64, bool) {
        match &self.state {
            State::Exact(set) => (set.len() as u64, false),
            State::Sorted { sorted, pending } if pending.is_empty() => (sorted.len() as u64, false),
            // Counted without sorting them in (which would draw on the budget): the pending
            // values not in the set yet, and the union's size decides exact or estimate, as
            // sorting them in would have.
            State::Sorted { sorted, pending } => {
                let mut extra = pending.clone();
                sort_hashes(&mut extra);
                extra.dedup();
                if extra.len() * 8 >= sorted.len() {
                    // Both ascending: one walk through the two finds the values not in the set
                    // (a binary search per value misses the cache at every step).
                    let mut at = 0;
                    extra.retain(|hash| {
                        while at < sorted.len() && sorted[at] < *hash {
                            at += 1;
                        }
                        sorted.get(at) != Some(hash)
                    });
                } else {
                    extra.retain(|hash| sorted.binary_search(hash).is_err());
                }
                let union = sorted.len() + extra.len();
                if union > self.policy.exact_limit {
                    let mut estimate = sketch(self.policy.coarse);
                    for hash in sorted.iter().chain(&extra) {
                        estimate.insert(hash);
                    }
                    (estimate.count().round() as u64, true)
                } else {
                    (union as u64, false)
                }
            }
            // Counting folds the sketch's pending values in: done on a copy, as a count is
            // read once per column, at the end.
            State::Estimate(sketch) => (sketch.clone().count().round() as u64, true),
        }
    }

    /// Whether this counter is (now) an estimate.
    pub fn estimating(&self) -> bool {
        self.is_estimate()
    }
}

/// Sorts hashes, ascending: one pass deals them into 256 buckets by their top byte, then each
/// bucket is sorted on its own. Hashes are uniform, so a bucket of 16,384 values holds about
/// 64 and stays in the L1 cache: this takes about half the time of `sort_unstable` over all of
/// them (77 against 140 µs for 16,384 values here). Buckets of skewed values are only larger.
fn sort_hashes(values: &mut [u64]) {
    const BUCKETS: usize = 256;
    if values.len() < 4 * BUCKETS {
        values.sort_unstable();
        return;
    }
    let bucket = |hash: u64| (hash >> 56) as usize;
    let mut starts = [0usize; BUCKETS + 1];
    for &hash in values.iter() {
        starts[bucket(hash) + 1] += 1;
    }
    for i in 0..BUCKETS {
        starts[i + 1] += starts[i];
    }
    let mut next = starts;
    let mut dealt = vec![0u64; values.len()];
    for &hash in values.iter() {
        let at = &mut next[bucket(hash)];
        dealt[*at] = hash;
        *at += 1;
    }
    for range in starts.windows(2) {
        dealt[range[0]..range[1]].sort_unstable();
    }
    // Back into the caller's buffer, whose capacity it keeps (a sorted set's pending buffer).
    values.copy_from_slice(&dealt);
}

/// Merges `new` (ascending, unique) into `sorted` (ascending, unique), in place: the result is
/// ascending and unique. The merge runs from the back into room made at the end, so that no
/// second vector is needed; values found in both leave a gap, closed at the end.
fn merge_sorted(sorted: &mut Vec<u64>, new: &[u64]) {
    let old_len = sorted.len();
    sorted.resize(old_len + new.len(), 0);
    let (mut mine, mut theirs, mut write) = (old_len, new.len(), old_len + new.len());
    while theirs > 0 {
        let next = new[theirs - 1];
        write -= 1;
        if mine > 0 && sorted[mine - 1] > next {
            sorted[write] = sorted[mine - 1];
            mine -= 1;
        } else {
            if mine > 0 && sorted[mine - 1] == next {
                mine -= 1;
            }
            sorted[write] = next;
            theirs -= 1;
        }
    }
    // `sorted[..mine]` is in place; the merged rest starts at `write`.
    let end = sorted.len();
    sorted.copy_within(write..end, mine);
    sorted.truncate(mine + (end - write));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(values: impl Iterator<Item = u64>, budget: &Arc<MemoryBudget>) -> Distinct {
        let mut d = Distinct::new(Policy::default(), budget);
        for v in values {
            d.insert_hash(Distinct::hash(&v.to_le_bytes()));
        }
        d
    }

    proptest::proptest! {
        /// The in-place merge gives the sorted union, whatever the overlap.
        #[test]
        fn merging_sorted_runs_gives_their_union(
            a in proptest::collection::btree_set(0u64..200, 0..80),
            b in proptest::collection::btree_set(0u64..200, 0..80),
        ) {
            let mut merged: Vec<u64> = a.iter().copied().collect();
            let theirs: Vec<u64> = b.iter().copied().collect();
            merge_sorted(&mut merged, &theirs);
            let union: Vec<u64> = a.union(&b).copied().collect();
            proptest::prop_assert_eq!(merged, union);
        }

        /// Dealt into buckets or not, uniform or all in one bucket, hashes sort as
        /// `sort_unstable` sorts them.
        #[test]
        fn hashes_sort_as_sort_unstable_sorts_them(
            seed in proptest::prelude::any::<u64>(),
            len in 0usize..5000,
            skew in 0u32..64,
        ) {
            let mut state = seed | 1;
            // xorshift; `skew` high bits cleared puts values in fewer buckets (all in one at 8+).
            let mut values: Vec<u64> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state >> skew
                })
                .collect();
            let mut expected = values.clone();
            expected.sort_unstable();
            sort_hashes(&mut values);
            proptest::prop_assert_eq!(values, expected);
        }
    }

    /// Sets past `SORTED_FROM` (sorted, with values pending) count exactly what a `BTreeSet`
    /// holds, however they were filled and merged, and turn into estimates only once the
    /// union passes the limit.
    #[test]
    fn large_sets_count_exactly_through_every_path() {
        let budget = MemoryBudget::unlimited();
        // Values with repeats: 0..60,000 drawn 150,000 times.
        let draws: Vec<u64> = (0..150_000u64).map(|i| (i * 7_919) % 60_000).collect();
        let mut whole = Distinct::new(Policy::default(), &budget);
        for &v in &draws {
            whole.insert_hash(Distinct::hash(&v.to_le_bytes()));
        }
        assert!(matches!(whole.state, State::Sorted { .. }));
        assert_eq!(whole.count(), (60_000, false));
        for cuts in [
            [1usize, 2],
            [20_000, 20_001],
            [40_000, 149_999],
            [75_000, 100_000],
        ] {
            let mut parts = Distinct::new(Policy::default(), &budget);
            for range in [0..cuts[0], cuts[0]..cuts[1], cuts[1]..draws.len()] {
                let mut part = Distinct::new(Policy::default(), &budget);
                for &v in &draws[range] {
                    part.insert_hash(Distinct::hash(&v.to_le_bytes()));
                }
                parts.merge(part);
            }
            assert_eq!(parts.count(), (60_000, false), "cut at {cuts:?}");
        }
        // A sorted set merged into a small one, and a small one into a sorted one.
        let mut small = Distinct::new(Policy::default(), &budget);
        for v in 100_000..100_010u64 {
            small.insert_hash(Distinct::hash(&v.to_le_bytes()));
        }
        let mut sorted_into_small = small.clone();
        sorted_into_small.merge(whole.clone());
        assert_eq!(sorted_into_small.count(), (60_010, false));
        let mut small_into_sorted = whole.clone();
        small_into_sorted.merge(small);
        assert_eq!(small_into_sorted.count(), (60_010, false));
        // Two sorted sets whose union passes the limit: an estimate, the same either way.
        let fill = |range: std::ops::Range<u64>| {
            let mut d = Distinct::new(Policy::default(), &budget);
            for v in range {
                d.insert_hash(Distinct::hash(&v.to_le_bytes()));
            }
            d
        };
        let mut ab = fill(0..60_000);
        ab.merge(fill(50_000..110_000));
        let mut ba = fill(50_000..110_000);
        ba.merge(fill(0..60_000));
        assert!(ab.count().1);
        assert_eq!(ab.count(), ba.count());
        assert_eq!(ab.count(), fill(0..110_000).count());
        // Counted with values still pending, a set says what it says once they are sorted in.
        let mut pending = fill(0..60_000);
        for v in 59_000..61_000u64 {
            pending.insert_hash(Distinct::hash(&v.to_le_bytes()));
        }
        assert!(matches!(&pending.state, State::Sorted { pending, .. } if !pending.is_empty()));
        assert_eq!(pending.count(), (61_000, false));
        // Many pending against a small sorted part (counted by one walk through both), some
        // already in it, some repeated.
        let mut walked = fill(0..20_000);
        for v in (18_000..22_000u64).chain(21_000..21_500) {
            walked.insert_hash(Distinct::hash(&v.to_le_bytes()));
        }
        assert!(matches!(&walked.state, State::Sorted { pending, sorted }
            if pending.len() * 8 >= sorted.len()));
        assert_eq!(walked.count(), (22_000, false));
        let mut over = fill(0..99_990);
        for v in 99_000..100_020u64 {
            over.insert_hash(Distinct::hash(&v.to_le_bytes()));
        }
        let counted = over.count();
        assert!(counted.1, "past the limit with its pending values");
        over.settle();
        assert_eq!(over.count(), counted);
        // Exactly at the limit it stays exact.
        let mut at_limit = fill(0..60_000);
        at_limit.merge(fill(60_000..EXACT_LIMIT as u64));
        assert_eq!(at_limit.count(), (EXACT_LIMIT as u64, false));
    }

    #[test]
    fn exact_below_the_limit_even_across_merges() {
        let budget = MemoryBudget::unlimited();
        let mut a = filled(0..60_000, &budget);
        let b = filled(30_000..90_000, &budget);
        a.merge(b);
        assert_eq!(a.count(), (90_000, false));
    }

    #[test]
    fn estimate_above_the_limit_is_close_and_order_independent() {
        let budget = MemoryBudget::unlimited();
        let mut a = filled(0..150_000, &budget);
        a.merge(filled(100_000..300_000, &budget));
        let mut b = filled(100_000..300_000, &budget);
        b.merge(filled(0..150_000, &budget));
        let mut c = Distinct::new(Policy::default(), &budget);
        for part in [0..70_000u64, 70_000..200_000, 200_000..300_000] {
            c.merge(filled(part, &budget));
        }
        let (estimate, approx) = a.count();
        assert!(approx);
        assert_eq!(a.count(), b.count());
        assert_eq!(a.count(), c.count());
        let error = (estimate as f64 - 300_000.0).abs() / 300_000.0;
        assert!(error < 0.05, "estimate {estimate} is {error:.3} off");
    }

    /// The estimate depends on the set of values only: not on their order, nor on where a
    /// file was cut into segments (SPEC: the result is identical to a sequential analysis).
    #[test]
    fn an_estimate_is_the_same_whatever_the_order_and_the_cuts() {
        let budget = MemoryBudget::unlimited();
        for policy in [
            Policy::default(),
            Policy {
                exact_limit: 1000,
                coarse: true,
            },
        ] {
            let fill = |values: &mut dyn Iterator<Item = u64>| {
                let mut d = Distinct::new(policy, &budget);
                for v in values {
                    d.insert_hash(Distinct::hash(&v.to_le_bytes()));
                }
                d
            };
            let forward = fill(&mut (0..200_000u64)).count();
            assert!(forward.1);
            let estimated = |values: &mut dyn Iterator<Item = u64>| {
                let mut d = Distinct::estimated(policy, &budget);
                for v in values {
                    d.insert_hash(Distinct::hash(&v.to_le_bytes()));
                }
                d.count()
            };
            assert_eq!(estimated(&mut (0..200_000u64)), forward);
            assert_eq!(estimated(&mut (0..200_000u64).rev()), forward);
            assert_eq!(fill(&mut (0..200_000u64).rev()).count(), forward);
            let mut odd_first = fill(&mut (0..200_000u64).filter(|v| v % 2 == 1));
            odd_first.merge(fill(&mut (0..200_000u64).filter(|v| v % 2 == 0)));
            assert_eq!(odd_first.count(), forward);
            for cuts in [[1u64, 150_000], [99_000, 101_000], [7_777, 123_456]] {
                let mut whole = Distinct::new(policy, &budget);
                for part in [0..cuts[0], cuts[0]..cuts[1], cuts[1]..200_000] {
                    whole.merge(fill(&mut part.into_iter()));
                }
                assert_eq!(whole.count(), forward, "cut at {cuts:?}");
            }
        }
    }

    #[test]
    fn a_spent_budget_turns_sets_into_estimates_and_frees_them() {
        let budget = MemoryBudget::new(1 << 20);
        let mut sets: Vec<Distinct> = (0..8)
            .map(|_| Distinct::new(Policy::default(), &budget))
            .collect();
        for (i, set) in sets.iter_mut().enumerate() {
            for v in 0..20_000u64 {
                set.insert_hash(Distinct::hash(&(v + 1_000_000 * i as u64).to_le_bytes()));
            }
        }
        assert!(budget.exhausted());
        assert!(budget.used() <= 1 << 20);
        assert!(
            sets.iter().any(|set| set.count().1),
            "some became estimates"
        );
        let estimated = sets.iter().find(|set| set.count().1).expect("an estimate");
        let error = (estimated.count().0 as f64 - 20_000.0).abs() / 20_000.0;
        assert!(error < 0.05, "{error}");
        drop(sets);
        assert_eq!(budget.used(), 0, "all given back");
    }

    #[test]
    fn a_coarse_policy_with_a_small_limit_still_counts_closely() {
        let budget = MemoryBudget::unlimited();
        let policy = Policy {
            exact_limit: 50,
            coarse: true,
        };
        let mut d = Distinct::new(policy, &budget);
        for v in 0..10_000u64 {
            d.insert_hash(Distinct::hash(&v.to_le_bytes()));
        }
        let (estimate, approx) = d.count();
        assert!(approx);
        let error = (estimate as f64 - 10_000.0).abs() / 10_000.0;
        assert!(error < 0.2, "{estimate}");
        let mut small = Distinct::new(policy, &budget);
        for v in 0..50u64 {
            small.insert_hash(v);
        }
        assert_eq!(small.count(), (50, false));
    }
}

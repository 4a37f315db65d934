//! CSV users: which column counts as the user column, and the rows per user, kept exactly
//! while the budget allows and then counted as distinct only (the report then says so).

use std::collections::HashMap;

use nohash_hasher::BuildNoHashHasher;

use super::parse::Layout;
use super::{KEPT_VALUE_BYTES, MAX_TRACKED_USERS, USER_ENTRY_BYTES};
use crate::analyze::budget::Account;
use crate::analyze::distinct::Distinct;

/// Normalised header names recognised as the user column, in no particular order.
pub(super) const USER_COLUMN_NAMES: [&str; 8] = [
    "userid",
    "user",
    "username",
    "uid",
    "customerid",
    "clientid",
    "accountid",
    "memberid",
];

/// A header name lower-cased with everything but letters and digits removed.
pub(super) fn normalise_header(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

pub(super) fn find_user_column(
    header: &[String],
    requested: Option<&str>,
    file: &std::path::Path,
) -> Option<usize> {
    match requested {
        Some(wanted) => {
            let found = header
                .iter()
                .position(|name| name == wanted)
                .or_else(|| header.iter().position(|n| n.eq_ignore_ascii_case(wanted)));
            if found.is_none() {
                log::warn!(
                    "{}: no column named {wanted:?}; no per-user breakdown",
                    file.display()
                );
            }
            found
        }
        None => header
            .iter()
            .position(|name| USER_COLUMN_NAMES.contains(&normalise_header(name).as_str())),
    }
}

/// Rows per value of the user column, keyed by the value's 64-bit hash (already computed).
/// Values are kept as they are, at most `KEPT_VALUE_BYTES` of each (a longer one is told apart
/// by its hash); grouping by the trimmed value happens once, for the report. A value whose hash
/// is taken by a different value is counted in `collided`, by value, so the counts stay exact.
/// Every entry is paid for from the analysis's budget: past it (or past `MAX_TRACKED_USERS`)
/// new values are only counted as distinct, and the figures are marked approximate.
#[derive(Debug, Clone)]
pub(super) struct UserCounts {
    /// Per value's hash, its rows and where its kept bytes are. 24 bytes a slot: with `kept`,
    /// the 20,000 users of a large export fit in a core's L2 cache (with the bytes inline,
    /// 56-byte slots did not, and this table cost a sixth of a CSV analysis in cache misses).
    pub(super) by_hash: HashMap<u64, UserEntry, BuildNoHashHasher<u64>>,
    /// The kept bytes of the values in `by_hash`, end to end, in the order they came.
    kept: Vec<u8>,
    pub(super) collided: HashMap<(Box<[u8]>, usize), u64>,
    /// Values no longer tracked once the budget or the count is reached: still counted as
    /// distinct.
    pub(super) untracked: Distinct,
    pub(super) capped: bool,
    pub(super) account: Account,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct UserEntry {
    pub(super) rows: u64,
    /// Where its kept bytes start in `UserCounts::kept`.
    at: u32,
    /// The value's whole length (more than it keeps when it was cut).
    len: u32,
}

/// A user as the report groups them: the trimmed kept bytes, and for a cut value its hash (two
/// long values that share their first bytes are different users).
pub(super) type UserKey<'a> = (&'a [u8], Option<u64>);

/// The bytes `entry` keeps in `kept`: the first `KEPT_VALUE_BYTES` of its value at most.
fn kept_in<'a>(kept: &'a [u8], entry: &UserEntry) -> &'a [u8] {
    let at = entry.at as usize;
    &kept[at..at + (entry.len as usize).min(KEPT_VALUE_BYTES)]
}

/// `a == b`, with values of 8 to 16 bytes (most user ids) compared as two overlapping 8-byte
/// words instead of through a call to `memcmp`, which every row's lookup made.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if (8..=16).contains(&len) {
        let word = |bytes: &[u8], at: usize| {
            bytes[at..]
                .first_chunk::<8>()
                .map(|chunk| u64::from_ne_bytes(*chunk))
        };
        return word(a, 0) == word(b, 0) && word(a, len - 8) == word(b, len - 8);
    }
    a == b
}

/// The bytes of a value that are kept: at most `KEPT_VALUE_BYTES`.
pub(super) fn kept_part(value: &[u8]) -> &[u8] {
    &value[..value.len().min(KEPT_VALUE_BYTES)]
}

impl UserCounts {
    pub(super) fn new(layout: &Layout) -> Self {
        UserCounts {
            by_hash: HashMap::default(),
            kept: Vec::new(),
            collided: HashMap::new(),
            untracked: Distinct::estimated(layout.policy, &layout.budget),
            capped: false,
            account: Account::new(&layout.budget),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.by_hash.len() + self.collided.len()
    }

    #[inline]
    pub(super) fn add(&mut self, value: &[u8], hash: u64, rows: u64) {
        self.add_kept(kept_part(value), value.len(), hash, rows);
    }

    /// The kept bytes of `entry`.
    fn kept_of(&self, entry: &UserEntry) -> &[u8] {
        kept_in(&self.kept, entry)
    }

    pub(super) fn add_kept(&mut self, kept: &[u8], len: usize, hash: u64, rows: u64) {
        if let Some(entry) = self.by_hash.get_mut(&hash) {
            if entry.len as usize == len && same_bytes(kept_in(&self.kept, entry), kept) {
                entry.rows += rows;
                return;
            }
            if let Some(count) = self.collided.get_mut(&(kept.into(), len)) {
                *count += rows;
                return;
            }
        }
        let at = u32::try_from(self.kept.len()).ok();
        let whole = u32::try_from(len).ok();
        let (Some(at), Some(whole)) = (at, whole) else {
            self.capped = true;
            self.untracked.insert_hash(hash);
            return;
        };
        if self.capped
            || self.len() >= MAX_TRACKED_USERS
            || !self.account.spend(kept.len() + USER_ENTRY_BYTES)
        {
            self.capped = true;
            self.untracked.insert_hash(hash);
        } else {
            // Growing fourfold rather than twofold while small: half the rehashing of a table
            // that grows from nothing to thousands of users, once per segment or member.
            // Large tables double, so that the slack stays within what entries pay.
            let users = self.by_hash.len();
            if users == self.by_hash.capacity() {
                self.by_hash.reserve(if users < 16_384 {
                    (users * 3).max(16)
                } else {
                    users
                });
            }
            self.insert_new(kept, len, hash, rows, at, whole);
        }
    }

    fn insert_new(&mut self, kept: &[u8], len: usize, hash: u64, rows: u64, at: u32, whole: u32) {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.by_hash.entry(hash) {
            slot.insert(UserEntry {
                rows,
                at,
                len: whole,
            });
            self.kept.extend_from_slice(kept);
        } else {
            self.collided.insert((kept.into(), len), rows);
        }
    }

    pub(super) fn merge(&mut self, other: UserCounts) {
        self.capped |= other.capped;
        self.untracked.merge(other.untracked);
        for (&hash, entry) in &other.by_hash {
            self.add_kept(
                kept_in(&other.kept, entry),
                entry.len as usize,
                hash,
                entry.rows,
            );
        }
        for ((kept, len), rows) in other.collided {
            // Only values short enough to be kept whole can collide by hash and be told apart.
            self.add_kept(&kept, len, Distinct::hash(&kept), rows);
        }
    }

    /// The column's distinct count: exact up to the limit, then an estimate, as for any column.
    pub(super) fn distinct_values(&self, layout: &Layout) -> Distinct {
        let mut distinct = if self.capped {
            self.untracked.clone()
        } else {
            Distinct::new(layout.policy, &layout.budget)
        };
        for &hash in self.by_hash.keys() {
            distinct.insert_hash(hash);
        }
        for (kept, _) in self.collided.keys() {
            distinct.insert_hash(Distinct::hash(kept));
        }
        distinct
    }

    /// Rows per user, one entry per user: values with surrounding ASCII whitespace trimmed,
    /// empty ones dropped. The table's values are distinct already; only when trimming changed
    /// some can two become one user, and only then are they merged (by sorting, not hashing:
    /// an archive builds this once per CSV member).
    pub(super) fn rows_by_trimmed_value(&self) -> Vec<(UserKey<'_>, u64)> {
        let values = self
            .by_hash
            .iter()
            .map(|(&hash, entry)| {
                let kept = self.kept_of(entry);
                let cut = entry.len as usize > kept.len();
                (kept, cut.then_some(hash), entry.rows)
            })
            .chain(
                self.collided
                    .iter()
                    .map(|((kept, _), rows)| (&kept[..], None, *rows)),
            );
        let mut users: Vec<(UserKey<'_>, u64)> =
            Vec::with_capacity(self.by_hash.len() + self.collided.len());
        let mut trimmed = false;
        for (value, cut_hash, rows) in values {
            // A cut value's end is not kept: only its start can be trimmed.
            let user = if cut_hash.is_some() {
                value.trim_ascii_start()
            } else {
                value.trim_ascii()
            };
            trimmed |= user.len() != value.len();
            if !user.is_empty() {
                users.push(((user, cut_hash), rows));
            }
        }
        if trimmed {
            users.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            users.dedup_by(|later, earlier| {
                let same = later.0 == earlier.0;
                if same {
                    earlier.1 += later.1;
                }
                same
            });
        }
        users
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Values that share a hash (forged here: xxh3 collisions are not at hand) are still
    /// counted apart, while the table grows past several reservations and through a merge.
    #[test]
    fn values_that_share_a_hash_are_counted_apart() {
        let layout = super::super::layout_for(&["user".to_string()], b',', Some(0));
        let mut counts = UserCounts::new(&layout);
        let mut other = UserCounts::new(&layout);
        for (value, hash, rows) in [("alice", 42, 2), ("bob", 42, 3), ("carol", 7, 1)] {
            counts.add(value.as_bytes(), hash, rows);
        }
        for n in 0..5000u64 {
            counts.add(format!("user{n}").as_bytes(), 1000 + n, 1);
        }
        // (A merge hashes the other side's collided values again, so only its table's.)
        other.add(b"bob", 42, 10);
        other.add(b"carol", 7, 1);
        counts.merge(other);
        let rows: std::collections::BTreeMap<Vec<u8>, u64> = counts
            .rows_by_trimmed_value()
            .into_iter()
            .map(|((user, cut), rows)| {
                assert_eq!(cut, None);
                (user.to_vec(), rows)
            })
            .collect();
        assert_eq!(rows.len(), 5003);
        assert_eq!(rows[&b"alice"[..]], 2);
        assert_eq!(rows[&b"bob"[..]], 13);
        assert_eq!(rows[&b"carol"[..]], 2);
        assert_eq!(rows[&b"user4999"[..]], 1);
    }

    proptest! {
        /// Equal to slice equality, for equal values, values one byte apart at any place,
        /// and values of other lengths.
        #[test]
        fn same_bytes_is_slice_equality(
            a in prop::collection::vec(any::<u8>(), 0..24),
            change in any::<Option<(prop::sample::Index, u8)>>(),
            extra in prop::collection::vec(any::<u8>(), 0..2),
        ) {
            let mut b = a.clone();
            if let Some((at, byte)) = change
                && !b.is_empty()
            {
                let at = at.index(b.len());
                b[at] = byte;
            }
            b.extend_from_slice(&extra);
            prop_assert_eq!(same_bytes(&a, &b), a == b);
            prop_assert!(same_bytes(&a, &a));
        }
    }
}

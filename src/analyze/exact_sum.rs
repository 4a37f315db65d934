//! Exact floating-point summation: every finite `f64` is an integer multiple of 2⁻¹⁰⁷⁴, so a
//! sum is kept as one wide fixed-point integer (a "superaccumulator", as in Neal's xsum) in
//! 32-bit limbs. An addition is a shift and three integer additions, with no rounding at all;
//! two sums merge limb by limb. Only the final value rounds, once, through Shewchuk's algorithm
//! (Python's `math.fsum`) over the limbs, so the result is the correctly rounded exact sum,
//! whatever the order of additions or the way a file was cut. That is what makes a CSV
//! column's mean identical between a chunked and a sequential analysis.
//!
//! Written here rather than taken from a crate: `accurate` 0.4.1's `OnlineExactSum` writes past
//! the end of a slice (unchecked) for some inputs, and `xsum` cannot merge two sums.

/// Bits per limb: a limb holds its 32 bits plus the carries of up to 2³⁰ additions.
const LIMB_BITS: u32 = 32;
/// Limbs 0..=65 hold any finite `f64` (bit 0 of limb 0 is 2⁻¹⁰⁷⁴); two more take the carries
/// of 2⁶³ additions.
const LIMBS: usize = 68;
/// Carries are propagated after this many additions, long before an `i64` limb could overflow.
const ADDS_BEFORE_CARRY: u32 = 1 << 30;

/// An exact running sum of `f64` values (non-finite ones are summed apart, the usual way).
/// Integers (`add_integer`) are summed apart, in an `i128` (exact for 2⁶⁴ additions); the limbs
/// (544 bytes) are allocated with the first other value. A column of integers never needs
/// them, and a CSV file of 16,384 such columns keeps one sum per column in every segment in
/// flight.
#[derive(Debug, Clone, Default)]
pub struct ExactSum {
    integers: i128,
    limbs: Option<Box<[i64; LIMBS]>>,
    adds: u32,
    /// The plain sum of infinities and NaNs, which have no exact value.
    non_finite: Option<f64>,
    /// Whether every value added so far is −0 (`None`: none added), whose sum is −0.
    only_negative_zeros: Option<bool>,
}

impl ExactSum {
    #[inline]
    pub fn add(&mut self, value: f64) {
        let bits = value.to_bits();
        let negative_zero = bits == 1 << 63;
        self.only_negative_zeros = Some(self.only_negative_zeros.unwrap_or(true) && negative_zero);
        if !value.is_finite() {
            self.non_finite = Some(self.non_finite.unwrap_or(0.0) + value);
            return;
        }
        self.add_to_limbs(value);
    }

    /// Adds an integer as the `f64` it reads as: the same as `add(value as f64)` (beyond 2⁵³
    /// that rounds, as a reader of the text as a number would; the sum of what is added stays
    /// exact).
    #[inline]
    pub fn add_integer(&mut self, value: i64) {
        const EXACT: i64 = 1 << 53;
        if (-EXACT..=EXACT).contains(&value) {
            self.only_negative_zeros = Some(false);
            self.integers += i128::from(value);
        } else {
            self.add(value as f64);
        }
    }

    /// Adds a finite value to the limbs, allocating them first if need be.
    fn add_to_limbs(&mut self, value: f64) {
        let bits = value.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as u32;
        let fraction = bits & ((1 << 52) - 1);
        // value = ±mantissa · 2^(shift − 1074).
        let (mantissa, shift) = if exponent == 0 {
            (fraction, 0)
        } else {
            (fraction | (1 << 52), exponent - 1)
        };
        if mantissa == 0 {
            return;
        }
        if self.adds == ADDS_BEFORE_CARRY {
            self.carry();
        }
        self.adds += 1;
        let limbs = self.limbs.get_or_insert_with(|| Box::new([0; LIMBS]));
        let index = (shift / LIMB_BITS) as usize;
        let wide = u128::from(mantissa) << (shift % LIMB_BITS);
        let mask = (1u128 << LIMB_BITS) - 1;
        let pieces = [
            (wide & mask) as i64,
            ((wide >> LIMB_BITS) & mask) as i64,
            (wide >> (2 * LIMB_BITS)) as i64,
        ];
        let negative = bits >> 63 == 1;
        for (limb, piece) in limbs[index..index + 3].iter_mut().zip(pieces) {
            if negative {
                *limb -= piece;
            } else {
                *limb += piece;
            }
        }
    }

    pub fn merge(&mut self, other: &ExactSum) {
        self.integers += other.integers;
        if let Some(their_limbs) = &other.limbs {
            self.carry();
            let mut theirs = ExactSum {
                limbs: Some(their_limbs.clone()),
                ..ExactSum::default()
            };
            theirs.carry();
            let mine = self.limbs.get_or_insert_with(|| Box::new([0; LIMBS]));
            if let Some(theirs) = &theirs.limbs {
                for (mine, theirs) in mine.iter_mut().zip(theirs.iter()) {
                    *mine += theirs;
                }
            }
            // Each limb now holds at most two limbs' worth: as if after two additions.
            self.adds = 2;
        }
        self.only_negative_zeros = match (self.only_negative_zeros, other.only_negative_zeros) {
            (Some(mine), Some(theirs)) => Some(mine && theirs),
            (mine, theirs) => mine.or(theirs),
        };
        if let Some(x) = other.non_finite {
            self.non_finite = Some(self.non_finite.unwrap_or(0.0) + x);
        }
    }

    /// Propagates carries: every limb but the last in [0, 2³²), the last holding the sign.
    fn carry(&mut self) {
        if let Some(limbs) = &mut self.limbs {
            for i in 0..LIMBS - 1 {
                let carry = limbs[i] >> LIMB_BITS;
                limbs[i] -= carry << LIMB_BITS;
                limbs[i + 1] += carry;
            }
        }
        self.adds = 0;
    }

    /// The exact sum rounded once to the nearest `f64` (ties to even).
    pub fn value(&self) -> f64 {
        if let Some(x) = self.non_finite {
            return x;
        }
        if self.only_negative_zeros == Some(true) {
            return -0.0;
        }
        if self.limbs.is_none() {
            // Rounded once, to nearest (ties to even), as `as` converts.
            return self.integers as f64;
        }
        let mut magnitude = self.clone();
        // The integers join the limbs in four 32-bit pieces, each an exact `f64`.
        let integers = std::mem::take(&mut magnitude.integers);
        for k in 0..4 {
            let piece = if k < 3 {
                ((integers >> (32 * k)) & 0xffff_ffff) as f64
            } else {
                // The top piece carries the sign.
                ((integers >> 96) as i32) as f64
            };
            if piece != 0.0 {
                magnitude.add_to_limbs(scaled(piece as i64, 32 * k));
            }
        }
        magnitude.carry();
        let Some(limbs) = magnitude.limbs.as_mut() else {
            return 0.0;
        };
        let negative = limbs[LIMBS - 1] < 0;
        if negative {
            limbs.iter_mut().for_each(|limb| *limb = -*limb);
            magnitude.carry();
        }
        let Some(limbs) = magnitude.limbs.as_ref() else {
            return 0.0;
        };
        // Each limb times its power of two is exact; only their sum rounds.
        let parts: Vec<f64> = limbs
            .iter()
            .enumerate()
            .filter(|&(_, &limb)| limb != 0)
            .map(|(i, &limb)| scaled(limb, i as i32 * LIMB_BITS as i32 - 1074))
            .collect();
        // The parts are all positive: a sum that is not finite (a part past the largest `f64`,
        // or an overflow inside the rounding) is an overflow.
        let sum = fsum(parts.into_iter());
        let sum = if sum.is_finite() { sum } else { f64::INFINITY };
        if negative { -sum } else { sum }
    }
}

/// `limb · 2^power`, exact whenever the result is a finite `f64` (two steps, so that neither
/// factor leaves the range of normal numbers).
fn scaled(limb: i64, power: i32) -> f64 {
    let half = power / 2;
    limb as f64 * power_of_two(half) * power_of_two(power - half)
}

/// `2^k` for `k` in the normal range, from its bits.
fn power_of_two(k: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&k));
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// Shewchuk's correctly rounded sum (Python's `math.fsum`).
fn fsum(values: impl Iterator<Item = f64>) -> f64 {
    // Non-overlapping partials, in increasing magnitude.
    let mut partials: Vec<f64> = Vec::new();
    for value in values {
        let mut x = value;
        let mut kept = 0;
        for i in 0..partials.len() {
            let mut y = partials[i];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        partials.truncate(kept);
        partials.push(x);
    }
    let Some(mut n) = partials.len().checked_sub(1) else {
        return 0.0;
    };
    let mut hi = partials[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = partials[n];
        hi = x + y;
        let y_rounded = hi - x;
        lo = y - y_rounded;
        if lo != 0.0 {
            break;
        }
    }
    // Half-way case: make the rounding of hi + lo correct given the partials below.
    if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The sum of `values`, each added by `add`.
    fn summed<T: Copy>(values: &[T], add: fn(&mut ExactSum, T)) -> f64 {
        let mut s = ExactSum::default();
        values.iter().for_each(|&v| add(&mut s, v));
        s.value()
    }

    fn sum_of(values: &[f64]) -> f64 {
        summed(values, ExactSum::add)
    }

    fn sum_of_integers(values: &[i64]) -> f64 {
        summed(values, ExactSum::add_integer)
    }

    #[test]
    fn cancels_exactly() {
        assert_eq!(sum_of(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(sum_of(&[0.1; 10]), 1.0);
        assert_eq!(sum_of(&[]), 0.0);
        // Naive summation gives 0.9999999999999999 here.
        assert_ne!([0.1f64; 10].iter().sum::<f64>(), 1.0);
    }

    #[test]
    fn integers_need_no_limbs() {
        let mut sum = ExactSum::default();
        for i in 0..1000 {
            sum.add_integer(i);
        }
        assert!(sum.limbs.is_none());
        assert_eq!(sum.value(), 499_500.0);
        // Past 2^53 and past i64 the sum is still exact, and rounds once.
        // Past 2^53 an integer counts as the f64 it reads as, as `add` would take it; the
        // sum stays exact and rounds once.
        assert_eq!(
            sum_of_integers(&[i64::MAX, i64::MAX, -i64::MAX, 1, -1]),
            i64::MAX as f64
        );
        assert_eq!(sum_of_integers(&[i64::MAX; 3]), 3.0 * i64::MAX as f64);
        assert_eq!(
            sum_of_integers(&[i64::MIN, i64::MIN]),
            2.0 * i64::MIN as f64
        );
        assert_eq!(
            sum_of_integers(&[(1 << 53) + 1, 1]),
            sum_of(&[((1i64 << 53) + 1) as f64, 1.0])
        );
        assert_eq!(sum_of_integers(&[1 << 53, 1, 1]), (1u64 << 53) as f64 + 2.0);
        assert_eq!(sum_of_integers(&[0]).to_bits(), 0.0f64.to_bits());
        let mut half = ExactSum::default();
        half.add(0.5);
        sum.merge(&half);
        assert_eq!(sum.value(), 499_500.5);
    }

    #[test]
    fn extremes_of_the_range_are_exact() {
        let tiny = f64::from_bits(1); // 2^-1074
        assert_eq!(sum_of(&[tiny, tiny, -tiny]), tiny);
        assert_eq!(sum_of(&[f64::MAX, -f64::MAX, tiny]), tiny);
        assert_eq!(sum_of(&[f64::MAX, f64::MAX]), f64::INFINITY);
        assert_eq!(sum_of(&[-f64::MAX, -f64::MAX]), f64::NEG_INFINITY);
        assert_eq!(sum_of(&[f64::MAX, f64::MAX, -f64::MAX]), f64::MAX);
        assert_eq!(sum_of(&[f64::MAX, f64::MAX / 2.0]), f64::INFINITY);
        assert_eq!(sum_of(&[-2.5, 1.0]), -1.5);
        assert_eq!(sum_of(&[f64::INFINITY, 1.0]), f64::INFINITY);
        assert!(sum_of(&[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
    }

    fn any_finite() -> impl Strategy<Value = f64> {
        prop::num::f64::POSITIVE
            | prop::num::f64::NEGATIVE
            | prop::num::f64::SUBNORMAL
            | prop::num::f64::ZERO
    }

    proptest! {
        /// Shewchuk's algorithm over the values themselves is the reference.
        #[test]
        fn the_limbs_round_like_fsum(
            values in prop::collection::vec(any_finite(), 0..60),
            small in prop::collection::vec(-1e6f64..1e6, 0..60),
        ) {
            let all: Vec<f64> = values.iter().chain(&small).copied().collect();
            let reference = fsum(all.iter().copied());
            // Overflow of the reference's own partials is not a fact about the sum.
            prop_assume!(reference.is_finite());
            prop_assert_eq!(sum_of(&all).to_bits(), reference.to_bits());
        }

        /// Integers (summed apart) mixed with fractions and huge values, split anywhere: the
        /// same correctly rounded sum as Shewchuk's over them all, each integer as its `f64`.
        #[test]
        fn integers_sum_apart_and_join_exactly(
            values in prop::collection::vec(
                prop_oneof![
                    any::<i64>().prop_map(Ok),
                    (-1_000_000i64..1_000_000).prop_map(Ok),
                    (-1e6f64..1e6).prop_map(Err),
                    any_finite().prop_map(Err),
                ],
                0..80,
            ),
            cut in 0usize..80,
        ) {
            // An integer counts as the f64 it reads as.
            let exact = values.iter().map(|value| match *value {
                Ok(i) => i as f64,
                Err(x) => x,
            });
            let reference = fsum(exact);
            prop_assume!(reference.is_finite());
            let add = |sum: &mut ExactSum, value: &Result<i64, f64>| match *value {
                Ok(i) => sum.add_integer(i),
                Err(x) => sum.add(x),
            };
            let mut whole = ExactSum::default();
            values.iter().for_each(|v| add(&mut whole, v));
            prop_assert_eq!(whole.value().to_bits(), reference.to_bits());
            let cut = cut.min(values.len());
            let mut left = ExactSum::default();
            values[..cut].iter().for_each(|v| add(&mut left, v));
            let mut right = ExactSum::default();
            values[cut..].iter().for_each(|v| add(&mut right, v));
            left.merge(&right);
            prop_assert_eq!(left.value().to_bits(), reference.to_bits());
        }

        #[test]
        fn any_split_gives_the_same_sum(
            values in prop::collection::vec(-1e12f64..1e12, 0..200),
            cut in 0usize..200,
        ) {
            let cut = cut.min(values.len());
            let mut left = ExactSum::default();
            values[..cut].iter().for_each(|&v| left.add(v));
            let mut right = ExactSum::default();
            values[cut..].iter().rev().for_each(|&v| right.add(v));
            left.merge(&right);
            prop_assert_eq!(left.value(), sum_of(&values));
        }
    }
}

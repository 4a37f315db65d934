//! Exact floating-point summation (Shewchuk's algorithm, as in Python's `math.fsum`).
//!
//! A sum is kept as a short list of non-overlapping partials whose exact total is the exact sum
//! of everything added, so two sums merge without error and the final, correctly rounded result
//! is the same whatever the order of additions or the way a file was cut. That is what makes a
//! CSV column's mean identical between a chunked and a sequential analysis.
//!
//! Written here rather than taken from a crate: `accurate` 0.4.1's `OnlineExactSum` writes past
//! the end of a slice (unchecked) for some inputs, and `xsum` cannot merge two sums.

/// An exact running sum of finite `f64` values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExactSum {
    /// Non-overlapping, in increasing magnitude.
    partials: Vec<f64>,
}

impl ExactSum {
    pub fn add(&mut self, value: f64) {
        let mut x = value;
        let mut kept = 0;
        for i in 0..self.partials.len() {
            let mut y = self.partials[i];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        self.partials.truncate(kept);
        self.partials.push(x);
    }

    pub fn merge(&mut self, other: &ExactSum) {
        for &partial in &other.partials {
            self.add(partial);
        }
    }

    /// The exact sum rounded once to the nearest `f64` (ties to even).
    pub fn value(&self) -> f64 {
        let partials = &self.partials;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sum_of(values: &[f64]) -> f64 {
        let mut s = ExactSum::default();
        values.iter().for_each(|&v| s.add(v));
        s.value()
    }

    #[test]
    fn cancels_exactly() {
        assert_eq!(sum_of(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(sum_of(&[0.1; 10]), 1.0);
        assert_eq!(sum_of(&[]), 0.0);
        // Naive summation gives 0.9999999999999999 here.
        assert_ne!([0.1f64; 10].iter().sum::<f64>(), 1.0);
    }

    proptest! {
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

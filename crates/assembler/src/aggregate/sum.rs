//! A running sum of floats that can also take values back out, for means and counter increases.
//!
//! Plain `+=`/`-=` drifts: after a million values enter and leave a window, the rounding errors of every step
//! stay in the total. Neumaier's compensated summation carries the lost low-order bits in a second term, so the
//! sum stays within a few ulps of the exact one for any realistic mix of magnitudes. Where the values are also
//! stored (the order-statistics multiset), the owner re-sums them from scratch now and then, which bounds the
//! drift for adversarial mixes too.

/// A compensated (Neumaier) sum that supports subtraction.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    /// Adds `x` (subtract with a negative `x`).
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    /// The sum.
    pub fn value(&self) -> f64 {
        self.sum + self.compensation
    }

    /// Back to zero.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_small_terms_of_a_large_sum() {
        let mut s = CompensatedSum::default();
        s.add(1e20);
        s.add(1.0);
        s.add(-1e20);
        assert_eq!(s.value(), 1.0);
    }

    #[test]
    fn adding_and_taking_back_returns_to_zero() {
        let mut s = CompensatedSum::default();
        let xs = [0.1, 0.2, 0.3, 1e-7, 12345.678];
        for x in xs {
            s.add(x);
        }
        for x in xs {
            s.add(-x);
        }
        assert_eq!(s.value(), 0.0);
    }
}

//! Macro-average of per-patient metric values, as the paper's tables report them:
//! mean ± sample standard deviation, minimum and maximum, with NaN cases skipped and counted.

use std::fmt;

/// Summary statistics of a set of per-case values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of values that entered the statistics (NaN values excluded).
    pub n: usize,
    /// Number of NaN values skipped (e.g. Dice of two empty masks).
    pub skipped_nan: usize,
    /// Arithmetic mean; NaN when `n = 0`.
    pub mean: f64,
    /// Sample standard deviation (divisor `n − 1`); NaN when `n < 2`.
    pub sd: f64,
    /// Smallest value; NaN when `n = 0`.
    pub min: f64,
    /// Largest value; NaN when `n = 0`.
    pub max: f64,
}

/// Mean, sample standard deviation, minimum and maximum of the non-NaN `values`.
///
/// Infinite values are kept (they make the mean and standard deviation infinite or NaN),
/// since they mean something went wrong upstream and must not vanish silently.
pub fn summarize(values: &[f64]) -> Summary {
    let kept: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    let n = kept.len();
    let skipped_nan = values.len() - n;
    if n == 0 {
        return Summary {
            n,
            skipped_nan,
            mean: f64::NAN,
            sd: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        };
    }

    let mean = kept.iter().sum::<f64>() / n as f64;
    let sd = if n < 2 {
        f64::NAN
    } else {
        let squares: f64 = kept.iter().map(|v| (v - mean) * (v - mean)).sum();
        (squares / (n - 1) as f64).sqrt()
    };
    let min = kept.iter().copied().fold(f64::INFINITY, f64::min);
    let max = kept.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Summary {
        n,
        skipped_nan,
        mean,
        sd,
        min,
        max,
    }
}

impl fmt::Display for Summary {
    /// `0.679 ± 0.130 (0.398, 0.846), n = 17`, followed by `, 2 NaN skipped` when any were.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.3} ± {:.3} ({:.3}, {:.3}), n = {}",
            self.mean, self.sd, self.min, self.max, self.n
        )?;
        if self.skipped_nan > 0 {
            write!(f, ", {} NaN skipped", self.skipped_nan)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_a_hand_calculation() {
        // Values 0.5, 0.7, 0.9, 0.6 and two NaN: mean 2.7 / 4 = 0.675; squared deviations
        // 0.030625 + 0.000625 + 0.050625 + 0.005625 = 0.0875; sd = √(0.0875 / 3) = 0.170783.
        let s = summarize(&[0.5, f64::NAN, 0.7, 0.9, f64::NAN, 0.6]);
        assert_eq!(s.n, 4);
        assert_eq!(s.skipped_nan, 2);
        assert!((s.mean - 0.675).abs() < 1e-15);
        assert!((s.sd - 0.170_782_512_765_993_3).abs() < 1e-15);
        assert_eq!(s.min, 0.5);
        assert_eq!(s.max, 0.9);
        assert_eq!(
            s.to_string(),
            "0.675 ± 0.171 (0.500, 0.900), n = 4, 2 NaN skipped"
        );
    }

    #[test]
    fn display_without_skipped_values() {
        // Two values: mean 0.5, sd = √((0.01 + 0.01) / 1) = 0.141421.
        let s = summarize(&[0.4, 0.6]);
        assert_eq!(s.to_string(), "0.500 ± 0.141 (0.400, 0.600), n = 2");
    }

    #[test]
    fn one_value_has_no_standard_deviation() {
        let s = summarize(&[0.8]);
        assert_eq!((s.n, s.mean, s.min, s.max), (1, 0.8, 0.8, 0.8));
        assert!(s.sd.is_nan());
    }

    #[test]
    fn no_value_gives_nan_fields() {
        for s in [summarize(&[]), summarize(&[f64::NAN])] {
            assert_eq!(s.n, 0);
            assert!(s.mean.is_nan() && s.sd.is_nan() && s.min.is_nan() && s.max.is_nan());
        }
        assert_eq!(summarize(&[f64::NAN]).skipped_nan, 1);
        assert_eq!(summarize(&[]).to_string(), "NaN ± NaN (NaN, NaN), n = 0");
    }
}

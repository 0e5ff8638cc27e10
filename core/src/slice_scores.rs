//! Slice-level agreement of a predicted infiltrate mask with per-slice labels, the form the
//! COVID-CT-MD radiologists labelled P001 in: a slice counts as predicted infected when the
//! mask has at least `min_voxels` voxels on it, and only slices where the lung mask is not
//! empty are scored.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why slice scores cannot be computed.
#[derive(Debug, Error, PartialEq)]
pub enum SliceScoreError {
    /// The mask, the lung mask and the grid disagree in size.
    #[error(
        "the prediction has {mask} voxels and the lung mask {lung}; the grid {dims:?} has {voxels}"
    )]
    Size {
        mask: usize,
        lung: usize,
        dims: [usize; 3],
        voxels: usize,
    },
    /// The labels do not cover the slices.
    #[error("the labels give {labels} slices, the scan has {slices} along its third axis")]
    SliceCount { labels: usize, slices: usize },
}

/// Per-slice confusion counts and what follows from them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceScores {
    /// Smallest number of mask voxels that makes a slice predicted infected.
    pub min_voxels: usize,
    /// Slices scored: those where the lung mask is not empty.
    pub scored_slices: usize,
    pub true_positive: usize,
    pub false_positive: usize,
    pub true_negative: usize,
    pub false_negative: usize,
    /// TP / (TP + FN); NaN without labelled infected slices (serialised as null).
    pub sensitivity: f64,
    /// TN / (TN + FP); NaN without labelled clean slices.
    pub specificity: f64,
    /// Share of all predicted infiltrate voxels that lie on slices labelled infected.
    pub volume_in_labelled_slices: f64,
    /// Predicted infiltrate voxels in all.
    pub predicted_voxels: usize,
    /// Per slice: mask voxels on it (`k` along the file's third axis).
    pub voxels_per_slice: Vec<usize>,
}

/// Scores `mask` (non-zero = infiltrate) against `slice_infected[k]` along the grid's third
/// axis, over the slices where `lung` is non-zero somewhere.
pub fn slice_scores(
    mask: &[u8],
    lung: &[u8],
    dims: [usize; 3],
    slice_infected: &[bool],
    min_voxels: usize,
) -> Result<SliceScores, SliceScoreError> {
    let voxels = dims.iter().product::<usize>();
    if mask.len() != voxels || lung.len() != voxels {
        return Err(SliceScoreError::Size {
            mask: mask.len(),
            lung: lung.len(),
            dims,
            voxels,
        });
    }
    if slice_infected.len() != dims[2] {
        return Err(SliceScoreError::SliceCount {
            labels: slice_infected.len(),
            slices: dims[2],
        });
    }
    let per_slice = dims[0] * dims[1];
    let mut scores = SliceScores {
        min_voxels,
        scored_slices: 0,
        true_positive: 0,
        false_positive: 0,
        true_negative: 0,
        false_negative: 0,
        sensitivity: f64::NAN,
        specificity: f64::NAN,
        volume_in_labelled_slices: f64::NAN,
        predicted_voxels: 0,
        voxels_per_slice: Vec::with_capacity(dims[2]),
    };
    let mut in_labelled = 0usize;
    for (k, &infected) in slice_infected.iter().enumerate() {
        let range = k * per_slice..(k + 1) * per_slice;
        let count = mask[range.clone()].iter().filter(|&&m| m != 0).count();
        scores.voxels_per_slice.push(count);
        scores.predicted_voxels += count;
        if infected {
            in_labelled += count;
        }
        if !lung[range].iter().any(|&l| l != 0) {
            continue;
        }
        scores.scored_slices += 1;
        match (count >= min_voxels, infected) {
            (true, true) => scores.true_positive += 1,
            (true, false) => scores.false_positive += 1,
            (false, false) => scores.true_negative += 1,
            (false, true) => scores.false_negative += 1,
        }
    }
    let ratio = |a: usize, b: usize| {
        if a + b > 0 {
            a as f64 / (a + b) as f64
        } else {
            f64::NAN
        }
    };
    scores.sensitivity = ratio(scores.true_positive, scores.false_negative);
    scores.specificity = ratio(scores.true_negative, scores.false_positive);
    if scores.predicted_voxels > 0 {
        scores.volume_in_labelled_slices = in_labelled as f64 / scores.predicted_voxels as f64;
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_a_hand_worked_example() {
        // 2 × 2 × 5 grid. Lung on slices 0–3 (slice 4 has none, so it is not scored).
        // Mask voxels per slice: 2, 0, 1, 2, 3. With min_voxels 2: predicted 0, 3 (and 4,
        // unscored). Labels: 1, 1, 0, 0, 1 → slice 0 TP, 1 FN, 2 TN, 3 FP.
        let dims = [2, 2, 5];
        let mut mask = vec![0u8; 20];
        let mut lung = vec![0u8; 20];
        for (k, n) in [2, 0, 1, 2, 3].into_iter().enumerate() {
            for v in 0..n {
                mask[4 * k + v] = 1;
            }
        }
        for k in 0..4 {
            lung[4 * k + 3] = 2;
        }
        let labels = [true, true, false, false, true];
        let s = slice_scores(&mask, &lung, dims, &labels, 2).unwrap();
        assert_eq!(
            (
                s.scored_slices,
                s.true_positive,
                s.false_negative,
                s.true_negative,
                s.false_positive
            ),
            (4, 1, 1, 1, 1)
        );
        assert_eq!((s.sensitivity, s.specificity), (0.5, 0.5));
        // Voxels on labelled slices 0, 1, 4: 2 + 0 + 3 of 8.
        assert_eq!(s.predicted_voxels, 8);
        assert_eq!(s.volume_in_labelled_slices, 5.0 / 8.0);
        assert_eq!(s.voxels_per_slice, [2, 0, 1, 2, 3]);
    }

    #[test]
    fn mismatched_sizes_are_refused() {
        let e = slice_scores(&[0; 8], &[0; 8], [2, 2, 2], &[true], 10).unwrap_err();
        assert_eq!(
            e,
            SliceScoreError::SliceCount {
                labels: 1,
                slices: 2
            }
        );
        assert!(slice_scores(&[0; 7], &[0; 8], [2, 2, 2], &[true, false], 10).is_err());
    }
}

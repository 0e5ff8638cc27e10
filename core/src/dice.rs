//! The volumetric Dice coefficient of two masks, the masks themselves built from label
//! volumes, and the error type shared by every segmentation metric of this crate.
//!
//! Dice follows the COVID-19 benchmark of Ma et al. (and DeepMind's `surface-distance`):
//! `2 |G ∧ P| / (|G| + |P|)`, NaN when both masks are empty and 0 when exactly one is.

use thiserror::Error;

/// Why a metric cannot be computed from the given masks and parameters.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MetricsError {
    /// The two masks do not have the same number of voxels.
    #[error("truth mask has {truth} voxels but prediction mask has {prediction}")]
    LengthMismatch {
        /// Voxels of the ground-truth mask.
        truth: usize,
        /// Voxels of the predicted mask.
        prediction: usize,
    },
    /// The two grids differ in shape.
    #[error(
        "truth grid is {} × {} × {} but prediction grid is {} × {} × {}",
        truth[0], truth[1], truth[2], prediction[0], prediction[1], prediction[2]
    )]
    ShapeMismatch {
        /// `[ni, nj, nk]` of the ground truth.
        truth: [usize; 3],
        /// `[ni, nj, nk]` of the prediction.
        prediction: [usize; 3],
    },
    /// A mask's voxel count is not the product of the grid dimensions.
    #[error(
        "{what} has {len} voxels but a {} × {} × {} grid needs {}",
        dims[0], dims[1], dims[2],
        expected.map_or_else(|| "more than usize::MAX".to_string(), |n| n.to_string())
    )]
    DimsMismatch {
        /// Which buffer is wrong, e.g. `"truth mask"`.
        what: &'static str,
        /// Grid dimensions `[ni, nj, nk]`.
        dims: [usize; 3],
        /// `ni · nj · nk`, or `None` when that overflows.
        expected: Option<usize>,
        /// Actual number of voxels.
        len: usize,
    },
    /// A voxel spacing is zero, negative, NaN or infinite.
    #[error(
        "voxel spacing must be positive and finite, got {} × {} × {} mm",
        spacing_mm[0], spacing_mm[1], spacing_mm[2]
    )]
    InvalidSpacing {
        /// The offending spacing `[si, sj, sk]` in mm.
        spacing_mm: [f64; 3],
    },
    /// A surface-distance tolerance is negative, NaN or infinite.
    #[error("tolerance must be a finite number of mm ≥ 0, got {tolerance_mm} mm")]
    InvalidTolerance {
        /// The offending tolerance in mm.
        tolerance_mm: f64,
    },
}

/// Dice coefficient `2 |G ∧ P| / (|G| + |P|)` of two masks on one voxel grid.
///
/// `truth` and `prediction` are flat masks of the same length (any layout, as long as it is
/// the same for both). Returns NaN when both masks are empty and 0 when exactly one is.
pub fn dice(truth: &[bool], prediction: &[bool]) -> Result<f64, MetricsError> {
    if truth.len() != prediction.len() {
        return Err(MetricsError::LengthMismatch {
            truth: truth.len(),
            prediction: prediction.len(),
        });
    }

    let mut sizes = 0u64;
    let mut overlap = 0u64;
    for (&g, &p) in truth.iter().zip(prediction) {
        sizes += u64::from(g) + u64::from(p);
        overlap += u64::from(g && p);
    }

    if sizes == 0 {
        return Ok(f64::NAN);
    }
    Ok(2.0 * overlap as f64 / sizes as f64)
}

/// A mask from a label volume: `labels[v] > 0`, or `labels[v] == label` when one label value
/// is chosen (the benchmark's infection masks use label 1).
///
/// Labels come as f32 because NIfTI volumes are read as f32; the comparison with a chosen
/// label is exact, and NaN voxels are never in the mask. The output has the input's length
/// and layout.
pub fn mask_from_labels(labels: &[f32], label: Option<u32>) -> Vec<bool> {
    match label {
        None => labels.iter().map(|&v| v > 0.0).collect(),
        Some(chosen) => {
            let chosen = chosen as f32;
            labels.iter().map(|&v| v == chosen).collect()
        }
    }
}

/// Checks that a mask of `len` voxels fits a grid of `dims`.
pub(crate) fn check_dims(
    what: &'static str,
    dims: [usize; 3],
    len: usize,
) -> Result<(), MetricsError> {
    let expected = dims[0]
        .checked_mul(dims[1])
        .and_then(|n| n.checked_mul(dims[2]));
    if expected == Some(len) {
        Ok(())
    } else {
        Err(MetricsError::DimsMismatch {
            what,
            dims,
            expected,
            len,
        })
    }
}

/// Checks that every spacing is positive and finite.
pub(crate) fn check_spacing(spacing_mm: [f64; 3]) -> Result<(), MetricsError> {
    if spacing_mm.iter().all(|s| s.is_finite() && *s > 0.0) {
        Ok(())
    } else {
        Err(MetricsError::InvalidSpacing { spacing_mm })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(bits: &str) -> Vec<bool> {
        bits.chars().map(|c| c == '1').collect()
    }

    #[test]
    fn dice_of_partial_overlap_is_the_hand_value() {
        // |G| = 3, |P| = 2, |G ∧ P| = 1: Dice = 2 · 1 / 5.
        let value = dice(&mask("11100"), &mask("00110")).unwrap();
        assert_eq!(value, 0.4);
    }

    #[test]
    fn dice_of_identical_masks_is_one() {
        assert_eq!(dice(&mask("0110"), &mask("0110")).unwrap(), 1.0);
    }

    #[test]
    fn dice_special_cases_follow_the_benchmark() {
        assert!(dice(&mask("000"), &mask("000")).unwrap().is_nan());
        assert_eq!(dice(&mask("000"), &mask("010")).unwrap(), 0.0);
        assert_eq!(dice(&mask("100"), &mask("000")).unwrap(), 0.0);
        assert!(dice(&[], &[]).unwrap().is_nan());
    }

    #[test]
    fn dice_rejects_masks_of_different_length() {
        let err = dice(&mask("000"), &mask("0000")).unwrap_err();
        assert_eq!(
            err,
            MetricsError::LengthMismatch {
                truth: 3,
                prediction: 4
            }
        );
        assert_eq!(
            err.to_string(),
            "truth mask has 3 voxels but prediction mask has 4"
        );
    }

    #[test]
    fn labels_become_masks() {
        let labels = [0.0, 1.0, 2.0, -1.0, f32::NAN, 1.0];
        assert_eq!(mask_from_labels(&labels, None), mask("011001"));
        assert_eq!(mask_from_labels(&labels, Some(1)), mask("010001"));
        assert_eq!(mask_from_labels(&labels, Some(2)), mask("001000"));
        assert_eq!(mask_from_labels(&labels, Some(0)), mask("100000"));
    }

    #[test]
    fn error_messages_name_the_values() {
        let err = check_dims("truth mask", [4, 5, 6], 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "truth mask has 100 voxels but a 4 × 5 × 6 grid needs 120"
        );
        let err = check_dims("truth mask", [usize::MAX, 2, 1], 7).unwrap_err();
        assert!(err.to_string().contains("more than usize::MAX"), "{err}");
        let err = check_spacing([0.7, 0.0, 2.0]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "voxel spacing must be positive and finite, got 0.7 × 0 × 2 mm"
        );
        assert!(check_spacing([0.7, f64::NAN, 2.0]).is_err());
        assert!(check_spacing([0.7, 0.7, 2.0]).is_ok());
    }
}

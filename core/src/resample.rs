//! Resizing a volume to a given shape and back: trilinear for images and probabilities,
//! nearest neighbour for labels.
//!
//! The sampling convention lives here and nowhere else. Both resizes treat voxels as cells
//! whose centres sit at `index + 0.5` (PyTorch's `align_corners=False`), so the first and the
//! last voxel centres do *not* map onto each other and a resize followed by the inverse
//! resize keeps the volume in place:
//!
//! - trilinear: `src = max((dst + 0.5) · in / out − 0.5, 0)`, interpolating between
//!   `floor(src)` and the next voxel (clamped), as `torch.nn.functional.interpolate(mode=
//!   "trilinear", align_corners=False)`;
//! - nearest: `src = min(floor((dst + 0.5) · in / out), in − 1)`, as `interpolate(mode=
//!   "nearest-exact")`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The most voxels a resize may produce: 2³⁰, four GiB of f32.
pub const MAX_OUTPUT_VOXELS: usize = 1 << 30;

/// Why a resize cannot be done.
#[derive(Debug, Error, PartialEq)]
pub enum ResampleError {
    /// A grid with an axis of length zero.
    #[error("cannot resize {from:?} to {to:?}: every axis needs at least one voxel")]
    EmptyAxis { from: [usize; 3], to: [usize; 3] },
    /// The voxel buffer does not match the grid it is said to fill.
    #[error("a {dims:?} grid has {expected} voxels, but {actual} were given")]
    LengthMismatch {
        dims: [usize; 3],
        expected: usize,
        actual: usize,
    },
    /// The output would be unreasonably large.
    #[error("resizing to {to:?} would make {voxels} voxels, more than the limit of {limit}")]
    TooLarge {
        to: [usize; 3],
        voxels: u128,
        limit: usize,
    },
}

/// How a resize maps voxels; stored with a model so inference resizes as training did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeConvention {
    /// Voxel centres at `index + 0.5` (PyTorch `align_corners=False`, `nearest-exact`).
    HalfPixel,
}

fn check(len: usize, dims: [usize; 3], out_dims: [usize; 3]) -> Result<(), ResampleError> {
    if dims.contains(&0) || out_dims.contains(&0) {
        return Err(ResampleError::EmptyAxis {
            from: dims,
            to: out_dims,
        });
    }
    let expected = dims.iter().product::<usize>();
    if len != expected {
        return Err(ResampleError::LengthMismatch {
            dims,
            expected,
            actual: len,
        });
    }
    // A checked product: three axes near 2⁶⁴ overflow even a u128.
    let voxels = out_dims
        .iter()
        .try_fold(1u128, |n, &d| n.checked_mul(d as u128))
        .unwrap_or(u128::MAX);
    if voxels > MAX_OUTPUT_VOXELS as u128 {
        return Err(ResampleError::TooLarge {
            to: out_dims,
            voxels,
            limit: MAX_OUTPUT_VOXELS,
        });
    }
    Ok(())
}

/// For each output position along one axis: the two source indices and the weight of the
/// second, under the half-pixel convention.
fn linear_taps(input: usize, output: usize) -> Vec<(usize, usize, f32)> {
    let scale = input as f64 / output as f64;
    (0..output)
        .map(|dst| {
            let src = ((dst as f64 + 0.5) * scale - 0.5).max(0.0);
            let lo = (src.floor() as usize).min(input - 1);
            let hi = (lo + 1).min(input - 1);
            (lo, hi, (src - lo as f64) as f32)
        })
        .collect()
}

fn nearest_taps(input: usize, output: usize) -> Vec<usize> {
    let scale = input as f64 / output as f64;
    (0..output)
        .map(|dst| (((dst as f64 + 0.5) * scale).floor() as usize).min(input - 1))
        .collect()
}

/// Resizes along one axis, leaving the others; `dims` is the input grid.
fn linear_along(data: &[f32], dims: [usize; 3], axis: usize, output: usize) -> Vec<f32> {
    let taps = linear_taps(dims[axis], output);
    let mut out_dims = dims;
    out_dims[axis] = output;
    let stride_in: usize = dims[..axis].iter().product();
    let outer = dims[axis + 1..].iter().product::<usize>();
    let mut out = vec![0.0f32; out_dims.iter().product()];
    for o in 0..outer {
        let base_in = o * dims[axis] * stride_in;
        let base_out = o * output * stride_in;
        for (dst, &(lo, hi, w)) in taps.iter().enumerate() {
            let row_lo = &data[base_in + lo * stride_in..][..stride_in];
            let row_hi = &data[base_in + hi * stride_in..][..stride_in];
            let row_out = &mut out[base_out + dst * stride_in..][..stride_in];
            for ((y, &a), &b) in row_out.iter_mut().zip(row_lo).zip(row_hi) {
                *y = a + (b - a) * w;
            }
        }
    }
    out
}

/// Trilinear resize of `data` on grid `dims` to `out_dims`.
///
/// Trilinear interpolation is separable, so the volume is resized one axis at a time; the
/// result equals the direct 8-neighbour formula up to f32 rounding.
pub fn resize_trilinear(
    data: &[f32],
    dims: [usize; 3],
    out_dims: [usize; 3],
) -> Result<Vec<f32>, ResampleError> {
    check(data.len(), dims, out_dims)?;

    // Shrinking axes first keeps the intermediate volumes small.
    let mut order = [0usize, 1, 2];
    order.sort_by(|&a, &b| {
        let ratio = |axis: usize| out_dims[axis] as f64 / dims[axis] as f64;
        ratio(a).total_cmp(&ratio(b))
    });

    let mut current = data.to_vec();
    let mut current_dims = dims;
    for axis in order {
        if current_dims[axis] != out_dims[axis] {
            current = linear_along(&current, current_dims, axis, out_dims[axis]);
            current_dims[axis] = out_dims[axis];
        }
    }
    Ok(current)
}

/// Nearest-neighbour resize of `data` (labels, masks) on grid `dims` to `out_dims`.
pub fn resize_nearest<T: Copy>(
    data: &[T],
    dims: [usize; 3],
    out_dims: [usize; 3],
) -> Result<Vec<T>, ResampleError> {
    check(data.len(), dims, out_dims)?;

    let [ti, tj, tk] = [0, 1, 2].map(|axis| nearest_taps(dims[axis], out_dims[axis]));
    let mut out = Vec::with_capacity(out_dims.iter().product());
    for &k in &tk {
        for &j in &tj {
            let row = &data[dims[0] * (j + dims[1] * k)..][..dims[0]];
            out.extend(ti.iter().map(|&i| row[i]));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_one_axis_matches_hand_values() {
        // 2 → 4 along i: scale 0.5, src = (dst + 0.5)/2 − 0.5 = −0.25 (→ 0), 0.25, 0.75, 1.25
        // (→ clamped hi): 0, 0.25, 0.75, 1 for the values 0 and 1.
        let out = resize_trilinear(&[0.0, 1.0], [2, 1, 1], [4, 1, 1]).unwrap();
        assert_eq!(out, vec![0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn halving_averages_pairs() {
        // 4 → 2: src = 0.5 and 2.5, the mean of each pair.
        let out = resize_trilinear(&[0.0, 2.0, 4.0, 6.0], [1, 4, 1], [1, 2, 1]).unwrap();
        assert_eq!(out, vec![1.0, 5.0]);
    }

    #[test]
    fn nearest_follows_half_pixel_rule() {
        // 3 → 5: floor((dst + 0.5) · 0.6) = 0, 0, 1, 2, 2.
        let out = resize_nearest(&[10u8, 20, 30], [1, 1, 3], [1, 1, 5]).unwrap();
        assert_eq!(out, vec![10, 10, 20, 30, 30]);
    }

    #[test]
    fn bad_grids_are_named() {
        assert_eq!(
            resize_trilinear(&[0.0; 5], [2, 2, 1], [4, 4, 1]),
            Err(ResampleError::LengthMismatch {
                dims: [2, 2, 1],
                expected: 4,
                actual: 5
            })
        );
        assert!(matches!(
            resize_nearest(&[0u8], [1, 1, 1], [0, 1, 1]),
            Err(ResampleError::EmptyAxis { .. })
        ));
        assert!(matches!(
            resize_nearest(&[0u8], [1, 1, 1], [1 << 20, 1 << 20, 1]),
            Err(ResampleError::TooLarge { .. })
        ));
        assert!(matches!(
            resize_trilinear(&[0.0], [1, 1, 1], [usize::MAX; 3]),
            Err(ResampleError::TooLarge { .. })
        ));
    }
}

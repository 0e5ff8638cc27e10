//! How a model wants to see a scan: its HU window and its inference mode.

use serde::{Deserialize, Serialize};

use super::InferenceError;
use crate::orientation::CanonicalOrientation;
use crate::resample::ResizeConvention;
use crate::window::HuWindow;

/// The two ways of feeding a whole scan to the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InferenceMode {
    /// The paper's way: the whole canonical volume resized to one input of `input_dims`
    /// (`[ni, nj, nk]` on the RAS+ axes) and the probabilities resized back.
    ///
    /// The network's input tensor `[batch, 1, depth, height, width]` is this crate's voxel
    /// layout read in C order, so `input_dims = [width, height, depth]`: the paper's
    /// 20 × 256 × 256 (depth × height × width) is `[256, 256, 20]`.
    WholeVolume {
        /// Network input grid `[ni, nj, nk]`, e.g. `[256, 256, 20]`.
        input_dims: [usize; 3],
    },
    /// nnU-Net's way: the volume resampled to a fixed spacing and covered by overlapping
    /// patches whose probabilities are blended with a Gaussian weight.
    SlidingWindow {
        /// Voxel size of the network grid, mm, on the RAS+ axes.
        spacing_mm: [f64; 3],
        /// Patch grid `[ni, nj, nk]`.
        patch_dims: [usize; 3],
        /// Share of a patch that overlaps its neighbour, in `[0, 1)`; 0.5 in nnU-Net.
        overlap: f64,
    },
}

/// What a weights file says about turning a scan into network input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// HU window, scaled to 0…1.
    pub window: HuWindow,
    /// Whole-volume or sliding-window inference.
    pub mode: InferenceMode,
    /// Resize convention used in training; inference must use the same.
    pub resize: ResizeConvention,
    /// Orientation the scan is brought to before anything else.
    pub orientation: CanonicalOrientation,
}

/// Most patches one scan may be cut into: a 512 × 512 × 600 scan at 1 mm in 64³ patches with
/// half overlap needs about 3 000.
pub const MAX_PATCHES: usize = 20_000;

/// Most voxels of the network grid, 2²⁸: four times a 512 × 512 × 256 scan.
pub const MAX_GRID_VOXELS: usize = 1 << 28;

impl Preprocessing {
    /// Checks settings that come from a weights file before any work is done with them.
    pub fn validate(&self) -> Result<(), InferenceError> {
        HuWindow::new(self.window.lower_hu, self.window.upper_hu)
            .map_err(|e| InferenceError::Settings(e.to_string()))?;
        if let InferenceMode::SlidingWindow { overlap, .. } = self.mode {
            if !(0.0..=0.9).contains(&overlap) {
                return Err(InferenceError::Settings(format!(
                    "sliding-window overlap {overlap} must lie in [0, 0.9]"
                )));
            }
        }
        Ok(())
    }
}

impl InferenceMode {
    /// The grid `[ni, nj, nk]` one network pass sees: the whole-volume input or one patch.
    pub fn network_dims(&self) -> [usize; 3] {
        match self {
            InferenceMode::WholeVolume { input_dims } => *input_dims,
            InferenceMode::SlidingWindow { patch_dims, .. } => *patch_dims,
        }
    }

    /// The network grid for a canonical volume and the patch size on it.
    pub(super) fn grid(
        &self,
        canonical_dims: [usize; 3],
        spacing_mm: [f64; 3],
    ) -> Result<([usize; 3], [usize; 3]), InferenceError> {
        match self {
            InferenceMode::WholeVolume { input_dims } => {
                if input_dims.contains(&0) {
                    return Err(InferenceError::Settings(format!(
                        "whole-volume input {input_dims:?} has an empty axis"
                    )));
                }
                check_grid(*input_dims)?;
                Ok((*input_dims, *input_dims))
            }
            InferenceMode::SlidingWindow {
                spacing_mm: target,
                patch_dims,
                overlap,
            } => {
                let target_ok = target.iter().all(|s| s.is_finite() && *s > 0.0);
                if !target_ok || patch_dims.contains(&0) || !(0.0..1.0).contains(overlap) {
                    return Err(InferenceError::Settings(format!(
                        "sliding window at {target:?} mm with patch {patch_dims:?} and overlap \
                         {overlap} (spacing > 0, patch ≥ 1 voxel, overlap in [0, 1))"
                    )));
                }
                let grid = [0, 1, 2].map(|a| {
                    let extent_mm = canonical_dims[a] as f64 * spacing_mm[a];
                    ((extent_mm / target[a]).round() as usize).max(1)
                });
                check_grid(grid)?;
                check_grid(*patch_dims)?;
                let patches: usize = [0, 1, 2]
                    .map(|a| axis_starts(grid[a].max(patch_dims[a]), patch_dims[a], *overlap).len())
                    .iter()
                    .product();
                if patches > MAX_PATCHES {
                    return Err(InferenceError::Settings(format!(
                        "sliding window would cut the scan into {patches} patches, more than \
                         {MAX_PATCHES}"
                    )));
                }
                Ok((grid, *patch_dims))
            }
        }
    }

    /// Corners of the patches that cover a grid of `dims` (each axis ≥ the patch), spaced
    /// evenly with at least the requested overlap, the last one flush with the far edge.
    pub(super) fn patch_origins(&self, dims: [usize; 3], patch: [usize; 3]) -> Vec<[usize; 3]> {
        let overlap = match self {
            InferenceMode::WholeVolume { .. } => 0.0,
            InferenceMode::SlidingWindow { overlap, .. } => *overlap,
        };
        let starts = [0, 1, 2].map(|a| axis_starts(dims[a], patch[a], overlap));
        let mut origins = Vec::new();
        for &k in &starts[2] {
            for &j in &starts[1] {
                for &i in &starts[0] {
                    origins.push([i, j, k]);
                }
            }
        }
        origins
    }

    /// Whether patches are blended with a Gaussian weight (only overlapping ones need it).
    pub(super) fn gaussian(&self) -> bool {
        matches!(self, InferenceMode::SlidingWindow { .. })
    }
}

fn check_grid(dims: [usize; 3]) -> Result<(), InferenceError> {
    let voxels = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    match voxels {
        Some(v) if v <= MAX_GRID_VOXELS => Ok(()),
        _ => Err(InferenceError::Settings(format!(
            "network grid {dims:?} exceeds {MAX_GRID_VOXELS} voxels"
        ))),
    }
}

fn axis_starts(length: usize, patch: usize, overlap: f64) -> Vec<usize> {
    if length <= patch {
        return vec![0];
    }
    let step = ((patch as f64) * (1.0 - overlap)).max(1.0);
    let count = ((length - patch) as f64 / step).ceil() as usize + 1;
    let span = (length - patch) as f64;
    (0..count)
        .map(|n| (span * n as f64 / (count - 1) as f64).round() as usize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_overlap_covers_an_axis_like_nnunet() {
        // 300 voxels, patch 128, step 64: ceil(172 / 64) + 1 = 4 starts over 0…172.
        assert_eq!(axis_starts(300, 128, 0.5), vec![0, 57, 115, 172]);
        assert_eq!(axis_starts(128, 128, 0.5), vec![0]);
        assert_eq!(axis_starts(100, 128, 0.5), vec![0]);
    }
}

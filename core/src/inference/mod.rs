//! Whole-scan inference around any network: the canonical volume is windowed, resized onto
//! the network's grid, cut into patches, and the per-patch infiltrate probabilities are
//! blended back, resized onto the canonical grid and reoriented onto the file's own grid.
//!
//! The network itself is not called from here. [`Inference`] hands out patches and takes
//! back their probabilities, so the same pipeline serves a synchronous native backend and
//! the page, whose GPU results arrive asynchronously.

mod gaussian;
mod mode;
mod quantities;
mod warnings;

pub use gaussian::gaussian_importance;
pub use mode::{InferenceMode, Preprocessing};
pub use quantities::{
    quantify, summarise, InfiltrateMask, LungQuantities, Quantities, SideQuantities,
};
pub use warnings::input_warnings;

use thiserror::Error;

use crate::orientation::Reorientation;
use crate::resample::{resize_trilinear, ResampleError};
use crate::volume::Volume;

/// Why inference cannot go on.
#[derive(Debug, Error, PartialEq)]
pub enum InferenceError {
    /// Resizing onto or off the network grid failed.
    #[error(transparent)]
    Resample(#[from] ResampleError),
    /// A patch's probabilities do not fill the patch.
    #[error("patch {patch} needs {expected} probabilities, the network returned {actual}")]
    PatchLength {
        patch: usize,
        expected: usize,
        actual: usize,
    },
    /// A patch index beyond the plan.
    #[error("patch {patch} does not exist: the plan has {count} patches")]
    NoSuchPatch { patch: usize, count: usize },
    /// Results were asked for before every patch was given its probabilities.
    #[error("{missing} of {count} patches have no probabilities yet")]
    Incomplete { missing: usize, count: usize },
    /// The inference settings cannot work.
    #[error("invalid inference settings: {0}")]
    Settings(String),
}

/// One scan on its way through the network.
#[derive(Debug)]
pub struct Inference {
    reorientation: Reorientation,
    canonical_dims: [usize; 3],
    /// Network grid before padding up to the patch size: the resize target.
    resized_dims: [usize; 3],
    /// Windowed intensities (0…1) on the network grid, `grid_dims` voxels.
    grid: Vec<f32>,
    grid_dims: [usize; 3],
    patch_dims: [usize; 3],
    /// Corner of each patch on the network grid.
    origins: Vec<[usize; 3]>,
    importance: Vec<f32>,
    weighted_sum: Vec<f32>,
    weight: Vec<f32>,
    done: Vec<bool>,
}

impl Inference {
    /// Prepares a scan: reorients it to RAS+, windows it and resizes it onto the network's
    /// grid, and plans the patches.
    pub fn new(volume: &Volume, preprocessing: &Preprocessing) -> Result<Self, InferenceError> {
        preprocessing.validate()?;
        let (canonical, reorientation) = volume.to_canonical();
        let windowed = preprocessing.window.apply(&canonical.hu);

        let (grid_dims, patch_dims) = preprocessing
            .mode
            .grid(canonical.dims, canonical.spacing_mm)?;
        let resized = resize_trilinear(&windowed, canonical.dims, grid_dims)?;
        let padded_dims = [0, 1, 2].map(|a| grid_dims[a].max(patch_dims[a]));
        let grid = pad_high(&resized, grid_dims, padded_dims);

        let origins = preprocessing.mode.patch_origins(padded_dims, patch_dims);
        let voxels = padded_dims.iter().product();
        Ok(Inference {
            reorientation,
            canonical_dims: canonical.dims,
            resized_dims: grid_dims,
            grid,
            grid_dims: padded_dims,
            patch_dims,
            done: vec![false; origins.len()],
            origins,
            importance: gaussian_importance(patch_dims, preprocessing.mode.gaussian()),
            weighted_sum: vec![0.0; voxels],
            weight: vec![0.0; voxels],
        })
    }

    /// Number of patches to run.
    pub fn patch_count(&self) -> usize {
        self.origins.len()
    }

    /// Shape of every patch, `[ni, nj, nk]` on the canonical (RAS+) axes.
    pub fn patch_dims(&self) -> [usize; 3] {
        self.patch_dims
    }

    /// The network's input for one patch: windowed intensities in 0…1, flat in this crate's
    /// voxel layout (`i` fastest), which is a `[1, 1, nk, nj, ni]` tensor in C order.
    pub fn patch_input(&self, patch: usize) -> Result<Vec<f32>, InferenceError> {
        let origin = self.origin(patch)?;
        let [pi, pj, pk] = self.patch_dims;
        let mut out = Vec::with_capacity(pi * pj * pk);
        for k in 0..pk {
            for j in 0..pj {
                let start = self.grid_index(origin, 0, j, k);
                out.extend_from_slice(&self.grid[start..start + pi]);
            }
        }
        Ok(out)
    }

    /// Takes the infiltrate probability of every voxel of one patch.
    pub fn add_patch(&mut self, patch: usize, probability: &[f32]) -> Result<(), InferenceError> {
        let origin = self.origin(patch)?;
        let expected = self.patch_dims.iter().product();
        if probability.len() != expected {
            return Err(InferenceError::PatchLength {
                patch,
                expected,
                actual: probability.len(),
            });
        }

        let [pi, pj, pk] = self.patch_dims;
        for k in 0..pk {
            for j in 0..pj {
                let start = self.grid_index(origin, 0, j, k);
                let row = (j + pj * k) * pi;
                for i in 0..pi {
                    let g = self.importance[row + i];
                    self.weighted_sum[start + i] += probability[row + i] * g;
                    self.weight[start + i] += g;
                }
            }
        }
        self.done[patch] = true;
        Ok(())
    }

    /// The blended infiltrate probability on the scan's own grid, in its voxel layout.
    pub fn probability(&self) -> Result<Vec<f32>, InferenceError> {
        let missing = self.done.iter().filter(|&&d| !d).count();
        if missing > 0 {
            return Err(InferenceError::Incomplete {
                missing,
                count: self.done.len(),
            });
        }

        let blended: Vec<f32> = self
            .weighted_sum
            .iter()
            .zip(&self.weight)
            .map(|(&s, &w)| if w > 0.0 { s / w } else { 0.0 })
            .collect();
        let on_grid = crop_low(&blended, self.grid_dims, self.resized_dims);
        let canonical = resize_trilinear(&on_grid, self.resized_dims, self.canonical_dims)?;
        Ok(self.reorientation.to_source_data(&canonical))
    }

    fn origin(&self, patch: usize) -> Result<[usize; 3], InferenceError> {
        self.origins
            .get(patch)
            .copied()
            .ok_or(InferenceError::NoSuchPatch {
                patch,
                count: self.origins.len(),
            })
    }

    fn grid_index(&self, origin: [usize; 3], i: usize, j: usize, k: usize) -> usize {
        let [gi, gj, _] = self.grid_dims;
        (origin[0] + i) + gi * ((origin[1] + j) + gj * (origin[2] + k))
    }
}

/// `data` on `dims` placed at the low corner of a zero-filled grid of `padded` (≥ `dims`).
///
/// Zero is the window's lower bound, i.e. air: a scan smaller than a patch is surrounded
/// by what surrounds a patient.
fn pad_high(data: &[f32], dims: [usize; 3], padded: [usize; 3]) -> Vec<f32> {
    if dims == padded {
        return data.to_vec();
    }
    let mut out = vec![0.0; padded.iter().product()];
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            let src = dims[0] * (j + dims[1] * k);
            let dst = padded[0] * (j + padded[1] * k);
            out[dst..dst + dims[0]].copy_from_slice(&data[src..src + dims[0]]);
        }
    }
    out
}

/// The low corner of `dims` cut out of a grid of `padded`; the inverse of [`pad_high`].
fn crop_low(data: &[f32], padded: [usize; 3], dims: [usize; 3]) -> Vec<f32> {
    if dims == padded {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(dims.iter().product());
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            let src = padded[0] * (j + padded[1] * k);
            out.extend_from_slice(&data[src..src + dims[0]]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affine::Affine;
    use crate::orientation::CanonicalOrientation;
    use crate::resample::ResizeConvention;
    use crate::window::HuWindow;

    /// An LPS volume whose HU vary along every axis, so any misplaced voxel shows.
    fn lps_ramp(dims: [usize; 3]) -> Volume {
        let affine = Affine([
            [-1.5, 0.0, 0.0, 0.0],
            [0.0, -1.5, 0.0, 0.0],
            [0.0, 0.0, 3.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        let mut hu = Vec::new();
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    hu.push(-1000.0 + (i * 7 + j * 13 + k * 29) as f32);
                }
            }
        }
        Volume {
            dims,
            spacing_mm: [1.5, 1.5, 3.0],
            affine,
            hu,
        }
    }

    /// Runs every patch through `network`, which maps a patch's input to probabilities.
    fn run(volume: &Volume, mode: InferenceMode, network: impl Fn(&[f32]) -> Vec<f32>) -> Vec<f32> {
        let preprocessing = Preprocessing {
            window: HuWindow::default(),
            mode,
            resize: ResizeConvention::HalfPixel,
            orientation: CanonicalOrientation::Ras,
        };
        let mut inference = Inference::new(volume, &preprocessing).unwrap();
        for patch in 0..inference.patch_count() {
            let input = inference.patch_input(patch).unwrap();
            inference.add_patch(patch, &network(&input)).unwrap();
        }
        inference.probability().unwrap()
    }

    #[test]
    fn identity_network_returns_the_windowed_scan_on_its_own_grid() {
        // A network that echoes its input must give back the windowed source voxels: this
        // checks reorientation, patch cutting, Gaussian blending and the way back at once.
        let volume = lps_ramp([20, 18, 9]);
        let expected = HuWindow::default().apply(&volume.hu);

        let whole = run(
            &volume,
            InferenceMode::WholeVolume {
                input_dims: [20, 18, 9],
            },
            <[f32]>::to_vec,
        );
        assert_eq!(whole, expected);

        let sliding = InferenceMode::SlidingWindow {
            spacing_mm: [1.5, 1.5, 3.0],
            patch_dims: [8, 8, 4],
            overlap: 0.5,
        };
        let blended = run(&volume, sliding, <[f32]>::to_vec);
        let worst = blended
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-6, "blended identity differs by {worst}");
    }

    #[test]
    fn scans_smaller_than_a_patch_are_padded_and_cropped() {
        let volume = lps_ramp([5, 6, 3]);
        let mode = InferenceMode::SlidingWindow {
            spacing_mm: [1.5, 1.5, 3.0],
            patch_dims: [8, 8, 4],
            overlap: 0.5,
        };
        let out = run(&volume, mode, <[f32]>::to_vec);
        let expected = HuWindow::default().apply(&volume.hu);
        // p · g / g differs from p only by f32 rounding.
        let worst = out
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-6, "padded identity differs by {worst}");
    }

    #[test]
    fn missing_and_misshaped_patches_are_errors() {
        let volume = lps_ramp([20, 18, 9]);
        let mode = InferenceMode::SlidingWindow {
            spacing_mm: [1.5, 1.5, 3.0],
            patch_dims: [8, 8, 4],
            overlap: 0.5,
        };
        let preprocessing = Preprocessing {
            window: HuWindow::default(),
            mode,
            resize: ResizeConvention::HalfPixel,
            orientation: CanonicalOrientation::Ras,
        };
        let mut inference = Inference::new(&volume, &preprocessing).unwrap();
        let count = inference.patch_count();
        assert_eq!(
            inference.add_patch(0, &[0.5; 3]),
            Err(InferenceError::PatchLength {
                patch: 0,
                expected: 256,
                actual: 3
            })
        );
        assert_eq!(
            inference.patch_input(count),
            Err(InferenceError::NoSuchPatch {
                patch: count,
                count
            })
        );
        assert_eq!(
            inference.probability(),
            Err(InferenceError::Incomplete {
                missing: count,
                count
            })
        );
    }
}

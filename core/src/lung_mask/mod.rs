//! A mask of the right and left lung from Hounsfield units alone, the denominator of "share
//! of lung affected".
//!
//! The classic threshold-and-label pipeline (as in Hu, Hoffman and Reinhardt, IEEE TMI 20,
//! 2001, and the many "threshold + connected components" lung masks since):
//!
//! 1. Voxels below [`LungMaskOptions::air_threshold_hu`] are air-like.
//! 2. Air connected to the four in-plane side faces of the volume is outside the patient and
//!    dropped. The first and last axial slices are not "outside": a scan cut through the chest
//!    has lungs touching them.
//! 3. The trachea and main bronchi are traced down from the top slices and dropped
//!    ([`airways`]).
//! 4. The remaining air is split into 6-connected 3-D components (face neighbours only, so
//!    a diagonal gap between two voxels keeps the lungs apart). The lungs are the largest
//!    ones whose median HU is that of aerated lung rather than gas; bowel gas, the oesophagus
//!    and small pockets are left out. Lungs joined into one component (at the anterior
//!    junction line, or through small airways) are split ([`split`]).
//! 5. Vessels and bronchial walls at the lung border are closed with a ball given in mm
//!    ([`morphology`]); on every axial slice the holes that vessels, nodules and infiltrates
//!    leave inside a lung, and the dents that dense lung against the chest wall leaves in its
//!    outline, are filled ([`pockets`]).
//!
//! Label 1 is the patient's right lung (larger world x, RAS+), label 2 the left one. Which
//! voxel axis is axial comes from the affine, so any storage order works.

mod airways;
mod components;
mod grid;
mod morphology;
mod pockets;
mod split;

use thiserror::Error;

use crate::volume::Volume;
use components::Component;
use grid::Grid;

/// Label of the patient's right lung in [`LungMask::labels`].
pub const RIGHT_LUNG: u8 = 1;
/// Label of the patient's left lung in [`LungMask::labels`].
pub const LEFT_LUNG: u8 = 2;

/// Voxel flags of the working state, one byte per voxel.
const AIR: u8 = 1;
/// Air connected to the in-plane border of the volume: outside the patient.
const OUTSIDE: u8 = 2;
/// Lumen of the trachea or a main bronchus.
const AIRWAY: u8 = 4;
/// Visited by the component labelling.
const SEEN: u8 = 8;
/// Visited while copying a chosen component into the labels.
const TAKEN: u8 = 16;

/// How many of the largest air components are considered as lungs.
const MAX_CANDIDATES: usize = 6;

/// Air inside the patient that may be lung.
fn is_candidate(state: u8) -> bool {
    state & (AIR | OUTSIDE | AIRWAY) == AIR
}

/// Settings of [`lung_mask`]. The defaults suit adult chest CT of any slice thickness.
#[derive(Debug, Clone)]
pub struct LungMaskOptions {
    /// Voxels below this value (HU) are air-like. −320 HU lies between aerated lung
    /// (−950 … −700 HU, ground glass down to about −300) and soft tissue or fat (−120 … +80
    /// HU), and is the value of the widely used threshold-and-label lung masks: partial-volume
    /// voxels at the pleura stay out of the lung, faint ground glass stays in.
    pub air_threshold_hu: f32,
    /// Air components smaller than this (mL) are never lungs (bowel gas, noise, the oesophagus).
    pub min_component_ml: f64,
    /// Air components whose median is below this (HU) are gas, not lung: bowel, stomach or
    /// an untraced airway hold nearly pure gas (median −1000 … −950 HU on the scans of this
    /// project) while aerated lung has a median of −900 … −800 HU (−930 in severe emphysema).
    pub gas_median_hu: f32,
    /// Radius (mm) of the ball of the 3-D closing that puts vessels and bronchial walls at
    /// the lung border into the lung.
    pub closing_radius_mm: f64,
    /// Largest area (cm²) of one pocket between a lung and the convex hull of both lungs on
    /// an axial slice that is filled as dense lung against the chest wall.
    pub max_pleural_pocket_cm2: f64,
    /// Whether the trachea and main bronchi are traced and left out of the lungs.
    pub remove_airways: bool,
    /// Largest area (cm²) of one axial cross-section of the trachea or a main bronchus;
    /// a larger air region is taken as lung and ends the tracing.
    pub max_airway_area_cm2: f64,
    /// Largest distance (mm) along world x between the trachea and the middle of the body on
    /// the slice where the trachea is first found.
    pub max_trachea_offset_mm: f64,
    /// Depth (mm) below the top slice within which the trachea is looked for.
    pub trachea_search_mm: f64,
    /// Deepest erosion (mm) tried when splitting lungs joined into one component.
    pub max_split_depth_mm: f64,
}

impl Default for LungMaskOptions {
    fn default() -> Self {
        LungMaskOptions {
            air_threshold_hu: -320.0,
            min_component_ml: 50.0,
            gas_median_hu: -950.0,
            closing_radius_mm: 4.0,
            max_pleural_pocket_cm2: 20.0,
            remove_airways: true,
            max_airway_area_cm2: 6.0,
            max_trachea_offset_mm: 25.0,
            trachea_search_mm: 40.0,
            max_split_depth_mm: 30.0,
        }
    }
}

impl LungMaskOptions {
    fn validate(&self) -> Result<(), LungMaskError> {
        let checks: [(&'static str, f64, bool); 9] = [
            ("air_threshold_hu", f64::from(self.air_threshold_hu), true),
            ("gas_median_hu", f64::from(self.gas_median_hu), true),
            (
                "min_component_ml",
                self.min_component_ml,
                self.min_component_ml >= 0.0,
            ),
            (
                "closing_radius_mm",
                self.closing_radius_mm,
                self.closing_radius_mm >= 0.0,
            ),
            (
                "max_pleural_pocket_cm2",
                self.max_pleural_pocket_cm2,
                self.max_pleural_pocket_cm2 >= 0.0,
            ),
            (
                "max_airway_area_cm2",
                self.max_airway_area_cm2,
                self.max_airway_area_cm2 > 0.0,
            ),
            (
                "max_trachea_offset_mm",
                self.max_trachea_offset_mm,
                self.max_trachea_offset_mm >= 0.0,
            ),
            (
                "trachea_search_mm",
                self.trachea_search_mm,
                self.trachea_search_mm >= 0.0,
            ),
            (
                "max_split_depth_mm",
                self.max_split_depth_mm,
                self.max_split_depth_mm >= 0.0,
            ),
        ];
        for (name, value, in_range) in checks {
            if !value.is_finite() || !in_range {
                return Err(LungMaskError::InvalidOption { name, value });
            }
        }
        // A closing ball far larger than a chest would only cost time and memory.
        if self.closing_radius_mm > 50.0 {
            return Err(LungMaskError::InvalidOption {
                name: "closing_radius_mm",
                value: self.closing_radius_mm,
            });
        }
        Ok(())
    }
}

/// What can make [`lung_mask`] refuse a volume. A volume without lungs is not an error: it
/// gives an empty mask with a warning.
#[derive(Debug, Error)]
pub enum LungMaskError {
    /// One of the dimensions is zero.
    #[error("volume has no voxels: dims {dims:?}")]
    EmptyVolume { dims: [usize; 3] },
    /// `hu` does not hold one value per voxel.
    #[error("volume dims {dims:?} need {expected:?} HU values but it holds {len}")]
    HuLengthMismatch {
        dims: [usize; 3],
        expected: Option<usize>,
        len: usize,
    },
    /// More voxels than the 32-bit voxel indices of the flood fills can address.
    #[error("volume of {voxels} voxels is too large for the lung mask (at most {max})")]
    TooManyVoxels { voxels: usize, max: usize },
    /// A voxel size that is zero, negative or not finite.
    #[error("voxel spacing {spacing_mm:?} mm is not positive and finite")]
    InvalidSpacing { spacing_mm: [f64; 3] },
    /// An affine with a NaN or infinite entry gives no patient directions.
    #[error("the volume's affine has the non-finite entry {value} at row {row}, column {column}")]
    InvalidAffine {
        row: usize,
        column: usize,
        value: f64,
    },
    /// An option outside its range.
    #[error("lung mask option {name} = {value} is out of range")]
    InvalidOption { name: &'static str, value: f64 },
}

/// The lungs of one volume, on the volume's own voxel grid.
#[derive(Debug, Clone, PartialEq)]
pub struct LungMask {
    /// Grid of `labels`, the volume's `[ni, nj, nk]`.
    pub dims: [usize; 3],
    /// One label per voxel, flat index `i + ni * (j + nj * k)`: 0 outside the lungs,
    /// [`RIGHT_LUNG`] (1) in the patient's right lung, [`LEFT_LUNG`] (2) in the left one.
    pub labels: Vec<u8>,
    /// Volume of the right lung in mL.
    pub right_ml: f64,
    /// Volume of the left lung in mL.
    pub left_ml: f64,
    /// What was unusual about this scan, in plain words (no lung, one lung, a fallback split).
    pub warnings: Vec<String>,
}

impl LungMask {
    /// Volume of both lungs in mL.
    pub fn total_ml(&self) -> f64 {
        self.right_ml + self.left_ml
    }

    /// Whether voxel `flat_index` lies in either lung (false beyond the grid).
    pub fn contains(&self, flat_index: usize) -> bool {
        self.labels.get(flat_index).is_some_and(|&label| label != 0)
    }
}

/// Masks the right and left lung of a chest CT (see the module documentation for the steps).
///
/// `volume.hu` holds `dims[0] * dims[1] * dims[2]` values in HU; the result is on the same
/// grid. A scan without lungs (the abdomen, a phantom) gives an empty mask and a warning.
pub fn lung_mask(volume: &Volume, options: &LungMaskOptions) -> Result<LungMask, LungMaskError> {
    options.validate()?;
    let grid = checked_grid(volume)?;
    let mut warnings = Vec::new();
    let mut stack: Vec<u32> = Vec::new();

    let mut state: Vec<u8> = volume
        .hu
        .iter()
        .map(|&hu| {
            if hu < options.air_threshold_hu {
                AIR
            } else {
                0
            }
        })
        .collect();
    let body_centre_x = mark_outside(&grid, volume, &mut state, &mut stack);

    let airway_voxels = if options.remove_airways {
        airways::mark(&grid, &mut state, &volume.hu, options, &mut stack)
    } else {
        0
    };
    tracing::debug!("airway lumen traced over {airway_voxels} voxels");

    let min_voxels = (options.min_component_ml / grid.voxel_ml()).ceil() as usize;
    let mut components: Vec<Component> = components::label_3d(
        &grid,
        &mut state,
        &volume.hu,
        &mut stack,
        SEEN,
        is_candidate,
    )
    .into_iter()
    .filter(|c| c.voxels >= min_voxels.max(1))
    .collect();
    components.sort_by_key(|c| std::cmp::Reverse(c.voxels));
    // Only the largest few can be lungs; their median HU tells gas from aerated lung.
    components.truncate(MAX_CANDIDATES);
    components.retain(|c| c.median_hu >= options.gas_median_hu);

    tracing::debug!(
        "{} air components of at least {} mL",
        components.len(),
        options.min_component_ml
    );

    let mut labels = vec![0u8; grid.len()];
    select_lungs(
        &grid,
        volume,
        &components,
        body_centre_x,
        options,
        &mut state,
        &mut labels,
        &mut stack,
        &mut warnings,
    );

    let forbidden = |index: usize| state[index] & (OUTSIDE | AIRWAY) != 0;
    for lung in [RIGHT_LUNG, LEFT_LUNG] {
        morphology::close_ball(
            &grid,
            &mut labels,
            lung,
            options.closing_radius_mm,
            &forbidden,
        );
    }

    let max_pocket_px = (options.max_pleural_pocket_cm2 * 100.0 / grid.pixel_mm2()) as usize;
    let is_air = |index: usize| state[index] & AIR != 0;
    pockets::fill_pockets(
        &grid,
        &mut labels,
        &forbidden,
        &is_air,
        max_pocket_px,
        &mut stack,
    );

    let right = labels.iter().filter(|&&l| l == RIGHT_LUNG).count();
    let left = labels.iter().filter(|&&l| l == LEFT_LUNG).count();
    if right + left == 0 {
        warnings.push("no lung found: no air-filled region inside the body is large enough".into());
    }
    tracing::info!(
        "lung mask of {}×{}×{}: right {right} and left {left} voxels, {} warnings",
        grid.dims[0],
        grid.dims[1],
        grid.dims[2],
        warnings.len()
    );
    Ok(LungMask {
        dims: grid.dims,
        labels,
        right_ml: right as f64 * grid.voxel_ml(),
        left_ml: left as f64 * grid.voxel_ml(),
        warnings,
    })
}

/// The grid of a volume whose size, spacing and affine can be worked with.
fn checked_grid(volume: &Volume) -> Result<Grid, LungMaskError> {
    let dims = volume.dims;
    if dims.contains(&0) {
        return Err(LungMaskError::EmptyVolume { dims });
    }
    let expected = dims[0]
        .checked_mul(dims[1])
        .and_then(|n| n.checked_mul(dims[2]));
    if expected != Some(volume.hu.len()) {
        return Err(LungMaskError::HuLengthMismatch {
            dims,
            expected,
            len: volume.hu.len(),
        });
    }
    let max = u32::MAX as usize;
    if volume.hu.len() > max {
        return Err(LungMaskError::TooManyVoxels {
            voxels: volume.hu.len(),
            max,
        });
    }
    if !volume.spacing_mm.iter().all(|s| s.is_finite() && *s > 0.0) {
        return Err(LungMaskError::InvalidSpacing {
            spacing_mm: volume.spacing_mm,
        });
    }
    for (row, values) in volume.affine.0.iter().enumerate() {
        if let Some(column) = values.iter().position(|v| !v.is_finite()) {
            return Err(LungMaskError::InvalidAffine {
                row,
                column,
                value: values[column],
            });
        }
    }
    Ok(Grid::new(
        dims,
        volume.spacing_mm,
        volume.affine.axis_directions(),
    ))
}

/// Flags as [`OUTSIDE`] the air reachable from the four in-plane side faces, and returns the
/// world x (mm) of the centre of everything else (the body, with the table): the patient's
/// mid-sagittal plane, near enough, for telling right from left.
fn mark_outside(grid: &Grid, volume: &Volume, state: &mut [u8], stack: &mut Vec<u32>) -> f64 {
    let [nu, nv] = grid.slice_dims();
    for z in 0..grid.slices() {
        for v in 0..nv {
            for u in 0..nu {
                if u == 0 || v == 0 || u + 1 == nu || v + 1 == nv {
                    let index = grid.slice_voxel(u, v, z);
                    if state[index] & (AIR | OUTSIDE) == AIR {
                        stack.push(index as u32);
                    }
                }
            }
        }
    }
    components::flood(grid, state, stack, OUTSIDE, |s| s & AIR != 0, |_, _| {});

    let mut sum = [0.0f64; 3];
    let mut count = 0usize;
    let [ni, nj, _] = grid.dims;
    for (row, line) in state.chunks_exact(ni).enumerate() {
        let (mut i_sum, mut n) = (0usize, 0usize);
        for (i, &s) in line.iter().enumerate() {
            if s & OUTSIDE == 0 {
                i_sum += i;
                n += 1;
            }
        }
        sum[0] += i_sum as f64;
        sum[1] += ((row % nj) * n) as f64;
        sum[2] += ((row / nj) * n) as f64;
        count += n;
    }
    if count == 0 {
        return volume.affine.apply(centre_voxel(grid))[0];
    }
    volume.affine.apply(sum.map(|s| s / count as f64))[0]
}

fn centre_voxel(grid: &Grid) -> [f64; 3] {
    grid.dims.map(|n| (n as f64 - 1.0) / 2.0)
}

/// Writes the lungs into `labels`: two components on either side of the body, or the largest
/// one split in two, or one lung alone.
#[allow(clippy::too_many_arguments)]
fn select_lungs(
    grid: &Grid,
    volume: &Volume,
    components: &[Component],
    body_centre_x: f64,
    options: &LungMaskOptions,
    state: &mut [u8],
    labels: &mut [u8],
    stack: &mut Vec<u32>,
    warnings: &mut Vec<String>,
) {
    let Some(largest) = components.first() else {
        return;
    };
    let centroid = |c: &Component| volume.affine.apply(c.centroid_voxel());
    let side_of = |c: &Component| {
        if centroid(c)[0] > body_centre_x {
            RIGHT_LUNG
        } else {
            LEFT_LUNG
        }
    };

    // Two separate lungs: comparable in size, each well off the midline on its own side, and
    // side by side rather than one above the other (bowel gas lies below the lungs).
    if let Some(second) = components.get(1) {
        let (a, b) = (centroid(largest), centroid(second));
        let off_midline = |x: f64| (x - body_centre_x).abs() > 30.0;
        let side_by_side = (a[0] - b[0]).abs() > (a[1] - b[1]).abs().max((a[2] - b[2]).abs());
        if second.voxels * 5 >= largest.voxels
            && off_midline(a[0])
            && off_midline(b[0])
            && (a[0] - body_centre_x).signum() != (b[0] - body_centre_x).signum()
            && side_by_side
        {
            components::extract(grid, state, labels, stack, largest.seed, side_of(largest));
            components::extract(grid, state, labels, stack, second.seed, side_of(second));
            return;
        }
    }

    components::extract(grid, state, labels, stack, largest.seed, split::UNASSIGNED);
    if split::split_joined(grid, volume, labels, largest, options, stack) {
        return;
    }

    // One component that no erosion separates: a single lung, or two lungs fused so widely
    // that only the mid-sagittal plane can part them.
    let (right, left) = split::count_sides(grid, volume, labels, body_centre_x);
    let smaller = right.min(left) as f64;
    if smaller > 0.2 * (right + left) as f64 {
        split::split_at_plane(grid, volume, labels, body_centre_x);
        warnings.push(format!(
            "the lungs form one air region that erosion up to {} mm does not separate; split at \
             the body's mid-sagittal plane",
            options.max_split_depth_mm
        ));
    } else {
        let side = if right >= left { RIGHT_LUNG } else { LEFT_LUNG };
        for label in labels.iter_mut().filter(|l| **l == split::UNASSIGNED) {
            *label = side;
        }
        let name = if side == RIGHT_LUNG { "right" } else { "left" };
        warnings.push(format!("only one lung found (the {name} one)"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::affine::Affine;

    /// A synthetic chest on a 2 × 2 × 3 mm grid, RAS+ storage, world origin at the centre:
    /// −1000 HU air around an elliptic body (semi-axes 140 × 100 mm, 0 HU) holding two
    /// ellipsoid lungs of −850 HU (semi-axes 45 × 65 × 60 mm, centred at x = ±70, z = +20)
    /// crossed by 3 mm vessels of +40 HU, a trachea (radius 9 mm) and main bronchi (6 mm,
    /// descending at 31° into each lung) of −1000 HU, and a gas bubble below the left lung.
    /// `truth` labels the lung voxels (vessels included).
    struct Phantom {
        volume: Volume,
        truth: Vec<u8>,
    }

    const DIMS: [usize; 3] = [160, 120, 60];
    const SPACING: [f64; 3] = [2.0, 2.0, 3.0];

    fn world(i: usize, j: usize, k: usize) -> [f64; 3] {
        [
            i as f64 * 2.0 - 159.0,
            j as f64 * 2.0 - 119.0,
            k as f64 * 3.0 - 88.5,
        ]
    }

    fn affine() -> Affine {
        Affine([
            [2.0, 0.0, 0.0, -159.0],
            [0.0, 2.0, 0.0, -119.0],
            [0.0, 0.0, 3.0, -88.5],
            [0.0, 0.0, 0.0, 1.0],
        ])
    }

    fn in_lung(p: [f64; 3], centre_x: f64) -> bool {
        ((p[0] - centre_x) / 45.0).powi(2) + (p[1] / 65.0).powi(2) + ((p[2] - 20.0) / 60.0).powi(2)
            <= 1.0
    }

    fn phantom(bridge: bool) -> Phantom {
        let n = DIMS.iter().product();
        let mut hu = vec![-1000.0f32; n];
        let mut truth = vec![0u8; n];
        for k in 0..DIMS[2] {
            for j in 0..DIMS[1] {
                for i in 0..DIMS[0] {
                    let p = world(i, j, k);
                    let index = flat(i, j, k);
                    if (p[0] / 140.0).powi(2) + (p[1] / 100.0).powi(2) > 1.0 {
                        continue;
                    }
                    hu[index] = 0.0;
                    let vessel = [(70.0, 20.0), (70.0, -25.0), (-70.0, 15.0), (-60.0, -30.0)]
                        .iter()
                        .any(|&(x, y)| (p[0] - x).powi(2) + (p[1] - y).powi(2) <= 9.0);
                    for (centre_x, label) in [(70.0, RIGHT_LUNG), (-70.0, LEFT_LUNG)] {
                        if in_lung(p, centre_x) {
                            hu[index] = if vessel { 40.0 } else { -850.0 };
                            truth[index] = label;
                        }
                    }
                    let trachea = p[0].powi(2) + (p[1] - 30.0).powi(2) <= 81.0 && p[2] >= 40.0;
                    let bronchi = [60.0, -60.0]
                        .iter()
                        .any(|&x| segment_distance(p, [0.0, 30.0, 40.0], [x, 30.0, 4.0]) <= 6.0);
                    let bubble = ((p[0] + 40.0) / 30.0).powi(2)
                        + ((p[1] - 10.0) / 20.0).powi(2)
                        + ((p[2] + 70.0) / 12.0).powi(2)
                        <= 1.0;
                    let junction =
                        bridge && p[0].abs() <= 30.0 && p[1].abs() <= 3.0 && p[2].abs() <= 20.0;
                    if trachea || bronchi || bubble {
                        hu[index] = -1000.0;
                    }
                    if junction && truth[index] == 0 {
                        hu[index] = -850.0;
                    }
                }
            }
        }
        Phantom {
            volume: Volume {
                dims: DIMS,
                spacing_mm: SPACING,
                affine: affine(),
                hu,
            },
            truth,
        }
    }

    fn flat(i: usize, j: usize, k: usize) -> usize {
        i + DIMS[0] * (j + DIMS[1] * k)
    }

    /// Distance in mm from `p` to the segment `a`–`b`.
    fn segment_distance(p: [f64; 3], a: [f64; 3], b: [f64; 3]) -> f64 {
        let ab = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
        let ap = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
        let len2 = ab.iter().map(|v| v * v).sum::<f64>();
        let t = ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / len2).clamp(0.0, 1.0);
        (0..3)
            .map(|a| (ap[a] - t * ab[a]).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    fn voxel_of(p: [f64; 3]) -> usize {
        let i = ((p[0] + 159.0) / 2.0).round() as usize;
        let j = ((p[1] + 119.0) / 2.0).round() as usize;
        let k = ((p[2] + 88.5) / 3.0).round() as usize;
        flat(i, j, k)
    }

    fn dice(mask: &LungMask, truth: &[u8], label: u8) -> f64 {
        let a = mask.labels.iter().filter(|&&l| l == label).count();
        let b = truth.iter().filter(|&&l| l == label).count();
        let both = mask
            .labels
            .iter()
            .zip(truth)
            .filter(|(&m, &t)| m == label && t == label)
            .count();
        2.0 * both as f64 / (a + b) as f64
    }

    fn truth_ml(truth: &[u8], label: u8) -> f64 {
        truth.iter().filter(|&&l| l == label).count() as f64 * 12.0 / 1000.0
    }

    #[test]
    fn two_lungs_match_the_painted_ones_without_airways_or_bowel_gas() {
        let phantom = phantom(false);
        let mask = lung_mask(&phantom.volume, &LungMaskOptions::default()).unwrap();
        assert!(mask.warnings.is_empty(), "{:?}", mask.warnings);

        // Each painted ellipsoid holds 4/3·π·45·65·60 mm³ = 735 mL; the voxel count of the
        // painting is the reference, the mask may add the bronchus stubs (< 1 %).
        for (label, ml) in [(RIGHT_LUNG, mask.right_ml), (LEFT_LUNG, mask.left_ml)] {
            let expected = truth_ml(&phantom.truth, label);
            assert!(
                (expected - 735.1).abs() < 10.0,
                "painted lung {expected} mL"
            );
            assert!(
                (ml - expected).abs() < 0.02 * expected,
                "label {label}: {ml} vs {expected} mL"
            );
            assert!(dice(&mask, &phantom.truth, label) > 0.98);
        }
        assert_eq!(
            mask.labels[voxel_of([70.0, 20.0, 20.0])],
            RIGHT_LUNG,
            "vessel in the lung"
        );
        assert_eq!(mask.labels[voxel_of([0.0, 30.0, 70.0])], 0, "trachea");
        assert_eq!(mask.labels[voxel_of([0.0, 30.0, 40.0])], 0, "carina");
        assert_eq!(mask.labels[voxel_of([-40.0, 10.0, -70.0])], 0, "bowel gas");
        assert!((mask.total_ml() - mask.right_ml - mask.left_ml).abs() < 1e-9);
    }

    #[test]
    fn lungs_joined_at_a_junction_are_parted_there() {
        let phantom = phantom(true);
        let mask = lung_mask(&phantom.volume, &LungMaskOptions::default()).unwrap();
        assert!(mask.warnings.is_empty(), "{:?}", mask.warnings);
        // The 6 mm thick junction (60 × 6 × 40 mm, 6.7 mL outside the lungs when voxelised)
        // goes half to each side.
        for (label, ml) in [(RIGHT_LUNG, mask.right_ml), (LEFT_LUNG, mask.left_ml)] {
            let expected = truth_ml(&phantom.truth, label) + 3.4;
            assert!(
                (ml - expected).abs() < 0.02 * expected,
                "label {label}: {ml} vs {expected} mL"
            );
        }
        assert_eq!(mask.labels[voxel_of([15.0, 0.0, 0.0])], RIGHT_LUNG);
        assert_eq!(mask.labels[voxel_of([-15.0, 0.0, 0.0])], LEFT_LUNG);
    }

    #[test]
    fn dense_infiltrate_against_the_chest_wall_and_ground_glass_are_lung() {
        let mut phantom = phantom(false);
        // A 0 HU half-ball of radius 15 mm on the lateral surface of the right lung, a
        // −600 HU ground-glass ball and a 0 HU nodule of radius 10 mm in its interior.
        let wall = [115.0, 0.0, 20.0];
        let mut patch = Vec::new();
        for index in 0..phantom.volume.len() {
            let c = [
                index % DIMS[0],
                (index / DIMS[0]) % DIMS[1],
                index / (DIMS[0] * DIMS[1]),
            ];
            let p = world(c[0], c[1], c[2]);
            if phantom.truth[index] != RIGHT_LUNG {
                continue;
            }
            let d = |q: [f64; 3]| {
                ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt()
            };
            if d(wall) <= 15.0 {
                phantom.volume.hu[index] = 0.0;
                patch.push(index);
            } else if d([80.0, 0.0, 50.0]) <= 12.0 {
                phantom.volume.hu[index] = -600.0;
            } else if d([75.0, 0.0, -5.0]) <= 10.0 {
                phantom.volume.hu[index] = 0.0;
            }
        }
        assert!(patch.len() > 400, "patch of {} voxels", patch.len());
        let mask = lung_mask(&phantom.volume, &LungMaskOptions::default()).unwrap();
        let inside = patch
            .iter()
            .filter(|&&index| mask.labels[index] == RIGHT_LUNG)
            .count();
        assert!(
            inside as f64 >= 0.95 * patch.len() as f64,
            "{inside} of {}",
            patch.len()
        );
        assert_eq!(
            mask.labels[voxel_of([80.0, 0.0, 50.0])],
            RIGHT_LUNG,
            "ground glass"
        );
        assert_eq!(
            mask.labels[voxel_of([75.0, 0.0, -5.0])],
            RIGHT_LUNG,
            "nodule"
        );
        assert!(dice(&mask, &phantom.truth, RIGHT_LUNG) > 0.98);
    }

    #[test]
    fn storage_order_comes_from_the_affine() {
        // The same phantom stored as (k, j reversed, i reversed): voxel axis 0 along world z,
        // axis 1 towards posterior, axis 2 towards the patient's left.
        let phantom = phantom(false);
        let reference = lung_mask(&phantom.volume, &LungMaskOptions::default()).unwrap();
        let [ni, nj, nk] = DIMS;
        let dims = [nk, nj, ni];
        let moved = |i: usize, j: usize, k: usize| k + nk * ((nj - 1 - j) + nj * (ni - 1 - i));
        let mut hu = vec![0.0f32; phantom.volume.len()];
        for k in 0..nk {
            for j in 0..nj {
                for i in 0..ni {
                    hu[moved(i, j, k)] = phantom.volume.hu[flat(i, j, k)];
                }
            }
        }
        // world = A · [i, j, k] with i = ni−1−c, j = nj−1−b, k = a for new voxel (a, b, c).
        let affine = Affine([
            [0.0, 0.0, -2.0, 2.0 * (ni - 1) as f64 - 159.0],
            [0.0, -2.0, 0.0, 2.0 * (nj - 1) as f64 - 119.0],
            [3.0, 0.0, 0.0, -88.5],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        assert_eq!(affine.orientation_code(), "SPL");
        let volume = Volume {
            dims,
            spacing_mm: [3.0, 2.0, 2.0],
            affine,
            hu,
        };
        let mask = lung_mask(&volume, &LungMaskOptions::default()).unwrap();
        assert_eq!(mask.dims, dims);
        for k in 0..nk {
            for j in 0..nj {
                for i in 0..ni {
                    assert_eq!(mask.labels[moved(i, j, k)], reference.labels[flat(i, j, k)]);
                }
            }
        }
    }

    #[test]
    fn lungs_cut_by_the_first_and_last_slice_are_kept() {
        // Slices 25..=45 (z = −13.5 … +46.5 mm) of the phantom: both lungs cross both ends.
        let phantom = phantom(false);
        let plane = DIMS[0] * DIMS[1];
        let (first, last) = (25, 45);
        let hu = phantom.volume.hu[first * plane..(last + 1) * plane].to_vec();
        let truth = &phantom.truth[first * plane..(last + 1) * plane];
        let mut affine = affine();
        affine.0[2][3] += 3.0 * first as f64;
        let volume = Volume {
            dims: [DIMS[0], DIMS[1], last - first + 1],
            spacing_mm: SPACING,
            affine,
            hu,
        };
        let mask = lung_mask(&volume, &LungMaskOptions::default()).unwrap();
        for (label, ml) in [(RIGHT_LUNG, mask.right_ml), (LEFT_LUNG, mask.left_ml)] {
            let expected = truth_ml(truth, label);
            assert!(
                (ml - expected).abs() < 0.02 * expected,
                "label {label}: {ml} vs {expected} mL"
            );
        }
    }

    #[test]
    fn a_body_without_lungs_gives_an_empty_mask_and_a_warning() {
        let mut phantom = phantom(false);
        for (hu, &t) in phantom.volume.hu.iter_mut().zip(&phantom.truth) {
            if t != 0 {
                *hu = 30.0;
            }
        }
        let mask = lung_mask(&phantom.volume, &LungMaskOptions::default()).unwrap();
        assert_eq!(mask.total_ml(), 0.0);
        assert!(!mask.contains(0) && !mask.contains(usize::MAX));
        assert_eq!(mask.warnings.len(), 1);
        assert!(mask.warnings[0].contains("no lung"), "{:?}", mask.warnings);
    }

    #[test]
    fn bad_volumes_and_options_are_refused() {
        let volume = |dims: [usize; 3], len: usize, spacing_mm: [f64; 3]| Volume {
            dims,
            spacing_mm,
            affine: Affine::from_spacing([1.0; 3]),
            hu: vec![0.0; len],
        };
        let options = LungMaskOptions::default();
        assert!(matches!(
            lung_mask(&volume([4, 0, 3], 0, [1.0; 3]), &options),
            Err(LungMaskError::EmptyVolume { dims: [4, 0, 3] })
        ));
        assert!(matches!(
            lung_mask(&volume([4, 5, 3], 59, [1.0; 3]), &options),
            Err(LungMaskError::HuLengthMismatch {
                expected: Some(60),
                len: 59,
                ..
            })
        ));
        assert!(matches!(
            lung_mask(&volume([4, 5, 3], 60, [1.0, f64::NAN, 1.0]), &options),
            Err(LungMaskError::InvalidSpacing { .. })
        ));
        let bad = LungMaskOptions {
            closing_radius_mm: -1.0,
            ..LungMaskOptions::default()
        };
        assert!(matches!(
            lung_mask(&volume([4, 5, 3], 60, [1.0; 3]), &bad),
            Err(LungMaskError::InvalidOption {
                name: "closing_radius_mm",
                ..
            })
        ));
        let mut nan_affine = volume([4, 5, 3], 60, [1.0; 3]);
        nan_affine.affine.0[0][3] = f64::NAN;
        assert!(matches!(
            lung_mask(&nan_affine, &options),
            Err(LungMaskError::InvalidAffine {
                row: 0,
                column: 3,
                ..
            })
        ));
    }
}

//! Cautions about scans the model was not made for.

use crate::affine::Affine;
use crate::lung_mask::LungMask;
use crate::volume::Volume;

/// Thickest slices the model was trained for, mm.
pub const MAX_SLICE_MM: f64 = 5.0;

/// A real chest CT always contains air at about −1000 HU; a scan whose darkest voxel is
/// above this was not stored in HU (typically 8-bit images already windowed to 0…255).
pub const AIR_CHECK_HU: f32 = -500.0;

/// Lung cross-section on the first or last axial slice above which the lungs are taken to
/// continue beyond the scan, mm². Lung apices and bases taper to a few cm² in a complete
/// scan, so 10 cm² means the lung was cut.
pub const CUT_LUNG_AREA_MM2: f64 = 1000.0;

/// Plain-language warnings for `volume`, given its lung mask.
pub fn input_warnings(volume: &Volume, lung: &LungMask) -> Vec<String> {
    let mut warnings = Vec::new();

    let axial = axial_axis(&volume.affine);
    let thickness = volume.spacing_mm[axial];
    if thickness > MAX_SLICE_MM {
        warnings.push(format!(
            "slices are {thickness:.1} mm thick; the model was made for slices of at most \
             {MAX_SLICE_MM} mm, so small infiltrates may be missed"
        ));
    }

    if let Some((lowest, highest)) = volume.hu_range() {
        if lowest > AIR_CHECK_HU {
            warnings.push(format!(
                "intensities range from {lowest} to {highest} with no air near −1000: the \
                 scan does not look like it is in Hounsfield units (for example an 8-bit image \
                 already windowed), so the results are unreliable"
            ));
        }
    }

    let in_plane_mm2: f64 = (0..3)
        .filter(|&a| a != axial)
        .map(|a| volume.spacing_mm[a])
        .product();
    let nk = volume.dims[axial];
    let towards_head = volume.affine.axis_directions()[axial].1 > 0;
    let ends = if towards_head {
        ["bottom", "top"]
    } else {
        ["top", "bottom"]
    };
    for (slice, end) in [(0, ends[0]), (nk.saturating_sub(1), ends[1])] {
        let area_mm2 = lung_voxels_on_slice(lung, axial, slice) as f64 * in_plane_mm2;
        if area_mm2 > CUT_LUNG_AREA_MM2 {
            warnings.push(format!(
                "the lungs reach the {end} of the scan ({:.0} cm² of lung on the last slice): \
                 part of the lungs is missing and the affected share may be wrong",
                area_mm2 / 100.0
            ));
        }
    }
    warnings.dedup();
    warnings
}

/// The voxel axis that runs closest to the head–foot (world z) direction.
pub fn axial_axis(affine: &Affine) -> usize {
    affine
        .axis_directions()
        .iter()
        .position(|&(world, _)| world == 2)
        .unwrap_or(2)
}

fn lung_voxels_on_slice(lung: &LungMask, axis: usize, slice: usize) -> usize {
    let [ni, nj, nk] = lung.dims;
    let mut count = 0;
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                if [i, j, k][axis] == slice && lung.labels[i + ni * (j + nj * k)] != 0 {
                    count += 1;
                }
            }
        }
    }
    count
}

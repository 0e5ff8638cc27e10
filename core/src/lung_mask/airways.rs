//! The trachea and main bronchi: air inside the body that is not lung. Left in the mask they
//! would add tens of mL to one lung and join both lungs into one component.
//!
//! On an axial slice the trachea is a small, round air region near the middle of the body,
//! apart from the lungs. It is looked for on the top slices and then followed down slice by
//! slice: an air region of the next slice that overlaps the airway of the previous one and is
//! at most [`LungMaskOptions::max_airway_area_cm2`] is airway too. Below the carina that
//! follows both main bronchi until each opens into the much larger cross-section of its lung.
//!
//! Limitation: where the airway wall and the pleura between trachea and lung blur into one
//! air region (thick slices, partial volume), the tracing stops there and the rest of the
//! airway stays in that lung.

use super::components::label_2d;
use super::{is_candidate, Grid, LungMaskOptions, AIRWAY, OUTSIDE};

/// Smallest area (cm²) of a trachea cross-section; an adult trachea is 1.5–3 cm².
const MIN_TRACHEA_CM2: f64 = 0.3;

/// The airway lumen is gas (−1000 HU); below −900 HU it stays apart from the partial-volume
/// voxels (−800 … −400 HU) of a wall thinner than a voxel.
const LUMEN_HU: f32 = -900.0;

/// Flags the lumen of the trachea and main bronchi with [`AIRWAY`] and returns how many
/// voxels that is (0 when no trachea is found near the top of the volume).
pub(super) fn mark(
    grid: &Grid,
    state: &mut [u8],
    hu: &[f32],
    options: &LungMaskOptions,
    stack: &mut Vec<u32>,
) -> usize {
    let [nu, nv] = grid.slice_dims();
    let slices = grid.slices();
    let pixel_cm2 = grid.pixel_mm2() / 100.0;
    let max_area = (options.max_airway_area_cm2 / pixel_cm2) as usize;
    let min_area = ((MIN_TRACHEA_CM2 / pixel_cm2).ceil() as usize).max(1);
    let search_slices = (options.trachea_search_mm / grid.spacing_mm[grid.axial]) as usize + 1;
    let u_mm = grid.spacing_mm[grid.plane[0]];

    let mut candidate = vec![false; nu * nv];
    let mut regions: Vec<u32> = Vec::new();
    let mut lumen: Vec<u32> = Vec::new();
    let mut previous = vec![false; nu * nv];
    let mut current = vec![false; nu * nv];
    let mut tracking = false;
    let mut marked = 0;
    for step in 0..slices {
        let z = if grid.superior_sign > 0 {
            slices - 1 - step
        } else {
            step
        };
        for v in 0..nv {
            for u in 0..nu {
                candidate[u + nu * v] = is_candidate(state[grid.slice_voxel(u, v, z)]);
            }
        }
        let areas = label_2d(|p| candidate[p], [nu, nv], &mut regions, stack);
        current.fill(false);

        if tracking {
            let previous_area = previous.iter().filter(|&&b| b).count();
            let mut overlaps = vec![false; areas.len()];
            for (p, &region) in regions.iter().enumerate() {
                if region != 0 && previous[p] {
                    overlaps[region as usize - 1] = true;
                }
            }
            let leaked = |r: usize| overlaps[r] && areas[r] > max_area;
            for (p, &region) in regions.iter().enumerate() {
                current[p] =
                    region != 0 && overlaps[region as usize - 1] && !leaked(region as usize - 1);
            }
            // A region too large to be airway may be the airway joined to a lung through a
            // wall thinner than a voxel (the right paratracheal stripe): its gas-dark lumen
            // still stands apart, and is airway while it keeps about the size it had.
            if (0..areas.len()).any(leaked) {
                let in_leak = |p: usize| {
                    regions[p] != 0
                        && leaked(regions[p] as usize - 1)
                        && hu[grid.slice_voxel(p % nu, p / nu, z)] < LUMEN_HU
                };
                let lumen_areas = label_2d(in_leak, [nu, nv], &mut lumen, stack);
                let mut keep = vec![false; lumen_areas.len()];
                for (p, &l) in lumen.iter().enumerate() {
                    if l != 0 && previous[p] {
                        keep[l as usize - 1] = true;
                    }
                }
                let kept: usize = lumen_areas
                    .iter()
                    .zip(&keep)
                    .filter(|(_, &k)| k)
                    .map(|(a, _)| a)
                    .sum();
                if kept <= previous_area * 3 / 2 + min_area {
                    for (p, &l) in lumen.iter().enumerate() {
                        if l != 0 && keep[l as usize - 1] {
                            current[p] = true;
                        }
                    }
                }
            }
            if !current.contains(&true) {
                break;
            }
        } else {
            if step >= search_slices {
                break;
            }
            let body_u = body_centre_u(grid, state, z);
            let mut u_sum = vec![0.0f64; areas.len()];
            for (p, &region) in regions.iter().enumerate() {
                if region != 0 {
                    u_sum[region as usize - 1] += (p % nu) as f64;
                }
            }
            // The trachea is the largest qualifying region: the oesophagus, when it holds
            // air, lies just behind it with a smaller lumen.
            let trachea = (0..areas.len())
                .filter(|&r| areas[r] >= min_area && areas[r] <= max_area)
                .filter(|&r| {
                    let offset = (u_sum[r] / areas[r] as f64 - body_u).abs() * u_mm;
                    offset <= options.max_trachea_offset_mm
                })
                .max_by_key(|&r| areas[r]);
            let Some(trachea) = trachea else {
                continue;
            };
            for (p, &region) in regions.iter().enumerate() {
                current[p] = region as usize == trachea + 1;
            }
            tracking = true;
        }

        for (p, &airway) in current.iter().enumerate() {
            if airway {
                state[grid.slice_voxel(p % nu, p / nu, z)] |= AIRWAY;
                marked += 1;
            }
        }
        std::mem::swap(&mut previous, &mut current);
    }
    marked
}

/// Mean u of the voxels of slice `z` that are not outside air.
fn body_centre_u(grid: &Grid, state: &[u8], z: usize) -> f64 {
    let [nu, nv] = grid.slice_dims();
    let (mut sum, mut count) = (0.0, 0usize);
    for v in 0..nv {
        for u in 0..nu {
            if state[grid.slice_voxel(u, v, z)] & OUTSIDE == 0 {
                sum += u as f64;
                count += 1;
            }
        }
    }
    if count == 0 {
        (nu as f64 - 1.0) / 2.0
    } else {
        sum / count as f64
    }
}

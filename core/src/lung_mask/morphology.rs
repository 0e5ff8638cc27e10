//! Morphological closing of a lung with a ball in mm: vessels and bronchial walls at the lung
//! border, which no slice encloses, become lung.
//!
//! A ball of radius r is a stack of runs along i: for each offset (Δj, Δk) with
//! (Δj·sj)² + (Δk·sk)² ≤ r², the run |Δi| ≤ w(Δj, Δk) = ⌊√(r² − (Δj·sj)² − (Δk·sk)²) / si⌋.
//! So a voxel lies in the dilation of a mask exactly when, for some (Δj, Δk), the row at that
//! offset has a mask voxel within w of its i. With the distance along i to the nearest mask
//! voxel of every row computed once, the dilation is a few dozen comparisons of whole rows,
//! which the compiler vectorises; far cheaper than a full distance transform.

use super::Grid;

/// Morphological closing of the voxels labelled `lung` with a ball of `radius_mm`: the
/// label-0, non-`forbidden` voxels it adds take the label.
///
/// Works on the bounding box of the lung grown by the radius; the ball is round in mm whatever
/// the spacing. The volume's first and last slices are not treated as background: a lung cut
/// by them stays whole.
pub(super) fn close_ball(
    grid: &Grid,
    labels: &mut [u8],
    lung: u8,
    radius_mm: f64,
    forbidden: &impl Fn(usize) -> bool,
) {
    if radius_mm <= 0.0 {
        return;
    }
    let Some((lo, hi)) = bbox_3d(grid, labels, lung) else {
        return;
    };
    let mut crop_lo = [0; 3];
    let mut crop_dims = [0; 3];
    for axis in 0..3 {
        let pad = (radius_mm / grid.spacing_mm[axis]).ceil() as usize + 1;
        crop_lo[axis] = lo[axis].saturating_sub(pad);
        let crop_hi = (hi[axis] + pad).min(grid.dims[axis] - 1);
        crop_dims[axis] = crop_hi - crop_lo[axis] + 1;
    }
    let to_full = |c: usize| {
        let i = c % crop_dims[0];
        let j = (c / crop_dims[0]) % crop_dims[1];
        let k = c / (crop_dims[0] * crop_dims[1]);
        (crop_lo[0] + i) + grid.strides[1] * (crop_lo[1] + j) + grid.strides[2] * (crop_lo[2] + k)
    };

    let lung_in_crop: Vec<bool> = (0..crop_dims.iter().product())
        .map(|c| labels[to_full(c)] == lung)
        .collect();
    let mut dilated = Vec::new();
    dilate_ball(
        &lung_in_crop,
        crop_dims,
        grid.spacing_mm,
        radius_mm,
        &mut dilated,
    );
    // Eroding the dilation is dilating its complement; voxels beyond the crop count as
    // dilated, so the first and last slices erode nothing.
    let outside: Vec<bool> = dilated.iter().map(|&d| !d).collect();
    let mut opened_outside = Vec::new();
    dilate_ball(
        &outside,
        crop_dims,
        grid.spacing_mm,
        radius_mm,
        &mut opened_outside,
    );
    for (c, &reached) in opened_outside.iter().enumerate() {
        if !reached {
            let index = to_full(c);
            if labels[index] == 0 && !forbidden(index) {
                labels[index] = lung;
            }
        }
    }
}

/// Dilation of `mask` (a `dims` grid, i fastest) by a ball of `radius_mm`, into `out`.
/// Voxels beyond the grid are not in the mask.
fn dilate_ball(
    mask: &[bool],
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    radius_mm: f64,
    out: &mut Vec<bool>,
) {
    let [ni, nj, nk] = dims;
    let r2 = radius_mm * radius_mm * (1.0 + 1e-9);

    // Distance along i (in voxels, at most 255) to the nearest mask voxel of the same row.
    let mut along_i = vec![u8::MAX; mask.len()];
    for (row, line) in mask.chunks_exact(ni).enumerate() {
        let distances = &mut along_i[row * ni..(row + 1) * ni];
        let mut last: Option<usize> = None;
        for (i, &m) in line.iter().enumerate() {
            if m {
                last = Some(i);
            }
            if let Some(q) = last {
                distances[i] = (i - q).min(255) as u8;
            }
        }
        last = None;
        for i in (0..ni).rev() {
            if line[i] {
                last = Some(i);
            }
            if let Some(q) = last {
                distances[i] = distances[i].min((q - i).min(255) as u8);
            }
        }
    }

    // Runs of the ball: (Δj, Δk, half-length along i).
    let reach = |axis: usize| (radius_mm / spacing_mm[axis]).floor() as i64;
    let mut runs: Vec<(i64, i64, u8)> = Vec::new();
    for dk in -reach(2)..=reach(2) {
        for dj in -reach(1)..=reach(1) {
            let rest =
                r2 - (dj as f64 * spacing_mm[1]).powi(2) - (dk as f64 * spacing_mm[2]).powi(2);
            if rest >= 0.0 {
                let half = (rest.sqrt() / spacing_mm[0]).floor().min(254.0) as u8;
                runs.push((dj, dk, half));
            }
        }
    }

    out.clear();
    out.resize(mask.len(), false);
    for k in 0..nk {
        for j in 0..nj {
            let row = &mut out[(j + nj * k) * ni..(j + nj * k + 1) * ni];
            for &(dj, dk, half) in &runs {
                let (sj, sk) = (j as i64 + dj, k as i64 + dk);
                if sj < 0 || sk < 0 || sj >= nj as i64 || sk >= nk as i64 {
                    continue;
                }
                let source = (sj as usize + nj * sk as usize) * ni;
                for (o, &d) in row.iter_mut().zip(&along_i[source..source + ni]) {
                    *o |= d <= half;
                }
            }
        }
    }
}

/// Smallest and largest `(i, j, k)` of the voxels labelled `lung`.
pub(super) fn bbox_3d(grid: &Grid, labels: &[u8], lung: u8) -> Option<([usize; 3], [usize; 3])> {
    let mut bbox: Option<([usize; 3], [usize; 3])> = None;
    for (index, _) in labels.iter().enumerate().filter(|(_, &l)| l == lung) {
        let c = grid.coords(index);
        let (lo, hi) = bbox.get_or_insert((c, c));
        for axis in 0..3 {
            lo[axis] = lo[axis].min(c[axis]);
            hi[axis] = hi[axis].max(c[axis]);
        }
    }
    bbox
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ball_dilation_matches_a_brute_force_distance_check() {
        // A few scattered voxels in a 23 × 17 × 9 grid with anisotropic spacing; a voxel is in
        // the dilation when some mask voxel lies within the radius (checked pair by pair).
        let dims = [23, 17, 9];
        let spacing = [0.7, 1.1, 2.5];
        let n: usize = dims.iter().product();
        let mut mask = vec![false; n];
        let mut state = 12345u64;
        for m in mask.iter_mut() {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *m = (state >> 33) % 97 == 0;
        }
        let coords = |v: usize| [v % 23, (v / 23) % 17, v / (23 * 17)];
        for radius in [1.0, 2.6, 4.0] {
            let mut out = Vec::new();
            dilate_ball(&mask, dims, spacing, radius, &mut out);
            for (v, &got) in out.iter().enumerate() {
                let p = coords(v);
                let expected = (0..n).filter(|&q| mask[q]).any(|q| {
                    let c = coords(q);
                    let d2: f64 = (0..3)
                        .map(|a| ((p[a] as f64 - c[a] as f64) * spacing[a]).powi(2))
                        .sum();
                    d2 <= radius * radius * (1.0 + 1e-9)
                });
                assert_eq!(got, expected, "radius {radius}, voxel {p:?}");
            }
        }
    }
}

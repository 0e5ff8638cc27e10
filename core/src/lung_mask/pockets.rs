//! The holes that vessels, nodules and dense infiltrates leave in the air mask, including
//! dense lung against the chest wall. A consolidation touching the pleura is not enclosed by
//! air on any slice, so plain hole filling misses it, and a closing only fills its middle (a
//! ball rolling along the chest wall reaches deep into a shallow dent). It shows instead as a
//! pocket between the lungs and their convex hull.
//!
//! On each axial slice the convex hull of both lungs together is taken, and the hull minus the
//! lungs splits into 4-connected pockets. The mediastinum (heart, great vessels, spine) is one
//! pocket touching both lungs; a hole inside one lung, or a dent in its outer surface, is a
//! pocket touching only that lung. Holes of any size and dents up to a set area become lung,
//! a dent together with the pixels of chest wall next to it (see [`grow_dents`]).
//!
//! One check in 3-D keeps out the dome of the diaphragm, which the lung base encloses on the
//! slices through its top: a pocket lying for at least half its area on tissue that is open
//! (neither lung nor pocket) on the slice above or below is not lung. The liver below the
//! lowest enclosed slice rejects that slice's pocket, which rejects the one above, and so up to
//! the top of the dome; a pleural infiltrate is lung or pocket above and below.
//!
//! Limitation: a pleural infiltrate that reaches the paravertebral or mediastinal side of a
//! lung joins the mediastinal pocket and is not filled; large vessels that run up or down from
//! the hilum are rejected like the dome and stay out of the mask, beyond what the closing adds.

use super::components::{for_each_neighbour_4, label_2d};
use super::Grid;

/// Added to a lung's label while its pocket is only a candidate.
const CANDIDATE: u8 = 16;
/// Added instead of [`CANDIDATE`] for a candidate dent in the lung surface of at least
/// [`MIN_DENT_MM2`].
const DENT: u8 = 32;
/// Smallest dent (mm²) that takes the chest-wall pixels next to it (see [`grow_dents`]); the
/// staircase of a voxelised lung surface makes smaller dents everywhere.
const MIN_DENT_MM2: f64 = 50.0;
/// A pocket holding this much air (mm²) that belongs to no lung is not lung: it is the
/// oesophagus (which the right lung wraps in the azygo-oesophageal recess) or bowel gas.
const MAX_POCKET_AIR_MM2: f64 = 100.0;

/// Fills, on every axial slice, the hull pockets that touch exactly one lung, hold no
/// `forbidden` voxel and less than [`MAX_POCKET_AIR_MM2`] of air (`is_air`) outside the
/// lungs, are enclosed by that lung or have at most `max_pocket_px` pixels, and do not open
/// onto tissue above or below (see the module documentation).
pub(super) fn fill_pockets(
    grid: &Grid,
    labels: &mut [u8],
    forbidden: &impl Fn(usize) -> bool,
    is_air: &impl Fn(usize) -> bool,
    max_pocket_px: usize,
    stack: &mut Vec<u32>,
) {
    let mut scratch = Scratch::default();
    let min_dent_px = (MIN_DENT_MM2 / grid.pixel_mm2()).ceil() as usize;
    let max_air_px = (MAX_POCKET_AIR_MM2 / grid.pixel_mm2()).ceil() as usize;
    let windows: Vec<Option<[usize; 4]>> = (0..grid.slices())
        .map(|z| {
            let sizes = [max_pocket_px, min_dent_px, max_air_px];
            mark_candidates(
                grid,
                labels,
                forbidden,
                is_air,
                sizes,
                z,
                &mut scratch,
                stack,
            )
        })
        .collect();
    // Rejection spreads one slice per pass along the direction of the sweep, so sweeps go up
    // and down in turn until nothing changes; a slice is looked at again only when a
    // neighbour changed.
    let slices = grid.slices();
    let mut dirty = vec![true; slices];
    let mut upwards = true;
    while dirty.contains(&true) {
        let mut next = vec![false; slices];
        for step in 0..slices {
            let z = if upwards { step } else { slices - 1 - step };
            let Some(window) = windows[z].filter(|_| dirty[z]) else {
                continue;
            };
            if reject_open(grid, labels, z, window, &mut scratch.regions, stack) {
                next[z.saturating_sub(1)] = true;
                next[(z + 1).min(slices - 1)] = true;
            }
        }
        dirty = next;
        upwards = !upwards;
    }
    for (z, window) in windows.iter().enumerate() {
        if let Some(window) = window {
            grow_dents(grid, labels, forbidden, z, *window);
        }
    }
    for label in labels.iter_mut().filter(|l| **l > CANDIDATE) {
        *label -= if *label > DENT { DENT } else { CANDIDATE };
    }
}

/// Gives each dent of slice `z` that survived the 3-D check the label-0 pixels next to it.
///
/// Where the lung surface curves, the hull's chord across a dent cuts off a sliver under the
/// pleura, up to a pixel thick for a dent 30 mm wide; one pixel of growth into the chest wall
/// gets it back, at the cost of at most one pixel of wall along the dent.
fn grow_dents(
    grid: &Grid,
    labels: &mut [u8],
    forbidden: &impl Fn(usize) -> bool,
    z: usize,
    [u0, u1, v0, v1]: [usize; 4],
) {
    let [nu, nv] = grid.slice_dims();
    for v in v0..=v1 {
        for u in u0..=u1 {
            let label = labels[grid.slice_voxel(u, v, z)];
            if label <= DENT {
                continue;
            }
            let lung = label - DENT;
            let mut grow = |u: usize, v: usize| {
                let index = grid.slice_voxel(u, v, z);
                if labels[index] == 0 && !forbidden(index) {
                    labels[index] = lung;
                }
            };
            if u > 0 {
                grow(u - 1, v);
            }
            if u + 1 < nu {
                grow(u + 1, v);
            }
            if v > 0 {
                grow(u, v - 1);
            }
            if v + 1 < nv {
                grow(u, v + 1);
            }
        }
    }
}

#[derive(Default)]
struct Scratch {
    window: Vec<u8>,
    inside: Vec<bool>,
    regions: Vec<u32>,
    corners: Vec<(i64, i64)>,
}

/// Marks the pockets of slice `z` that may be lung with `CANDIDATE + lung` (`DENT + lung`
/// for dents of at least `min_dent_px` pixels); returns the in-plane window
/// `[u_min, u_max, v_min, v_max]` holding them, if there is any.
#[allow(clippy::too_many_arguments)]
fn mark_candidates(
    grid: &Grid,
    labels: &mut [u8],
    forbidden: &impl Fn(usize) -> bool,
    is_air: &impl Fn(usize) -> bool,
    [max_pocket_px, min_dent_px, max_air_px]: [usize; 3],
    z: usize,
    scratch: &mut Scratch,
    stack: &mut Vec<u32>,
) -> Option<[usize; 4]> {
    let Scratch {
        window,
        inside,
        regions,
        corners,
    } = scratch;
    let [u0, u1, v0, v1] = lung_bbox(grid, labels, z)?;
    let (wu, wv) = (u1 - u0 + 1, v1 - v0 + 1);
    window.clear();
    for v in v0..=v1 {
        for u in u0..=u1 {
            window.push(labels[grid.slice_voxel(u, v, z)]);
        }
    }

    // Corners of the lung border pixels, in half-pixel units so that they are integers.
    corners.clear();
    for v in 0..wv {
        for u in 0..wu {
            let p = u + wu * v;
            if window[p] == 0 {
                continue;
            }
            let border = u == 0
                || v == 0
                || u + 1 == wu
                || v + 1 == wv
                || window[p - 1] == 0
                || window[p + 1] == 0
                || window[p - wu] == 0
                || window[p + wu] == 0;
            if border {
                let (x, y) = (2 * u as i64, 2 * v as i64);
                corners.extend([
                    (x - 1, y - 1),
                    (x + 1, y - 1),
                    (x - 1, y + 1),
                    (x + 1, y + 1),
                ]);
            }
        }
    }
    let hull = convex_hull(corners);
    rasterize(&hull, [wu, wv], inside);

    let areas = label_2d(|p| inside[p] && window[p] == 0, [wu, wv], regions, stack);
    let mut touches = vec![0u8; areas.len()];
    let mut enclosed = vec![true; areas.len()];
    let mut rejected = vec![false; areas.len()];
    let mut air = vec![0usize; areas.len()];
    for (p, &region) in regions.iter().enumerate() {
        let region = region as usize;
        if region == 0 {
            continue;
        }
        let r = region - 1;
        let (u, v) = (p % wu, p / wu);
        let index = grid.slice_voxel(u0 + u, v0 + v, z);
        if forbidden(index) {
            rejected[r] = true;
        }
        if is_air(index) {
            air[r] += 1;
        }
        if u == 0 || v == 0 || u + 1 == wu || v + 1 == wv {
            enclosed[r] = false;
        }
        let mut neighbour = |q: usize| {
            touches[r] |= window[q];
            if window[q] == 0 && !inside[q] {
                enclosed[r] = false;
            }
        };
        for_each_neighbour_4(p, wu, wv, &mut neighbour);
    }
    let accepted = |r: usize| {
        // `touches` ORs the labels 1 and 2: exactly one lung gives 1 or 2, both give 3.
        let one_lung = touches[r] == 1 || touches[r] == 2;
        one_lung
            && !rejected[r]
            && air[r] < max_air_px
            && (enclosed[r] || areas[r] <= max_pocket_px)
    };
    let mut any = false;
    for p in 0..wu * wv {
        let region = regions[p] as usize;
        if region == 0 || !accepted(region - 1) {
            continue;
        }
        let r = region - 1;
        let code = if !enclosed[r] && areas[r] >= min_dent_px {
            DENT
        } else {
            CANDIDATE
        };
        labels[grid.slice_voxel(u0 + p % wu, v0 + p / wu, z)] = code + touches[r];
        any = true;
    }
    any.then_some([u0, u1, v0, v1])
}

/// Drops the candidate pockets of slice `z` that lie for at least half their area on open
/// tissue (label 0) of the slice above or below; returns whether any was dropped.
fn reject_open(
    grid: &Grid,
    labels: &mut [u8],
    z: usize,
    window: [usize; 4],
    regions: &mut Vec<u32>,
    stack: &mut Vec<u32>,
) -> bool {
    let [u0, u1, v0, v1] = window;
    let wu = u1 - u0 + 1;
    let at = |p: usize, z: usize| grid.slice_voxel(u0 + p % wu, v0 + p / wu, z);
    let areas = label_2d(
        |p| labels[at(p, z)] > CANDIDATE,
        [wu, v1 - v0 + 1],
        regions,
        stack,
    );
    if areas.is_empty() {
        return false;
    }
    let neighbours: Vec<usize> = [z.checked_sub(1), Some(z + 1).filter(|&n| n < grid.slices())]
        .into_iter()
        .flatten()
        .collect();
    let mut open = vec![[0usize; 2]; areas.len()];
    for (p, &region) in regions.iter().enumerate() {
        if region == 0 {
            continue;
        }
        for (side, &n) in neighbours.iter().enumerate() {
            if labels[at(p, n)] == 0 {
                open[region as usize - 1][side] += 1;
            }
        }
    }
    let drop: Vec<bool> = areas
        .iter()
        .zip(&open)
        .map(|(&area, o)| 2 * o[0] >= area || 2 * o[1] >= area)
        .collect();
    if !drop.contains(&true) {
        return false;
    }
    for (p, &region) in regions.iter().enumerate() {
        if region != 0 && drop[region as usize - 1] {
            labels[at(p, z)] = 0;
        }
    }
    true
}

/// `[u_min, u_max, v_min, v_max]` of the lung pixels (either label) of slice `z`.
fn lung_bbox(grid: &Grid, labels: &[u8], z: usize) -> Option<[usize; 4]> {
    let [nu, nv] = grid.slice_dims();
    let mut bbox: Option<[usize; 4]> = None;
    for v in 0..nv {
        for u in 0..nu {
            if labels[grid.slice_voxel(u, v, z)] != 0 {
                let b = bbox.get_or_insert([u, u, v, v]);
                b[0] = b[0].min(u);
                b[1] = b[1].max(u);
                b[2] = b[2].min(v);
                b[3] = b[3].max(v);
            }
        }
    }
    bbox
}

/// Convex hull of integer points (Andrew's monotone chain), counter-clockwise, without
/// collinear points. Sorts and deduplicates `points` in place.
fn convex_hull(points: &mut Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    points.sort_unstable();
    points.dedup();
    if points.len() < 3 {
        return points.clone();
    }
    let cross = |o: (i64, i64), a: (i64, i64), b: (i64, i64)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut hull: Vec<(i64, i64)> = Vec::with_capacity(2 * points.len());
    for &p in points.iter() {
        while hull.len() >= 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0 {
            hull.pop();
        }
        hull.push(p);
    }
    let lower_len = hull.len() + 1;
    for &p in points.iter().rev().skip(1) {
        while hull.len() >= lower_len && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0 {
            hull.pop();
        }
        hull.push(p);
    }
    hull.pop();
    hull
}

/// `inside[u + wu·v]`: whether the centre `(2u, 2v)` (half-pixel units) of each pixel of a
/// `wu × wv` window lies in the convex polygon `hull` (boundary included).
fn rasterize(hull: &[(i64, i64)], [wu, wv]: [usize; 2], inside: &mut Vec<bool>) {
    inside.clear();
    inside.resize(wu * wv, false);
    if hull.len() < 3 {
        return;
    }
    for v in 0..wv {
        let y = 2.0 * v as f64;
        let mut span: Option<(f64, f64)> = None;
        for (e, &a) in hull.iter().enumerate() {
            let b = hull[(e + 1) % hull.len()];
            let (ya, yb) = (a.1 as f64, b.1 as f64);
            if y < ya.min(yb) || y > ya.max(yb) {
                continue;
            }
            let xs: [f64; 2] = if ya == yb {
                [a.0 as f64, b.0 as f64]
            } else {
                let x = a.0 as f64 + (y - ya) * (b.0 - a.0) as f64 / (yb - ya);
                [x, x]
            };
            for x in xs {
                let s = span.get_or_insert((x, x));
                s.0 = s.0.min(x);
                s.1 = s.1.max(x);
            }
        }
        let Some((x0, x1)) = span else {
            continue;
        };
        let first = (x0 / 2.0 - 1e-9).ceil().max(0.0) as usize;
        let last = (x1 / 2.0 + 1e-9).floor();
        if last < 0.0 {
            continue;
        }
        for u in first..=(last as usize).min(wu - 1) {
            inside[u + wu * v] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hull_of_a_square_with_inner_points_is_its_corners() {
        let mut points = vec![(0, 0), (4, 0), (4, 4), (0, 4), (2, 2), (1, 3), (2, 0)];
        let hull = convex_hull(&mut points);
        assert_eq!(hull, vec![(0, 0), (4, 0), (4, 4), (0, 4)]);
    }

    #[test]
    fn rasterized_triangle_holds_the_pixels_under_its_hypotenuse() {
        // Triangle (0,0), (8,0), (0,8) in half-pixel units: pixel centres (2u, 2v) with
        // u + v ≤ 4 and u, v ≥ 0, i.e. 5 + 4 + 3 + 2 + 1 = 15 pixels.
        let hull = vec![(0, 0), (8, 0), (0, 8)];
        let mut inside = Vec::new();
        rasterize(&hull, [6, 6], &mut inside);
        assert_eq!(inside.iter().filter(|&&b| b).count(), 15);
        assert!(inside[4] && !inside[5] && inside[4 * 6]);
    }
}

//! Parting lungs that form one air component: they touch at the anterior (or posterior)
//! junction line, where the four pleural layers between them are thinner than a voxel, or
//! are joined through airways the tracing did not remove.
//!
//! The component is eroded ever deeper (a threshold on its distance transform, in mm) until
//! two large cores side by side along world x appear; every voxel then goes to the core that
//! reaches it first when both grow back in order of decreasing depth, so the border between
//! the lungs settles on the narrowest part of the junction (a watershed of the distance map).
//! The erosion runs on a grid of about [`COARSE_MM`] in-plane, which keeps its memory small.

use super::components::{label_2d, reach_from_border};
use super::{Grid, LungMaskOptions, LEFT_LUNG, RIGHT_LUNG};
use std::collections::VecDeque;

use crate::distance_transform::squared_distance_transform_into;
use crate::volume::Volume;

use super::components::Component;

/// Label of the voxels of the component being split, before they are given a side.
pub(super) const UNASSIGNED: u8 = 255;

/// Target in-plane voxel size (mm) of the grid on which the erosion depth is measured.
const COARSE_MM: f64 = 2.0;

/// Largest area (cm²) of an enclosed hole filled before measuring depth: intrapulmonary
/// vessels, which would otherwise make the lung look thin, but never the mediastinum
/// enclosed where both junction lines are closed.
const VESSEL_HOLE_CM2: f64 = 3.0;

/// Resolution (mm) of the depth order in which the cores grow back.
const DEPTH_STEP_MM: f64 = 0.25;

/// Tries to split the voxels labelled [`UNASSIGNED`] (the 6-connected `component`) into a
/// right and a left lung; on success they are relabelled [`RIGHT_LUNG`] and [`LEFT_LUNG`].
pub(super) fn split_joined(
    grid: &Grid,
    volume: &Volume,
    labels: &mut [u8],
    component: &Component,
    options: &LungMaskOptions,
    stack: &mut Vec<u32>,
) -> bool {
    let coarse = CoarseGrid::new(grid, component);
    let cgrid = coarse.grid;
    let mut mask = coarse.downsample(grid, labels);
    fill_small_holes(&cgrid, &mut mask, stack);

    let mut depth2 = Vec::new();
    squared_distance_transform_into(|c| mask[c] == 0, cgrid.dims, cgrid.spacing_mm, &mut depth2);

    let step = cgrid.spacing_mm[cgrid.plane[0]].min(cgrid.spacing_mm[cgrid.plane[1]]);
    let world = |coarse_voxel: [f64; 3]| volume.affine.apply(coarse.full_voxel(coarse_voxel));
    let mut cores = Vec::new();
    let mut depth = step;
    let seeds = loop {
        if depth > options.max_split_depth_mm {
            return false;
        }
        let t2 = depth * depth;
        let found = label_coarse(&cgrid, |c| depth2[c] > t2, &mut cores, stack);
        if found.is_empty() {
            return false;
        }
        let mut order: Vec<usize> = (0..found.len()).collect();
        order.sort_by(|&a, &b| found[b].0.cmp(&found[a].0));
        if order.len() >= 2 {
            let (a, b) = (&found[order[0]], &found[order[1]]);
            let wa = world(a.1.map(|s| s / a.0 as f64));
            let wb = world(b.1.map(|s| s / b.0 as f64));
            let side_by_side =
                (wa[0] - wb[0]).abs() > (wa[1] - wb[1]).abs().max((wa[2] - wb[2]).abs());
            if b.0 * 10 >= a.0 && side_by_side {
                let (right, left) = if wa[0] > wb[0] {
                    (order[0], order[1])
                } else {
                    (order[1], order[0])
                };
                break [(right as u32 + 1, RIGHT_LUNG), (left as u32 + 1, LEFT_LUNG)];
            }
        }
        depth += step;
    };
    tracing::debug!("joined lungs part at an erosion depth of {depth:.1} mm");

    let sides = grow_back(&cgrid, &mask, &depth2, &cores, seeds);
    coarse.upsample(grid, labels, &sides);
    true
}

/// Voxels labelled [`UNASSIGNED`] on the patient's right and left of the plane world
/// x = `centre_x`.
pub(super) fn count_sides(
    grid: &Grid,
    volume: &Volume,
    labels: &[u8],
    centre_x: f64,
) -> (usize, usize) {
    let (mut right, mut left) = (0, 0);
    for (index, _) in labels.iter().enumerate().filter(|(_, &l)| l == UNASSIGNED) {
        if world_x(grid, volume, index) > centre_x {
            right += 1;
        } else {
            left += 1;
        }
    }
    (right, left)
}

/// Gives every [`UNASSIGNED`] voxel the side of the plane world x = `centre_x` it lies on.
pub(super) fn split_at_plane(grid: &Grid, volume: &Volume, labels: &mut [u8], centre_x: f64) {
    for (index, label) in labels.iter_mut().enumerate() {
        if *label == UNASSIGNED {
            let right = world_x(grid, volume, index) > centre_x;
            *label = if right { RIGHT_LUNG } else { LEFT_LUNG };
        }
    }
}

fn world_x(grid: &Grid, volume: &Volume, index: usize) -> f64 {
    let c = grid.coords(index);
    volume.affine.apply([c[0] as f64, c[1] as f64, c[2] as f64])[0]
}

/// The component's bounding box on a coarser grid: `factor` full voxels per coarse voxel
/// along each axis, and one coarse voxel of margin in-plane so that the distance transform
/// sees background all around.
struct CoarseGrid {
    grid: Grid,
    factor: [usize; 3],
    margin: [usize; 3],
    lo: [usize; 3],
    hi: [usize; 3],
}

impl CoarseGrid {
    fn new(grid: &Grid, component: &Component) -> CoarseGrid {
        let mut factor = [1; 3];
        let mut margin = [0; 3];
        for axis in grid.plane {
            factor[axis] = ((COARSE_MM / grid.spacing_mm[axis]).floor() as usize).max(1);
            margin[axis] = 1;
        }
        let mut dims = [0; 3];
        let mut spacing = [0.0; 3];
        for axis in 0..3 {
            let extent = component.hi[axis] - component.lo[axis] + 1;
            dims[axis] = extent.div_ceil(factor[axis]) + 2 * margin[axis];
            spacing[axis] = grid.spacing_mm[axis] * factor[axis] as f64;
        }
        CoarseGrid {
            grid: Grid::with_axes(dims, spacing, grid.axial, grid.plane, grid.superior_sign),
            factor,
            margin,
            lo: component.lo,
            hi: component.hi,
        }
    }

    /// Full-grid voxel position of the centre of coarse position `q`.
    fn full_voxel(&self, q: [f64; 3]) -> [f64; 3] {
        let mut c = [0.0; 3];
        for axis in 0..3 {
            let f = self.factor[axis] as f64;
            c[axis] =
                self.lo[axis] as f64 + (q[axis] - self.margin[axis] as f64) * f + (f - 1.0) / 2.0;
        }
        c
    }

    /// Calls `f(full index, coarse index)` for every voxel of the bounding box.
    fn for_each_voxel(&self, grid: &Grid, mut f: impl FnMut(usize, usize)) {
        let [cd0, cd1, _] = self.grid.dims;
        let coarse =
            |axis: usize, c: usize| (c - self.lo[axis]) / self.factor[axis] + self.margin[axis];
        let along_i: Vec<usize> = (self.lo[0]..=self.hi[0]).map(|i| coarse(0, i)).collect();
        for k in self.lo[2]..=self.hi[2] {
            let ck = coarse(2, k);
            for j in self.lo[1]..=self.hi[1] {
                let row = grid.strides[1] * j + grid.strides[2] * k;
                let coarse_row = cd0 * (coarse(1, j) + cd1 * ck);
                for (offset, &ci) in along_i.iter().enumerate() {
                    f(row + self.lo[0] + offset, coarse_row + ci);
                }
            }
        }
    }

    /// 1 where at least half of a coarse voxel's full voxels are [`UNASSIGNED`].
    fn downsample(&self, grid: &Grid, labels: &[u8]) -> Vec<u8> {
        let mut count = vec![0u16; self.grid.len()];
        self.for_each_voxel(grid, |full, coarse| {
            if labels[full] == UNASSIGNED {
                count[coarse] += 1;
            }
        });
        let block = self.factor.iter().product::<usize>();
        count
            .iter()
            .map(|&n| u8::from(2 * n as usize >= block))
            .collect()
    }

    /// Gives each [`UNASSIGNED`] full voxel the side of its coarse voxel, then grows the sides
    /// into the voxels whose coarse voxel has none; voxels no side reaches are dropped.
    fn upsample(&self, grid: &Grid, labels: &mut [u8], sides: &[u8]) {
        let mut pending: Vec<u32> = Vec::new();
        self.for_each_voxel(grid, |full, coarse| {
            if labels[full] == UNASSIGNED {
                if sides[coarse] != 0 {
                    labels[full] = sides[coarse];
                } else {
                    pending.push(full as u32);
                }
            }
        });
        // The leftovers are a thin shell at the component's border: a few passes of taking a
        // neighbour's side reach them all.
        loop {
            let before = pending.len();
            pending.retain(|&index| {
                let index = index as usize;
                let mut side = 0;
                grid.for_each_neighbour(index, |n| {
                    if side == 0 && (labels[n] == RIGHT_LUNG || labels[n] == LEFT_LUNG) {
                        side = labels[n];
                    }
                });
                if side != 0 {
                    labels[index] = side;
                }
                side == 0
            });
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        for index in pending {
            labels[index as usize] = 0;
        }
    }
}

/// Fills enclosed holes of at most [`VESSEL_HOLE_CM2`] on each axial slice of `mask`.
fn fill_small_holes(grid: &Grid, mask: &mut [u8], stack: &mut Vec<u32>) {
    let [nu, nv] = grid.slice_dims();
    let max_px = (VESSEL_HOLE_CM2 * 100.0 / grid.pixel_mm2()) as usize;
    let mut slice = vec![0u8; nu * nv];
    let (mut reached, mut holes) = (Vec::new(), Vec::new());
    for z in 0..grid.slices() {
        for v in 0..nv {
            for u in 0..nu {
                slice[u + nu * v] = mask[grid.slice_voxel(u, v, z)];
            }
        }
        reach_from_border(|p| slice[p] == 0, [nu, nv], &mut reached, stack);
        let areas = label_2d(
            |p| slice[p] == 0 && reached[p] == 0,
            [nu, nv],
            &mut holes,
            stack,
        );
        for (p, &hole) in holes.iter().enumerate() {
            if hole != 0 && areas[hole as usize - 1] <= max_px {
                mask[grid.slice_voxel(p % nu, p / nu, z)] = 1;
            }
        }
    }
}

/// 6-connected components of the coarse voxels passing `member`: `labels[c]` becomes
/// 1, 2, … (0 elsewhere); returns each component's voxel count and sum of coarse positions.
fn label_coarse(
    grid: &Grid,
    member: impl Fn(usize) -> bool,
    labels: &mut Vec<u32>,
    stack: &mut Vec<u32>,
) -> Vec<(usize, [f64; 3])> {
    labels.clear();
    labels.resize(grid.len(), 0);
    let mut found = Vec::new();
    for seed in 0..grid.len() {
        if labels[seed] != 0 || !member(seed) {
            continue;
        }
        let id = found.len() as u32 + 1;
        let (mut count, mut sum) = (0usize, [0.0f64; 3]);
        labels[seed] = id;
        stack.push(seed as u32);
        while let Some(index) = stack.pop() {
            let index = index as usize;
            count += 1;
            let c = grid.coords(index);
            for axis in 0..3 {
                sum[axis] += c[axis] as f64;
            }
            grid.for_each_neighbour(index, |n| {
                if labels[n] == 0 && member(n) {
                    labels[n] = id;
                    stack.push(n as u32);
                }
            });
        }
        found.push((count, sum));
    }
    found
}

/// Grows the two cores (`cores[c]` equal to a seed's id) back over `mask`, deepest voxels
/// first; returns the side of every coarse voxel (0 where none arrived).
fn grow_back(
    grid: &Grid,
    mask: &[u8],
    depth2: &[f64],
    cores: &[u32],
    seeds: [(u32, u8); 2],
) -> Vec<u8> {
    let bucket_of = |c: usize| (depth2[c].sqrt() / DEPTH_STEP_MM) as usize;
    let deepest = depth2
        .iter()
        .filter(|d| d.is_finite())
        .fold(0.0f64, |a, &b| a.max(b));
    // First in, first out within a depth level: both cores cross a junction of even depth at
    // the same pace and meet in its middle.
    let mut buckets: Vec<VecDeque<u32>> =
        vec![VecDeque::new(); (deepest.sqrt() / DEPTH_STEP_MM) as usize + 1];
    let mut sides = vec![0u8; grid.len()];
    for (c, &core) in cores.iter().enumerate() {
        for (id, side) in seeds {
            if core == id {
                sides[c] = side;
                buckets[bucket_of(c)].push_back(c as u32);
            }
        }
    }
    let mut level = buckets.len() - 1;
    loop {
        let Some(c) = buckets[level].pop_front() else {
            if level == 0 {
                break;
            }
            level -= 1;
            continue;
        };
        let c = c as usize;
        let side = sides[c];
        grid.for_each_neighbour(c, |n| {
            if mask[n] != 0 && sides[n] == 0 {
                sides[n] = side;
                let b = bucket_of(n);
                buckets[b].push_back(n as u32);
                level = level.max(b);
            }
        });
    }
    sides
}

//! Iterative flood fills and connected components, in 3-D (6-connected voxels) and on axial
//! slices (4-connected pixels). Every fill keeps its own explicit stack of `u32` indices:
//! a lung is millions of voxels, far deeper than any call stack.

use super::{Grid, TAKEN};

/// One 6-connected component of the working state.
#[derive(Debug, Clone)]
pub(super) struct Component {
    /// One voxel of the component, from which it can be flooded again.
    pub seed: usize,
    /// Number of voxels.
    pub voxels: usize,
    /// Sum over its voxels of `(i, j, k)`.
    pub coord_sum: [f64; 3],
    /// Smallest `(i, j, k)` over its voxels.
    pub lo: [usize; 3],
    /// Largest `(i, j, k)` over its voxels.
    pub hi: [usize; 3],
    /// Median HU of its voxels, to 1 HU.
    pub median_hu: f32,
}

impl Component {
    /// Mean voxel position `(i, j, k)`.
    pub fn centroid_voxel(&self) -> [f64; 3] {
        self.coord_sum.map(|s| s / self.voxels.max(1) as f64)
    }
}

/// Floods from the seed voxels on `stack` through the 6-connected voxels whose state passes
/// `passable`, flagging each with `mark` and handing it to `visit` with its `(i, j, k)`. A
/// seed already flagged, or not passable, is skipped.
///
/// Scanline order: each step fills a whole run along i (contiguous in memory) and pushes one
/// seed per run of open voxels on the four neighbouring rows, so the stack stays small and
/// the memory is read in order.
pub(super) fn flood(
    grid: &Grid,
    state: &mut [u8],
    stack: &mut Vec<u32>,
    mark: u8,
    passable: impl Fn(u8) -> bool,
    mut visit: impl FnMut(usize, [usize; 3]),
) {
    let [ni, nj, nk] = grid.dims;
    let open = |s: u8| s & mark == 0 && passable(s);
    while let Some(seed) = stack.pop() {
        let seed = seed as usize;
        if !open(state[seed]) {
            continue;
        }
        let [i, j, k] = grid.coords(seed);
        let row = seed - i;
        let (mut lo, mut hi) = (i, i);
        while lo > 0 && open(state[row + lo - 1]) {
            lo -= 1;
        }
        while hi + 1 < ni && open(state[row + hi + 1]) {
            hi += 1;
        }
        for x in lo..=hi {
            state[row + x] |= mark;
            visit(row + x, [x, j, k]);
        }

        let mut scan = |neighbour_row: usize| {
            let mut x = lo;
            while x <= hi {
                if open(state[neighbour_row + x]) {
                    stack.push((neighbour_row + x) as u32);
                    while x <= hi && open(state[neighbour_row + x]) {
                        x += 1;
                    }
                } else {
                    x += 1;
                }
            }
        };
        if j > 0 {
            scan(row - ni);
        }
        if j + 1 < nj {
            scan(row + ni);
        }
        if k > 0 {
            scan(row - ni * nj);
        }
        if k + 1 < nk {
            scan(row + ni * nj);
        }
    }
}

/// The 6-connected components of the voxels whose state passes `member`, flagging every
/// member voxel with `mark` (which must be clear beforehand). `hu` gives each component's
/// median.
pub(super) fn label_3d(
    grid: &Grid,
    state: &mut [u8],
    hu: &[f32],
    stack: &mut Vec<u32>,
    mark: u8,
    member: impl Fn(u8) -> bool + Copy,
) -> Vec<Component> {
    let mut found = Vec::new();
    let mut histogram = Histogram::new();
    for seed in 0..state.len() {
        let s = state[seed];
        if s & mark != 0 || !member(s) {
            continue;
        }
        let mut component = Component {
            seed,
            voxels: 0,
            coord_sum: [0.0; 3],
            lo: [usize::MAX; 3],
            hi: [0; 3],
            median_hu: 0.0,
        };
        stack.push(seed as u32);
        flood(grid, state, stack, mark, member, |index, c| {
            component.voxels += 1;
            histogram.add(hu[index]);
            for (axis, &x) in c.iter().enumerate() {
                component.coord_sum[axis] += x as f64;
                component.lo[axis] = component.lo[axis].min(x);
                component.hi[axis] = component.hi[axis].max(x);
            }
        });
        component.median_hu = histogram.take_median();
        found.push(component);
    }
    found
}

/// A histogram of HU in 1 HU bins from −1024 (everything lower counts as −1024) to +1024,
/// emptied by [`Histogram::take_median`] in time proportional to the bins it used.
struct Histogram {
    counts: Vec<u32>,
    used: Vec<u16>,
    total: usize,
}

impl Histogram {
    const LOWEST: f32 = -1024.0;

    fn new() -> Histogram {
        Histogram {
            counts: vec![0; 2049],
            used: Vec::new(),
            total: 0,
        }
    }

    fn add(&mut self, hu: f32) {
        let bin = ((hu - Self::LOWEST).max(0.0) as usize).min(2048);
        if self.counts[bin] == 0 {
            self.used.push(bin as u16);
        }
        self.counts[bin] += 1;
        self.total += 1;
    }

    /// The median (to 1 HU) of what was added since the last call, which is then forgotten.
    fn take_median(&mut self) -> f32 {
        self.used.sort_unstable();
        let mut median = Self::LOWEST;
        let mut below = 0;
        for &bin in &self.used {
            below += self.counts[bin as usize] as usize;
            if 2 * below >= self.total {
                median = Self::LOWEST + f32::from(bin);
                break;
            }
        }
        for &bin in &self.used {
            self.counts[bin as usize] = 0;
        }
        self.used.clear();
        self.total = 0;
        median
    }
}

/// Writes `label` into every voxel of the lung-candidate component containing `seed`.
pub(super) fn extract(
    grid: &Grid,
    state: &mut [u8],
    labels: &mut [u8],
    stack: &mut Vec<u32>,
    seed: usize,
    label: u8,
) {
    stack.push(seed as u32);
    flood(
        grid,
        state,
        stack,
        TAKEN,
        super::is_candidate,
        |index, _| labels[index] = label,
    );
}

/// Labels the 4-connected regions of the pixels of an `nu × nv` slice (index `u + nu·v`)
/// for which `member` holds: `labels[p]` becomes 1, 2, … for members and 0 elsewhere.
/// Returns the number of pixels of each region, region `r` at position `r − 1`.
pub(super) fn label_2d(
    member: impl Fn(usize) -> bool,
    [nu, nv]: [usize; 2],
    labels: &mut Vec<u32>,
    stack: &mut Vec<u32>,
) -> Vec<usize> {
    labels.clear();
    labels.resize(nu * nv, 0);
    let mut areas = Vec::new();
    for seed in 0..nu * nv {
        if labels[seed] != 0 || !member(seed) {
            continue;
        }
        let region = areas.len() as u32 + 1;
        let mut area = 0;
        labels[seed] = region;
        stack.push(seed as u32);
        while let Some(p) = stack.pop() {
            let p = p as usize;
            area += 1;
            let mut visit = |q: usize| {
                if labels[q] == 0 && member(q) {
                    labels[q] = region;
                    stack.push(q as u32);
                }
            };
            for_each_neighbour_4(p, nu, nv, &mut visit);
        }
        areas.push(area);
    }
    areas
}

/// Marks in `reached` (1) the pixels for which `background` holds that are 4-connected to
/// the border of the `nu × nv` slice through background pixels. Background pixels left at 0
/// are enclosed: holes.
pub(super) fn reach_from_border(
    background: impl Fn(usize) -> bool,
    [nu, nv]: [usize; 2],
    reached: &mut Vec<u8>,
    stack: &mut Vec<u32>,
) {
    reached.clear();
    reached.resize(nu * nv, 0);
    for v in 0..nv {
        for u in 0..nu {
            let p = u + nu * v;
            if (u == 0 || v == 0 || u + 1 == nu || v + 1 == nv) && background(p) {
                reached[p] = 1;
                stack.push(p as u32);
            }
        }
    }
    while let Some(p) = stack.pop() {
        let p = p as usize;
        let mut visit = |q: usize| {
            if reached[q] == 0 && background(q) {
                reached[q] = 1;
                stack.push(q as u32);
            }
        };
        for_each_neighbour_4(p, nu, nv, &mut visit);
    }
}

/// Calls `f` with each in-plane 4-neighbour of pixel `p` on a slice `nu` pixels wide and `nv`
/// high (index `u + nu * v`), skipping those beyond the slice's edges.
#[inline]
pub(super) fn for_each_neighbour_4(p: usize, nu: usize, nv: usize, f: &mut impl FnMut(usize)) {
    let (u, v) = (p % nu, p / nu);
    if u > 0 {
        f(p - 1);
    }
    if u + 1 < nu {
        f(p + 1);
    }
    if v > 0 {
        f(p - nu);
    }
    if v + 1 < nv {
        f(p + nu);
    }
}

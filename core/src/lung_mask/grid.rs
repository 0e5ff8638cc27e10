//! The voxel grid as the lung mask walks it: which voxel axis is axial, which in-plane axis
//! runs along world x, and fast conversions between flat indices and `(i, j, k)`.

/// The voxel grid as the pipeline walks it: which voxel axis is axial, which in-plane axis
/// runs along world x, and the strides of the flat layout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    /// `[ni, nj, nk]`.
    pub dims: [usize; 3],
    /// Flat-index step of one voxel along each axis: `[1, ni, ni * nj]`.
    pub strides: [usize; 3],
    /// Voxel size in mm along each axis.
    pub spacing_mm: [f64; 3],
    /// The voxel axis closest to world z.
    pub axial: usize,
    /// The in-plane voxel axes: `[closest to world x, closest to world y]`.
    pub plane: [usize; 2],
    /// +1 when the axial index increases towards the head, −1 when towards the feet.
    pub superior_sign: i8,
    /// Division by `dims[0]` and `dims[1]` as a multiplication (see [`FastDiv`]).
    div: [FastDiv; 2],
}

/// Exact division of a `u32` by a fixed divisor with one 128-bit multiplication: with
/// `m = ⌈2⁶⁴ / d⌉`, `n / d = ⌊m · n / 2⁶⁴⌋` for every 32-bit `n` and `d` (Lemire, Kaser and
/// Kurz, "Faster remainder by direct computation", Software: Practice and Experience 49,
/// 2019). Flood fills turn every visited index back into `(i, j, k)`, and a hardware division
/// there costs more than the rest of the visit.
#[derive(Debug, Clone, Copy)]
struct FastDiv {
    /// `⌈2⁶⁴ / divisor⌉`, or 0 for a divisor of 1.
    magic: u64,
}

impl FastDiv {
    fn new(divisor: usize) -> FastDiv {
        let divisor = divisor.max(1) as u64;
        let magic = if divisor == 1 {
            0
        } else {
            u64::MAX / divisor + 1
        };
        FastDiv { magic }
    }

    /// `n / divisor` for `n < 2³²`.
    #[inline]
    fn div(&self, n: usize) -> usize {
        if self.magic == 0 {
            n
        } else {
            ((u128::from(self.magic) * n as u128) >> 64) as usize
        }
    }
}

impl Grid {
    pub(super) fn new(
        dims: [usize; 3],
        spacing_mm: [f64; 3],
        directions: [(usize, i8); 3],
    ) -> Grid {
        let mut axial = 2;
        let mut plane = [0, 1];
        let mut superior_sign = 1;
        for (axis, &(world, sign)) in directions.iter().enumerate() {
            match world {
                0 => plane[0] = axis,
                1 => plane[1] = axis,
                _ => {
                    axial = axis;
                    superior_sign = sign;
                }
            }
        }
        Grid::with_axes(dims, spacing_mm, axial, plane, superior_sign)
    }

    /// A grid of other dims or spacing with the same axis roles (a crop, a coarser grid).
    pub(super) fn with_axes(
        dims: [usize; 3],
        spacing_mm: [f64; 3],
        axial: usize,
        plane: [usize; 2],
        superior_sign: i8,
    ) -> Grid {
        Grid {
            dims,
            strides: [1, dims[0], dims[0] * dims[1]],
            spacing_mm,
            axial,
            plane,
            superior_sign,
            div: [FastDiv::new(dims[0]), FastDiv::new(dims[1])],
        }
    }

    pub fn len(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    /// `(i, j, k)` of a flat index.
    #[inline]
    pub fn coords(&self, index: usize) -> [usize; 3] {
        let rest = self.div[0].div(index);
        let k = self.div[1].div(rest);
        [index - rest * self.dims[0], rest - k * self.dims[1], k]
    }

    /// Number of axial slices.
    pub fn slices(&self) -> usize {
        self.dims[self.axial]
    }

    /// Size `[nu, nv]` of an axial slice: u along world x, v along world y.
    pub fn slice_dims(&self) -> [usize; 2] {
        [self.dims[self.plane[0]], self.dims[self.plane[1]]]
    }

    /// Flat index of in-plane position `(u, v)` on axial slice `z`.
    #[inline]
    pub fn slice_voxel(&self, u: usize, v: usize, z: usize) -> usize {
        u * self.strides[self.plane[0]]
            + v * self.strides[self.plane[1]]
            + z * self.strides[self.axial]
    }

    /// Area in mm² of one voxel of an axial slice.
    pub fn pixel_mm2(&self) -> f64 {
        self.spacing_mm[self.plane[0]] * self.spacing_mm[self.plane[1]]
    }

    /// Volume in mL of one voxel.
    pub fn voxel_ml(&self) -> f64 {
        self.spacing_mm.iter().product::<f64>() / 1000.0
    }

    /// Calls `f` with each of the up to six face neighbours of `index`.
    #[inline]
    pub fn for_each_neighbour(&self, index: usize, mut f: impl FnMut(usize)) {
        let c = self.coords(index);
        for (axis, &x) in c.iter().enumerate() {
            if x > 0 {
                f(index - self.strides[axis]);
            }
            if x + 1 < self.dims[axis] {
                f(index + self.strides[axis]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_division_is_exact() {
        for d in [1usize, 2, 3, 7, 108, 512, 513, 65_535, 262_144] {
            let div = FastDiv::new(d);
            for n in [
                0usize,
                1,
                d - 1,
                d,
                d + 1,
                38_797_311,
                u32::MAX as usize - 1,
                u32::MAX as usize,
            ] {
                assert_eq!(div.div(n), n / d, "{n} / {d}");
            }
        }
    }
}

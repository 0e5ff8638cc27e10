//! Grey-scale RGBA images of one slice through a canonical volume, windowed in HU, ready for
//! the canvas's `putImageData`.

use pulmoseg_core::window::HuWindow;
use pulmoseg_core::Volume;

use crate::plane::{Plane, ScreenAxis};

/// A display window as radiology viewers state it: width and level (centre) in HU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowLevel {
    /// Range of HU spread over black to white; at least [`WindowLevel::MIN_WIDTH_HU`].
    pub width_hu: f32,
    /// HU shown as mid-grey.
    pub level_hu: f32,
}

impl WindowLevel {
    /// The lung window, W 1500 / L −600: air black, lung parenchyma grey, soft tissue white.
    pub const LUNG: WindowLevel = WindowLevel {
        width_hu: 1500.0,
        level_hu: -600.0,
    };
    /// The mediastinal (soft-tissue) window, W 350 / L 40.
    pub const MEDIASTINAL: WindowLevel = WindowLevel {
        width_hu: 350.0,
        level_hu: 40.0,
    };
    /// Narrowest width a drag can reach; below one HU the image is a plain threshold.
    pub const MIN_WIDTH_HU: f32 = 1.0;
    /// Widest width a drag can reach: the whole range of 16-bit CT and then some.
    pub const MAX_WIDTH_HU: f32 = 8000.0;

    /// This window after a drag of `(dx, dy)` screen pixels: right widens, down lowers the
    /// level (the usual viewer gesture), `hu_per_pixel` HU per pixel moved.
    pub fn dragged(self, dx: f64, dy: f64, hu_per_pixel: f64) -> WindowLevel {
        let width = f64::from(self.width_hu) + dx * hu_per_pixel;
        let level = f64::from(self.level_hu) - dy * hu_per_pixel;
        WindowLevel {
            width_hu: (width as f32).clamp(Self::MIN_WIDTH_HU, Self::MAX_WIDTH_HU),
            level_hu: (level as f32).clamp(-4000.0, 4000.0),
        }
    }

    /// The HU bounds mapped to black and white.
    pub fn hu_window(self) -> HuWindow {
        let half = self.width_hu.max(Self::MIN_WIDTH_HU) / 2.0;
        HuWindow {
            lower_hu: self.level_hu - half,
            upper_hu: self.level_hu + half,
        }
    }
}

/// Writes slice `slice` of `plane` through the canonical `volume` into `rgba` as opaque grey
/// pixels (`width * height * 4` bytes, rows from the top, as [`Plane::layout`] places them)
/// and returns `(width, height)`. `rgba` is reused between calls to avoid reallocating.
///
/// `slice` beyond the grid is clamped to the last slice.
pub fn render_slice(
    volume: &Volume,
    plane: Plane,
    slice: usize,
    window: WindowLevel,
    rgba: &mut Vec<u8>,
) -> (usize, usize) {
    let dims = volume.dims;
    let layout = plane.layout();
    let (width, height) = plane.slice_size(dims);
    rgba.clear();
    rgba.resize(width * height * 4, 255);
    if width == 0 || height == 0 || dims[layout.through] == 0 {
        return (width, height);
    }

    let strides = [1, dims[0], dims[0] * dims[1]];
    let slice = slice.min(dims[layout.through] - 1);
    let base = slice * strides[layout.through];
    let (x_start, x_step) = walk(layout.horizontal, dims, strides);
    let (y_start, y_step) = walk(layout.vertical, dims, strides);
    let grey = GreyMap::new(window);

    for (y, row) in rgba.chunks_exact_mut(width * 4).enumerate() {
        let row_start = base as isize + y_start + y as isize * y_step;
        for (x, pixel) in row.chunks_exact_mut(4).enumerate() {
            let hu = volume.hu[(row_start + x_start + x as isize * x_step) as usize];
            let value = grey.lookup(hu);
            pixel[0] = value;
            pixel[1] = value;
            pixel[2] = value;
        }
    }
    (width, height)
}

/// Flat-index offset of screen coordinate 0 and the step per screen pixel along one axis.
pub(crate) fn walk(axis: ScreenAxis, dims: [usize; 3], strides: [usize; 3]) -> (isize, isize) {
    let stride = strides[axis.voxel_axis] as isize;
    if axis.reversed {
        ((dims[axis.voxel_axis] as isize - 1) * stride, -stride)
    } else {
        (0, stride)
    }
}

/// The window as a linear map to 0…255, rounded to nearest.
struct GreyMap {
    window: HuWindow,
}

impl GreyMap {
    fn new(window: WindowLevel) -> Self {
        GreyMap {
            window: window.hu_window(),
        }
    }

    #[inline]
    fn lookup(&self, hu: f32) -> u8 {
        (self.window.scale(hu) * 255.0).round() as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulmoseg_core::Affine;

    /// 3 × 2 × 2 canonical volume whose voxel at flat index n holds HU `100 * n - 1350`.
    fn ramp() -> Volume {
        let dims = [3, 2, 2];
        Volume {
            dims,
            spacing_mm: [1.0, 1.0, 1.0],
            affine: Affine::from_spacing([1.0, 1.0, 1.0]),
            hu: (0..12).map(|n| 100.0 * n as f32 - 1350.0).collect(),
        }
    }

    fn greys(rgba: &[u8]) -> Vec<u8> {
        rgba.chunks_exact(4).map(|p| p[0]).collect()
    }

    #[test]
    fn lung_window_maps_its_bounds_to_black_and_white() {
        // W 1500 / L −600 spans −1350 … 150 HU; 150 HU and above is white, −1350 black,
        // −975 HU is a quarter of the way: 0.25 · 255 = 63.75 → 64.
        let map = GreyMap::new(WindowLevel::LUNG);
        assert_eq!(map.lookup(-1350.0), 0);
        assert_eq!(map.lookup(-3000.0), 0);
        assert_eq!(map.lookup(150.0), 255);
        assert_eq!(map.lookup(-975.0), 64);
        assert_eq!(map.lookup(f32::NAN), 0);
    }

    #[test]
    fn axial_slice_is_drawn_right_to_left_and_anterior_first() {
        // Slice k = 1 holds flat indices 6..12. Screen row 0 is the most anterior j = 1
        // (indices 9, 10, 11), drawn from i = 2 down to i = 0, then row 1 is j = 0.
        let volume = ramp();
        let mut rgba = Vec::new();
        let size = render_slice(&volume, Plane::Axial, 1, WindowLevel::LUNG, &mut rgba);
        assert_eq!(size, (3, 2));
        let expected: Vec<u8> = [11, 10, 9, 8, 7, 6]
            .iter()
            .map(|&n| GreyMap::new(WindowLevel::LUNG).lookup(100.0 * n as f32 - 1350.0))
            .collect();
        assert_eq!(greys(&rgba), expected);
        assert!(rgba
            .chunks_exact(4)
            .all(|p| p[3] == 255 && p[0] == p[1] && p[1] == p[2]));
    }

    #[test]
    fn every_plane_agrees_with_voxel_at() {
        let volume = ramp();
        let map = GreyMap::new(WindowLevel::LUNG);
        let mut rgba = Vec::new();
        for plane in Plane::ALL {
            let slice = 1;
            let (width, height) = render_slice(&volume, plane, slice, WindowLevel::LUNG, &mut rgba);
            for y in 0..height {
                for x in 0..width {
                    let [i, j, k] = plane.voxel_at(volume.dims, slice, x, y);
                    let expected = map.lookup(volume.hu[volume.index(i, j, k)]);
                    assert_eq!(rgba[4 * (y * width + x)], expected, "{plane:?} ({x}, {y})");
                }
            }
        }
    }

    #[test]
    fn a_slice_past_the_end_shows_the_last_one() {
        let volume = ramp();
        let (mut last, mut past) = (Vec::new(), Vec::new());
        render_slice(&volume, Plane::Sagittal, 2, WindowLevel::LUNG, &mut last);
        render_slice(&volume, Plane::Sagittal, 99, WindowLevel::LUNG, &mut past);
        assert_eq!(last, past);
    }

    #[test]
    fn dragging_widens_to_the_right_and_lowers_the_level_downwards() {
        // 10 px right and 20 px down at 5 HU/px: width 1500 + 50, level −600 − 100.
        let dragged = WindowLevel::LUNG.dragged(10.0, 20.0, 5.0);
        assert_eq!(
            dragged,
            WindowLevel {
                width_hu: 1550.0,
                level_hu: -700.0
            }
        );
        let narrowest = WindowLevel::MEDIASTINAL.dragged(-1000.0, 0.0, 5.0);
        assert_eq!(narrowest.width_hu, WindowLevel::MIN_WIDTH_HU);
    }
}

//! The segmentation drawn over a slice: infiltrate voxels tinted in one colour at an opacity,
//! and optionally the lung's outline, on the same pixels [`render_slice`] fills.
//!
//! [`render_slice`]: crate::slice_image::render_slice

use crate::plane::Plane;
use crate::slice_image::walk;

/// Colour of the infiltrate tint (a warm orange-red, far from any grey).
pub const INFILTRATE_RGB: [u8; 3] = [255, 72, 40];
/// Colour of the lung outline (cyan).
pub const LUNG_OUTLINE_RGB: [u8; 3] = [34, 211, 238];

/// How the overlay is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverlayStyle {
    /// Tint the infiltrate.
    pub infiltrate: bool,
    /// Opacity of the tint, 0 … 1.
    pub opacity: f32,
    /// Quantised probability level a voxel must reach (see `protocol::threshold_level`).
    pub level: u8,
    /// Draw the lung mask's outline.
    pub lung_outline: bool,
}

/// The segmentation on the canonical grid: quantised probabilities and lung labels, one byte
/// per voxel each, `i` fastest.
#[derive(Debug, Clone, Copy)]
pub struct SegmentationMaps<'a> {
    pub dims: [usize; 3],
    pub levels: &'a [u8],
    pub lung: &'a [u8],
}

/// Draws the overlay of slice `slice` of `plane` into `rgba` (as [`render_slice`] left it:
/// `width * height * 4` bytes). `inside` is scratch space reused between calls.
///
/// [`render_slice`]: crate::slice_image::render_slice
pub fn draw_overlay(
    rgba: &mut [u8],
    plane: Plane,
    slice: usize,
    maps: SegmentationMaps<'_>,
    style: OverlayStyle,
    inside: &mut Vec<bool>,
) {
    let dims = maps.dims;
    let voxels = dims.iter().product::<usize>();
    let layout = plane.layout();
    let (width, height) = plane.slice_size(dims);
    if width == 0
        || height == 0
        || rgba.len() != width * height * 4
        || maps.levels.len() != voxels
        || maps.lung.len() != voxels
    {
        return;
    }
    let strides = [1, dims[0], dims[0] * dims[1]];
    let base = slice.min(dims[layout.through] - 1) * strides[layout.through];
    let (x_start, x_step) = walk(layout.horizontal, dims, strides);
    let (y_start, y_step) = walk(layout.vertical, dims, strides);
    let voxel = |x: usize, y: usize| {
        (base as isize + y_start + y as isize * y_step + x_start + x as isize * x_step) as usize
    };

    inside.clear();
    inside.resize(width * height, false);
    for y in 0..height {
        for x in 0..width {
            inside[y * width + x] = maps.lung[voxel(x, y)] != 0;
        }
    }

    let alpha = style.opacity.clamp(0.0, 1.0);
    for y in 0..height {
        for x in 0..width {
            let pixel = &mut rgba[4 * (y * width + x)..4 * (y * width + x) + 4];
            let at = y * width + x;
            if style.lung_outline && inside[at] && is_edge(inside, width, height, x, y) {
                pixel[..3].copy_from_slice(&LUNG_OUTLINE_RGB);
                continue;
            }
            if style.infiltrate && inside[at] && maps.levels[voxel(x, y)] >= style.level {
                for (channel, &tint) in pixel[..3].iter_mut().zip(&INFILTRATE_RGB) {
                    let mixed = f32::from(*channel) * (1.0 - alpha) + f32::from(tint) * alpha;
                    *channel = mixed.round() as u8;
                }
            }
        }
    }
}

/// A lung pixel with a 4-neighbour outside the lung or outside the image.
fn is_edge(inside: &[bool], width: usize, height: usize, x: usize, y: usize) -> bool {
    x == 0
        || y == 0
        || x + 1 == width
        || y + 1 == height
        || !inside[y * width + x - 1]
        || !inside[y * width + x + 1]
        || !inside[(y - 1) * width + x]
        || !inside[(y + 1) * width + x]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4 × 3 × 2 grid: lung everywhere on slice k = 1 except i = 0; level 200 at (2, 1, 1).
    fn maps() -> (Vec<u8>, Vec<u8>) {
        let dims = [4, 3, 2];
        let mut levels = vec![0u8; 24];
        let mut lung = vec![0u8; 24];
        for j in 0..3 {
            for i in 1..4 {
                lung[i + dims[0] * (j + dims[1])] = 1;
            }
        }
        levels[2 + 4 * (1 + 3)] = 200;
        (levels, lung)
    }

    fn style(infiltrate: bool, lung_outline: bool) -> OverlayStyle {
        OverlayStyle {
            infiltrate,
            opacity: 0.5,
            level: 128,
            lung_outline,
        }
    }

    #[test]
    fn the_infiltrate_voxel_is_tinted_where_the_axial_view_shows_it() {
        let (levels, lung) = maps();
        let maps = SegmentationMaps {
            dims: [4, 3, 2],
            levels: &levels,
            lung: &lung,
        };
        let mut rgba = vec![100u8; 4 * 3 * 4];
        let mut scratch = Vec::new();
        draw_overlay(
            &mut rgba,
            Plane::Axial,
            1,
            maps,
            style(true, false),
            &mut scratch,
        );
        // The axial view shows i from right to left (x = 3 - i) and j anterior first
        // (y = 2 - j): voxel (2, 1) is pixel (1, 1). Half of 100 and half of the tint.
        let tinted: Vec<usize> = (0..12).filter(|&p| rgba[4 * p] != 100).collect();
        assert_eq!(tinted, [4 + 1]);
        assert_eq!(&rgba[4 * 5..4 * 5 + 3], &[178, 86, 70]);
    }

    #[test]
    fn below_the_threshold_or_switched_off_nothing_is_tinted() {
        let (levels, lung) = maps();
        let maps = SegmentationMaps {
            dims: [4, 3, 2],
            levels: &levels,
            lung: &lung,
        };
        let mut scratch = Vec::new();
        for style in [
            OverlayStyle {
                level: 201,
                ..style(true, false)
            },
            style(false, false),
        ] {
            let mut rgba = vec![100u8; 48];
            draw_overlay(&mut rgba, Plane::Axial, 1, maps, style, &mut scratch);
            assert!(rgba.iter().all(|&v| v == 100));
        }
    }

    #[test]
    fn the_outline_runs_along_the_lung_edge_only() {
        // On slice 1 the lung is x = 0..3 (i = 3..1) on every row: each lung pixel touches the
        // image's border or the non-lung column x = 3 except (1, 1), whose four neighbours are
        // all lung. Slice 0 has no lung: no outline at all.
        let (levels, lung) = maps();
        let maps = SegmentationMaps {
            dims: [4, 3, 2],
            levels: &levels,
            lung: &lung,
        };
        let mut scratch = Vec::new();
        let mut rgba = vec![100u8; 48];
        draw_overlay(
            &mut rgba,
            Plane::Axial,
            1,
            maps,
            style(false, true),
            &mut scratch,
        );
        for y in 0..3 {
            for x in 0..4 {
                let p = 4 * (y * 4 + x);
                let outline = x < 3 && (x, y) != (1, 1);
                let expected: &[u8] = if outline {
                    &LUNG_OUTLINE_RGB
                } else {
                    &[100, 100, 100]
                };
                assert_eq!(&rgba[p..p + 3], expected, "({x}, {y})");
            }
        }
        let mut rgba = vec![100u8; 48];
        draw_overlay(
            &mut rgba,
            Plane::Axial,
            0,
            maps,
            style(false, true),
            &mut scratch,
        );
        assert!(rgba.iter().all(|&v| v == 100));
    }

    #[test]
    fn an_interior_lung_pixel_is_not_outline() {
        let dims = [5, 5, 1];
        let lung = vec![1u8; 25];
        let levels = vec![0u8; 25];
        let maps = SegmentationMaps {
            dims,
            levels: &levels,
            lung: &lung,
        };
        let mut rgba = vec![100u8; 100];
        draw_overlay(
            &mut rgba,
            Plane::Axial,
            0,
            maps,
            style(false, true),
            &mut Vec::new(),
        );
        let grey: Vec<usize> = (0..25).filter(|&p| rgba[4 * p] == 100).collect();
        assert_eq!(grey, [6, 7, 8, 11, 12, 13, 16, 17, 18]);
    }
}

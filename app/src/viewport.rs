//! Where a slice image lands on its canvas: fitted to the canvas with its true millimetre
//! proportions, then zoomed and panned by the reader; and the way back from a pointer
//! position to a slice pixel.
//!
//! All lengths are CSS pixels of the canvas box.

/// The reader's zoom and pan of one view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewTransform {
    /// Magnification over the fitted size (1 = the whole slice fits the canvas).
    pub zoom: f64,
    /// Shift of the image centre from the canvas centre, to the right, in CSS px.
    pub pan_x: f64,
    /// Shift of the image centre from the canvas centre, downwards, in CSS px.
    pub pan_y: f64,
}

impl ViewTransform {
    /// Smallest zoom: half the fitted size.
    pub const MIN_ZOOM: f64 = 0.5;
    /// Largest zoom: sixteen times the fitted size (a few screen pixels per voxel on a 512²
    /// slice).
    pub const MAX_ZOOM: f64 = 16.0;

    /// This transform with the zoom multiplied by `factor`, kept within the limits.
    pub fn zoomed(self, factor: f64) -> ViewTransform {
        let zoom = (self.zoom * factor).clamp(Self::MIN_ZOOM, Self::MAX_ZOOM);
        ViewTransform { zoom, ..self }
    }
}

impl Default for ViewTransform {
    fn default() -> Self {
        ViewTransform {
            zoom: 1.0,
            pan_x: 0.0,
            pan_y: 0.0,
        }
    }
}

/// The rectangle a slice image occupies on the canvas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Left edge, CSS px from the canvas's left.
    pub left: f64,
    /// Top edge, CSS px from the canvas's top.
    pub top: f64,
    /// Drawn width in CSS px.
    pub width: f64,
    /// Drawn height in CSS px.
    pub height: f64,
    /// Slice width in pixels (voxels).
    pub slice_width: usize,
    /// Slice height in pixels (voxels).
    pub slice_height: usize,
}

impl Placement {
    /// A slice of `slice_px` pixels of `pixel_mm` millimetres each, fitted inside a canvas of
    /// `canvas_css` with its proportions in millimetres kept, centred, then transformed.
    pub fn fit(
        canvas_css: (f64, f64),
        slice_px: (usize, usize),
        pixel_mm: (f64, f64),
        transform: ViewTransform,
    ) -> Placement {
        let width_mm = slice_px.0 as f64 * pixel_mm.0;
        let height_mm = slice_px.1 as f64 * pixel_mm.1;
        let fit = if width_mm > 0.0 && height_mm > 0.0 {
            (canvas_css.0 / width_mm).min(canvas_css.1 / height_mm)
        } else {
            0.0
        };
        let scale = fit * transform.zoom;
        let width = width_mm * scale;
        let height = height_mm * scale;
        Placement {
            left: (canvas_css.0 - width) / 2.0 + transform.pan_x,
            top: (canvas_css.1 - height) / 2.0 + transform.pan_y,
            width,
            height,
            slice_width: slice_px.0,
            slice_height: slice_px.1,
        }
    }

    /// The slice pixel under canvas position `(x, y)`, or `None` outside the image.
    pub fn slice_pixel_at(&self, x: f64, y: f64) -> Option<(usize, usize)> {
        if self.width <= 0.0 || self.height <= 0.0 {
            return None;
        }
        let u = (x - self.left) / self.width * self.slice_width as f64;
        let v = (y - self.top) / self.height * self.slice_height as f64;
        let inside = u >= 0.0 && v >= 0.0;
        let (u, v) = (u.floor() as usize, v.floor() as usize);
        (inside && u < self.slice_width && v < self.slice_height).then_some((u, v))
    }

    /// Canvas position of the centre of slice pixel `(px, py)`.
    pub fn canvas_position(&self, px: usize, py: usize) -> (f64, f64) {
        let x = self.left + (px as f64 + 0.5) / self.slice_width as f64 * self.width;
        let y = self.top + (py as f64 + 0.5) / self.slice_height as f64 * self.height;
        (x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coronal_slice_of_p001_keeps_its_millimetre_proportions() {
        // P001 coronal: 512 × 148 pixels of 0.748 × 2 mm = 382.976 × 296 mm. In a 600 × 600
        // canvas the width limits: scale 600 / 382.976, height 296 · that = 463.737…
        let placement = Placement::fit(
            (600.0, 600.0),
            (512, 148),
            (0.748, 2.0),
            ViewTransform::default(),
        );
        assert!((placement.width - 600.0).abs() < 1e-9);
        assert!((placement.height - 296.0 * 600.0 / 382.976).abs() < 1e-9);
        assert!((placement.top - (600.0 - placement.height) / 2.0).abs() < 1e-9);
        assert_eq!(placement.left, 0.0);
    }

    #[test]
    fn zoom_and_pan_move_the_image_about_the_canvas_centre() {
        // 100 × 100 px of 1 mm in a 200 × 100 canvas: fitted 100 × 100 at (50, 0); zoom 2
        // makes it 200 × 200 at (0, −50); a pan of (10, 20) shifts that.
        let transform = ViewTransform {
            zoom: 2.0,
            pan_x: 10.0,
            pan_y: 20.0,
        };
        let placement = Placement::fit((200.0, 100.0), (100, 100), (1.0, 1.0), transform);
        assert_eq!((placement.left, placement.top), (10.0, -30.0));
        assert_eq!((placement.width, placement.height), (200.0, 200.0));
    }

    #[test]
    fn pointer_positions_map_to_the_slice_pixel_drawn_there() {
        let placement =
            Placement::fit((300.0, 300.0), (3, 3), (1.0, 1.0), ViewTransform::default());
        // Each pixel is 100 CSS px wide.
        assert_eq!(placement.slice_pixel_at(0.0, 0.0), Some((0, 0)));
        assert_eq!(placement.slice_pixel_at(150.0, 299.0), Some((1, 2)));
        assert_eq!(placement.slice_pixel_at(300.0, 10.0), None);
        assert_eq!(placement.slice_pixel_at(-0.1, 10.0), None);
        assert_eq!(placement.canvas_position(1, 2), (150.0, 250.0));
    }

    #[test]
    fn zoom_stays_within_its_limits() {
        let transform = ViewTransform::default();
        assert_eq!(transform.zoomed(100.0).zoom, ViewTransform::MAX_ZOOM);
        assert_eq!(transform.zoomed(0.01).zoom, ViewTransform::MIN_ZOOM);
        assert_eq!(transform.zoomed(1.5).zoom, 1.5);
    }
}

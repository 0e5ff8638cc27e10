//! The three orthogonal planes of the viewer and the one mapping from canonical (RAS+) voxels
//! to screen pixels that both the image and its orientation labels are drawn from, so the two
//! can never disagree.
//!
//! Radiological convention, as every reading room displays CT:
//!
//! - axial: seen from the feet, patient's right on the viewer's left, anterior up;
//! - coronal: seen from the front, patient's right on the viewer's left, superior up;
//! - sagittal: seen from the patient's left side, anterior on the viewer's left, superior up.
//!
//! On the canonical grid `i` grows towards the patient's Right, `j` towards Anterior and `k`
//! towards Superior. Screen x grows to the viewer's right and screen y grows downwards, so
//! every screen axis walks its voxel axis backwards: in the axial view, moving right on the
//! screen moves towards the patient's Left (decreasing `i`), moving down moves towards
//! Posterior (decreasing `j`).

use pulmoseg_core::Affine;

/// One of the three orthogonal views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plane {
    /// Perpendicular to the body's long axis (constant canonical `k`).
    Axial,
    /// Parallel to the face (constant canonical `j`).
    Coronal,
    /// Dividing left from right (constant canonical `i`).
    Sagittal,
}

/// How one screen axis walks through the canonical grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScreenAxis {
    /// Canonical voxel axis (0 = i, 1 = j, 2 = k) shown along this screen axis.
    pub voxel_axis: usize,
    /// True when the voxel index decreases as the screen coordinate increases.
    pub reversed: bool,
}

/// Which voxel axes a plane shows horizontally and vertically, and which it slices through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneLayout {
    /// Screen x (left to right).
    pub horizontal: ScreenAxis,
    /// Screen y (top to bottom).
    pub vertical: ScreenAxis,
    /// The voxel axis held constant: the slice index runs along it.
    pub through: usize,
}

/// The anatomical direction letters shown at the four edges of a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeLabels {
    /// Letter at the left edge (the direction towards which screen x decreases).
    pub left: char,
    /// Letter at the right edge.
    pub right: char,
    /// Letter at the top edge.
    pub top: char,
    /// Letter at the bottom edge.
    pub bottom: char,
}

impl Plane {
    /// The three planes in the order the page lays them out.
    pub const ALL: [Plane; 3] = [Plane::Axial, Plane::Coronal, Plane::Sagittal];

    /// Lower-case name, used for element ids and test hooks.
    pub fn name(self) -> &'static str {
        match self {
            Plane::Axial => "axial",
            Plane::Coronal => "coronal",
            Plane::Sagittal => "sagittal",
        }
    }

    /// Name as shown to the reader.
    pub fn title(self) -> &'static str {
        match self {
            Plane::Axial => "Axial",
            Plane::Coronal => "Coronal",
            Plane::Sagittal => "Sagittal",
        }
    }

    /// Position in [`Plane::ALL`].
    pub fn index(self) -> usize {
        match self {
            Plane::Axial => 0,
            Plane::Coronal => 1,
            Plane::Sagittal => 2,
        }
    }

    /// The radiological layout of this plane on the canonical grid (see the module docs).
    pub fn layout(self) -> PlaneLayout {
        let backwards = |voxel_axis| ScreenAxis {
            voxel_axis,
            reversed: true,
        };
        match self {
            Plane::Axial => PlaneLayout {
                horizontal: backwards(0),
                vertical: backwards(1),
                through: 2,
            },
            Plane::Coronal => PlaneLayout {
                horizontal: backwards(0),
                vertical: backwards(2),
                through: 1,
            },
            Plane::Sagittal => PlaneLayout {
                horizontal: backwards(1),
                vertical: backwards(2),
                through: 0,
            },
        }
    }

    /// Slice size in pixels, `(width, height)`, for a canonical grid of `dims`.
    pub fn slice_size(self, dims: [usize; 3]) -> (usize, usize) {
        let layout = self.layout();
        (
            dims[layout.horizontal.voxel_axis],
            dims[layout.vertical.voxel_axis],
        )
    }

    /// Physical size of one slice pixel in mm, `(width, height)`: the canvas draws pixels
    /// with this aspect ratio so that anisotropic scans keep their true proportions.
    pub fn pixel_size_mm(self, spacing_mm: [f64; 3]) -> (f64, f64) {
        let layout = self.layout();
        (
            spacing_mm[layout.horizontal.voxel_axis],
            spacing_mm[layout.vertical.voxel_axis],
        )
    }

    /// The canonical voxel shown at slice pixel `(x, y)` of slice `slice`, for a grid of
    /// `dims`. `x < width` and `y < height` of [`Plane::slice_size`] are the caller's
    /// invariant; out-of-range inputs are clamped onto the grid.
    pub fn voxel_at(self, dims: [usize; 3], slice: usize, x: usize, y: usize) -> [usize; 3] {
        let layout = self.layout();
        let mut voxel = [0; 3];
        voxel[layout.through] = slice.min(dims[layout.through].saturating_sub(1));
        voxel[layout.horizontal.voxel_axis] = screen_to_index(layout.horizontal, dims, x);
        voxel[layout.vertical.voxel_axis] = screen_to_index(layout.vertical, dims, y);
        voxel
    }

    /// The slice pixel `(x, y)` at which this plane shows canonical voxel `voxel` (its slice
    /// index along [`PlaneLayout::through`] is ignored).
    pub fn pixel_of(self, dims: [usize; 3], voxel: [usize; 3]) -> (usize, usize) {
        let layout = self.layout();
        (
            screen_to_index(layout.horizontal, dims, voxel[layout.horizontal.voxel_axis]),
            screen_to_index(layout.vertical, dims, voxel[layout.vertical.voxel_axis]),
        )
    }

    /// Orientation letters at the four edges of this plane for a canonical grid whose
    /// voxel-to-world matrix is `affine`, read from the same [`Plane::layout`] that places
    /// the pixels.
    ///
    /// The direction of increasing screen coordinate is the affine column of the shown voxel
    /// axis, negated when the axis is reversed; its largest world component names the edge
    /// it points to. For an oblique scan this is the nearest anatomical direction.
    pub fn edge_labels(self, affine: &Affine) -> EdgeLabels {
        let layout = self.layout();
        let towards = |axis: ScreenAxis| {
            let sign = if axis.reversed { -1.0 } else { 1.0 };
            let column = [0, 1, 2].map(|row| sign * affine.0[row][axis.voxel_axis]);
            direction_letter(column)
        };
        let right = towards(layout.horizontal);
        let bottom = towards(layout.vertical);
        EdgeLabels {
            left: opposite(right),
            right,
            top: opposite(bottom),
            bottom,
        }
    }
}

/// Index along a voxel axis for a screen coordinate (or back: the map is its own inverse).
fn screen_to_index(axis: ScreenAxis, dims: [usize; 3], coordinate: usize) -> usize {
    let last = dims[axis.voxel_axis].saturating_sub(1);
    let coordinate = coordinate.min(last);
    if axis.reversed {
        last - coordinate
    } else {
        coordinate
    }
}

/// The RAS+ letter of the dominant component of a world direction.
fn direction_letter(world: [f64; 3]) -> char {
    let mut dominant = 0;
    for axis in 1..3 {
        if world[axis].abs() > world[dominant].abs() {
            dominant = axis;
        }
    }
    let positive = world[dominant] >= 0.0;
    match (dominant, positive) {
        (0, true) => 'R',
        (0, false) => 'L',
        (1, true) => 'A',
        (1, false) => 'P',
        (_, true) => 'S',
        (_, false) => 'I',
    }
}

/// The letter of the opposite direction.
fn opposite(letter: char) -> char {
    match letter {
        'R' => 'L',
        'L' => 'R',
        'A' => 'P',
        'P' => 'A',
        'S' => 'I',
        _ => 'S',
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulmoseg_core::Volume;

    /// P001's affine (LPS: i towards Left, j towards Posterior, k towards Superior), as
    /// nibabel prints it for `covid-ct-md/P001.nii.gz`, rounded.
    fn p001_like_affine() -> Affine {
        Affine([
            [-0.748, 0.0, 0.0, 191.0],
            [0.0, -0.748, 0.0, 150.0],
            [0.0, 0.0, 2.0, -300.0],
            [0.0, 0.0, 0.0, 1.0],
        ])
    }

    #[test]
    fn axial_has_patient_right_on_the_left_and_anterior_up() {
        // Radiological convention (module docs): viewer at the feet.
        let labels = Plane::Axial.edge_labels(&Affine::from_spacing([1.0, 1.0, 1.0]));
        assert_eq!(
            labels,
            EdgeLabels {
                left: 'R',
                right: 'L',
                top: 'A',
                bottom: 'P'
            }
        );
    }

    #[test]
    fn coronal_and_sagittal_labels_follow_the_radiological_convention() {
        let ras = Affine::from_spacing([0.7, 0.7, 2.0]);
        assert_eq!(
            Plane::Coronal.edge_labels(&ras),
            EdgeLabels {
                left: 'R',
                right: 'L',
                top: 'S',
                bottom: 'I'
            }
        );
        assert_eq!(
            Plane::Sagittal.edge_labels(&ras),
            EdgeLabels {
                left: 'A',
                right: 'P',
                top: 'S',
                bottom: 'I'
            }
        );
    }

    #[test]
    fn an_lps_file_made_canonical_gets_the_same_labels_and_its_rightmost_voxel_on_the_left() {
        // A 3 × 2 × 1 LPS volume: source i = 0 is the patient's rightmost column (the affine
        // sends larger i to more negative x, i.e. Left). After to_canonical it must be drawn
        // at screen x = 0 of the axial view.
        let source = Volume {
            dims: [3, 2, 1],
            spacing_mm: [0.748, 0.748, 2.0],
            affine: p001_like_affine(),
            hu: vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
        };
        let (canonical, _) = source.to_canonical();
        let labels = Plane::Axial.edge_labels(&canonical.affine);
        assert_eq!((labels.left, labels.top), ('R', 'A'));

        // Screen (0, 0) is the patient's right-anterior corner. In the source grid that is
        // i = 0 (rightmost) and j = 0 (the LPS j axis grows towards Posterior): value 10.
        let voxel = Plane::Axial.voxel_at(canonical.dims, 0, 0, 0);
        assert_eq!(
            canonical.hu[canonical.index(voxel[0], voxel[1], voxel[2])],
            10.0
        );
        // Screen (2, 1): leftmost and posterior, source i = 2, j = 1: value 60.
        let voxel = Plane::Axial.voxel_at(canonical.dims, 0, 2, 1);
        assert_eq!(
            canonical.hu[canonical.index(voxel[0], voxel[1], voxel[2])],
            60.0
        );
    }

    #[test]
    fn a_flipped_affine_flips_the_labels() {
        // A grid whose i axis grows towards Left, shown without reorientation, must read L
        // where the canonical one reads R: the labels come from the affine, not the plane.
        let labels = Plane::Axial.edge_labels(&p001_like_affine());
        assert_eq!(
            labels,
            EdgeLabels {
                left: 'L',
                right: 'R',
                top: 'P',
                bottom: 'A'
            }
        );
    }

    #[test]
    fn an_oblique_axis_is_named_by_its_dominant_direction() {
        // i tilted 20° from Right towards Anterior: still Right (cos 20° = 0.94 > sin 20°).
        let (s, c) = 20f64.to_radians().sin_cos();
        let affine = Affine([
            [c, -s, 0.0, 0.0],
            [s, c, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        let labels = Plane::Axial.edge_labels(&affine);
        assert_eq!(
            labels,
            EdgeLabels {
                left: 'R',
                right: 'L',
                top: 'A',
                bottom: 'P'
            }
        );
    }

    #[test]
    fn pixel_of_inverts_voxel_at_on_every_plane() {
        let dims = [5, 4, 3];
        for plane in Plane::ALL {
            let (width, height) = plane.slice_size(dims);
            for y in 0..height {
                for x in 0..width {
                    let voxel = plane.voxel_at(dims, 1, x, y);
                    assert_eq!(
                        plane.pixel_of(dims, voxel),
                        (x, y),
                        "{plane:?} at ({x}, {y})"
                    );
                    assert_eq!(voxel[plane.layout().through], 1);
                }
            }
        }
    }

    #[test]
    fn slice_sizes_and_pixel_aspect_follow_the_shown_axes() {
        // P001 canonical: 512 × 512 × 148 at 0.748 × 0.748 × 2 mm.
        let dims = [512, 512, 148];
        let spacing = [0.748, 0.748, 2.0];
        assert_eq!(Plane::Axial.slice_size(dims), (512, 512));
        assert_eq!(Plane::Coronal.slice_size(dims), (512, 148));
        assert_eq!(Plane::Sagittal.slice_size(dims), (512, 148));
        assert_eq!(Plane::Coronal.pixel_size_mm(spacing), (0.748, 2.0));
        assert_eq!(Plane::Sagittal.pixel_size_mm(spacing), (0.748, 2.0));
    }
}

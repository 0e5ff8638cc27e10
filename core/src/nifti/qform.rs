//! The voxel-to-world affine of a NIfTI-1 header: sform, qform quaternion or pixdim alone
//! (methods 3, 2 and 1 of the standard), with the repairs real files need.

use super::error::NiftiError;
use super::header::Header;
use crate::affine::Affine;

/// `b² + c² + d²` above 1 by more than this is a broken quaternion rather than float32
/// rounding of a 180° rotation (where a = 0 exactly), and is worth a warning.
const QUATERNION_ROUNDING: f64 = 1e-6;

/// sform and qform differing by more than this (mm, any entry) get a warning.
const XFORM_DISAGREEMENT_MM: f64 = 1e-3;

/// Where a header's affine came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffineSource {
    /// The `srow_x/y/z` rows (`sform_code > 0`).
    Sform,
    /// The quaternion, offsets and pixdim (`qform_code > 0`).
    Qform,
    /// `pixdim[1..=3]` on the diagonal, no rotation or offset (both codes 0).
    Pixdim,
}

/// The chosen affine with its source and the warnings about what was skipped or repaired.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAffine {
    /// Voxel-to-world (RAS+, mm).
    pub affine: Affine,
    /// Which header fields it came from.
    pub source: AffineSource,
    /// Plain-English notes on repaired or ignored fields.
    pub warnings: Vec<String>,
}

/// Picks the affine as the standard orders the sources, skipping unusable ones.
///
/// Choice for broken headers: an sform with a non-finite entry or a zero determinant falls
/// back to the qform, a qform with non-finite parameters falls back to pixdim, and when
/// pixdim has a zero or non-finite entry too the header is refused ("NaN in the affine")
/// rather than guessing a geometry that every distance and volume would inherit.
pub fn resolve(header: &Header) -> Result<ResolvedAffine, NiftiError> {
    let mut warnings = Vec::new();
    let mut detail = Vec::new();
    let qform = if header.qform_code > 0 {
        qform_affine(header)
    } else {
        None
    };

    if header.sform_code > 0 {
        let sform = sform_affine(header);
        if sform.is_finite() && determinant3(&sform).abs() > 1e-12 {
            if let Some((q, _)) = &qform {
                let diff = max_difference(&sform, q);
                if diff > XFORM_DISAGREEMENT_MM {
                    warnings.push(format!(
                        "sform and qform disagree by up to {diff:.4} mm; using the sform, as the \
                         NIfTI standard says"
                    ));
                }
            }
            return Ok(ResolvedAffine {
                affine: sform,
                source: AffineSource::Sform,
                warnings,
            });
        }
        let why = "sform_code is set but the sform is non-finite or singular";
        warnings.push(format!("{why}; falling back to the qform or pixdim"));
        detail.push(why.to_string());
    }

    if header.qform_code > 0 {
        if let Some((affine, qform_warnings)) = qform {
            warnings.extend(qform_warnings);
            return Ok(ResolvedAffine {
                affine,
                source: AffineSource::Qform,
                warnings,
            });
        }
        let why = "qform_code is set but the quaternion or its offsets are non-finite";
        warnings.push(format!("{why}; falling back to pixdim"));
        detail.push(why.to_string());
    } else {
        detail.push("qform_code is 0".to_string());
    }

    let pixdim = [1, 2, 3].map(|n| f64::from(header.pixdim[n]));
    if pixdim.iter().all(|p| p.is_finite() && *p != 0.0) {
        // Old ANALYZE-style exports set neither code: nothing says which side is the
        // patient's left, and a left/right swap would go unnoticed in the quantities.
        if header.sform_code <= 0 && header.qform_code <= 0 {
            warnings.push(
                "sform_code and qform_code are both 0: the file does not say how it lies in \
                 the patient; its voxel axes are taken as right, anterior, superior (the NIfTI \
                 fallback), so left and right may be swapped"
                    .to_string(),
            );
        }
        return Ok(ResolvedAffine {
            affine: Affine::from_spacing(pixdim),
            source: AffineSource::Pixdim,
            warnings,
        });
    }
    detail.push(format!(
        "pixdim[1..=3] = {pixdim:?} has a zero or non-finite entry"
    ));
    Err(NiftiError::NonFiniteAffine {
        detail: detail.join("; "),
    })
}

/// The sform rows as an affine (possibly non-finite).
fn sform_affine(header: &Header) -> Affine {
    let rows = [header.srow_x, header.srow_y, header.srow_z];
    let mut m = [[0.0, 0.0, 0.0, 1.0]; 4];
    for (row, srow) in m.iter_mut().zip(rows) {
        *row = srow.map(f64::from);
    }
    Affine(m)
}

/// The qform affine (method 2), or `None` when its parameters are non-finite.
///
/// `R · diag(dx, dy, qfac · dz)` plus the offsets, with `R` from the unit quaternion
/// `(a, b, c, d)`, `a = √(1 − b² − c² − d²)`. Repairs: `b² + c² + d² > 1` renormalises
/// `(b, c, d)` and sets a = 0 (as nifti1_io does); qfac (`pixdim[0]`) other than −1 counts
/// as 1; voxel sizes as [`sanitized_pixdim`].
pub fn qform_affine(header: &Header) -> Option<(Affine, Vec<String>)> {
    let params = [header.quatern_b, header.quatern_c, header.quatern_d];
    let offsets = [header.qoffset_x, header.qoffset_y, header.qoffset_z];
    if !params.iter().chain(&offsets).all(|v| v.is_finite()) {
        return None;
    }

    let mut warnings = Vec::new();
    let (rotation, norm_squared) = quaternion_rotation(params.map(f64::from));
    if norm_squared > 1.0 + QUATERNION_ROUNDING {
        warnings.push(format!(
            "qform quaternion has b² + c² + d² = {norm_squared:.6} > 1; renormalised it"
        ));
    }

    let qfac = f64::from(header.pixdim[0]);
    let qfac = if qfac == -1.0 {
        -1.0
    } else {
        if qfac != 1.0 && qfac != 0.0 {
            warnings.push(format!(
                "pixdim[0] (qfac) is {qfac}, not ±1; taking it as 1"
            ));
        }
        1.0
    };

    let (spacing, spacing_warnings) = sanitized_pixdim(header);
    warnings.extend(spacing_warnings);
    let scale = [spacing[0], spacing[1], qfac * spacing[2]];

    let mut m = [[0.0, 0.0, 0.0, 1.0]; 4];
    for (r, row) in m.iter_mut().take(3).enumerate() {
        for (c, cell) in row.iter_mut().take(3).enumerate() {
            *cell = rotation[r][c] * scale[c];
        }
        row[3] = f64::from(offsets[r]);
    }
    Some((Affine(m), warnings))
}

/// Rotation matrix `[row][column]` of the quaternion with vector part `(b, c, d)`, and
/// `b² + c² + d²` before any renormalisation.
pub fn quaternion_rotation([b, c, d]: [f64; 3]) -> ([[f64; 3]; 3], f64) {
    let norm_squared = b * b + c * c + d * d;
    let (a, b, c, d) = if norm_squared > 1.0 {
        let norm = norm_squared.sqrt();
        (0.0, b / norm, c / norm, d / norm)
    } else {
        ((1.0 - norm_squared).sqrt(), b, c, d)
    };
    let rotation = [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ];
    (rotation, norm_squared)
}

/// Voxel sizes `|pixdim[1..=3]|`, with 1 for a zero or non-finite entry, and a warning for
/// each entry that needed either repair.
pub fn sanitized_pixdim(header: &Header) -> ([f64; 3], Vec<String>) {
    let mut warnings = Vec::new();
    let spacing = [1, 2, 3].map(|n| {
        let p = f64::from(header.pixdim[n]);
        if p.is_finite() && p > 0.0 {
            p
        } else if p.is_finite() && p < 0.0 {
            warnings.push(format!(
                "pixdim[{n}] is negative ({p}); using its magnitude {}",
                -p
            ));
            -p
        } else {
            warnings.push(format!("pixdim[{n}] is {p}; using a voxel size of 1 mm"));
            1.0
        }
    });
    (spacing, warnings)
}

/// Determinant of the 3 × 3 linear part.
fn determinant3(affine: &Affine) -> f64 {
    let m = &affine.0;
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

fn max_difference(a: &Affine, b: &Affine) -> f64 {
    a.0.iter()
        .flatten()
        .zip(b.0.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [[f64; 3]; 3], b: [[f64; 3]; 3]) -> bool {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .all(|(x, y)| (x - y).abs() < 1e-12)
    }

    #[test]
    fn identity_and_half_turn() {
        // b = c = d = 0 is the identity; d = 1 (a = 0) is 180° about z: diag(−1, −1, 1),
        // the rotation of every LPS-stored CT in ../shared/data.
        let (r, _) = quaternion_rotation([0.0, 0.0, 0.0]);
        assert!(close(
            r,
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
        ));
        let (r, _) = quaternion_rotation([0.0, 0.0, 1.0]);
        assert!(close(
            r,
            [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]
        ));
    }

    #[test]
    fn quarter_turn_about_z() {
        // 90° about z: a = cos 45°, d = sin 45°; by hand R maps x → y and y → −x.
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let (r, _) = quaternion_rotation([0.0, 0.0, s]);
        assert!(close(
            r,
            [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
        ));
    }

    #[test]
    fn too_long_quaternion_is_renormalised() {
        // (0, 0, 2): norm² 4, renormalised to (0, 0, 1) → the same half turn as d = 1.
        let (r, norm_squared) = quaternion_rotation([0.0, 0.0, 2.0]);
        assert_eq!(norm_squared, 4.0);
        assert!(close(
            r,
            [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]
        ));
    }
}

//! The 348-byte NIfTI-1 header: byte-order detection, field layout and the checks that make
//! a header safe to act on before any voxel is touched.

use super::datatype::{DataType, Scaling};
use super::error::NiftiError;
use super::qform::{self, AffineSource};
use crate::affine::Affine;

/// Size of the NIfTI-1 header proper.
pub const HEADER_BYTES: usize = 348;

/// Header plus the 4-byte extension flag: the earliest a single-file NIfTI-1's voxels may start.
pub const MIN_VOX_OFFSET: usize = 352;

/// `sizeof_hdr` of a NIfTI-2 header, recognised only to name it in the error.
const NIFTI2_HEADER_BYTES: i32 = 540;

/// Byte order of the header fields and voxels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endianness {
    /// Least significant byte first (every current scanner converter writes this).
    Little,
    /// Most significant byte first (old SPARC/PowerPC tools).
    Big,
}

/// The fields of a NIfTI-1 header that reading and writing a volume need, exactly as stored.
///
/// Floats and codes are kept bit-for-bit so that [`super::write_labels_nii_gz`] can give a
/// label volume the very same geometry as its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Byte order found from `sizeof_hdr`.
    pub endianness: Endianness,
    /// `dim_info`: which axes are frequency, phase and slice encoded (MR only).
    pub dim_info: u8,
    /// `dim[0]` = number of axes, `dim[1..=dim[0]]` their lengths.
    pub dim: [i16; 8],
    /// `intent_code` (0 for plain images, 1002 for label volumes).
    pub intent_code: i16,
    /// Voxel type on disk.
    pub datatype: DataType,
    /// `bitpix`, bits per voxel (checked against `datatype`).
    pub bitpix: i16,
    /// `pixdim[0]` = qfac, `pixdim[1..=3]` voxel size in `xyzt_units`, `pixdim[4]` time step.
    pub pixdim: [f32; 8],
    /// Byte offset of the first voxel in the (decompressed) file.
    pub vox_offset: f32,
    /// Intensity slope as stored (may be 0 or NaN, meaning "no scaling").
    pub scl_slope: f32,
    /// Intensity intercept as stored.
    pub scl_inter: f32,
    /// Spatial and temporal units code (2 = mm, 10 = mm and seconds).
    pub xyzt_units: u8,
    /// Display window maximum.
    pub cal_max: f32,
    /// Display window minimum.
    pub cal_min: f32,
    /// Free-text description (at most 80 bytes), up to the first zero byte.
    pub descrip: String,
    /// What the quaternion transform means (0 = absent, 1 = scanner anatomical, …).
    pub qform_code: i16,
    /// What the sform rows mean (0 = absent, 1 = scanner anatomical, …).
    pub sform_code: i16,
    /// Quaternion parameter b of the qform rotation.
    pub quatern_b: f32,
    /// Quaternion parameter c of the qform rotation.
    pub quatern_c: f32,
    /// Quaternion parameter d of the qform rotation.
    pub quatern_d: f32,
    /// qform translation, x (mm).
    pub qoffset_x: f32,
    /// qform translation, y (mm).
    pub qoffset_y: f32,
    /// qform translation, z (mm).
    pub qoffset_z: f32,
    /// First row of the sform matrix.
    pub srow_x: [f32; 4],
    /// Second row of the sform matrix.
    pub srow_y: [f32; 4],
    /// Third row of the sform matrix.
    pub srow_z: [f32; 4],
}

impl Header {
    /// Grid size `[ni, nj, nk]` (`dim[1..=3]`).
    pub fn dims3(&self) -> [usize; 3] {
        [1, 2, 3].map(|axis| usize::try_from(self.dim[axis]).unwrap_or(0))
    }

    /// Number of voxels of the 3-D grid; u64 because it may not fit a 32-bit `usize`.
    pub fn voxel_count(&self) -> u64 {
        self.dims3().iter().map(|&n| n as u64).product()
    }

    /// numpy's name of the voxel type, e.g. `"int16"`.
    pub fn datatype_name(&self) -> &'static str {
        self.datatype.name()
    }

    /// Byte offset of the first voxel (validated as a whole number ≥ 352 when parsed).
    pub fn data_offset(&self) -> usize {
        self.vox_offset as usize
    }

    /// Voxel size in mm along `[i, j, k]`: `|pixdim[1..=3]|`, with 1 for a zero or
    /// non-finite entry.
    ///
    /// This is the spacing the metrics use; for a qform it equals the affine's column norms,
    /// for an sform written inconsistently it may not (a warning says so when reading).
    pub fn spacing_mm(&self) -> [f64; 3] {
        qform::sanitized_pixdim(self).0
    }

    /// Voxel-to-world (RAS+, mm) affine chosen as the NIfTI-1 standard says: the sform when
    /// `sform_code > 0`, else the qform when `qform_code > 0`, else `pixdim` alone.
    ///
    /// An sform or qform with non-finite entries is skipped for the next source. Headers
    /// returned by [`super::read_header`] always have a finite affine; for a hand-edited
    /// header without any usable source the result is all NaN.
    pub fn affine(&self) -> Affine {
        match qform::resolve(self) {
            Ok(resolved) => resolved.affine,
            Err(_) => Affine([[f64::NAN; 4]; 4]),
        }
    }

    /// Which of sform, qform or pixdim [`Header::affine`] is taken from.
    pub fn affine_source(&self) -> Option<AffineSource> {
        qform::resolve(self).ok().map(|resolved| resolved.source)
    }

    /// The intensity scaling to apply and a warning for each stored value that was ignored.
    ///
    /// A zero or non-finite slope means "no scaling" (many writers store 0; NaN appears in
    /// files whose writer never set the field), so the intercept is ignored too, as the
    /// standard and nibabel do. A non-finite intercept beside a valid slope is taken as 0.
    pub fn scaling(&self) -> (Scaling, Vec<String>) {
        let mut warnings = Vec::new();
        let slope = f64::from(self.scl_slope);
        let inter = f64::from(self.scl_inter);
        if slope == 0.0 || !slope.is_finite() {
            warnings.push(format!(
                "scl_slope is {slope}, which means no intensity scaling; using the stored values \
                 as they are"
            ));
            return (
                Scaling {
                    slope: 1.0,
                    inter: 0.0,
                },
                warnings,
            );
        }
        if !inter.is_finite() {
            warnings.push(format!(
                "scl_inter is {inter} beside a valid scl_slope of {slope}; taking the \
                 intercept as 0"
            ));
            return (Scaling { slope, inter: 0.0 }, warnings);
        }
        (Scaling { slope, inter }, warnings)
    }
}

/// Reads the little- or big-endian fields of a header.
struct Fields<'a> {
    bytes: &'a [u8],
    endianness: Endianness,
}

impl Fields<'_> {
    fn array<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[offset..offset + N]);
        if self.endianness == Endianness::Big {
            out.reverse();
        }
        out
    }

    fn i16(&self, offset: usize) -> i16 {
        i16::from_le_bytes(self.array(offset))
    }

    fn f32(&self, offset: usize) -> f32 {
        f32::from_le_bytes(self.array(offset))
    }

    fn f32s<const N: usize>(&self, offset: usize) -> [f32; N] {
        std::array::from_fn(|n| self.f32(offset + 4 * n))
    }
}

/// Parses and validates the first bytes of a (decompressed) NIfTI-1 file.
///
/// `bytes` must hold at least the 348 header bytes; more are ignored. Returns the header
/// and plain-English warnings about fields that were repaired.
pub fn parse(bytes: &[u8]) -> Result<(Header, Vec<String>), NiftiError> {
    let endianness = detect_endianness(bytes)?;
    if bytes.len() < HEADER_BYTES {
        return Err(NiftiError::TruncatedHeader { len: bytes.len() });
    }
    check_magic(bytes)?;

    let f = Fields { bytes, endianness };
    let datatype = DataType::from_code(f.i16(70))?;
    let bitpix = f.i16(72);
    if bitpix != datatype.bitpix() {
        return Err(NiftiError::BitpixMismatch {
            bitpix,
            datatype: datatype.name(),
            expected: datatype.bitpix(),
        });
    }

    let dim: [i16; 8] = std::array::from_fn(|n| f.i16(40 + 2 * n));
    check_dims(&dim)?;

    let vox_offset = f.f32(108);
    if !vox_offset.is_finite() || vox_offset.fract() != 0.0 {
        return Err(NiftiError::VoxOffsetInvalid { vox_offset });
    }
    if vox_offset < MIN_VOX_OFFSET as f32 {
        return Err(NiftiError::VoxOffsetTooSmall { vox_offset });
    }

    let descrip_bytes = &bytes[148..228];
    let descrip_len = descrip_bytes
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(descrip_bytes.len());
    let header = Header {
        endianness,
        dim_info: bytes[39],
        dim,
        intent_code: f.i16(68),
        datatype,
        bitpix,
        pixdim: f.f32s(76),
        vox_offset,
        scl_slope: f.f32(112),
        scl_inter: f.f32(116),
        xyzt_units: bytes[123],
        cal_max: f.f32(124),
        cal_min: f.f32(128),
        descrip: String::from_utf8_lossy(&descrip_bytes[..descrip_len]).into_owned(),
        qform_code: f.i16(252),
        sform_code: f.i16(254),
        quatern_b: f.f32(256),
        quatern_c: f.f32(260),
        quatern_d: f.f32(264),
        qoffset_x: f.f32(268),
        qoffset_y: f.f32(272),
        qoffset_z: f.f32(276),
        srow_x: f.f32s(280),
        srow_y: f.f32s(296),
        srow_z: f.f32s(312),
    };

    let resolved = qform::resolve(&header)?;
    let mut warnings = resolved.warnings;
    warnings.extend(qform::sanitized_pixdim(&header).1);
    warnings.extend(header.scaling().1);
    remove_repeats(&mut warnings);
    Ok((header, warnings))
}

/// Drops later copies of a warning (the qform and the spacing repair the same pixdim).
pub fn remove_repeats(warnings: &mut Vec<String>) {
    let mut kept: Vec<String> = Vec::with_capacity(warnings.len());
    for warning in warnings.drain(..) {
        if !kept.contains(&warning) {
            kept.push(warning);
        }
    }
    *warnings = kept;
}

/// Byte order from `sizeof_hdr`, the only field whose value the standard fixes.
fn detect_endianness(bytes: &[u8]) -> Result<Endianness, NiftiError> {
    if bytes.is_empty() {
        return Err(NiftiError::Empty);
    }
    let Some(first) = bytes.get(..4) else {
        return Err(NiftiError::TruncatedHeader { len: bytes.len() });
    };
    let first = [first[0], first[1], first[2], first[3]];
    let (little, big) = (i32::from_le_bytes(first), i32::from_be_bytes(first));
    if little == HEADER_BYTES as i32 {
        Ok(Endianness::Little)
    } else if big == HEADER_BYTES as i32 {
        Ok(Endianness::Big)
    } else if little == NIFTI2_HEADER_BYTES || big == NIFTI2_HEADER_BYTES {
        // Limitation: NIfTI-2 (64-bit dims, 540-byte header) is refused rather than read;
        // CT converters write NIfTI-1, and NIfTI-2 mostly carries CIFTI surface data.
        Err(NiftiError::Nifti2Unsupported)
    } else {
        Err(NiftiError::NotNifti {
            first_bytes: first.to_vec(),
        })
    }
}

fn check_magic(bytes: &[u8]) -> Result<(), NiftiError> {
    let magic = [bytes[344], bytes[345], bytes[346], bytes[347]];
    match &magic {
        b"n+1\0" => Ok(()),
        // Limitation: a .hdr/.img pair needs a second file, which a reader of one byte
        // buffer cannot open; the page would have to ask for both files.
        b"ni1\0" => Err(NiftiError::HeaderPairUnsupported),
        _ => Err(NiftiError::BadMagic { magic }),
    }
}

/// Accepts a 3-D grid, or a 4-D one holding a single volume, with every used length ≥ 1.
fn check_dims(dim: &[i16; 8]) -> Result<(), NiftiError> {
    let ndim = dim[0];
    match ndim {
        3 | 4 => {}
        1 | 2 => return Err(NiftiError::NotAVolume { ndim }),
        5..=7 => return Err(NiftiError::TooManyAxes { ndim }),
        _ => return Err(NiftiError::InvalidDimCount { ndim }),
    }
    for (axis, &value) in dim.iter().enumerate().take(ndim as usize + 1).skip(1) {
        if value < 1 {
            return Err(NiftiError::InvalidDim { axis, value });
        }
    }
    // Limitation: time series and multi-volume files are refused; choosing one volume
    // would need an option that no caller has asked for yet.
    if ndim == 4 && dim[4] != 1 {
        return Err(NiftiError::MultipleVolumes { volumes: dim[4] });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid little-endian header of a 2 × 3 × 4 int16 grid, 1 mm voxels, qform and sform
    /// absent, as the standard lays it out.
    fn tiny_header() -> Vec<u8> {
        let mut h = vec![0u8; MIN_VOX_OFFSET];
        h[0..4].copy_from_slice(&348i32.to_le_bytes());
        for (n, d) in [3i16, 2, 3, 4, 1, 1, 1, 1].iter().enumerate() {
            h[40 + 2 * n..42 + 2 * n].copy_from_slice(&d.to_le_bytes());
        }
        h[70..72].copy_from_slice(&4i16.to_le_bytes());
        h[72..74].copy_from_slice(&16i16.to_le_bytes());
        for (n, p) in [1.0f32, 1.0, 1.0, 1.0].iter().enumerate() {
            h[76 + 4 * n..80 + 4 * n].copy_from_slice(&p.to_le_bytes());
        }
        h[108..112].copy_from_slice(&352f32.to_le_bytes());
        h[112..116].copy_from_slice(&1f32.to_le_bytes());
        h[344..348].copy_from_slice(b"n+1\0");
        h
    }

    #[test]
    fn tiny_header_parses() {
        let (header, warnings) = parse(&tiny_header()).unwrap();
        assert_eq!(header.dims3(), [2, 3, 4]);
        assert_eq!(header.endianness, Endianness::Little);
        assert_eq!(header.datatype, DataType::Int16);
        assert_eq!(header.affine_source(), Some(AffineSource::Pixdim));
        // Neither form is set: the one warning says the orientation is unknown.
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("left and right may be swapped"),
            "{warnings:?}"
        );
    }

    #[test]
    fn big_endian_is_detected() {
        let mut h = tiny_header();
        // Reverse every multi-byte numeric field this test header sets.
        let fields: &[(usize, usize)] = &[
            (0, 4),
            (40, 2),
            (42, 2),
            (44, 2),
            (46, 2),
            (48, 2),
            (50, 2),
            (52, 2),
            (54, 2),
            (70, 2),
            (72, 2),
            (76, 4),
            (80, 4),
            (84, 4),
            (88, 4),
            (108, 4),
            (112, 4),
        ];
        for &(offset, len) in fields {
            h[offset..offset + len].reverse();
        }
        let (header, _) = parse(&h).unwrap();
        assert_eq!(header.endianness, Endianness::Big);
        assert_eq!(header.dims3(), [2, 3, 4]);
        assert_eq!(header.vox_offset, 352.0);
    }

    #[test]
    fn dims_are_checked_with_axis_and_value() {
        let mut h = tiny_header();
        h[44..46].copy_from_slice(&(-7i16).to_le_bytes());
        let err = parse(&h).unwrap_err();
        assert_eq!(err, NiftiError::InvalidDim { axis: 2, value: -7 });
        assert_eq!(
            err.to_string(),
            "NIfTI dimension 2 is -7, must be at least 1"
        );

        let mut h = tiny_header();
        h[40..42].copy_from_slice(&2i16.to_le_bytes());
        assert_eq!(
            parse(&h).unwrap_err().to_string(),
            "2-D image, need a 3-D volume"
        );
    }

    #[test]
    fn short_and_foreign_inputs_are_named() {
        assert_eq!(parse(&[]).unwrap_err(), NiftiError::Empty);
        assert_eq!(
            parse(&tiny_header()[..100]).unwrap_err(),
            NiftiError::TruncatedHeader { len: 100 }
        );
        let png = b"\x89PNG\r\n\x1a\n";
        let err = parse(png).unwrap_err();
        assert_eq!(
            err,
            NiftiError::NotNifti {
                first_bytes: vec![0x89, 0x50, 0x4e, 0x47]
            }
        );
        assert!(
            err.to_string().contains("starts with bytes 89 50 4e 47"),
            "{err}"
        );
    }

    #[test]
    fn scaling_rules() {
        let (mut header, _) = parse(&tiny_header()).unwrap();
        header.scl_slope = f32::NAN;
        header.scl_inter = -1024.0;
        let (scaling, warnings) = header.scaling();
        assert_eq!(
            scaling,
            Scaling {
                slope: 1.0,
                inter: 0.0
            }
        );
        assert_eq!(warnings.len(), 1);
        header.scl_slope = 2.0;
        header.scl_inter = f32::INFINITY;
        assert_eq!(
            header.scaling().0,
            Scaling {
                slope: 2.0,
                inter: 0.0
            }
        );
    }
}

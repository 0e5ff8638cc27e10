//! Header traps of real-world NIfTI files, each made by patching an in-memory copy of a real
//! scan (`small/covidctmd_P001_3mm.nii.gz`, 128 × 128 × 74 int16, slope 1, sform and qform
//! both LPS) at the standard's byte offsets. The expected values come from the unpatched
//! file, from arithmetic on it, or from nibabel (`tests/fixtures/nibabel_headers.json`).

mod common;

use std::io::{Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use pulmoseg_core::nifti::{read_nifti, AffineSource, Endianness, NiftiImage, ReadOptions};
use pulmoseg_core::Affine;
use serde_json::Value;

const SMALL_P001: &str = "small/covidctmd_P001_3mm.nii.gz";
const VOXELS: usize = 128 * 128 * 74;

/// The decompressed bytes of the small P001 copy: 352 header bytes, then int16 voxels.
fn raw_small_p001() -> Vec<u8> {
    let compressed = std::fs::read(common::shared_data(SMALL_P001)).unwrap();
    let mut raw = Vec::new();
    MultiGzDecoder::new(&compressed[..])
        .read_to_end(&mut raw)
        .unwrap();
    assert_eq!(raw.len(), 352 + 2 * VOXELS);
    raw
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn read(bytes: &[u8]) -> NiftiImage {
    read_nifti(bytes, &ReadOptions::default()).unwrap()
}

fn put_i16(bytes: &mut [u8], offset: usize, value: i16) {
    bytes[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
}

fn put_f32(bytes: &mut [u8], offset: usize, value: f32) {
    bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

/// The stored int16 values of the original, straight from the bytes.
fn stored_values(raw: &[u8]) -> Vec<i16> {
    raw[352..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

fn assert_affine_close(ours: &Affine, expected: &[[f64; 4]; 4], what: &str) {
    for (r, row) in expected.iter().enumerate() {
        for (c, value) in row.iter().enumerate() {
            let diff = (ours.0[r][c] - value).abs();
            assert!(
                diff < 1e-4,
                "{what}: affine[{r}][{c}] = {} vs {value}",
                ours.0[r][c]
            );
        }
    }
}

fn nibabel_affine(value: &Value) -> [[f64; 4]; 4] {
    let rows = value.as_array().unwrap();
    std::array::from_fn(|r| std::array::from_fn(|c| rows[r][c].as_f64().unwrap()))
}

fn fixture() -> Value {
    let text = std::fs::read_to_string(common::fixture("nibabel_headers.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn raw_and_gzip_copies_read_the_same() {
    let raw = raw_small_p001();
    let from_raw = read(&raw);
    let from_gzip = read(&std::fs::read(common::shared_data(SMALL_P001)).unwrap());
    assert_eq!(from_raw, from_gzip);
    let expected: Vec<f32> = stored_values(&raw).iter().map(|&v| f32::from(v)).collect();
    assert_eq!(from_raw.volume.hu, expected);
}

#[test]
fn multi_member_gzip_reads_as_one_stream() {
    // bgzip-style: the same bytes compressed as two concatenated gzip members.
    let raw = raw_small_p001();
    let mut two_members = gzip(&raw[..100_000]);
    two_members.extend(gzip(&raw[100_000..]));
    assert_eq!(read(&two_members).volume, read(&raw).volume);
}

#[test]
fn nan_slope_means_no_scaling() {
    let mut raw = raw_small_p001();
    let expected = read(&raw).volume.hu;
    put_f32(&mut raw, 112, f32::NAN);
    put_f32(&mut raw, 116, -1024.0);
    let image = read(&raw);
    assert_eq!(
        image.volume.hu, expected,
        "intercept must be ignored along with the slope"
    );
    assert!(
        image
            .warnings
            .iter()
            .any(|w| w.contains("scl_slope is NaN")),
        "{:?}",
        image.warnings
    );
}

#[test]
fn zero_slope_means_no_scaling() {
    let mut raw = raw_small_p001();
    let expected = read(&raw).volume.hu;
    put_f32(&mut raw, 112, 0.0);
    let image = read(&raw);
    assert_eq!(image.volume.hu, expected);
    assert!(
        image.warnings.iter().any(|w| w.contains("scl_slope is 0")),
        "{:?}",
        image.warnings
    );
}

#[test]
fn slope_and_intercept_are_applied() {
    let mut raw = raw_small_p001();
    put_f32(&mut raw, 112, 2.0);
    put_f32(&mut raw, 116, -1024.0);
    let image = read(&gzip(&raw));
    // 2 · stored − 1024, exact in f32 for int16 inputs.
    let expected: Vec<f32> = stored_values(&raw)
        .iter()
        .map(|&v| 2.0 * f32::from(v) - 1024.0)
        .collect();
    assert_eq!(image.volume.hu, expected);
    assert!(image.warnings.is_empty(), "{:?}", image.warnings);
}

#[test]
fn infinite_intercept_with_valid_slope_is_zero() {
    let mut raw = raw_small_p001();
    put_f32(&mut raw, 112, 2.0);
    put_f32(&mut raw, 116, f32::INFINITY);
    let image = read(&raw);
    let expected: Vec<f32> = stored_values(&raw)
        .iter()
        .map(|&v| 2.0 * f32::from(v))
        .collect();
    assert_eq!(image.volume.hu, expected);
    assert!(
        image
            .warnings
            .iter()
            .any(|w| w.contains("scl_inter is inf")),
        "{:?}",
        image.warnings
    );
}

#[test]
fn qform_only_ignores_the_sform_rows() {
    let mut raw = raw_small_p001();
    put_i16(&mut raw, 254, 0);
    for offset in (280..328).step_by(4) {
        put_f32(&mut raw, offset, 99.0);
    }
    let image = read(&raw);
    let expected = nibabel_affine(&fixture()["files"][SMALL_P001]["qform_affine"]);
    assert_eq!(image.header.affine_source(), Some(AffineSource::Qform));
    assert_affine_close(&image.volume.affine, &expected, "qform only");
    assert_eq!(image.volume.orientation_code(), "LPS");
}

#[test]
fn no_qform_and_no_sform_warn_that_left_and_right_are_unknown() {
    // qform_code (offset 252) and sform_code (254) both 0, as old ANALYZE-style exports
    // write: nibabel then uses diag(pixdim), RAS, while the scan really is LPS, so its left and
    // right lungs swap sides. The geometry is still usable; the warning says what is unknown.
    let mut raw = raw_small_p001();
    put_i16(&mut raw, 252, 0);
    put_i16(&mut raw, 254, 0);
    let image = read(&raw);
    assert_eq!(image.header.affine_source(), Some(AffineSource::Pixdim));
    assert_eq!(image.volume.orientation_code(), "RAS");
    assert!(
        image
            .warnings
            .iter()
            .any(|w| w.contains("left and right may be swapped")),
        "{:?}",
        image.warnings
    );
}

#[test]
fn oblique_qform_with_negative_qfac_matches_nibabel() {
    let fixture = fixture();
    let patched = &fixture["patched_qform"];
    let mut raw = raw_small_p001();
    put_i16(&mut raw, 254, 0);
    for (n, value) in patched["quatern_bcd"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        put_f32(&mut raw, 256 + 4 * n, value.as_f64().unwrap() as f32);
    }
    put_f32(&mut raw, 76, patched["qfac"].as_f64().unwrap() as f32);
    let image = read(&raw);
    assert_affine_close(
        &image.volume.affine,
        &nibabel_affine(&patched["qform_affine"]),
        "oblique",
    );
    assert_eq!(
        image.volume.orientation_code(),
        patched["axcodes"].as_str().unwrap()
    );
    assert_eq!(image.volume.spacing_mm, [3.0, 3.0, 4.0]);
}

#[test]
fn quaternion_slightly_too_long_does_not_panic() {
    // d stored as the float32 just above 1 (b² + c² + d² ≈ 1 + 2.4e-7), and a clearly
    // broken d = 1.01: both renormalise to the half turn about z that d = 1 gives, so the
    // affine stays the file's own qform.
    let expected = nibabel_affine(&fixture()["files"][SMALL_P001]["qform_affine"]);
    for (d, warns) in [(f32::from_bits(1.0f32.to_bits() + 1), false), (1.01, true)] {
        let mut raw = raw_small_p001();
        put_i16(&mut raw, 254, 0);
        put_f32(&mut raw, 264, d);
        let image = read(&raw);
        assert_affine_close(&image.volume.affine, &expected, &format!("d = {d}"));
        let warned = image.warnings.iter().any(|w| w.contains("renormalised"));
        assert_eq!(warned, warns, "d = {d}: {:?}", image.warnings);
    }
}

#[test]
fn non_finite_sform_falls_back_to_the_qform() {
    let mut raw = raw_small_p001();
    put_f32(&mut raw, 296, f32::NAN);
    put_f32(&mut raw, 268, 10.0); // qoffset_x: lets the test see the qform was used
    let image = read(&raw);
    let mut expected = nibabel_affine(&fixture()["files"][SMALL_P001]["qform_affine"]);
    expected[0][3] = 10.0;
    assert_eq!(image.header.affine_source(), Some(AffineSource::Qform));
    assert_affine_close(&image.volume.affine, &expected, "NaN sform");
    assert!(
        image.warnings.iter().any(|w| w.contains("sform")),
        "{:?}",
        image.warnings
    );
}

#[test]
fn disagreeing_qform_and_sform_warn_and_use_the_sform() {
    let mut raw = raw_small_p001();
    let srow_x3 = f32::from_le_bytes([raw[292], raw[293], raw[294], raw[295]]);
    put_f32(&mut raw, 268, srow_x3 + 5.0); // qoffset_x 5 mm off srow_x[3]
    let image = read(&raw);
    let expected = nibabel_affine(&fixture()["files"][SMALL_P001]["affine"]);
    assert_affine_close(&image.volume.affine, &expected, "sform");
    assert!(
        image
            .warnings
            .iter()
            .any(|w| w.contains("disagree by up to 5.0000 mm")),
        "{:?}",
        image.warnings
    );
}

#[test]
fn negative_and_nan_pixdim_are_repaired_for_the_qform() {
    let mut raw = raw_small_p001();
    put_i16(&mut raw, 254, 0);
    put_f32(&mut raw, 80, -3.0);
    put_f32(&mut raw, 88, f32::NAN);
    let image = read(&raw);
    // |−3| = 3 along i, NaN → 1 along k.
    assert_eq!(image.volume.spacing_mm, [3.0, 3.0, 1.0]);
    assert_eq!(image.volume.affine.spacing_mm(), [3.0, 3.0, 1.0]);
    assert_eq!(image.warnings.len(), 2, "{:?}", image.warnings);
}

#[test]
fn big_endian_copy_reads_identically() {
    let raw = raw_small_p001();
    let expected = read(&raw);
    let mut swapped = raw.clone();
    // Multi-byte numeric fields of the NIfTI-1 header: (offset, size, count).
    let fields = [
        (0, 4, 1),
        (32, 4, 1),
        (36, 2, 1),
        (40, 2, 8),
        (56, 4, 3),
        (68, 2, 4),
        (76, 4, 8),
        (108, 4, 3),
        (120, 2, 1),
        (124, 4, 4),
        (140, 4, 2),
        (252, 2, 2),
        (256, 4, 18),
    ];
    for (offset, size, count) in fields {
        for n in 0..count {
            swapped[offset + n * size..offset + (n + 1) * size].reverse();
        }
    }
    for voxel in swapped[352..].chunks_exact_mut(2) {
        voxel.reverse();
    }
    let image = read(&gzip(&swapped));
    assert_eq!(image.header.endianness, Endianness::Big);
    assert_eq!(image.volume, expected.volume);
    let mut header = image.header.clone();
    header.endianness = Endianness::Little;
    assert_eq!(header, expected.header);
}

#[test]
fn four_d_with_one_volume_is_a_volume() {
    let mut raw = raw_small_p001();
    let expected = read(&raw).volume;
    put_i16(&mut raw, 40, 4);
    put_i16(&mut raw, 48, 1);
    assert_eq!(read(&raw).volume, expected);
}

#[test]
fn uint8_data_reads_as_stored() {
    // A windowed export: (HU + 1024) / 8 clamped to 0..=255, stored as uint8.
    let raw = raw_small_p001();
    let bytes: Vec<u8> = stored_values(&raw)
        .iter()
        .map(|&v| ((i32::from(v) + 1024) / 8).clamp(0, 255) as u8)
        .collect();
    let mut patched = raw[..352].to_vec();
    put_i16(&mut patched, 70, 2);
    put_i16(&mut patched, 72, 8);
    patched.extend(&bytes);
    let image = read(&gzip(&patched));
    assert_eq!(image.header.datatype_name(), "uint8");
    assert_eq!(
        image.volume.hu,
        bytes.iter().map(|&b| f32::from(b)).collect::<Vec<_>>()
    );
}

#[test]
fn float32_data_reads_as_stored() {
    let raw = raw_small_p001();
    let values: Vec<f32> = stored_values(&raw)
        .iter()
        .map(|&v| f32::from(v) + 0.25)
        .collect();
    let mut patched = raw[..352].to_vec();
    put_i16(&mut patched, 70, 16);
    put_i16(&mut patched, 72, 32);
    patched.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    let image = read(&patched);
    assert_eq!(image.header.datatype_name(), "float32");
    assert_eq!(image.volume.hu, values);
}

#[test]
fn vox_offset_beyond_352_skips_the_extension() {
    // 1024: an extension flag of 1 and 672 bytes of extension data before the voxels.
    let raw = raw_small_p001();
    let expected = read(&raw).volume;
    let mut patched = raw[..352].to_vec();
    put_f32(&mut patched, 108, 1024.0);
    patched[348] = 1;
    patched.extend((0..672).map(|n| (n % 251) as u8));
    patched.extend(&raw[352..]);
    assert_eq!(read(&patched).volume, expected);
    assert_eq!(read(&gzip(&patched)).volume, expected);
}

#[test]
fn trailing_bytes_of_a_plain_file_warn_but_trailing_gzip_data_is_refused() {
    let mut raw = raw_small_p001();
    raw.extend([0u8; 10]);
    let image = read(&raw);
    assert!(image
        .warnings
        .iter()
        .any(|w| w.contains("10 bytes after the last voxel")));
    let err = read_nifti(&gzip(&raw), &ReadOptions::default()).unwrap_err();
    let declared = 352 + 2 * VOXELS;
    assert!(
        err.to_string()
            .contains(&format!("more than the {declared} bytes")),
        "{err}"
    );
}

//! Label volumes written by `write_labels_nii_gz` must read back with exactly the source's
//! geometry and the written voxels. The full-size P001 result is also left in
//! `CARGO_TARGET_TMPDIR` for `tools/fixtures/check_written_nifti.py check`, which compares it
//! with nibabel and SimpleITK.

mod common;

use pulmoseg_core::nifti::{
    read_nifti, write_labels_nii_gz, Endianness, Header, NiftiError, ReadOptions,
};

/// Where the written full-size P001 label file is left for the Python check.
const P001_LABELS: &str = "P001_labels_hu_above_-500.nii.gz";

/// The mask the Python check recomputes: 1 where HU > −500.
fn threshold(hu: &[f32]) -> Vec<u8> {
    hu.iter().map(|&v| u8::from(v > -500.0)).collect()
}

/// The geometry fields a label file must carry over unchanged.
fn assert_same_geometry(written: &Header, source: &Header) {
    assert_eq!(written.dim[1..4], source.dim[1..4]);
    assert_eq!(
        written.pixdim.map(f32::to_bits),
        source.pixdim.map(f32::to_bits)
    );
    assert_eq!(
        (written.qform_code, written.sform_code),
        (source.qform_code, source.sform_code)
    );
    let quaternion = |h: &Header| {
        [
            h.quatern_b,
            h.quatern_c,
            h.quatern_d,
            h.qoffset_x,
            h.qoffset_y,
            h.qoffset_z,
        ]
        .map(f32::to_bits)
    };
    assert_eq!(quaternion(written), quaternion(source));
    let rows = |h: &Header| [h.srow_x, h.srow_y, h.srow_z].map(|row| row.map(f32::to_bits));
    assert_eq!(rows(written), rows(source));
    assert_eq!(written.xyzt_units, source.xyzt_units);
    assert_eq!(written.affine(), source.affine());
}

fn round_trip(relative: &str) -> Vec<u8> {
    let bytes = std::fs::read(common::shared_data(relative)).unwrap();
    let source = read_nifti(&bytes, &ReadOptions::default()).unwrap();
    let labels = threshold(&source.volume.hu);
    let written = write_labels_nii_gz(&labels, &source.header).unwrap();

    let back = read_nifti(&written, &ReadOptions::default()).unwrap();
    assert_same_geometry(&back.header, &source.header);
    assert_eq!(back.header.datatype_name(), "uint8");
    assert_eq!(back.header.endianness, Endianness::Little);
    assert_eq!((back.header.dim[0], back.header.vox_offset), (3, 352.0));
    assert_eq!((back.header.scl_slope, back.header.scl_inter), (1.0, 0.0));
    assert_eq!(back.volume.dims, source.volume.dims);
    assert_eq!(back.volume.spacing_mm, source.volume.spacing_mm);
    assert_eq!(back.volume.affine, source.volume.affine);
    assert_eq!(
        back.volume.hu,
        labels.iter().map(|&l| f32::from(l)).collect::<Vec<_>>()
    );
    assert!(back.warnings.is_empty(), "{:?}", back.warnings);
    written
}

#[test]
fn small_labels_round_trip() {
    round_trip("small/covidctmd_P001_3mm.nii.gz");
    round_trip("small/pyrad_lung2_label_2mm.nii.gz");
}

#[test]
fn full_size_p001_labels_round_trip() {
    let written = round_trip("covid-ct-md/P001.nii.gz");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(P001_LABELS);
    std::fs::write(&path, &written).unwrap();
    println!("wrote {}", path.display());
}

#[test]
fn big_endian_qform_only_source_keeps_its_geometry() {
    // A hand-built source: big-endian, sform_code 0, a 90° rotation about z (d = sin 45°).
    let bytes = std::fs::read(common::shared_data("small/pyrad_lung1_2mm.nii.gz")).unwrap();
    let mut header = read_nifti(&bytes, &ReadOptions::default()).unwrap().header;
    header.endianness = Endianness::Big;
    header.sform_code = 0;
    header.quatern_d = std::f32::consts::FRAC_1_SQRT_2;
    header.quatern_c = 0.0;
    let voxels = header.dims3().iter().product();
    let labels: Vec<u8> = (0..voxels).map(|n| (n % 3) as u8).collect();

    let back = read_nifti(
        &write_labels_nii_gz(&labels, &header).unwrap(),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_same_geometry(&back.header, &header);
    // 90° about z with 2 × 2 × 5 mm voxels: i runs along +y, j along −x, k along +z.
    assert_eq!(back.volume.orientation_code(), "ALS");
}

#[test]
fn wrong_label_count_is_refused() {
    let bytes = std::fs::read(common::shared_data("small/pyrad_lung1_2mm.nii.gz")).unwrap();
    let header = read_nifti(&bytes, &ReadOptions::default()).unwrap().header;
    let err = write_labels_nii_gz(&[0u8; 10], &header).unwrap_err();
    // 146 × 146 × 48 = 1 023 168 voxels.
    assert_eq!(
        err,
        NiftiError::LabelCountMismatch {
            labels: 10,
            dims: [146, 146, 48],
            voxels: 1_023_168
        }
    );
}

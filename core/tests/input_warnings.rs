//! Warnings for scans the model was not made for, on real files: the pyradiomics scans have
//! 5 mm slices and cover only part of the chest (../shared/data/README.md), P001 is a complete
//! 2 mm chest CT in HU, and an 8-bit windowed copy of it is not in HU.

mod common;

use common::shared_data;
use pulmoseg_core::inference::input_warnings;
use pulmoseg_core::lung_mask::{lung_mask, LungMaskOptions};
use pulmoseg_core::nifti::{read_nifti, ReadOptions};
use pulmoseg_core::window::HuWindow;
use pulmoseg_core::Volume;

fn read(relative: &str) -> Volume {
    let bytes = std::fs::read(shared_data(relative)).unwrap();
    read_nifti(&bytes, &ReadOptions::default()).unwrap().volume
}

fn warnings_of(volume: &Volume) -> Vec<String> {
    let lung = lung_mask(volume, &LungMaskOptions::default()).unwrap();
    input_warnings(volume, &lung)
}

#[test]
fn a_complete_thin_slice_chest_ct_in_hu_gets_no_warning() {
    assert_eq!(
        warnings_of(&read("small/covidctmd_P001_3mm.nii.gz")),
        Vec::<String>::new()
    );
}

#[test]
fn a_chest_cut_at_both_ends_is_flagged() {
    // pyradiomics lung1: 48 slices of 5 mm from the mid-chest, where its lowest slice still
    // crosses about 150 cm² of air inside the chest (a nibabel count of voxels below −400 HU
    // in the central two thirds of the slice), up to the neck, above the apices. 5 mm is the
    // limit itself, so only the cut bases are flagged.
    let warnings = warnings_of(&read("small/pyrad_lung1_2mm.nii.gz"));
    assert!(
        warnings.iter().any(|w| w.contains("reach the bottom")),
        "{warnings:?}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains("reach the top")),
        "{warnings:?}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains("mm thick")),
        "{warnings:?}"
    );
}

#[test]
fn thicker_slices_than_five_mm_are_flagged() {
    // The 3 mm copy of P001 with its slice spacing relabelled 6 mm: the same anatomy,
    // stretched, as a 6 mm scan would carry.
    let mut volume = read("small/covidctmd_P001_3mm.nii.gz");
    let axial = 2;
    volume.affine.0[2][axial] *= 1.5;
    volume.spacing_mm[axial] *= 1.5;
    let warnings = warnings_of(&volume);
    assert!(
        warnings.iter().any(|w| w.contains("6.0 mm thick")),
        "{warnings:?}"
    );
}

#[test]
fn an_eight_bit_windowed_copy_is_not_hu() {
    let mut volume = read("small/covidctmd_P001_3mm.nii.gz");
    let lung_window = HuWindow::from_width_level(1500.0, -600.0).unwrap();
    volume.hu = volume
        .hu
        .iter()
        .map(|&v| (lung_window.scale(v) * 255.0).round())
        .collect();
    let warnings = warnings_of(&volume);
    assert!(
        warnings.iter().any(|w| w.contains("Hounsfield")),
        "{warnings:?}"
    );
}

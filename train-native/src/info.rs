//! `pulmoseg info FILE`: what a clinician or researcher checks first about a scan.

use std::path::PathBuf;

use clap::Args;

use crate::input::read_image;

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A NIfTI-1 file, `.nii` or `.nii.gz`.
    file: PathBuf,
}

pub fn run(args: &InfoArgs) -> anyhow::Result<()> {
    let image = read_image(&args.file)?;
    let volume = &image.volume;
    let [ni, nj, nk] = volume.dims;
    let [si, sj, sk] = volume.spacing_mm;

    println!("file:        {}", args.file.display());
    println!("dims:        {ni} × {nj} × {nk} ({} voxels)", volume.len());
    println!("spacing:     {si:.4} × {sj:.4} × {sk:.4} mm");
    println!("orientation: {}", volume.orientation_code());
    println!("data type:   {}", image.header.datatype_name());
    match volume.hu_range() {
        Some((lo, hi)) => println!("HU range:    {lo} … {hi}"),
        None => println!("HU range:    no finite voxel"),
    }
    println!("affine (voxel → RAS+ mm):");
    for row in &volume.affine.0 {
        println!("  [{:>10.4} {:>10.4} {:>10.4} {:>10.4}]", row[0], row[1], row[2], row[3]);
    }
    for warning in &image.warnings {
        println!("warning:     {warning}");
    }
    Ok(())
}

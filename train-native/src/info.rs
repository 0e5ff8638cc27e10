//! `pulmoseg info FILE`: what a clinician or researcher checks first about a scan.

use std::path::PathBuf;

use std::fmt::Write as _;
use std::io::Write as _;

use clap::Args;

use crate::input::read_image;

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A NIfTI-1 file, `.nii` or `.nii.gz`.
    file: PathBuf,
}

pub fn run(args: &InfoArgs) -> anyhow::Result<()> {
    let image = read_image(&args.file)?;
    let mut out = String::new();
    let volume = &image.volume;
    let [ni, nj, nk] = volume.dims;
    let [si, sj, sk] = volume.spacing_mm;

    writeln!(out, "file:        {}", args.file.display())?;
    writeln!(
        out,
        "dims:        {ni} × {nj} × {nk} ({} voxels)",
        volume.len()
    )?;
    writeln!(out, "spacing:     {si:.4} × {sj:.4} × {sk:.4} mm")?;
    writeln!(out, "orientation: {}", volume.orientation_code())?;
    writeln!(out, "data type:   {}", image.header.datatype_name())?;
    match volume.hu_range() {
        Some((lo, hi)) => writeln!(out, "HU range:    {lo} … {hi}")?,
        None => writeln!(out, "HU range:    no finite voxel")?,
    }
    writeln!(out, "affine (voxel → RAS+ mm):")?;
    for row in &volume.affine.0 {
        writeln!(
            out,
            "  [{:>10.4} {:>10.4} {:>10.4} {:>10.4}]",
            row[0], row[1], row[2], row[3]
        )?;
    }
    for warning in &image.warnings {
        writeln!(out, "warning:     {warning}")?;
    }
    print_to_stdout(&out)
}

/// Writes the report; a reader that stops early (`| head`) is not an error.
fn print_to_stdout(text: &str) -> anyhow::Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

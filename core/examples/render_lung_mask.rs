//! Writes the lung mask of a NIfTI chest CT as raw bytes for `tools/render_lung_mask.py`:
//! one byte per voxel (0 none, 1 right lung, 2 left lung) in the file's own voxel order.
//!
//! ```text
//! cargo run -p pulmoseg-core --example render_lung_mask -- CT.nii.gz MASK.u8
//! python3 tools/render_lung_mask.py CT.nii.gz MASK.u8 docs/lung_mask_NAME.png
//! ```

use std::time::Instant;

use pulmoseg_core::lung_mask::{lung_mask, LungMaskOptions};
use pulmoseg_core::nifti::{read_nifti, ReadOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else {
        return Err("usage: render_lung_mask CT.nii.gz MASK.u8".into());
    };
    let bytes = std::fs::read(input).map_err(|e| format!("reading {input}: {e}"))?;
    let image = read_nifti(&bytes, &ReadOptions::default()).map_err(|e| format!("{input}: {e}"))?;
    let start = Instant::now();
    let mask = lung_mask(&image.volume, &LungMaskOptions::default())?;
    println!(
        "{input} {:?}: right {:.0} mL, left {:.0} mL, total {:.0} mL in {:.2} s",
        mask.dims,
        mask.right_ml,
        mask.left_ml,
        mask.total_ml(),
        start.elapsed().as_secs_f64()
    );
    for warning in &mask.warnings {
        println!("warning: {warning}");
    }
    std::fs::write(output, &mask.labels).map_err(|e| format!("writing {output}: {e}"))?;
    Ok(())
}

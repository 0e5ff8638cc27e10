//! How much of each lung the infiltrates take: the numbers the page and the command line
//! report, as one JSON shape.

use serde::{Deserialize, Serialize};

use crate::inference::input_warnings;
use crate::lung_mask::{LungMask, LEFT_LUNG, RIGHT_LUNG};
use crate::volume::Volume;

/// A binary infiltrate mask on a scan's own grid, kept inside the lung mask.
#[derive(Debug, Clone, PartialEq)]
pub struct InfiltrateMask {
    /// Grid `[ni, nj, nk]` of the scan.
    pub dims: [usize; 3],
    /// 1 where the voxel is infiltrate, else 0.
    pub labels: Vec<u8>,
}

impl InfiltrateMask {
    /// Voxels whose probability reaches `threshold` and that lie in either lung.
    pub fn from_probability(probability: &[f32], lung: &LungMask, threshold: f32) -> Self {
        let labels = probability
            .iter()
            .zip(&lung.labels)
            .map(|(&p, &side)| u8::from(p >= threshold && side != 0))
            .collect();
        InfiltrateMask {
            dims: lung.dims,
            labels,
        }
    }
}

/// Infiltrate and lung volume of one side, or of both.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SideQuantities {
    /// Infiltrate volume, mL.
    pub infiltrate_ml: f64,
    /// Lung volume, mL.
    pub lung_ml: f64,
    /// `100 · infiltrate_ml / lung_ml`; 0 where no lung was found.
    pub affected_percent: f64,
}

impl SideQuantities {
    fn new(infiltrate_voxels: usize, lung_voxels: usize, voxel_ml: f64) -> Self {
        let infiltrate_ml = infiltrate_voxels as f64 * voxel_ml;
        let lung_ml = lung_voxels as f64 * voxel_ml;
        let affected_percent = if lung_voxels > 0 {
            100.0 * infiltrate_voxels as f64 / lung_voxels as f64
        } else {
            0.0
        };
        SideQuantities {
            infiltrate_ml,
            lung_ml,
            affected_percent,
        }
    }
}

/// Per-side results of both lungs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LungQuantities {
    /// The patient's left lung.
    pub left: SideQuantities,
    /// The patient's right lung.
    pub right: SideQuantities,
    /// Both lungs.
    pub total: SideQuantities,
}

/// The quantities JSON shared by `pulmoseg predict` and the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantities {
    /// Name of the model that made the mask.
    pub model_name: String,
    /// Version of that model.
    pub model_version: String,
    /// Infiltrate and lung volumes.
    #[serde(flatten)]
    pub lungs: LungQuantities,
    /// Plain-language cautions about the input or the result.
    pub warnings: Vec<String>,
}

/// Counts infiltrate and lung voxels per side; `voxel_ml` is the volume of one voxel.
pub fn quantify(infiltrate: &InfiltrateMask, lung: &LungMask, voxel_ml: f64) -> LungQuantities {
    let mut infiltrate_voxels = [0usize; 3];
    let mut lung_voxels = [0usize; 3];
    for (&side, &lesion) in lung.labels.iter().zip(&infiltrate.labels) {
        let side = side as usize;
        if side == 0 || side > 2 {
            continue;
        }
        lung_voxels[side] += 1;
        infiltrate_voxels[side] += usize::from(lesion != 0);
    }
    let right = RIGHT_LUNG as usize;
    let left = LEFT_LUNG as usize;
    LungQuantities {
        left: SideQuantities::new(infiltrate_voxels[left], lung_voxels[left], voxel_ml),
        right: SideQuantities::new(infiltrate_voxels[right], lung_voxels[right], voxel_ml),
        total: SideQuantities::new(
            infiltrate_voxels[left] + infiltrate_voxels[right],
            lung_voxels[left] + lung_voxels[right],
            voxel_ml,
        ),
    }
}

/// The result of one scan as `pulmoseg predict` and the page report it: the infiltrate mask
/// at `threshold` inside the lung mask, and its quantities with every warning about the
/// input (the reader's repairs, the lung mask's, and [`input_warnings`]).
pub fn summarise(
    volume: &Volume,
    lung: &LungMask,
    probability: &[f32],
    threshold: f32,
    model: (&str, &str),
    reader_warnings: &[String],
) -> (InfiltrateMask, Quantities) {
    let mask = InfiltrateMask::from_probability(probability, lung, threshold);
    let mut warnings = reader_warnings.to_vec();
    warnings.extend(lung.warnings.iter().cloned());
    warnings.extend(input_warnings(volume, lung));
    let quantities = Quantities {
        model_name: model.0.to_string(),
        model_version: model.1.to_string(),
        lungs: quantify(&mask, lung, volume.voxel_ml()),
        warnings,
    };
    (mask, quantities)
}

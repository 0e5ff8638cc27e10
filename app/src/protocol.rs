//! What the page and its segmentation worker tell each other, and the compact forms the
//! worker's results travel in.
//!
//! The worker answers with the infiltrate probability quantised to one byte per voxel:
//! `level = min(255, floor(p · 256))`, so that `p ≥ k / 256 ⇔ level ≥ k` exactly for every
//! threshold `k / 256` the page offers, including the default 0.5 = 128 / 256 that
//! `pulmoseg predict` uses. A 512 × 512 × 148 scan is then 39 MB instead of 155 MB of f32.

use serde::{Deserialize, Serialize};

/// Largest scan the page opens: 2²⁷ ≈ 134 M voxels (512 MB of f32). Reorienting to RAS+
/// briefly holds two copies, and a WebAssembly memory has at most 4 GB, part of it already
/// taken by the file's own bytes; P001 (38.8 M voxels) is well inside.
pub const PAGE_MAX_VOXELS: usize = 1 << 27;

/// Where the page's own model lives, relative to the page.
pub const SHIPPED_WEIGHTS_URL: &str = "model/pulmoseg-shipped.pulmoseg";

/// The stages the worker reports, in order.
pub const STAGES: [Stage; 4] = [
    Stage::Decode,
    Stage::Preprocess,
    Stage::Inference,
    Stage::Postprocess,
];

/// A stage of one segmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Reading and decoding the NIfTI file, loading the weights, starting the backend.
    Decode,
    /// Lung mask, windowing and resizing onto the network's grid.
    Preprocess,
    /// The network, patch by patch.
    Inference,
    /// Probabilities back onto the scan's grid, mask and quantities.
    Postprocess,
}

impl Stage {
    /// Lower-case name, as messages and the page's `data-stage` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Preprocess => "preprocess",
            Stage::Inference => "inference",
            Stage::Postprocess => "postprocess",
        }
    }
}

/// Which backend the network ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendUsed {
    /// burn-wgpu on the browser's WebGPU.
    Webgpu,
    /// burn-flex, pure Rust on the CPU, in WebAssembly.
    Cpu,
}

/// Seconds each stage took, and the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub decode_s: f64,
    pub preprocess_s: f64,
    pub inference_s: f64,
    pub postprocess_s: f64,
    pub total_s: f64,
}

/// The worker's answer besides the two voxel maps: everything small, as one JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultSummary {
    /// Canonical (RAS+) grid of both maps, `[ni, nj, nk]`.
    pub canonical_dims: [usize; 3],
    /// The quantities JSON at the default threshold, exactly as `pulmoseg predict` writes it.
    pub quantities: pulmoseg_core::inference::Quantities,
    /// Threshold of `quantities`.
    pub threshold: f32,
    /// mL of one voxel.
    pub voxel_ml: f64,
    /// Model name, version, network and model card, as the weights file states them.
    pub model: serde_json::Value,
    pub backend: BackendUsed,
    /// Why the network did not run on WebGPU, when it did not.
    pub notice: Option<String>,
    pub timings: Timings,
}

/// One byte per voxel: `min(255, floor(p · 256))`, NaN as 0.
pub fn quantise_probability(probability: &[f32]) -> Vec<u8> {
    probability
        .iter()
        .map(|&p| (p * 256.0).floor().clamp(0.0, 255.0) as u8)
        .collect()
}

/// The level that a threshold in (0, 1) compares with: `round(t · 256)`, kept in 1 … 255.
pub fn threshold_level(threshold: f32) -> u8 {
    (threshold * 256.0).round().clamp(1.0, 255.0) as u8
}

/// The infiltrate labels (1 / 0) at `level`, kept inside the lung (`lung != 0`).
pub fn labels_at(levels: &[u8], lung: &[u8], level: u8) -> Vec<u8> {
    levels
        .iter()
        .zip(lung)
        .map(|(&q, &side)| u8::from(q >= level && side != 0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantised_levels_reproduce_every_offered_threshold_exactly() {
        // p ≥ k/256 ⇔ floor(256 p) ≥ k, for probabilities right at and around each k/256.
        for k in 1..=255u32 {
            let t = k as f32 / 256.0;
            let level = threshold_level(t);
            assert_eq!(u32::from(level), k);
            let below = f32::from_bits(t.to_bits() - 1);
            let above = f32::from_bits(t.to_bits() + 1);
            let q = quantise_probability(&[below, t, above]);
            assert_eq!(
                q.iter().map(|&q| q >= level).collect::<Vec<_>>(),
                [false, true, true],
                "k = {k}"
            );
        }
    }

    #[test]
    fn quantisation_saturates_and_ignores_nan() {
        assert_eq!(
            quantise_probability(&[0.0, 1.0, 0.999_999, -0.1, f32::NAN]),
            [0, 255, 255, 0, 0]
        );
        assert_eq!(threshold_level(0.5), 128);
        assert_eq!(threshold_level(0.0), 1);
        assert_eq!(threshold_level(1.0), 255);
    }

    #[test]
    fn labels_stay_inside_the_lung() {
        assert_eq!(
            labels_at(&[200, 200, 10, 128], &[1, 0, 2, 2], 128),
            [1, 0, 0, 1]
        );
    }
}

//! The training loss of the recipe: soft Dice (Milletari et al. 2016) on the infiltrate
//! class plus voxel-wise cross-entropy.

use burn::tensor::activation::log_softmax;
use burn::tensor::Tensor;

/// Added to the Dice numerator and denominator so that a batch without infiltrate and
/// without predicted infiltrate has Dice 1 (and a finite gradient) rather than 0/0.
pub const DICE_SMOOTH: f64 = 1.0;

/// The loss and its two parts, each a one-element tensor.
#[derive(Debug, Clone)]
pub struct Loss {
    /// `cross_entropy + 1 − soft_dice`: what is minimised.
    pub total: Tensor<1>,
    /// Mean voxel-wise cross-entropy of the two classes.
    pub cross_entropy: Tensor<1>,
    /// Soft Dice of the infiltrate probability against the mask, over the whole batch.
    pub soft_dice: Tensor<1>,
}

/// Soft Dice + cross-entropy of two-class `logits` against a 0/1 infiltrate mask.
///
/// # Shapes
///
/// - `logits`: `[batch, 2, depth, height, width]` (channel 0 background, 1 infiltrate)
/// - `target`: `[batch, depth, height, width]`, 1 for infiltrate, 0 elsewhere
///
/// With `p` the softmax probability of infiltrate and `t` the mask, summed over every voxel
/// of the batch: `soft_dice = (2 Σ p·t + s) / (Σ p + Σ t + s)` with `s` = [`DICE_SMOOTH`];
/// `cross_entropy = −mean(t·log p + (1 − t)·log(1 − p))`.
pub fn dice_ce_loss(logits: Tensor<5>, target: Tensor<4>) -> Loss {
    let log_probs = log_softmax(logits, 1);
    let [batch, _, depth, height, width] = log_probs.dims();
    let shape = [batch, depth, height, width];
    let log_background = log_probs.clone().narrow(1, 0, 1).reshape(shape);
    let log_infiltrate = log_probs.narrow(1, 1, 1).reshape(shape);

    let background = target.clone().neg().add_scalar(1.0);
    let cross_entropy = (log_infiltrate.clone() * target.clone() + log_background * background)
        .mean()
        .neg();

    let probability = log_infiltrate.exp();
    let overlap = (probability.clone() * target.clone()).sum();
    let sizes = probability.sum() + target.sum();
    let soft_dice = overlap.mul_scalar(2.0).add_scalar(DICE_SMOOTH) / sizes.add_scalar(DICE_SMOOTH);

    let total = cross_entropy.clone() + soft_dice.clone().neg().add_scalar(1.0);
    Loss {
        total,
        cross_entropy,
        soft_dice,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn scalar(t: Tensor<1>) -> f64 {
        let v: Vec<f32> = t.into_data().try_into_vec::<f32>().expect("f32 values");
        v[0] as f64
    }

    #[test]
    fn matches_pytorch() {
        // tools/peers/loss_peer.py builds the same tensors and computes the loss with
        // PyTorch's F.cross_entropy and softmax in float64.
        let device = Device::flex();
        let n = 2 * 2 * 3 * 4;
        let logits: Vec<f32> = (0..2 * n)
            .map(|i| ((i * 37) % 23) as f32 / 5.0 - 2.0)
            .collect();
        let target: Vec<f32> = (0..n)
            .map(|i| if (i * 7) % 5 < 2 { 1.0 } else { 0.0 })
            .collect();
        let logits = Tensor::<5>::from_floats(TensorData::new(logits, [2, 2, 2, 3, 4]), &device);
        let target = Tensor::<4>::from_floats(TensorData::new(target, [2, 2, 3, 4]), &device);

        let loss = dice_ce_loss(logits, target);
        assert!((scalar(loss.cross_entropy) - 1.322_167_283_760).abs() < 1e-5);
        assert!((scalar(loss.soft_dice) - 0.411_015_639_478).abs() < 1e-5);
        assert!((scalar(loss.total) - 1.911_151_644_283).abs() < 1e-5);
    }

    #[test]
    fn perfect_confident_prediction_has_near_zero_loss() {
        // Logits ±20 on the right class: p ≈ 1 − 2e-9 inside, ≈ 2e-9 outside, so the
        // cross-entropy is ≈ 2e-9 and soft Dice ≈ (2·3 + 1)/(3 + 3 + 1) = 1.
        let device = Device::flex();
        let mask = [1.0f32, 0.0, 1.0, 0.0, 0.0, 1.0];
        let logits: Vec<f32> = mask
            .iter()
            .map(|&t| if t > 0.5 { -20.0 } else { 20.0 })
            .chain(mask.iter().map(|&t| if t > 0.5 { 20.0 } else { -20.0 }))
            .collect();
        let logits = Tensor::<5>::from_floats(TensorData::new(logits, [1, 2, 1, 2, 3]), &device);
        let target =
            Tensor::<4>::from_floats(TensorData::new(mask.to_vec(), [1, 1, 2, 3]), &device);
        let loss = dice_ce_loss(logits, target);
        assert!(scalar(loss.total).abs() < 1e-6);
    }
}

//! fastai's Adam: decoupled weight decay (Loshchilov and Hutter 2019, fastai's default
//! `true_wd`), bias-corrected moments, ε added outside the square root, and a β1 that the
//! one-cycle schedule changes at every step.
//!
//! burn's `AdamW` fixes β1 when it is built and keeps it in the type-erased optimizer that
//! holds the per-parameter state, so a schedule cannot reach it. [`ScheduledAdam`] reads β1
//! from a cell shared with the training loop instead; its per-parameter state is burn's own
//! [`AdamWState`], so burn's optimizer records save and restore it.
//!
//! One step for a parameter `p` with gradient `g` at step `t` (1-based), rate `lr`:
//!
//! ```text
//! m ← β1·m + (1 − β1)·g          v ← β2·v + (1 − β2)·g²
//! p ← p·(1 − lr·wd) − lr · (m / (1 − β1ᵗ)) / (sqrt(v / (1 − β2ᵗ)) + ε)
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use burn::optim::{AdamWState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::{Device, Tensor};

/// The β1 the next step uses, shared between the loop and the optimizer.
#[derive(Debug, Clone)]
pub struct Beta1(Arc<AtomicU64>);

impl Beta1 {
    /// A cell holding `value`.
    pub fn new(value: f64) -> Self {
        Self(Arc::new(AtomicU64::new(value.to_bits())))
    }

    /// Sets β1 for the following steps.
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    /// The current β1.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Adam with decoupled weight decay and a scheduled β1.
#[derive(Debug, Clone)]
pub struct ScheduledAdam {
    /// β1, read at every step.
    pub beta1: Beta1,
    /// β2 (fastai's `sqr_mom`, 0.99).
    pub beta2: f64,
    /// ε (fastai: 1e-5).
    pub epsilon: f64,
    /// Decoupled weight decay (the recipe: 1e-5).
    pub weight_decay: f64,
}

impl ScheduledAdam {
    /// The whole-module optimizer burn's training loop calls.
    pub fn into_module_optimizer(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }
}

impl Optimizer for ScheduledAdam {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let beta1 = self.beta1.get();
        let beta2 = self.beta2;
        let momentum = match state {
            Some(AdamWState { momentum: mut m }) => {
                m.moment_1 = m
                    .moment_1
                    .mul_scalar(beta1)
                    .add(grad.clone().mul_scalar(1.0 - beta1));
                m.moment_2 = m
                    .moment_2
                    .mul_scalar(beta2)
                    .add(grad.square().mul_scalar(1.0 - beta2));
                m.time += 1;
                m
            }
            None => AdaptiveMomentumState::new(
                1,
                grad.clone().mul_scalar(1.0 - beta1),
                grad.square().mul_scalar(1.0 - beta2),
            ),
        };

        let t = momentum.time as i32;
        let debias1 = 1.0 - beta1.powi(t);
        let debias2 = 1.0 - beta2.powi(t);
        let denominator = momentum
            .moment_2
            .clone()
            .div_scalar(debias2)
            .sqrt()
            .add_scalar(self.epsilon);
        let delta = momentum
            .moment_1
            .clone()
            .div(denominator)
            .mul_scalar(lr / debias1);

        let decayed = if self.weight_decay == 0.0 {
            tensor
        } else {
            tensor.mul_scalar(1.0 - lr * self.weight_decay)
        };
        (decayed - delta, Some(AdamWState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::optim::GradientsParams;
    use burn::tensor::TensorData;

    /// Two steps on `p = [1, -2]` with loss `sum(c · p)`, so the gradient is `c` each step.
    /// Hand values (β1 0.9 then 0.8, β2 0.99, ε 1e-5, wd 0.1, lr 0.1):
    /// step 1: m = 0.1·c, v = 0.01·c², m̂ = c, v̂ = c², p ← p·0.99 − 0.1·c/(|c| + 1e-5);
    /// step 2 (β1 = 0.8): m = 0.8·0.1c + 0.2c = 0.28c, debias1 = 1 − 0.8² = 0.36,
    /// m̂ = 0.7778c; v = 0.99·0.01c² + 0.01c² = 0.0199c², debias2 = 1 − 0.99² = 0.0199, v̂ = c².
    #[test]
    fn two_steps_match_hand_values() {
        let device = Device::flex().autodiff();
        let c = [0.5f32, -3.0];
        let beta1 = Beta1::new(0.9);
        let adam = ScheduledAdam {
            beta1: beta1.clone(),
            beta2: 0.99,
            epsilon: 1e-5,
            weight_decay: 0.1,
        };
        let mut optimizer = adam.into_module_optimizer();

        let mut p = Param::from_tensor(Tensor::<1>::from_floats(
            TensorData::new(vec![1.0f32, -2.0], [2]),
            &device,
        ));
        let coefficients = Tensor::<1>::from_floats(TensorData::new(c.to_vec(), [2]), &device);
        let mut expected = [1.0f64, -2.0];
        for (step, b1) in [(1, 0.9f64), (2, 0.8)] {
            beta1.set(b1);
            let loss = (p.val() * coefficients.clone()).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &p);
            p = optimizer.step(0.1, p, grads);
            for (e, &g) in expected.iter_mut().zip(&c) {
                let g = g as f64;
                let m_hat = if step == 1 { g } else { 0.28 * g / 0.36 };
                *e = *e * 0.99 - 0.1 * m_hat / (g.abs() + 1e-5);
            }
        }
        let got: Vec<f32> = p
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32 values");
        for (g, e) in got.iter().zip(expected) {
            assert!(
                (*g as f64 - e).abs() < 1e-6,
                "got {got:?}, expected {expected:?}"
            );
        }
    }
}

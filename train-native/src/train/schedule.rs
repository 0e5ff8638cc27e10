//! fastai's one-cycle policy (Smith 2018, as `fit_one_cycle` implements it), the schedule of
//! every training phase of the recipe.
//!
//! With `pos = step / total_steps` (the step about to be taken, counted from 0):
//! the learning rate rises from `base / div` to `base` along a half cosine over the first
//! `pct_start` of the phase, then falls along a half cosine to `base / div_final`; Adam's β1
//! moves the other way, `0.95 → 0.85 → 0.95`.

use serde::{Deserialize, Serialize};

/// Shape of the cycle; the defaults are fastai's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OneCycleShape {
    /// Share of the phase spent warming up (fastai: 0.25).
    pub pct_start: f64,
    /// The rate starts at `base / div` (fastai: 25).
    pub div: f64,
    /// The rate ends at `base / div_final` (fastai: 1e5).
    pub div_final: f64,
    /// β1 at the start, the peak of the rate, and the end (fastai: 0.95, 0.85, 0.95).
    pub moms: [f64; 3],
}

impl Default for OneCycleShape {
    fn default() -> Self {
        Self {
            pct_start: 0.25,
            div: 25.0,
            div_final: 1e5,
            moms: [0.95, 0.85, 0.95],
        }
    }
}

/// The schedule of one phase: `total_steps` optimiser steps around `base_lr`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneCycle {
    /// The peak learning rate.
    pub base_lr: f64,
    /// Steps in the phase (≥ 1).
    pub total_steps: usize,
    /// Shape of the cycle.
    pub shape: OneCycleShape,
}

/// fastai's `SchedCos`: from `start` (pos 0) to `end` (pos 1) along a half cosine.
fn cosine(start: f64, end: f64, pos: f64) -> f64 {
    start + (1.0 + (std::f64::consts::PI * (1.0 - pos)).cos()) * (end - start) / 2.0
}

/// fastai's `combined_cos`: `start → middle` over `[0, pct]`, `middle → end` over `[pct, 1]`.
fn combined(pct: f64, start: f64, middle: f64, end: f64, pos: f64) -> f64 {
    if pos < pct {
        cosine(start, middle, pos / pct)
    } else {
        cosine(middle, end, (pos - pct) / (1.0 - pct))
    }
}

impl OneCycle {
    /// Position of `step` in the phase, in `[0, 1)`.
    fn pos(&self, step: usize) -> f64 {
        step as f64 / self.total_steps.max(1) as f64
    }

    /// Learning rate of step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        let s = self.shape;
        let base = self.base_lr;
        combined(
            s.pct_start,
            base / s.div,
            base,
            base / s.div_final,
            self.pos(step),
        )
    }

    /// Adam's β1 for step `step`.
    pub fn beta1(&self, step: usize) -> f64 {
        let [start, middle, end] = self.shape.moms;
        combined(self.shape.pct_start, start, middle, end, self.pos(step))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycle(total_steps: usize) -> OneCycle {
        OneCycle {
            base_lr: 1e-2,
            total_steps,
            shape: OneCycleShape::default(),
        }
    }

    #[test]
    fn starts_peaks_and_ends_where_fastai_does() {
        // 100 steps: step 0 is pos 0 (base/25, β1 0.95); step 25 is pos 0.25, the peak
        // (base, β1 0.85); the last step is pos 0.99, close to base/1e5.
        let c = cycle(100);
        assert!((c.lr(0) - 4e-4).abs() < 1e-15);
        assert!((c.beta1(0) - 0.95).abs() < 1e-15);
        assert!((c.lr(25) - 1e-2).abs() < 1e-15);
        assert!((c.beta1(25) - 0.85).abs() < 1e-15);
    }

    #[test]
    fn hand_values_inside_the_cycle() {
        // 8 steps. Warm-up midpoint, step 1 = pos 0.125 → half way along the first cosine:
        // 4e-4 + (1 + cos(π/2)) · (1e-2 − 4e-4) / 2 = 5.2e-3; β1 = 0.95 − 0.05 = 0.90.
        let half = cycle(8);
        assert!((half.lr(1) - 5.2e-3).abs() < 1e-15, "{}", half.lr(1));
        assert!((half.beta1(1) - 0.90).abs() < 1e-15);
        // Annealing midpoint, pos 0.625: 1e-2 + (1 + cos(π/2)) · (1e-7 − 1e-2) / 2
        // = 5.00005e-3; β1 = 0.85 + 0.05 = 0.90.
        assert!((half.lr(5) - 5.000_05e-3).abs() < 1e-15, "{}", half.lr(5));
        assert!((half.beta1(5) - 0.90).abs() < 1e-15);
        // Step 6, pos 0.75 → 2/3 along the annealing cosine:
        // 1e-2 + (1 + cos(π/3)) · (1e-7 − 1e-2) / 2 = 1e-2 − 0.75 · (1e-2 − 1e-7) = 2.500075e-3.
        assert!((half.lr(6) - 2.500_075e-3).abs() < 1e-15, "{}", half.lr(6));
        // β1 there: 0.85 + 0.75 · 0.1 = 0.925.
        assert!((half.beta1(6) - 0.925).abs() < 1e-12);
    }

    #[test]
    fn one_step_phase_is_the_warm_up_start() {
        let c = cycle(1);
        assert!((c.lr(0) - 4e-4).abs() < 1e-15);
    }
}

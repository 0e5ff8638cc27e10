//! The HU window of the paper's preprocessing: clip to `[lower, upper]` and scale to 0…1.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a window cannot be used.
#[derive(Debug, Error, PartialEq)]
pub enum WindowError {
    /// The bounds are not finite or not increasing.
    #[error("HU window {lower_hu} … {upper_hu} is empty or not finite: the lower bound must be below the upper")]
    Invalid { lower_hu: f32, upper_hu: f32 },
}

/// An intensity window in Hounsfield units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HuWindow {
    /// HU mapped to 0; anything below is clipped to it.
    pub lower_hu: f32,
    /// HU mapped to 1; anything above is clipped to it.
    pub upper_hu: f32,
}

impl Default for HuWindow {
    /// The window of Bressem et al. 2021: −2000 … 500 HU.
    fn default() -> Self {
        HuWindow {
            lower_hu: -2000.0,
            upper_hu: 500.0,
        }
    }
}

impl HuWindow {
    /// A window from its bounds, checked.
    pub fn new(lower_hu: f32, upper_hu: f32) -> Result<Self, WindowError> {
        if !(lower_hu.is_finite() && upper_hu.is_finite() && lower_hu < upper_hu) {
            return Err(WindowError::Invalid { lower_hu, upper_hu });
        }
        Ok(HuWindow { lower_hu, upper_hu })
    }

    /// A window given as width and level (centre), as radiology viewers state them.
    pub fn from_width_level(width_hu: f32, level_hu: f32) -> Result<Self, WindowError> {
        HuWindow::new(level_hu - width_hu / 2.0, level_hu + width_hu / 2.0)
    }

    /// One voxel scaled to 0…1. A NaN voxel (no measurement) becomes 0, like air.
    #[inline]
    pub fn scale(&self, hu: f32) -> f32 {
        if hu.is_nan() {
            return 0.0;
        }
        (hu.clamp(self.lower_hu, self.upper_hu) - self.lower_hu) / (self.upper_hu - self.lower_hu)
    }

    /// A whole volume scaled to 0…1.
    pub fn apply(&self, hu: &[f32]) -> Vec<f32> {
        hu.iter().map(|&v| self.scale(v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_window_maps_by_hand() {
        let window = HuWindow::default();
        // (−1000 + 2000) / 2500 = 0.4 ; (0 + 2000) / 2500 = 0.8 ; clipped ends.
        assert_eq!(
            window.apply(&[-3000.0, -2000.0, -1000.0, 0.0, 500.0, 3000.0, f32::NAN]),
            vec![0.0, 0.0, 0.4, 0.8, 1.0, 1.0, 0.0]
        );
    }

    #[test]
    fn lung_window_from_width_level() {
        let window = HuWindow::from_width_level(1500.0, -600.0).unwrap();
        assert_eq!((window.lower_hu, window.upper_hu), (-1350.0, 150.0));
    }

    #[test]
    fn empty_window_is_rejected() {
        assert_eq!(
            HuWindow::new(500.0, 500.0),
            Err(WindowError::Invalid {
                lower_hu: 500.0,
                upper_hu: 500.0
            })
        );
        assert!(HuWindow::new(f32::NAN, 0.0).is_err());
    }
}

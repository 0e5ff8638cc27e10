//! The Gaussian importance map that blends overlapping patches.

/// Per-voxel weight of a patch of `dims`: a Gaussian centred on the patch with σ = ⅛ of
/// each side (nnU-Net's choice), scaled to a maximum of 1; uniform 1 when `gaussian` is
/// false.
///
/// Predictions at a patch's border see the least context and are the least reliable, so
/// they count least where patches overlap. The smallest weight is raised to the smallest
/// non-zero one: a zero weight where only one patch covers a voxel would divide 0 by 0.
pub fn gaussian_importance(dims: [usize; 3], gaussian: bool) -> Vec<f32> {
    let voxels = dims.iter().product();
    if !gaussian {
        return vec![1.0; voxels];
    }

    let profile = |n: usize| -> Vec<f64> {
        let centre = (n as f64 - 1.0) / 2.0;
        let sigma = (n as f64 / 8.0).max(f64::MIN_POSITIVE);
        (0..n)
            .map(|x| (-((x as f64 - centre) / sigma).powi(2) / 2.0).exp())
            .collect()
    };
    let [pi, pj, pk] = [profile(dims[0]), profile(dims[1]), profile(dims[2])];
    let peak = pi.iter().cloned().fold(0.0, f64::max)
        * pj.iter().cloned().fold(0.0, f64::max)
        * pk.iter().cloned().fold(0.0, f64::max);

    let mut map = Vec::with_capacity(voxels);
    for &wk in &pk {
        for &wj in &pj {
            map.extend(pi.iter().map(|&wi| (wi * wj * wk / peak) as f32));
        }
    }
    let floor = map
        .iter()
        .cloned()
        .filter(|&w| w > 0.0)
        .fold(f32::INFINITY, f32::min);
    for w in map.iter_mut() {
        if *w <= 0.0 {
            *w = floor;
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_peak_at_the_centre_and_fall_by_hand_values() {
        // 9 voxels, σ = 9/8: the centre is 1, the edge exp(−(4 / 1.125)² / 2) = 0.001798.
        let map = gaussian_importance([9, 1, 1], true);
        assert_eq!(map[4], 1.0);
        assert!((map[0] - 0.001_798_1).abs() < 1e-6);
        assert_eq!(map[0], map[8]);
    }
}

//! Crops of a stage volume for patch training: nnU-Net's sampling, where a set share of the
//! crops is centred on a random foreground voxel so that rare infiltrate is seen in every
//! batch, and the rest lie anywhere in the volume.

use crate::train::rng::SplitMix64;

/// Where a crop of `patch` voxels starts in a volume of `dims` voxels, both `[x, y, z]` in
/// this crate's layout (x fastest). With probability `foreground_share`, and when `mask` has
/// any voxel > 0.5, the crop is centred (as near as the borders allow) on one of those voxels
/// drawn uniformly; otherwise its origin is uniform over every position that fits.
pub fn crop_origin(
    mask: &[f32],
    dims: [usize; 3],
    patch: [usize; 3],
    foreground_share: f64,
    rng: &mut SplitMix64,
) -> [usize; 3] {
    let wants_foreground = rng.unit() < foreground_share;
    let foreground = if wants_foreground {
        mask.iter().filter(|&&m| m > 0.5).count()
    } else {
        0
    };
    if foreground == 0 {
        return [0, 1, 2].map(|a| rng.below(dims[a] - patch[a] + 1));
    }
    let pick = rng.below(foreground);
    let index = mask
        .iter()
        .enumerate()
        .filter(|(_, &m)| m > 0.5)
        .nth(pick)
        .map_or(0, |(i, _)| i);
    let centre = [
        index % dims[0],
        (index / dims[0]) % dims[1],
        index / (dims[0] * dims[1]),
    ];
    [0, 1, 2].map(|a| {
        centre[a]
            .saturating_sub(patch[a] / 2)
            .min(dims[a] - patch[a])
    })
}

/// The `patch`-sized block of `values` (a `dims` volume) starting at `origin`.
pub fn crop(values: &[f32], dims: [usize; 3], origin: [usize; 3], patch: [usize; 3]) -> Vec<f32> {
    let mut out = Vec::with_capacity(patch.iter().product());
    for z in origin[2]..origin[2] + patch[2] {
        for y in origin[1]..origin[1] + patch[1] {
            let row = (z * dims[1] + y) * dims[0] + origin[0];
            out.extend_from_slice(&values[row..row + patch[0]]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_takes_the_block_at_its_origin() {
        // values[i] = i on a 4 × 3 × 2 volume; the 2 × 2 × 1 block at (1, 1, 1) holds, by
        // i = x + 4 (y + 3 z): 17, 18, 21, 22.
        let values: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let block = crop(&values, [4, 3, 2], [1, 1, 1], [2, 2, 1]);
        assert_eq!(block, [17.0, 18.0, 21.0, 22.0]);
    }

    #[test]
    fn foreground_crops_contain_the_foreground() {
        // One infiltrate voxel at (30, 5, 2) in a 40 × 40 × 8 volume: every foreground crop
        // of 8 × 8 × 4 must contain it, even near the border where the crop is clamped.
        let dims = [40, 40, 8];
        let mut mask = vec![0.0f32; 40 * 40 * 8];
        mask[30 + 40 * (5 + 40 * 2)] = 1.0;
        let mut rng = SplitMix64::new(3);
        for _ in 0..20 {
            let o = crop_origin(&mask, dims, [8, 8, 4], 1.0, &mut rng);
            assert!((o[0]..o[0] + 8).contains(&30), "{o:?}");
            assert!((o[1]..o[1] + 8).contains(&5), "{o:?}");
            assert!((o[2]..o[2] + 4).contains(&2), "{o:?}");
        }
    }

    #[test]
    fn random_crops_fit_and_cover_the_volume() {
        // Share 0, or an empty mask: origins are uniform over 0..=dims − patch per axis, so
        // over 400 draws both ends of the 0..=32 range on x are reached.
        let dims = [40, 10, 8];
        let mask = vec![0.0f32; 40 * 10 * 8];
        let mut rng = SplitMix64::new(9);
        let origins: Vec<[usize; 3]> = (0..400)
            .map(|_| crop_origin(&mask, dims, [8, 10, 8], 1.0, &mut rng))
            .collect();
        assert!(origins.iter().all(|o| o[0] <= 32 && o[1] == 0 && o[2] == 0));
        assert!(origins.iter().any(|o| o[0] == 0) && origins.iter().any(|o| o[0] == 32));
    }
}

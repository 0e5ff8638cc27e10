//! Seeded randomness for the synthesis: a stream of random draws for the decisions of one case
//! and stateless 3-D noise fields (gradient noise and per-voxel white noise) for shapes and
//! texture.
//!
//! The noise fields are hashes of the lattice position and a seed rather than tables, so a
//! lesion's field can be evaluated at any point in any order and the result depends only on
//! the seed and the position in mm, never on the voxel grid or the evaluation order.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The random draws of one synthetic case. ChaCha8 gives the same stream on every platform
/// (natively and in the page) for a given seed.
pub(crate) struct Draws {
    rng: ChaCha8Rng,
}

impl Draws {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Draws {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A fresh 64-bit seed, for a noise field.
    pub fn seed(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `[range[0], range[1])`.
    pub fn in_range(&mut self, range: [f64; 2]) -> f64 {
        self.uniform(range[0], range[1])
    }

    /// Log-uniform in `[lo, hi)` (both positive): every factor of 2 is equally likely.
    pub fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.unit()).exp()
    }

    /// Uniform integer in `lo..=hi`.
    pub fn integer(&mut self, lo: u32, hi: u32) -> u32 {
        let span = u64::from(hi.saturating_sub(lo)) + 1;
        lo + ((self.unit() * span as f64) as u64).min(span - 1) as u32
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A uniformly distributed unit vector.
    pub fn direction(&mut self) -> [f64; 3] {
        let z = self.uniform(-1.0, 1.0);
        let phi = self.uniform(0.0, std::f64::consts::TAU);
        let r = (1.0 - z * z).max(0.0).sqrt();
        [r * phi.cos(), r * phi.sin(), z]
    }
}

/// SplitMix64's finaliser: a bijective mix of all 64 bits.
#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Hash of a lattice point under a seed.
#[inline]
fn hash3(seed: u64, x: i64, y: i64, z: i64) -> u64 {
    let h = seed
        ^ (x as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (y as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
        ^ (z as u64).wrapping_mul(0x1656_67b1_9e37_79f9);
    mix(h)
}

/// Quintic fade `6t⁵ − 15t⁴ + 10t³`: zero first and second derivative at the lattice points,
/// so the noise has no visible grid creases.
#[inline]
fn fade(t: f32) -> f32 {
    t * t * t * (t * (t * 6.0 - 15.0) + 10.0)
}

/// Dot product of the offset with one of the twelve cube-edge gradients (Perlin's improved
/// noise, 2002), chosen by the hash.
#[inline]
fn gradient(hash: u64, x: f32, y: f32, z: f32) -> f32 {
    match (hash >> 32) % 12 {
        0 => x + y,
        1 => -x + y,
        2 => x - y,
        3 => -x - y,
        4 => x + z,
        5 => -x + z,
        6 => x - z,
        7 => -x - z,
        8 => y + z,
        9 => -y + z,
        10 => y - z,
        _ => -y - z,
    }
}

/// Smooth 3-D gradient noise with one feature per lattice unit, roughly in `[−1, 1]` (zero at
/// every lattice point, standard deviation about 0.3).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GradientNoise {
    seed: u64,
}

impl GradientNoise {
    /// The field of `seed`.
    pub fn new(seed: u64) -> Self {
        GradientNoise { seed: mix(seed) }
    }

    /// The value at `p` (in lattice units).
    pub fn at(&self, p: [f32; 3]) -> f32 {
        let cell = p.map(|c| c.floor());
        let [fx, fy, fz] = [p[0] - cell[0], p[1] - cell[1], p[2] - cell[2]];
        let [x0, y0, z0] = cell.map(|c| c as i64);
        let [u, v, w] = [fade(fx), fade(fy), fade(fz)];

        let corner = |dx: i64, dy: i64, dz: i64| {
            let h = hash3(self.seed, x0 + dx, y0 + dy, z0 + dz);
            gradient(h, fx - dx as f32, fy - dy as f32, fz - dz as f32)
        };
        let lerp = |a: f32, b: f32, t: f32| a + t * (b - a);
        let x00 = lerp(corner(0, 0, 0), corner(1, 0, 0), u);
        let x10 = lerp(corner(0, 1, 0), corner(1, 1, 0), u);
        let x01 = lerp(corner(0, 0, 1), corner(1, 0, 1), u);
        let x11 = lerp(corner(0, 1, 1), corner(1, 1, 1), u);
        lerp(lerp(x00, x10, v), lerp(x01, x11, v), w)
    }

    /// Fractal sum of `octaves` copies, each at twice the frequency and half the amplitude of
    /// the one before, normalised by the sum of amplitudes; `p` in lattice units of the
    /// coarsest octave.
    pub fn fractal(&self, p: [f32; 3], octaves: u32) -> f32 {
        let mut sum = 0.0;
        let mut norm = 0.0;
        let mut amplitude = 1.0;
        let mut scale = 1.0;
        for octave in 0..octaves {
            // An offset per octave so that the lattice points of the octaves do not coincide
            // (all octaves would be zero there).
            let shift = 17.31 * octave as f32;
            sum += amplitude * self.at([p[0] * scale + shift, p[1] * scale - shift, p[2] * scale]);
            norm += amplitude;
            amplitude *= 0.5;
            scale *= 2.0;
        }
        sum / norm
    }
}

/// Independent, approximately standard normal noise per voxel (Irwin–Hall sum of four
/// uniforms, rescaled to unit variance), a hash of the seed and the voxel index.
#[inline]
pub(crate) fn white_noise(seed: u64, index: usize) -> f32 {
    let h = mix(seed ^ mix(index as u64));
    let sum: u32 = (0..4).map(|n| ((h >> (16 * n)) & 0xffff) as u32).sum();
    // Four uniforms on [0, 1) sum to mean 2 and variance 4/12.
    (sum as f32 / 65536.0 - 2.0) * 3f32.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_noise_is_zero_at_lattice_points_and_bounded() {
        // Every corner's contribution vanishes at its own lattice point (Perlin's construction);
        // with gradients of length √2 and offsets within the unit cube the value stays below
        // about 1.04 in magnitude (Perlin's improved noise), well within 1.5.
        let noise = GradientNoise::new(7);
        assert_eq!(noise.at([3.0, -2.0, 5.0]), 0.0);
        let mut sum_sq = 0.0f64;
        let n = 20_000;
        for s in 0..n {
            let p = [
                s as f32 * 0.137,
                s as f32 * 0.071 - 50.0,
                (s % 97) as f32 * 0.31,
            ];
            let v = noise.at(p);
            assert!(v.abs() < 1.5, "{v} at {p:?}");
            sum_sq += f64::from(v * v);
        }
        let sd = (sum_sq / n as f64).sqrt();
        // Improved Perlin noise has a standard deviation of about 0.2–0.35 in 3-D.
        assert!((0.15..0.45).contains(&sd), "sd {sd}");
    }

    #[test]
    fn white_noise_has_unit_variance_and_zero_mean() {
        // The Irwin–Hall rescaling gives mean 0, variance 1; 100 000 samples give a standard
        // error of about 0.003 on the mean and 0.0045 on the variance.
        let n = 100_000;
        let samples: Vec<f64> = (0..n).map(|i| f64::from(white_noise(42, i))).collect();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let var = samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.015, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
    }

    #[test]
    fn draws_repeat_for_a_seed_and_stay_in_range() {
        let mut a = Draws::new(5);
        let mut b = Draws::new(5);
        let mut c = Draws::new(6);
        let xs: Vec<f64> = (0..10).map(|_| a.unit()).collect();
        let ys: Vec<f64> = (0..10).map(|_| b.unit()).collect();
        let zs: Vec<f64> = (0..10).map(|_| c.unit()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        for _ in 0..1000 {
            let k = a.integer(1, 8);
            assert!((1..=8).contains(&k));
            let v = a.log_uniform(1.0, 150.0);
            assert!((1.0..150.0).contains(&v));
        }
    }
}

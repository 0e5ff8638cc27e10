//! Nearest-neighbour resize of 5-D tensors (burn's `interpolate` is 2-D only).

use burn::tensor::{Int, Tensor, TensorData};

/// Source index of each output index along one axis: `src = floor(dst · in / out)`, the
/// mapping of PyTorch's `interpolate(mode = "nearest")`, in exact integer arithmetic.
pub fn nearest_indices(in_len: usize, out_len: usize) -> Vec<usize> {
    (0..out_len).map(|dst| dst * in_len / out_len).collect()
}

/// Resizes the three spatial axes of `[batch, channels, d, h, w]` to `size = [D, H, W]` by
/// nearest neighbour (index gathers along each axis whose length changes); returns the
/// input unchanged where the sizes already agree.
pub fn resize_nearest(input: Tensor<5>, size: [usize; 3]) -> Tensor<5> {
    let dims = input.dims();
    let device = input.device();
    let mut x = input;
    for (axis, &out_len) in size.iter().enumerate() {
        let in_len = dims[axis + 2];
        if in_len == out_len {
            continue;
        }
        let indices: Vec<i32> = nearest_indices(in_len, out_len)
            .into_iter()
            .map(|i| i as i32)
            .collect();
        let indices = Tensor::<1, Int>::from_ints(TensorData::new(indices, [out_len]), &device);
        x = x.select(axis + 2, indices);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn indices_match_pytorch_nearest() {
        // torch.nn.functional.interpolate(torch.arange(6.).view(1, 1, 6), size=5,
        // mode="nearest") gives [0, 1, 2, 3, 4]; size 7 from 4 gives [0, 0, 1, 1, 2, 2, 3];
        // size 3 from 6 gives [0, 2, 4].
        assert_eq!(nearest_indices(6, 5), vec![0, 1, 2, 3, 4]);
        assert_eq!(nearest_indices(4, 7), vec![0, 0, 1, 1, 2, 2, 3]);
        assert_eq!(nearest_indices(6, 3), vec![0, 2, 4]);
    }

    #[test]
    fn resize_gathers_along_each_axis() {
        let device = Device::default();
        // Values 100·d + 10·h + w on a 2×2×3 grid, resized to 3×1×2: d ← [0,0,1], h ← [0],
        // w ← [0,1] (floor(1·3/2) = 1).
        let values: Vec<f32> = (0..2)
            .flat_map(|d| {
                (0..2).flat_map(move |h| (0..3).map(move |w| (100 * d + 10 * h + w) as f32))
            })
            .collect();
        let x = Tensor::<5>::from_floats(TensorData::new(values, [1, 1, 2, 2, 3]), &device);
        let y = resize_nearest(x, [3, 1, 2]);
        assert_eq!(y.dims(), [1, 1, 3, 1, 2]);
        let got: Vec<f32> = y.into_data().try_into_vec_as().unwrap_or_default();
        assert_eq!(got, vec![0.0, 1.0, 0.0, 1.0, 100.0, 101.0]);
    }
}

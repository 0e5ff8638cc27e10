//! Forward-pass timings of the U-Net on burn-flex (the CPU backend), to compare with
//! PyTorch: `tools/fixtures/unet_reference.py --compare DIR` runs the identical network on
//! the weights and inputs this writes, and reports its times and the largest logit difference.
//!
//! Run: `cargo bench -p pulmoseg-core --features model --bench unet_forward`
//! (`PULMOSEG_BENCH_DIR`, default `/tmp/pulmoseg-bench`; `PULMOSEG_BENCH_WIDTHS`, default
//! `16,64`; `PULMOSEG_BENCH_DIMS`, default `18x112x112,20x256x256`; `PULMOSEG_BENCH_REPEATS`,
//! timed runs after a warm-up, default 2).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::{Device, Tensor, TensorData};
use pulmoseg_core::unet::UNetConfig;
use pulmoseg_core::weights::{self, Storage, WeightsMetadata};

fn list(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(list("PULMOSEG_BENCH_DIR", "/tmp/pulmoseg-bench"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let widths: Vec<usize> = list("PULMOSEG_BENCH_WIDTHS", "16,64")
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let dims: Vec<[usize; 3]> = list("PULMOSEG_BENCH_DIMS", "18x112x112,20x256x256")
        .split(',')
        .map(|d| {
            let v: Vec<usize> = d.split('x').map(str::parse).collect::<Result<_, _>>()?;
            v.try_into()
                .map_err(|_| anyhow::anyhow!("dims {d} are not DxHxW"))
        })
        .collect::<anyhow::Result<_>>()?;

    let repeats: usize = list("PULMOSEG_BENCH_REPEATS", "2").parse()?;
    let device = Device::default();
    let mut report = Vec::new();
    for &width in &widths {
        device.seed(width as u64);
        let config = UNetConfig::new().with_width(width);
        let model = config.init(&device)?;
        let bytes = weights::save(&model, &WeightsMetadata::new(&config), Storage::F32)?;
        std::fs::write(dir.join(format!("unet_w{width}.pulmoseg")), bytes)?;

        for &[d, h, w] in &dims {
            let n = d * h * w;
            let values: Vec<f32> = (0..n)
                .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
                .collect();
            let tag = format!("{d}x{h}x{w}");
            let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(dir.join(format!("input_{tag}.f32")), raw)?;
            let input = Tensor::<5>::from_floats(TensorData::new(values, [1, 1, d, h, w]), &device);

            let mut times = Vec::new();
            let mut logits = Vec::new();
            for _ in 0..repeats + 1 {
                let start = Instant::now();
                let out = model.forward(input.clone())?;
                logits = out
                    .into_data()
                    .try_into_vec_as::<f32>()
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                times.push(start.elapsed().as_secs_f64());
            }
            // The first run includes one-off allocation; report the best of the others.
            let warm = usize::from(times.len() > 1);
            let best = times
                .iter()
                .skip(warm)
                .copied()
                .fold(f64::INFINITY, f64::min);
            let raw: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(dir.join(format!("logits_w{width}_{tag}.f32")), raw)?;
            println!(
                "burn-flex width {width} {tag}: {best:.2} s (first run {:.2} s)",
                times[0]
            );
            report.push(serde_json::json!({ "width": width, "dims": [d, h, w], "seconds": best }));
            // Written after every run so that a long sweep can be compared while it goes on.
            std::fs::write(
                dir.join("burn_times.json"),
                serde_json::to_string_pretty(&report)?,
            )?;
        }
    }
    std::fs::write(
        dir.join("burn_times.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(())
}

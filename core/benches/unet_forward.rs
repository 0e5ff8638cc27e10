//! Forward-pass timings and peak memory of the U-Net on one burn backend, to compare with
//! PyTorch: `tools/fixtures/unet_reference.py --compare DIR` runs the identical network on the
//! weights and inputs this writes, and reports its times, peak memory and the largest logit
//! difference. `scripts/bench-unet` runs every configuration in a process of its own (so
//! that each peak is its own) and prints the side-by-side table.
//!
//! Run: `cargo bench -p pulmoseg-core --features model --bench unet_forward`, with
//! `--features model,wgpu` for burn-wgpu (`PULMOSEG_BENCH_BACKEND=wgpu`; Vulkan, Metal or
//! DirectX, lavapipe on a machine without a GPU) or `--features model,cuda` for burn-cuda.
//! `PULMOSEG_BENCH_DIR`, default `/tmp/pulmoseg-bench`; `PULMOSEG_BENCH_WIDTHS`, default
//! `16,64`; `PULMOSEG_BENCH_DIMS`, default `18x112x112,20x256x256`; `PULMOSEG_BENCH_REPEATS`,
//! timed runs after a warm-up, default 2.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use burn::tensor::{Device, Tensor, TensorData};
use pulmoseg_core::unet::UNetConfig;
use pulmoseg_core::weights::{self, Storage, WeightsMetadata};

fn list(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// The device of the backend `name`, when this bench was built with its feature.
fn backend_device(name: &str) -> anyhow::Result<Device> {
    match name {
        "flex" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0)),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => bail!("this bench was built without the `wgpu` feature"),
        #[cfg(not(feature = "cuda"))]
        "cuda" => bail!("this bench was built without the `cuda` feature"),
        other => bail!("unknown backend {other:?}: flex, wgpu or cuda"),
    }
}

/// The process's peak resident memory in MB (Linux `VmHWM`), or NaN elsewhere. On lavapipe
/// the "GPU" memory is this process's memory too; on a real GPU it is not counted.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb / 1024.0)
        })
        .unwrap_or(f64::NAN)
}

fn parse_dims(text: &str) -> anyhow::Result<Vec<[usize; 3]>> {
    text.split(',')
        .map(|d| {
            let v: Vec<usize> = d.split('x').map(str::parse).collect::<Result<_, _>>()?;
            v.try_into()
                .map_err(|_| anyhow::anyhow!("dims {d} are not DxHxW"))
        })
        .collect()
}

/// The same random weights on every backend: drawn on flex with a fixed seed, saved, and
/// loaded onto `device`, so that PyTorch and every burn backend run one network.
fn bench_weights(dir: &Path, width: usize) -> anyhow::Result<Vec<u8>> {
    let flex = Device::flex();
    flex.seed(width as u64);
    let config = UNetConfig::new().with_width(width);
    let bytes = weights::save(
        &config.init(&flex)?,
        &WeightsMetadata::new(&config),
        Storage::F32,
    )?;
    std::fs::write(dir.join(format!("unet_w{width}.pulmoseg")), &bytes)?;
    Ok(bytes)
}

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(list("PULMOSEG_BENCH_DIR", "/tmp/pulmoseg-bench"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let backend = list("PULMOSEG_BENCH_BACKEND", "flex");
    let device = backend_device(&backend)?;
    let widths: Vec<usize> = list("PULMOSEG_BENCH_WIDTHS", "16,64")
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let dims = parse_dims(&list("PULMOSEG_BENCH_DIMS", "18x112x112,20x256x256"))?;
    let repeats: usize = list("PULMOSEG_BENCH_REPEATS", "2").parse()?;

    for &width in &widths {
        let bytes = bench_weights(&dir, width)?;
        let (model, _) = weights::load(&bytes, &device)?;

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
            // The first run includes one-off allocation and, on a GPU, shader compilation;
            // report the best of the others.
            let warm = usize::from(times.len() > 1);
            let best = times
                .iter()
                .skip(warm)
                .copied()
                .fold(f64::INFINITY, f64::min);
            let raw: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(
                dir.join(format!("logits_{backend}_w{width}_{tag}.f32")),
                raw,
            )?;
            let peak_mb = peak_rss_mb();
            println!(
                "burn-{backend} width {width} {tag}: {best:.2} s (first run {:.2} s), peak RSS {peak_mb:.0} MB",
                times[0]
            );
            // One file per run, so that a sweep of one process per configuration can be
            // compared while it goes on.
            let row = serde_json::json!({
                "backend": backend, "width": width, "dims": [d, h, w],
                "seconds": best, "first_seconds": times[0], "peak_rss_mb": peak_mb,
            });
            std::fs::write(
                dir.join(format!("burn_{backend}_w{width}_{tag}.json")),
                serde_json::to_string_pretty(&row)?,
            )?;
        }
    }
    Ok(())
}

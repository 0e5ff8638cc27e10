//! Dice and normalized surface Dice on a full-size chest CT grid, against DeepMind's
//! `surface-distance` in Python.
//!
//! The pair: on P001's 512 × 512 × 148 grid (0.748 × 0.748 × 2 mm), G = voxels above 200 HU
//! (bone, about 0.9 M voxels with a surface over the whole scan) and P = G dilated by one
//! voxel with the 6-neighbour cross. `tools/peers/metrics_peer.py` builds the same pair with
//! nibabel and scipy and times `compute_surface_distances` + `compute_surface_dice_at_tolerance`
//! and `compute_dice_coefficient`; both sides' values must agree to 1e-6.
//!
//! Run: `cargo bench -p pulmoseg-core --bench metrics [-- path/to/ct.nii.gz]`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use pulmoseg_core::dice::dice;
use pulmoseg_core::nifti::{read_nifti, ReadOptions};
use pulmoseg_core::surface_dice::surface_distances;
use serde_json::Value;

const TOLERANCE_MM: f64 = 3.0;
const REPEATS: usize = 3;
const AGREEMENT: f64 = 1e-6;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ct = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../shared/data/covid-ct-md/P001.nii.gz"));

    let bytes = std::fs::read(&ct).map_err(|e| format!("reading {}: {e}", ct.display()))?;
    let image = read_nifti(&bytes, &ReadOptions::default())?;
    drop(bytes);
    let volume = image.volume;
    let truth: Vec<bool> = volume.hu.iter().map(|&v| v > 200.0).collect();
    let prediction = dilate6(&truth, volume.dims);
    let [ni, nj, nk] = volume.dims;
    let [si, sj, sk] = volume.spacing_mm;
    println!(
        "grid {ni} × {nj} × {nk}, spacing {si} × {sj} × {sk} mm; G = HU > 200: {} voxels, \
         P = G ⊕ 6-cross: {} voxels; τ = {TOLERANCE_MM} mm",
        count(&truth),
        count(&prediction)
    );
    drop(volume.hu);

    let memory_before = peak_memory_mib();
    let (dice_s, dice_value) = median_seconds(|| dice(&truth, &prediction))?;
    let (surface_s, nsd_value, corners) = {
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..REPEATS {
            let start = Instant::now();
            let surfaces = surface_distances(&truth, &prediction, volume.dims, volume.spacing_mm)?;
            let nsd = surfaces.surface_dice_at(TOLERANCE_MM)?;
            times.push(start.elapsed().as_secs_f64());
            last = Some((
                nsd,
                surfaces.surfel_areas_truth.len(),
                surfaces.surface_area_truth_mm2(),
            ));
        }
        let (nsd, corners, area) = last.unwrap_or((f64::NAN, 0, f64::NAN));
        (median(&mut times), nsd, (corners, area))
    };
    let memory_after = peak_memory_mib();
    if let (Some(before), Some(after)) = (memory_before, memory_after) {
        println!("peak resident memory: {before:.0} MiB before the metrics, {after:.0} MiB after");
    }
    println!(
        "Rust: {} border corners of G, surface area of G {:.4} mm²; median of {REPEATS} runs",
        corners.0, corners.1
    );

    let peer = run_peer(&manifest.join("../tools/peers/metrics_peer.py"), &ct);
    println!();
    println!("| operation | Rust s | Python s | Python / Rust | Rust value | Python value |");
    println!("| --- | --- | --- | --- | --- | --- |");
    match &peer {
        Ok(p) => {
            let seconds = &p["seconds"];
            let py_dice_s = seconds["dice"].as_f64().unwrap_or(f64::NAN);
            let py_surface_s = seconds["surface_distances"].as_f64().unwrap_or(f64::NAN)
                + seconds["surface_dice"].as_f64().unwrap_or(f64::NAN);
            let py_dice = p["dice"].as_f64().unwrap_or(f64::NAN);
            let py_nsd = p["nsd"].as_f64().unwrap_or(f64::NAN);
            row("dice", dice_s, Some(py_dice_s), dice_value, Some(py_dice));
            row(
                "surface distances + NSD",
                surface_s,
                Some(py_surface_s),
                nsd_value,
                Some(py_nsd),
            );
            println!();
            let agree = (dice_value - py_dice).abs() <= AGREEMENT
                && (nsd_value - py_nsd).abs() <= AGREEMENT
                && p["border_corners_truth"].as_u64() == Some(corners.0 as u64);
            if agree {
                println!("values agree to {AGREEMENT:e} (and the border-corner counts are equal)");
            } else {
                println!("VALUES DISAGREE beyond {AGREEMENT:e}: Python reported {p}");
                std::process::exit(1);
            }
        }
        Err(why) => {
            row("dice", dice_s, None, dice_value, None);
            row("surface distances + NSD", surface_s, None, nsd_value, None);
            println!();
            println!("Python peer unavailable, Rust numbers only: {why}");
        }
    }
    Ok(())
}

fn row(name: &str, rust_s: f64, python_s: Option<f64>, rust: f64, python: Option<f64>) {
    let (py_s, ratio, py) = match (python_s, python) {
        (Some(s), Some(v)) => (
            format!("{s:.3}"),
            format!("{:.1}", s / rust_s),
            format!("{v:.9}"),
        ),
        _ => ("–".into(), "–".into(), "–".into()),
    };
    println!("| {name} | {rust_s:.3} | {py_s} | {ratio} | {rust:.9} | {py} |");
}

/// Median wall time of `REPEATS` calls and the last result.
fn median_seconds<E>(mut f: impl FnMut() -> Result<f64, E>) -> Result<(f64, f64), E> {
    let mut times = Vec::new();
    let mut value = f64::NAN;
    for _ in 0..REPEATS {
        let start = Instant::now();
        value = f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    Ok((median(&mut times), value))
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn count(mask: &[bool]) -> usize {
    mask.iter().filter(|&&m| m).count()
}

/// `mask` dilated by one voxel with the 6-neighbour cross, outside the grid false (as
/// `scipy.ndimage.binary_dilation` with `generate_binary_structure(3, 1)`).
fn dilate6(mask: &[bool], dims: [usize; 3]) -> Vec<bool> {
    let [ni, nj, nk] = dims;
    let mut out = mask.to_vec();
    let strides = [1, ni, ni * nj];
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let v = i + ni * (j + nj * k);
                if !mask[v] {
                    continue;
                }
                for (axis, (&stride, &position)) in strides.iter().zip(&[i, j, k]).enumerate() {
                    if position > 0 {
                        out[v - stride] = true;
                    }
                    if position + 1 < dims[axis] {
                        out[v + stride] = true;
                    }
                }
            }
        }
    }
    out
}

/// Runs the Python peer and parses its JSON, or says why it could not.
fn run_peer(script: &Path, ct: &Path) -> Result<Value, String> {
    println!(
        "running {} (surface-distance; takes a while) …",
        script.display()
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(ct)
        .arg(TOLERANCE_MM.to_string())
        .output()
        .map_err(|e| format!("could not start python3: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "python3 exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim())
        .map_err(|e| format!("unreadable peer output ({e}): {stdout}"))
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`), if the system reports it.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

//! Time to read a full-size chest CT (`../shared/data/covid-ct-md/P001.nii.gz`, 512 × 512 ×
//! 148 int16, 47 MB gzip'd) into f32 HU, against nibabel's `load(...).get_fdata(float32)`
//! run by `tools/peers/read_nifti_peer.py`.
//!
//! `cargo bench -p pulmoseg-core --bench read_nifti [-- PATH]`

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use pulmoseg_core::nifti::{read_nifti, ReadOptions};

const REPEATS: usize = 5;

fn main() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../shared/data/covid-ct-md/P001.nii.gz"));

    let mut read_s = f64::INFINITY;
    let mut parse_s = f64::INFINITY;
    let mut dims = [0; 3];
    for _ in 0..REPEATS {
        let start = Instant::now();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) => {
                eprintln!("cannot read {}: {err}", path.display());
                std::process::exit(1);
            }
        };
        let read_done = Instant::now();
        let image = match read_nifti(&bytes, &ReadOptions::default()) {
            Ok(image) => image,
            Err(err) => {
                eprintln!("cannot decode {}: {err}", path.display());
                std::process::exit(1);
            }
        };
        read_s = read_s.min((read_done - start).as_secs_f64());
        parse_s = parse_s.min(read_done.elapsed().as_secs_f64());
        dims = image.volume.dims;
    }
    let rust_total = read_s + parse_s;

    println!(
        "{} ({} × {} × {}), best of {REPEATS}",
        path.display(),
        dims[0],
        dims[1],
        dims[2]
    );
    let peer = manifest.join("../tools/peers/read_nifti_peer.py");
    let output = Command::new("python3")
        .arg(&peer)
        .arg(&path)
        .arg("3")
        .output();
    let nibabel = match output {
        Ok(out) if out.status.success() => parse_peer(&String::from_utf8_lossy(&out.stdout)),
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            println!("nibabel peer unavailable ({}): {}", out.status, text.trim());
            None
        }
        Err(err) => {
            println!("python3 not found ({err}); Rust numbers only");
            None
        }
    };

    println!(
        "{:<34} {:>9} {:>10} {:>7}",
        "step", "Rust s", "nibabel s", "ratio"
    );
    let row = |name: &str, ours: f64, theirs: Option<f64>| match theirs {
        Some(t) => println!("{name:<34} {ours:>9.3} {t:>10.3} {:>7.2}", t / ours),
        None => println!("{name:<34} {ours:>9.3} {:>10} {:>7}", "-", "-"),
    };
    row("file read", read_s, nibabel.map(|(file, _)| file));
    row(
        "decode (gunzip, parse, scale)",
        parse_s,
        nibabel.map(|(file, load)| load - file),
    );
    row("total", rust_total, nibabel.map(|(_, load)| load));
    println!("ratio = nibabel s / Rust s (above 1: Rust is faster)");
}

/// `(file_read_s, load_s)` from the peer's JSON line.
fn parse_peer(stdout: &str) -> Option<(f64, f64)> {
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).ok()?;
    Some((value["file_read_s"].as_f64()?, value["load_s"].as_f64()?))
}

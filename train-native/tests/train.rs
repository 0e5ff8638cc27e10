//! `pulmoseg train` and `pulmoseg evaluate` end to end on real scans: `pulmoseg synth` makes
//! training pairs from the 3 mm copies of two normal CTs (`../shared/data/small/`), the small
//! network is trained for a few tiny epochs, scored, killed with SIGKILL and resumed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use burn::tensor::Device;
use pulmoseg_core::inference::InferenceMode;
use pulmoseg_core::orientation::CanonicalOrientation;
use pulmoseg_core::resample::ResizeConvention;
use pulmoseg_core::weights;
use pulmoseg_core::window::HuWindow;

fn shared_data(relative: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(relative);
    assert!(path.exists(), "real test data missing: {}", path.display());
    path
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pulmoseg-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn pulmoseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pulmoseg"))
        .args(args)
        .output()
        .unwrap()
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "pulmoseg failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Four synthetic pairs made by `pulmoseg synth` from the 3 mm copies of two normal CTs (two
/// cases each, all with lesions); made once per test binary.
fn pairs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("pairs");
        let normal001 = shared_data("small/covidctmd_normal001_3mm.nii.gz");
        let normal002 = shared_data("small/covidctmd_normal002_3mm.nii.gz");
        let out = pulmoseg(&[
            "synth",
            "--input",
            normal001.to_str().unwrap(),
            normal002.to_str().unwrap(),
            "--output",
            dir.to_str().unwrap(),
            "--cases-per-scan",
            "2",
            "--seed",
            "7",
            "--lesion-free-share",
            "0",
            "--force",
        ]);
        assert_success(&out);
        dir
    })
}

/// A tiny recipe: width 8, stage 1 at 8 × 32 × 32 (batch 2), stage 2 at 8 × 40 × 40 (batch 1).
fn tiny_args<'a>(
    data: &'a str,
    output: &'a str,
    frozen: &'a str,
    stage1: &'a str,
    stage2: &'a str,
) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--output",
        output,
        "--width",
        "8",
        "--seed",
        "7",
        "--stage1-dims",
        "8x32x32",
        "--stage1-batch",
        "2",
        "--stage2-dims",
        "8x40x40",
        "--stage2-batch",
        "1",
        "--frozen-epochs",
        frozen,
        "--stage1-epochs",
        stage1,
        "--stage2-epochs",
        stage2,
        "--max-steps-per-epoch",
        "3",
    ]
}

fn log_epochs(output: &Path) -> Vec<(usize, usize, usize)> {
    let text = std::fs::read_to_string(output.join("log.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("epoch,stage,phase,lr,train_loss,tune_dice,tune_nsd,seconds")
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 8, "{l}");
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn trains_both_stages_writes_the_model_card_and_evaluates() {
    let data = pairs().join("manifest.csv");
    let out = scratch("e2e");
    let run = pulmoseg(&tiny_args(
        data.to_str().unwrap(),
        out.to_str().unwrap(),
        "1",
        "1",
        "1",
    ));
    assert_success(&run);

    // Three epochs: stage 1 phase 1 (frozen), stage 1 phase 2, stage 2 phase 1.
    assert_eq!(log_epochs(&out), vec![(1, 1, 1), (2, 1, 2), (3, 2, 1)]);
    let png = std::fs::read(out.join("curves.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    let bytes = std::fs::read(out.join("model.pulmoseg")).unwrap();
    let (model, meta) = weights::load(&bytes, &Device::flex()).unwrap();
    assert_eq!(model.config().width, 8);
    assert_eq!(meta.class_names, ["background", "infiltrate"]);
    let pre = meta.preprocessing.expect("preprocessing");
    // Stage 2's 8 × 40 × 40 (depth × height × width) is [40, 40, 8] on the RAS+ voxel axes.
    assert_eq!(
        pre.mode,
        InferenceMode::WholeVolume {
            input_dims: [40, 40, 8]
        }
    );
    assert_eq!(
        pre.window,
        HuWindow {
            lower_hu: -2000.0,
            upper_hu: 500.0
        }
    );
    assert_eq!(pre.resize, ResizeConvention::HalfPixel);
    assert_eq!(pre.orientation, CanonicalOrientation::Ras);
    let card = &meta.model_card;
    // The description line `pulmoseg synth` writes into its manifest.
    assert_eq!(
        card["training_data"],
        "synthetic infiltrates (pulmoseg synth, seed 7, 2 cases per scan) inserted into CTs \
         without pneumonia: covidctmd_normal001_3mm, covidctmd_normal002_3mm"
    );
    // round(4 · 0.15) = 1 tuning case, 3 training cases.
    assert_eq!(card["training_cases"], 3);
    assert_eq!(card["tuning_cases"].as_array().unwrap().len(), 1);
    assert_eq!(card["backend"], "flex");
    assert!(card["hardware"].as_str().unwrap().len() > 3);
    assert_eq!(
        card["recipe"]["stages"][0]["input_dims"],
        serde_json::json!([8, 32, 32])
    );
    let tune_dice = card["tuning"]["dice"]["mean"]
        .as_f64()
        .expect("a tuning Dice");
    assert!((0.0..=1.0).contains(&tune_dice));

    let eval_dir = out.join("eval");
    let eval = pulmoseg(&[
        "evaluate",
        "--model",
        out.join("model.pulmoseg").to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--output",
        eval_dir.to_str().unwrap(),
    ]);
    assert_success(&eval);
    let stdout = String::from_utf8_lossy(&eval.stdout);
    assert!(
        stdout.contains("| dataset | n | Dice mean ± sd (min, max) |"),
        "{stdout}"
    );
    assert!(stdout.contains("| manifest.csv | 4 |"), "{stdout}");
    let scores = std::fs::read_to_string(eval_dir.join("scores.csv")).unwrap();
    assert_eq!(scores.lines().count(), 5, "{scores}");
    assert_eq!(
        &std::fs::read(eval_dir.join("scores.png")).unwrap()[..4],
        b"\x89PNG"
    );

    // The tuning case scored by evaluate equals the model card's tuning Dice (one case, so
    // its mean is its value), and `pulmoseg metrics` on the written prediction agrees.
    let tuned = card["tuning_cases"][0].as_str().unwrap();
    let row = scores
        .lines()
        .find(|l| l.starts_with(&format!("{tuned},")))
        .expect("tuning row");
    let dice: f64 = row.split(',').nth(1).unwrap().parse().unwrap();
    assert!((dice - tune_dice).abs() < 1e-6, "{dice} vs {tune_dice}");
    let prediction = eval_dir.join(format!("{tuned}_prediction.nii.gz"));
    // Case names are the image file's stem; synth writes the mask under the same name.
    let truth = pairs().join("masks").join(format!("{tuned}.nii.gz"));
    let metrics = pulmoseg(&[
        "metrics",
        prediction.to_str().unwrap(),
        truth.to_str().unwrap(),
        "--json",
    ]);
    assert_success(&metrics);
    let json: serde_json::Value = serde_json::from_slice(&metrics.stdout).unwrap();
    let metrics_dice = json["dice"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (metrics_dice - dice).abs() < 1e-6 || (metrics_dice.is_nan() && dice.is_nan()),
        "{json}"
    );
}

#[test]
fn a_killed_run_resumes_and_ends_with_the_uninterrupted_weights() {
    let data = pairs().join("manifest.csv");
    let data = data.to_str().unwrap();

    let straight = scratch("straight");
    assert_success(&pulmoseg(&tiny_args(
        data,
        straight.to_str().unwrap(),
        "1",
        "3",
        "0",
    )));
    assert_eq!(log_epochs(&straight).len(), 4);

    let killed = scratch("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pulmoseg"))
        .args(tiny_args(data, killed.to_str().unwrap(), "1", "3", "0"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let latest = killed.join("checkpoint/latest.json");
    let start = Instant::now();
    while !latest.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first checkpoint"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint after 120 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(
        !killed.join("model.pulmoseg").exists(),
        "the run finished before it was killed"
    );
    let latest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&latest).unwrap()).unwrap();
    let done_at_kill = latest["epoch"].as_u64().unwrap() as usize;
    assert!(
        (1..4).contains(&done_at_kill),
        "{done_at_kill} epochs logged at the kill"
    );

    // A recipe flag on resume would be silently ignored (the recipe is the run's): refused.
    let changed = pulmoseg(&[
        "train",
        "--resume",
        killed.to_str().unwrap(),
        "--stage1-epochs",
        "12",
    ]);
    assert!(!changed.status.success());
    let stderr = String::from_utf8_lossy(&changed.stderr);
    assert!(stderr.contains("--stage1-epochs"), "{stderr}");

    let resumed = pulmoseg(&["train", "--resume", killed.to_str().unwrap()]);
    assert_success(&resumed);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        stderr.contains(&format!("after epoch {done_at_kill}")),
        "{stderr}"
    );
    // The log continues from the checkpoint: every epoch once, in order.
    let epochs: Vec<usize> = log_epochs(&killed).iter().map(|e| e.0).collect();
    assert_eq!(epochs, [1, 2, 3, 4]);

    // Same seed, same data, flex on one machine: the resumed run's last weights are the
    // uninterrupted run's, bit for bit.
    let last =
        |dir: &Path| std::fs::read(dir.join("checkpoint/epoch-0004/model.pulmoseg")).unwrap();
    assert!(
        last(&killed) == last(&straight),
        "resumed weights differ from the uninterrupted run's"
    );

    // A second start into the same folder is refused with a pointer to --resume.
    let again = pulmoseg(&tiny_args(data, killed.to_str().unwrap(), "1", "3", "0"));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
}

#[test]
fn mismatched_mask_grid_names_both_files() {
    let dir = scratch("mismatch");
    let pairs = pairs();
    let manifest = format!(
        "image,mask\n{},{}\n{},{}\n",
        pairs
            .join("images/covidctmd_normal001_3mm_syn000.nii.gz")
            .display(),
        pairs
            .join("masks/covidctmd_normal002_3mm_syn000.nii.gz")
            .display(),
        pairs
            .join("images/covidctmd_normal001_3mm_syn001.nii.gz")
            .display(),
        pairs
            .join("masks/covidctmd_normal001_3mm_syn001.nii.gz")
            .display(),
    );
    std::fs::write(dir.join("manifest.csv"), manifest).unwrap();
    let out = dir.join("run");
    let run = pulmoseg(&tiny_args(
        dir.join("manifest.csv").to_str().unwrap(),
        out.to_str().unwrap(),
        "1",
        "0",
        "0",
    ));
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    // normal001 is 108 × 108 × 77, normal002 128 × 128 × 84 (../shared/data/README.md).
    assert!(
        stderr.contains("images/covidctmd_normal001_3mm_syn000.nii.gz")
            && stderr.contains("masks/covidctmd_normal002_3mm_syn000.nii.gz"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[108, 108, 77]") && stderr.contains("[128, 128, 84]"),
        "{stderr}"
    );
}

/// A recipe that trains on crops (`patch_dims`) of the resized volumes.
fn patch_recipe(patch: &str) -> String {
    format!(
        "width = 8\nseed = 3\n\n[[stages]]\ninput_dims = [8, 40, 40]\nbatch_size = 2\n\
         patch_dims = {patch}\nforeground_share = 1.0\nsamples_per_case = 2\n\n\
         [[stages.phases]]\nepochs = 2\nbase_lr = 0.01\n"
    )
}

/// `pulmoseg train --config RECIPE --data DATA --output OUTPUT` plus `extra` flags.
fn train_with(recipe: &Path, data: &Path, output: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--config",
        recipe.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--output",
        output,
    ];
    args.extend_from_slice(extra);
    pulmoseg(&args)
}

#[test]
fn a_patch_recipe_trains_on_crops_and_infers_on_the_whole_volume() {
    let data = pairs().join("manifest.csv");
    let out = scratch("patch");
    let recipe = out.join("recipe.toml");
    std::fs::write(&recipe, patch_recipe("[8, 24, 24]")).unwrap();
    let run_dir = out.join("run");
    let run = train_with(&recipe, &data, run_dir.to_str().unwrap(), &[]);
    assert_success(&run);
    assert_eq!(log_epochs(&run_dir), vec![(1, 1, 1), (2, 1, 1)]);

    // 3 training cases × 2 samples each = 6 crops a epoch, in batches of 2: 3 steps an
    // epoch, 6 in all.
    let latest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("checkpoint/latest.json")).unwrap())
            .unwrap();
    let folder = latest["folder"]
        .as_str()
        .expect("latest.json names the epoch folder");
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run_dir.join("checkpoint").join(folder).join("state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["steps_done"], 6, "{state}");

    // The network saw 8 × 24 × 24 crops, but the weights file asks for the whole volume at
    // the stage's 8 × 40 × 40 ([40, 40, 8] on the RAS+ axes), and the card keeps the recipe.
    let bytes = std::fs::read(run_dir.join("model.pulmoseg")).unwrap();
    let (_, meta) = weights::load(&bytes, &Device::flex()).unwrap();
    assert_eq!(
        meta.preprocessing.expect("preprocessing").mode,
        InferenceMode::WholeVolume {
            input_dims: [40, 40, 8]
        }
    );
    let stage = &meta.model_card["recipe"]["stages"][0];
    assert_eq!(stage["patch_dims"], serde_json::json!([8, 24, 24]));
    assert_eq!(stage["foreground_share"], 1.0);

    // Data-parallel over two devices (two handles of the one CPU: flex has no other), and a
    // batch too small to split refused by name.
    let two = out.join("two-devices");
    let run = train_with(&recipe, &data, two.to_str().unwrap(), &["--devices", "2"]);
    assert_success(&run);
    let bytes = std::fs::read(two.join("model.pulmoseg")).unwrap();
    let (_, meta) = weights::load(&bytes, &Device::flex()).unwrap();
    assert_eq!(meta.model_card["devices"], 2);
    let refused = train_with(
        &recipe,
        &data,
        out.join("three-devices").to_str().unwrap(),
        &["--devices", "3"],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("batch size 2 cannot be split over 3 devices"),
        "{stderr}"
    );

    // A crop larger than the volume it is cut from is refused before any training.
    std::fs::write(&recipe, patch_recipe("[8, 48, 48]")).unwrap();
    let refused = train_with(&recipe, &data, out.join("refused").to_str().unwrap(), &[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("patch [8, 48, 48]") && stderr.contains("[8, 40, 40]"),
        "{stderr}"
    );
}

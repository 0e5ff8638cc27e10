//! Resumable checkpoints. After every epoch the run writes, into a fresh folder
//! `checkpoint/epoch-NNNN/`, the network (Pulmoseg weights file, f32, BatchNorm statistics
//! included), the optimiser's state (burn's burnpack record) and the [`RunState`] (epoch,
//! schedule position, RNG state, best tuning Dice, the log), each fsynced; then it replaces
//! `checkpoint/latest.json`, which names that folder, by an atomic rename. A run killed at any
//! moment therefore resumes from the last epoch whose `latest.json` was renamed into place,
//! and loses at most the epoch in progress.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::train::log::EpochRow;
use crate::train::rng::SplitMix64;

/// File names inside an epoch folder.
pub const MODEL_FILE: &str = "model.pulmoseg";
/// The optimiser's record.
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
/// The run state.
pub const STATE_FILE: &str = "state.json";
/// The pointer to the newest complete epoch folder.
pub const LATEST_FILE: &str = "latest.json";

/// Everything besides tensors that a resumed run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs completed, over all stages and phases.
    pub epochs_done: usize,
    /// Optimiser steps taken, over the whole run.
    pub steps_done: usize,
    /// The RNG after the last completed epoch.
    pub rng: SplitMix64,
    /// Best tuning Dice of each stage so far, with its epoch and weights file.
    pub best: Vec<Option<Best>>,
    /// Per-epoch log rows so far.
    pub log: Vec<EpochRow>,
    /// Seconds spent training so far (resumed runs add theirs).
    pub train_seconds: f64,
    /// Names of the tuning cases (a resumed run checks it splits the same way).
    pub tune_cases: Vec<String>,
}

/// The best epoch of a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// Its mean tuning Dice (NaN-free; −1 when no case could be scored).
    pub dice: f64,
    /// Its NSD (NaN, saved as `null`, when no case could be scored).
    #[serde(with = "crate::train::log::nan_as_null")]
    pub nsd: f64,
    /// The epoch (1-based, over the whole run).
    pub epoch: usize,
    /// Weights file, relative to the checkpoint folder.
    pub file: String,
}

/// `latest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Latest {
    epoch: usize,
    folder: String,
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of
/// the folder. Readers see the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut file =
            File::create(&temp).with_context(|| format!("creating {}", temp.display()))?;
        file.write_all(bytes)
            .with_context(|| format!("writing {}", temp.display()))?;
        file.sync_all()
            .with_context(|| format!("syncing {}", temp.display()))?;
    }
    std::fs::rename(&temp, path)
        .with_context(|| format!("renaming {} to {}", temp.display(), path.display()))?;
    sync_dir(dir);
    Ok(())
}

/// fsync of a folder so that a rename in it survives a power cut (best effort: not every
/// file system allows opening folders).
fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// The checkpoint folder of a run's output folder.
pub fn checkpoint_dir(output: &Path) -> PathBuf {
    output.join("checkpoint")
}

/// A complete epoch on disk.
pub struct Saved {
    /// The epoch folder.
    pub folder: PathBuf,
    /// Its run state.
    pub state: RunState,
}

/// Writes one epoch's checkpoint and points `latest.json` at it, then removes the previous
/// epoch folders and best files that the new state no longer names.
pub fn save(
    output: &Path,
    state: &RunState,
    model: &[u8],
    optimizer: &[u8],
) -> anyhow::Result<PathBuf> {
    let root = checkpoint_dir(output);
    let folder_name = format!("epoch-{:04}", state.epochs_done);
    let folder = root.join(&folder_name);
    if folder.exists() {
        // Left by a run killed while writing this epoch: it was never named by latest.json.
        std::fs::remove_dir_all(&folder)
            .with_context(|| format!("removing the incomplete {}", folder.display()))?;
    }
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    write_atomic(&folder.join(MODEL_FILE), model)?;
    write_atomic(&folder.join(OPTIMIZER_FILE), optimizer)?;
    write_atomic(&folder.join(STATE_FILE), &serde_json::to_vec_pretty(state)?)?;
    sync_dir(&root);

    let latest = Latest {
        epoch: state.epochs_done,
        folder: folder_name.clone(),
    };
    write_atomic(
        &root.join(LATEST_FILE),
        &serde_json::to_vec_pretty(&latest)?,
    )?;

    let keep_best: Vec<&str> = state
        .best
        .iter()
        .flatten()
        .map(|b| b.file.as_str())
        .collect();
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale_epoch = name.starts_with("epoch-") && name != folder_name;
            let stale_best = name.starts_with("best-") && !keep_best.contains(&name.as_str());
            if stale_epoch {
                let _ = std::fs::remove_dir_all(entry.path());
            } else if stale_best {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(folder)
}

/// The newest complete epoch of a run, or `None` when none has completed.
pub fn load_latest(output: &Path) -> anyhow::Result<Option<Saved>> {
    let root = checkpoint_dir(output);
    let latest_path = root.join(LATEST_FILE);
    if !latest_path.exists() {
        return Ok(None);
    }
    let text = std::fs::read(&latest_path)
        .with_context(|| format!("reading {}", latest_path.display()))?;
    let latest: Latest = serde_json::from_slice(&text)
        .with_context(|| format!("parsing {}", latest_path.display()))?;
    let folder = root.join(&latest.folder);
    let state_path = folder.join(STATE_FILE);
    let state: RunState = serde_json::from_slice(
        &std::fs::read(&state_path).with_context(|| format!("reading {}", state_path.display()))?,
    )
    .with_context(|| format!("parsing {}", state_path.display()))?;
    if state.epochs_done != latest.epoch {
        bail!(
            "{} names epoch {} but {} is epoch {}: the checkpoint is inconsistent",
            latest_path.display(),
            latest.epoch,
            state_path.display(),
            state.epochs_done
        );
    }
    Ok(Some(Saved { folder, state }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(epoch: usize, best_file: &str) -> RunState {
        RunState {
            epochs_done: epoch,
            steps_done: epoch * 3,
            rng: SplitMix64::new(epoch as u64),
            best: vec![
                Some(Best {
                    dice: 0.5,
                    nsd: 0.6,
                    epoch,
                    file: best_file.into(),
                }),
                None,
            ],
            log: Vec::new(),
            train_seconds: 1.5,
            tune_cases: vec!["a".into()],
        }
    }

    #[test]
    fn save_replaces_the_previous_epoch_and_loads_back() {
        let out = std::env::temp_dir().join(format!("pulmoseg-ckpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        assert!(load_latest(&out).expect("no checkpoint yet").is_none());

        let root = checkpoint_dir(&out);
        std::fs::create_dir_all(&root).expect("dir");
        std::fs::write(root.join("best-stage1-epoch0001.pulmoseg"), b"old").expect("write");
        save(
            &out,
            &state(1, "best-stage1-epoch0001.pulmoseg"),
            b"m1",
            b"o1",
        )
        .expect("save 1");
        std::fs::write(root.join("best-stage1-epoch0002.pulmoseg"), b"new").expect("write");
        save(
            &out,
            &state(2, "best-stage1-epoch0002.pulmoseg"),
            b"m2",
            b"o2",
        )
        .expect("save 2");

        let saved = load_latest(&out).expect("load").expect("a checkpoint");
        assert_eq!(saved.state, state(2, "best-stage1-epoch0002.pulmoseg"));
        assert_eq!(
            std::fs::read(saved.folder.join(MODEL_FILE)).expect("model"),
            b"m2"
        );
        assert!(!root.join("epoch-0001").exists());
        assert!(!root.join("best-stage1-epoch0001.pulmoseg").exists());
        assert!(root.join("best-stage1-epoch0002.pulmoseg").exists());
        std::fs::remove_dir_all(&out).ok();
    }

    #[test]
    fn a_state_with_nan_scores_loads_back() {
        // A stage whose tuning cases all have empty truth and empty prediction scores
        // Dice −1 (kept) and NSD NaN; JSON has no NaN, and the state must still load, or the
        // run could never be resumed.
        let mut nan = state(3, "best-stage1-epoch0003.pulmoseg");
        if let Some(best) = nan.best[0].as_mut() {
            best.dice = -1.0;
            best.nsd = f64::NAN;
        }
        let text = serde_json::to_string(&nan).expect("serialise");
        let back: RunState = serde_json::from_str(&text).expect("deserialise");
        let best = back.best[0].as_ref().expect("best");
        assert_eq!(best.dice, -1.0);
        assert!(best.nsd.is_nan(), "NSD read back as {}", best.nsd);
    }

    #[test]
    fn atomic_write_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("pulmoseg-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("f.json");
        write_atomic(&path, b"one").expect("write");
        write_atomic(&path, b"two").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 1);
        std::fs::remove_dir_all(&dir).ok();
    }
}

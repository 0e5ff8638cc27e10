//! The (image, mask) pairs a run trains and tunes on: read from a CSV manifest (`image,mask`
//! columns, paths relative to the manifest) or a folder, split into training and tuning
//! cases, and prepared for one stage: canonical RAS+ orientation, HU window, trilinear resize
//! of the image and nearest-neighbour resize of the mask to the stage's input size.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use pulmoseg_core::dice::mask_from_labels;
use pulmoseg_core::resample::{resize_nearest, resize_trilinear};
use pulmoseg_core::window::HuWindow;
use pulmoseg_core::Volume;

use crate::input::read_image;
use crate::train::rng::SplitMix64;

/// One training example on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// Short name for logs and tables: the image's file name without `.nii(.gz)`.
    pub name: String,
    /// The CT.
    pub image: PathBuf,
    /// Its infiltrate mask, on the same grid.
    pub mask: PathBuf,
}

/// The pairs of a data set and what it says about itself.
#[derive(Debug, Clone)]
pub struct DataSet {
    /// Every pair, in manifest order.
    pub pairs: Vec<Pair>,
    /// Free text describing the data (`#` lines at the top of the manifest, or
    /// `description.txt` beside it), for the model card.
    pub description: String,
}

/// The name of a NIfTI file without its extension.
fn stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for ext in [".nii.gz", ".nii"] {
        if let Some(stripped) = name.strip_suffix(ext) {
            return stripped.to_string();
        }
    }
    name
}

/// Reads the pairs of `data`: a CSV manifest, a folder holding `manifest.csv`, or a folder
/// with `images/` and `masks/` (or `labels/`) subfolders whose files share names.
pub fn read_data_set(data: &Path) -> anyhow::Result<DataSet> {
    if data.is_file() {
        return read_manifest(data);
    }
    if !data.is_dir() {
        bail!("{} is neither a manifest file nor a folder", data.display());
    }
    let manifest = data.join("manifest.csv");
    if manifest.is_file() {
        return read_manifest(&manifest);
    }

    let images = data.join("images");
    let masks = ["masks", "labels"]
        .map(|m| data.join(m))
        .into_iter()
        .find(|p| p.is_dir());
    let Some(masks) = masks.filter(|_| images.is_dir()) else {
        bail!(
            "{} has no manifest.csv and no images/ + masks/ subfolders: give a CSV with \
             image,mask columns",
            data.display()
        );
    };
    let mut pairs = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&images)
        .with_context(|| format!("listing {}", images.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.to_string_lossy().ends_with(".nii.gz") || p.to_string_lossy().ends_with(".nii")
        })
        .collect();
    entries.sort();
    for image in entries {
        let Some(file_name) = image.file_name() else {
            continue;
        };
        let mask = masks.join(file_name);
        if !mask.is_file() {
            bail!("{} has no mask {}", image.display(), mask.display());
        }
        pairs.push(Pair {
            name: stem(&image),
            image,
            mask,
        });
    }
    if pairs.is_empty() {
        bail!("{} holds no .nii or .nii.gz images", images.display());
    }
    let description = read_description(&data.join("description.txt"))
        .unwrap_or_else(|| format!("{} pairs from {}", pairs.len(), data.display()));
    Ok(DataSet { pairs, description })
}

fn read_description(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Reads a CSV manifest: a header naming at least `image` and `mask` columns, one pair per
/// line; relative paths are taken from the manifest's folder. Lines starting with `#` before
/// the header describe the data.
pub fn read_manifest(path: &Path) -> anyhow::Result<DataSet> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let split = |line: &str| -> Vec<String> {
        line.split(',')
            .map(|f| f.trim().trim_matches('"').to_string())
            .collect()
    };

    let mut comments = Vec::new();
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header = loop {
        match lines.next() {
            Some((_, line)) if line.trim_start().starts_with('#') => {
                comments.push(line.trim_start().trim_start_matches('#').trim().to_string());
            }
            Some((_, line)) => break split(line),
            None => bail!("{} is empty: it needs an image,mask header", path.display()),
        }
    };
    let column = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(image_col), Some(mask_col)) = (column("image"), column("mask")) else {
        bail!(
            "{} header {:?} lacks an image and a mask column",
            path.display(),
            header
        );
    };

    let mut pairs = Vec::new();
    for (index, line) in lines {
        let fields = split(line);
        let (Some(image), Some(mask)) = (fields.get(image_col), fields.get(mask_col)) else {
            bail!(
                "{} line {}: fewer than {} fields",
                path.display(),
                index + 1,
                header.len()
            );
        };
        let image = base.join(image);
        let mask = base.join(mask);
        pairs.push(Pair {
            name: stem(&image),
            image,
            mask,
        });
    }
    if pairs.is_empty() {
        bail!("{} lists no pairs", path.display());
    }
    let description = if comments.is_empty() {
        read_description(&base.join("description.txt"))
            .unwrap_or_else(|| format!("{} pairs listed in {}", pairs.len(), path.display()))
    } else {
        comments.join("\n")
    };
    Ok(DataSet { pairs, description })
}

/// Splits `pairs` into (training, tuning): the named `tune_cases` (file names, stems or the
/// paths as listed), or else a seeded random `tune_fraction` (at least one case when there
/// are two or more).
pub fn split(
    pairs: &[Pair],
    tune_cases: &[String],
    tune_fraction: f64,
    seed: u64,
) -> anyhow::Result<(Vec<Pair>, Vec<Pair>)> {
    if !tune_cases.is_empty() {
        let wanted: BTreeSet<&str> = tune_cases.iter().map(String::as_str).collect();
        let is_tune = |p: &Pair| {
            let file = p
                .image
                .file_name()
                .map(|f| f.to_string_lossy().into_owned());
            wanted.contains(p.name.as_str())
                || file.is_some_and(|f| wanted.contains(f.as_str()))
                || wanted.contains(p.image.to_string_lossy().as_ref())
        };
        let (tune, train): (Vec<Pair>, Vec<Pair>) = pairs.iter().cloned().partition(is_tune);
        for case in tune_cases {
            if !tune
                .iter()
                .any(|p| &p.name == case || p.image.ends_with(case))
            {
                bail!("tuning case {case:?} is not in the data set");
            }
        }
        if train.is_empty() {
            bail!("every case is a tuning case: nothing is left to train on");
        }
        return Ok((train, tune));
    }

    let mut order: Vec<usize> = (0..pairs.len()).collect();
    SplitMix64::new(seed ^ 0x5EED_5EED_5EED_5EED).shuffle(&mut order);
    if pairs.len() < 2 {
        bail!(
            "{} (image, mask) pair given: training needs at least 2, one to train on and one \
             to tune on",
            pairs.len()
        );
    }
    let n_tune = ((pairs.len() as f64 * tune_fraction).round() as usize).clamp(1, pairs.len() - 1);
    let mut tune_idx: Vec<usize> = order[..n_tune].to_vec();
    tune_idx.sort_unstable();
    let tune = tune_idx.iter().map(|&i| pairs[i].clone()).collect();
    let train = (0..pairs.len())
        .filter(|i| !tune_idx.contains(i))
        .map(|i| pairs[i].clone())
        .collect();
    Ok((train, tune))
}

/// A pair read from disk and brought to RAS+: the CT and its 0/1 mask on one grid.
#[derive(Debug, Clone)]
pub struct CanonicalCase {
    /// The CT, canonical orientation.
    pub image: Volume,
    /// Infiltrate mask on the image's grid, 0 or 1.
    pub mask: Vec<f32>,
}

/// Reads `pair`, checks that image and mask share a grid, and brings both to RAS+.
pub fn read_case(pair: &Pair, label: Option<u32>) -> anyhow::Result<CanonicalCase> {
    let image = read_image(&pair.image)?.volume;
    let mask = read_image(&pair.mask)?.volume;
    check_same_grid(&image, &pair.image, &mask, &pair.mask)?;

    let (image, _) = image.to_canonical();
    let labels = Volume {
        hu: mask_from_labels(&mask.hu, label)
            .iter()
            .map(|&m| m as u8 as f32)
            .collect(),
        ..mask
    };
    let (labels, _) = labels.to_canonical();
    Ok(CanonicalCase {
        image,
        mask: labels.hu,
    })
}

/// Image and mask must have the same dims, spacing and affine (to 1e-3 mm).
pub fn check_same_grid(
    image: &Volume,
    image_path: &Path,
    mask: &Volume,
    mask_path: &Path,
) -> anyhow::Result<()> {
    if image.dims != mask.dims {
        bail!(
            "{} has grid {:?} but its mask {} has {:?}: the mask must be on the image's grid",
            image_path.display(),
            image.dims,
            mask_path.display(),
            mask.dims
        );
    }
    let affine_differs = image
        .affine
        .0
        .iter()
        .flatten()
        .zip(mask.affine.0.iter().flatten())
        .any(|(a, b)| (a - b).abs() > 1e-3);
    let spacing_differs = image
        .spacing_mm
        .iter()
        .zip(&mask.spacing_mm)
        .any(|(a, b)| (a - b).abs() > 1e-3);
    if affine_differs || spacing_differs {
        bail!(
            "{} and its mask {} have the same dims {:?} but different spacing or position \
             (spacing {:?} vs {:?} mm): the mask must be on the image's grid",
            image_path.display(),
            mask_path.display(),
            image.dims,
            image.spacing_mm,
            mask.spacing_mm
        );
    }
    Ok(())
}

/// A case on a stage's grid, ready to become a network input.
#[derive(Debug, Clone)]
pub struct StageCase {
    /// Windowed (0…1) image, `dims` voxels in this crate's layout.
    pub image: Vec<f32>,
    /// 0/1 mask, same layout.
    pub mask: Vec<f32>,
    /// `[width, height, depth]` (the stage's `[depth, height, width]` reversed).
    pub dims: [usize; 3],
    /// Voxel size on the stage grid, mm, along `dims`.
    pub spacing_mm: [f64; 3],
}

/// Windows and resizes a canonical case to `input_dims = [depth, height, width]`.
pub fn to_stage(
    name: &str,
    case: &CanonicalCase,
    window: HuWindow,
    input_dims: [usize; 3],
) -> anyhow::Result<StageCase> {
    let [d, h, w] = input_dims;
    let dims = [w, h, d];
    let source = case.image.dims;
    let image = resize_trilinear(&window.apply(&case.image.hu), source, dims)
        .with_context(|| format!("resizing {name} to {input_dims:?}"))?;
    let mask = resize_nearest(&case.mask, source, dims)
        .with_context(|| format!("resizing the mask of {name} to {input_dims:?}"))?;
    let spacing_mm =
        [0, 1, 2].map(|a| case.image.spacing_mm[a] * source[a] as f64 / dims[a] as f64);
    Ok(StageCase {
        image,
        mask,
        dims,
        spacing_mm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize) -> Vec<Pair> {
        (0..n)
            .map(|i| Pair {
                name: format!("case{i}"),
                image: format!("img/case{i}.nii.gz").into(),
                mask: format!("msk/case{i}.nii.gz").into(),
            })
            .collect()
    }

    #[test]
    fn seeded_split_is_85_15_and_repeatable() {
        let all = pairs(117);
        let (train, tune) = split(&all, &[], 0.15, 4).expect("split");
        // round(117 · 0.15) = round(17.55) = 18.
        assert_eq!((train.len(), tune.len()), (99, 18));
        let (_, again) = split(&all, &[], 0.15, 4).expect("split");
        assert_eq!(tune, again);
        let (_, other) = split(&all, &[], 0.15, 5).expect("split");
        assert_ne!(tune, other);
        assert!(tune.iter().all(|t| !train.contains(t)));
    }

    #[test]
    fn named_tuning_cases_and_unknown_names() {
        let all = pairs(5);
        let (train, tune) =
            split(&all, &["case1".into(), "case3.nii.gz".into()], 0.15, 0).expect("split");
        assert_eq!(
            tune.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["case1", "case3"]
        );
        assert_eq!(train.len(), 3);
        let err = split(&all, &["case9".into()], 0.15, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("case9"), "{err}");
    }

    #[test]
    fn manifest_with_description_and_relative_paths() {
        let dir = std::env::temp_dir().join(format!("pulmoseg-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("manifest.csv");
        std::fs::write(&path, "# Synthetic lesions in two scans\nid,image,mask\n1,a.nii.gz,a_mask.nii.gz\n2,b.nii,b_mask.nii\n")
            .expect("write");
        let set = read_data_set(&dir).expect("manifest");
        assert_eq!(set.description, "Synthetic lesions in two scans");
        assert_eq!(set.pairs.len(), 2);
        assert_eq!(set.pairs[1].name, "b");
        assert_eq!(set.pairs[0].mask, dir.join("a_mask.nii.gz"));

        std::fs::write(&path, "image,label\na.nii.gz,b.nii.gz\n").expect("write");
        let err = read_data_set(&path).unwrap_err().to_string();
        assert!(err.contains("mask column"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

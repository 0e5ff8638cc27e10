//! Dice and normalized surface Dice against the benchmark's own code.
//!
//! Expected values come from DeepMind's `surface-distance` (the evaluation code of the
//! COVID-19 benchmark of Ma et al.): the reference table of `shared/reference/metrics.md`,
//! and the fixtures written by `tools/fixtures/make_metrics_fixtures.py`.
//!
//! Axis mapping: a NumPy array indexed `[a0, a1, a2]` (nibabel's `[i, j, k]`) is our grid of
//! `dims = [n0, n1, n2]` with voxel `(a0, a1, a2)` at flat index `a0 + n0·(a1 + n1·a2)`, and
//! the spacing keeps the array's axis order.

mod common;

use pulmoseg_core::dice::{dice, mask_from_labels, MetricsError};
use pulmoseg_core::nifti::{read_nifti, ReadOptions};
use pulmoseg_core::surface_dice::{surface_dice, surface_distances, SurfaceDistances};
use serde_json::Value;

const TOLERANCE: f64 = 1e-6;

/// An empty grid of `dims` with the half-open box `ranges` (per array axis) set.
fn boxed(dims: [usize; 3], ranges: [(usize, usize); 3]) -> Vec<bool> {
    let mut mask = vec![false; dims.iter().product()];
    for a2 in ranges[2].0..ranges[2].1 {
        for a1 in ranges[1].0..ranges[1].1 {
            for a0 in ranges[0].0..ranges[0].1 {
                mask[a0 + dims[0] * (a1 + dims[1] * a2)] = true;
            }
        }
    }
    mask
}

fn assert_close(what: &str, got: f64, expected: f64) {
    assert!(
        (got - expected).abs() <= TOLERANCE,
        "{what}: got {got:.12}, surface-distance gives {expected:.12}"
    );
}

/// Dice and NSD of one case, both as expected by the reference table of metrics.md.
fn check_row(
    name: &str,
    truth: &[bool],
    prediction: &[bool],
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    tolerance_mm: f64,
    expected: (f64, f64),
) {
    let d = dice(truth, prediction).unwrap();
    let nsd = surface_dice(truth, prediction, dims, spacing_mm, tolerance_mm).unwrap();
    assert_close(&format!("{name}: Dice"), d, expected.0);
    assert_close(&format!("{name}: NSD"), nsd, expected.1);
}

#[test]
fn reference_table_of_metrics_md() {
    let dims = [128; 3];
    let truth = boxed(dims, [(50, 51), (60, 61), (70, 71)]);
    let prediction = boxed(dims, [(50, 51), (60, 61), (72, 73)]);
    check_row(
        "one voxel",
        &truth,
        &prediction,
        dims,
        [3.0, 2.0, 1.0],
        1.0,
        (0.0, 0.5),
    );

    let dims = [100; 3];
    let truth = boxed(dims, [(0, 50), (0, 100), (0, 100)]);
    let prediction = boxed(dims, [(0, 51), (0, 100), (0, 100)]);
    let expected = (0.9900990099009901, 0.8361450084979621);
    check_row(
        "half slab",
        &truth,
        &prediction,
        dims,
        [2.0, 1.0, 1.0],
        1.0,
        expected,
    );

    let dims = [30; 3];
    let cube = boxed(dims, [(10, 20), (10, 20), (10, 20)]);
    check_row("same cube", &cube, &cube, dims, [1.0; 3], 1.0, (1.0, 1.0));
    let surfaces = surface_distances(&cube, &cube, dims, [1.0; 3]).unwrap();
    // metrics.md: the marching-cubes surface of a 10³ cube is 564.0996 mm², not 600.
    assert!((surfaces.surface_area_truth_mm2() - 564.0996).abs() < 1e-4);
    assert!((surfaces.surface_area_truth_mm2() - 564.099583175716).abs() < 1e-9);

    let moved = boxed(dims, [(10, 20), (10, 20), (12, 22)]);
    check_row(
        "moved cube",
        &cube,
        &moved,
        dims,
        [1.0; 3],
        1.0,
        (0.8, 0.722882),
    );

    let empty = vec![false; 27_000];
    assert!(dice(&empty, &empty).unwrap().is_nan());
    assert!(surface_dice(&empty, &empty, dims, [0.7, 0.7, 2.0], 3.0)
        .unwrap()
        .is_nan());
    assert_eq!(dice(&empty, &cube).unwrap(), 0.0);
    assert_eq!(
        surface_dice(&empty, &cube, dims, [0.7, 0.7, 2.0], 3.0).unwrap(),
        0.0
    );
    assert_eq!(
        surface_dice(&cube, &empty, dims, [0.7, 0.7, 2.0], 3.0).unwrap(),
        0.0
    );
}

#[test]
fn one_voxel_case_keeps_the_spacing_on_its_axis() {
    // The facing corners of the two voxels of the first row are one voxel apart along array
    // axis 2. With spacing (1, 2, 3) instead of (3, 2, 1) that is 3 mm, so nothing is within
    // 1 mm and half of the corners are within 3 mm; surface-distance gives 0 and 0.5.
    let dims = [128; 3];
    let truth = boxed(dims, [(50, 51), (60, 61), (70, 71)]);
    let prediction = boxed(dims, [(50, 51), (60, 61), (72, 73)]);
    let surfaces = surface_distances(&truth, &prediction, dims, [1.0, 2.0, 3.0]).unwrap();
    assert_eq!(surfaces.surface_dice_at(1.0).unwrap(), 0.0);
    assert_close(
        "one voxel at 3 mm",
        surfaces.surface_dice_at(3.0).unwrap(),
        0.5,
    );
}

fn read_fixture(name: &str) -> Vec<Value> {
    let path = common::fixture(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).unwrap();
    json["cases"].as_array().unwrap().clone()
}

fn dims_of(case: &Value) -> [usize; 3] {
    let d: Vec<usize> = case["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    [d[0], d[1], d[2]]
}

fn spacing_of(case: &Value) -> [f64; 3] {
    let s: Vec<f64> = case["spacing_mm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    [s[0], s[1], s[2]]
}

fn mask_of(case: &Value, key: &str, dims: [usize; 3]) -> Vec<bool> {
    let mut mask = vec![false; dims.iter().product()];
    for v in case[key].as_array().unwrap() {
        mask[v.as_u64().unwrap() as usize] = true;
    }
    mask
}

/// `None` in the fixture stands for NaN.
fn expected_value(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Every reference number of a fixture case against ours.
fn check_case(
    name: &str,
    case: &Value,
    truth: &[bool],
    prediction: &[bool],
    dims: [usize; 3],
    spacing: [f64; 3],
) {
    let expect_dice = expected_value(&case["dice"]);
    let got_dice = dice(truth, prediction).unwrap();
    if expect_dice.is_nan() {
        assert!(got_dice.is_nan(), "{name}: Dice {got_dice}, expected NaN");
    } else {
        assert_close(&format!("{name}: Dice"), got_dice, expect_dice);
    }

    let surfaces: SurfaceDistances = surface_distances(truth, prediction, dims, spacing).unwrap();
    let counts = (
        surfaces.surfel_areas_truth.len(),
        surfaces.surfel_areas_prediction.len(),
    );
    let expected_counts = (
        case["border_corners_truth"].as_u64().unwrap() as usize,
        case["border_corners_prediction"].as_u64().unwrap() as usize,
    );
    assert_eq!(counts, expected_counts, "{name}: border corners");
    let area = case["surface_area_truth_mm2"].as_f64().unwrap();
    assert!(
        (surfaces.surface_area_truth_mm2() - area).abs() <= 1e-9 * area.max(1.0),
        "{name}: area"
    );
    let area = case["surface_area_prediction_mm2"].as_f64().unwrap();
    assert!(
        (surfaces.surface_area_prediction_mm2() - area).abs() <= 1e-9 * area.max(1.0),
        "{name}: prediction area"
    );

    for (tolerance, expected) in case["nsd"].as_object().unwrap() {
        let tolerance: f64 = tolerance.parse().unwrap();
        let expected = expected_value(expected);
        let got = surfaces.surface_dice_at(tolerance).unwrap();
        if expected.is_nan() {
            assert!(
                got.is_nan(),
                "{name}: NSD at {tolerance} mm is {got}, expected NaN"
            );
        } else {
            assert_close(&format!("{name}: NSD at {tolerance} mm"), got, expected);
        }
    }
}

/// The same voxels with axes 0 and 2 swapped: the C-order memory of the NumPy array read as
/// our layout.
fn swap_axes_0_2(mask: &[bool], dims: [usize; 3]) -> Vec<bool> {
    let [n0, n1, n2] = dims;
    let mut out = vec![false; mask.len()];
    for a2 in 0..n2 {
        for a1 in 0..n1 {
            for a0 in 0..n0 {
                out[a2 + n2 * (a1 + n1 * a0)] = mask[a0 + n0 * (a1 + n1 * a2)];
            }
        }
    }
    out
}

#[test]
fn synthetic_masks_match_surface_distance() {
    let cases = read_fixture("metrics_synthetic.json");
    assert_eq!(cases.len(), 9);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let dims = dims_of(case);
        let spacing = spacing_of(case);
        let truth = mask_of(case, "truth", dims);
        let prediction = mask_of(case, "prediction", dims);
        check_case(name, case, &truth, &prediction, dims, spacing);

        // Reading the arrays' C-order memory instead (axes reversed, spacing reversed) must
        // give the same numbers: the marching-cubes table treats the three axes alike.
        let swapped_dims = [dims[2], dims[1], dims[0]];
        let swapped_spacing = [spacing[2], spacing[1], spacing[0]];
        check_case(
            &format!("{name}, axes swapped"),
            case,
            &swap_axes_0_2(&truth, dims),
            &swap_axes_0_2(&prediction, dims),
            swapped_dims,
            swapped_spacing,
        );
    }
}

/// `mask` dilated (`grow = true`) or eroded by one voxel with the 6-neighbour cross; voxels
/// outside the grid count as false, as in `scipy.ndimage.binary_{dilation,erosion}`.
fn morph6(mask: &[bool], dims: [usize; 3], grow: bool) -> Vec<bool> {
    let [ni, nj, nk] = dims;
    let at = |i: usize, j: usize, k: usize| mask[i + ni * (j + nj * k)];
    let mut out = vec![false; mask.len()];
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let neighbours = [
                    i > 0 && at(i - 1, j, k),
                    i + 1 < ni && at(i + 1, j, k),
                    j > 0 && at(i, j - 1, k),
                    j + 1 < nj && at(i, j + 1, k),
                    k > 0 && at(i, j, k - 1),
                    k + 1 < nk && at(i, j, k + 1),
                ];
                out[i + ni * (j + nj * k)] = if grow {
                    at(i, j, k) || neighbours.iter().any(|&n| n)
                } else {
                    at(i, j, k) && neighbours.iter().all(|&n| n)
                };
            }
        }
    }
    out
}

/// `out[p] = mask[p - offset]`, false where `p - offset` leaves the grid.
fn shift(mask: &[bool], dims: [usize; 3], offset: [i64; 3]) -> Vec<bool> {
    let [ni, nj, nk] = dims;
    let mut out = vec![false; mask.len()];
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let source = [
                    i as i64 - offset[0],
                    j as i64 - offset[1],
                    k as i64 - offset[2],
                ];
                if (0..3).all(|a| source[a] >= 0 && source[a] < dims[a] as i64) {
                    let [si, sj, sk] = source.map(|v| v as usize);
                    out[i + ni * (j + nj * k)] = mask[si + ni * (sj + nj * sk)];
                }
            }
        }
    }
    out
}

/// The voxels of `mask` with `i <= (min i + max i) / 2` (integer division).
fn low_half(mask: &[bool], dims: [usize; 3]) -> Vec<bool> {
    let ni = dims[0];
    let is: Vec<usize> = (0..mask.len())
        .filter(|&v| mask[v])
        .map(|v| v % ni)
        .collect();
    let cut = (is.iter().min().unwrap() + is.iter().max().unwrap()) / 2;
    mask.iter()
        .enumerate()
        .map(|(v, &m)| m && v % ni <= cut)
        .collect()
}

/// A label file of ../shared/data read with the crate's NIfTI reader, as a mask (label > 0).
struct LabelMask {
    file: String,
    mask: Vec<bool>,
    dims: [usize; 3],
    spacing_mm: [f64; 3],
}

impl LabelMask {
    fn read(file: &str) -> Self {
        let bytes = std::fs::read(common::shared_data(file)).unwrap();
        let image = read_nifti(&bytes, &ReadOptions::default()).unwrap();
        LabelMask {
            file: file.to_string(),
            mask: mask_from_labels(&image.volume.hu, None),
            dims: image.volume.dims,
            spacing_mm: image.volume.spacing_mm,
        }
    }
}

#[test]
fn real_tumour_masks_match_surface_distance() {
    let cases = read_fixture("metrics_real_masks.json");
    assert_eq!(cases.len(), 20);
    let mut loaded: Option<LabelMask> = None;
    for case in &cases {
        let file = case["file"].as_str().unwrap();
        if loaded.as_ref().map(|l| l.file.as_str()) != Some(file) {
            loaded = Some(LabelMask::read(file));
        }
        let Some(label) = loaded.as_ref() else {
            unreachable!()
        };
        let (truth, dims, spacing) = (&label.mask, label.dims, label.spacing_mm);

        // The reader must give nibabel's grid, spacing (pixdim) and voxel order.
        assert_eq!(dims, dims_of(case), "{file}: dims");
        assert_eq!(spacing, spacing_of(case), "{file}: spacing");
        let voxels = truth.iter().filter(|&&m| m).count() as u64;
        let index_sum: u64 = (0..truth.len())
            .filter(|&v| truth[v])
            .map(|v| v as u64)
            .sum();
        assert_eq!(
            voxels,
            case["truth_voxels"].as_u64().unwrap(),
            "{file}: voxels"
        );
        assert_eq!(
            index_sum,
            case["truth_index_sum"].as_u64().unwrap(),
            "{file}: voxel order"
        );

        let alteration = &case["alteration"];
        let prediction = match alteration["kind"].as_str().unwrap() {
            "dilate6" => morph6(truth, dims, true),
            "erode6" => morph6(truth, dims, false),
            "shift" => {
                let o: Vec<i64> = alteration["offset"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap())
                    .collect();
                shift(truth, dims, [o[0], o[1], o[2]])
            }
            "half" => low_half(truth, dims),
            other => panic!("unknown alteration {other}"),
        };
        let name = format!("{file} vs {alteration}");
        let prediction_voxels = prediction.iter().filter(|&&m| m).count() as u64;
        assert_eq!(
            prediction_voxels,
            case["prediction_voxels"].as_u64().unwrap(),
            "{name}"
        );
        check_case(&name, case, truth, &prediction, dims, spacing);
    }
}

#[test]
fn errors_name_the_offending_values() {
    let m = vec![false; 24];
    let err = surface_dice(&m, &m, [2, 3, 5], [1.0; 3], 1.0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "truth mask has 24 voxels but a 2 × 3 × 5 grid needs 30"
    );
    let err = surface_dice(&m, &m, [2, 3, 4], [0.7, -2.0, 1.0], 1.0).unwrap_err();
    assert_eq!(
        err,
        MetricsError::InvalidSpacing {
            spacing_mm: [0.7, -2.0, 1.0]
        }
    );
    let err = surface_dice(&m, &m, [2, 3, 4], [1.0; 3], f64::INFINITY).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tolerance must be a finite number of mm ≥ 0, got inf mm"
    );
}

//! Every malformed file in `tests/fixtures/bad_nifti/` (made by
//! `tools/fixtures/make_bad_nifti.py` from one tiny valid header) must be refused with the
//! error its `expectations.json` names, without a panic and quickly.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use pulmoseg_core::nifti::{read_header, read_nifti, ReadOptions};

/// Far above the few milliseconds a header check takes, far below inflating the 256 MiB
/// gzip bomb or allocating any of the huge grids the headers claim.
const QUICK: Duration = Duration::from_millis(250);

fn expectations() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(common::fixture("bad_nifti/expectations.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_bad_file_has_an_expectation_and_vice_versa() {
    let expected = expectations();
    let mut on_disk: Vec<String> = std::fs::read_dir(common::fixture("bad_nifti"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "expectations.json")
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, expected.keys().cloned().collect::<Vec<_>>());
    assert!(on_disk.len() >= 20, "only {} bad files", on_disk.len());
}

#[test]
fn bad_files_fail_with_their_expected_message() {
    let mut failures = Vec::new();
    for (name, expected) in expectations() {
        let bytes = std::fs::read(common::fixture(&format!("bad_nifti/{name}"))).unwrap();
        let start = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            read_nifti(&bytes, &ReadOptions::default())
        }));
        let elapsed = start.elapsed();
        match outcome {
            Err(_) => failures.push(format!("{name}: panicked")),
            Ok(Ok(_)) => failures.push(format!("{name}: was read without error")),
            Ok(Err(err)) if !err.to_string().contains(&expected) => failures.push(format!(
                "{name}: error {err:?} (\"{err}\") lacks \"{expected}\""
            )),
            Ok(Err(_)) if elapsed > QUICK => failures.push(format!("{name}: took {elapsed:?}")),
            Ok(Err(_)) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn header_only_reads_do_not_panic_either() {
    // read_header stops after 352 bytes, so data-size faults pass it; anything it reports
    // must still be the expected message, and it must never panic.
    for (name, expected) in expectations() {
        let bytes = std::fs::read(common::fixture(&format!("bad_nifti/{name}"))).unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| read_header(&bytes)));
        match outcome {
            Err(_) => panic!("{name}: read_header panicked"),
            Ok(Err(err)) => assert!(err.to_string().contains(&expected), "{name}: {err}"),
            Ok(Ok(_)) => {}
        }
    }
}

#[test]
fn the_bomb_is_stopped_by_the_declared_size_not_by_the_voxel_limit() {
    // Even with no voxel limit to speak of, the 4 × 4 × 4 header bounds the inflation.
    let bytes = std::fs::read(common::fixture("bad_nifti/gzip_bomb.nii.gz")).unwrap();
    let options = ReadOptions {
        max_voxels: usize::MAX,
    };
    let start = Instant::now();
    let err = read_nifti(&bytes, &options).unwrap_err();
    assert!(start.elapsed() < QUICK, "took {:?}", start.elapsed());
    // 352 header bytes + 4 × 4 × 4 × 2 voxel bytes = 480.
    assert!(
        err.to_string().contains("480 bytes the header declares"),
        "{err}"
    );
}

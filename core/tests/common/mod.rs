//! Helpers shared by the integration tests: where the real chest CTs live.

#![allow(dead_code)]

use std::path::PathBuf;

/// Path of a file under the shared real-data folder, `../shared/data` beside the project.
///
/// The folder is part of every checkout's environment (CI lays it beside the clone), so a
/// missing file is a broken setup and fails the test rather than skipping it.
pub fn shared_data(relative: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    let path = root.join(relative);
    assert!(
        path.exists(),
        "real test data missing: {} (expected ../shared/data beside the project)",
        path.display()
    );
    path
}

/// Path of a committed fixture of this crate.
pub fn fixture(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

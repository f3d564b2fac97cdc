//! Golden files for builder tests: `operator/tests/golden/<name>`.
//! `WEIR_UPDATE_GOLDEN=1 cargo test -p weir-operator` rewrites them; review
//! the diff before committing.

use std::path::PathBuf;

pub fn assert_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("WEIR_UPDATE_GOLDEN").is_some() {
        if let Err(e) = std::fs::write(&path, actual) {
            panic!("writing {}: {e}", path.display());
        }
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs from the builder's output (run with WEIR_UPDATE_GOLDEN=1 to regenerate, then review the diff):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

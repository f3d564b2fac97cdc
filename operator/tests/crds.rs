//! The committed CRD manifests must be exactly what the Rust types generate.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check_dir(dir: &str, fix: &str) {
    let files = weir_operator::crd::crd_files().expect("CRDs generate");
    let mut stale = Vec::new();
    for file in &files {
        let path = repo_root().join(dir).join(file.file_name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != file.yaml {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "{} out of date with operator/src/crd; regenerate with `{fix}` and commit the result",
        stale.join(", ")
    );
    let mut expected: Vec<&str> = files.iter().map(|f| f.file_name).collect();
    expected.sort_unstable();
    let mut present: Vec<String> = std::fs::read_dir(repo_root().join(dir))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".yaml"))
                .collect()
        })
        .unwrap_or_default();
    present.sort_unstable();
    assert_eq!(
        present, expected,
        "{dir} should hold exactly the generated CRDs"
    );
}

#[test]
fn committed_crds_match_the_types() {
    check_dir("crds", "cargo run -p weir-cli -- operator crds --out crds/");
}

#[test]
fn helm_chart_crds_are_copies_of_crds_dir() {
    check_dir(
        "charts/weir/crds",
        "cargo run -p weir-cli -- operator crds --out charts/weir/crds/",
    );
}

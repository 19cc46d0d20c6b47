//! `wit/deps` must be exactly the interface packages of the spin-sdk the
//! components are built with (refresh with `wit/sync-deps.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn spin_sdk_dir() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(chat_tests::repo_root().join("Cargo.toml"))
        .output()
        .expect("cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let manifest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|package| package["name"] == "spin-sdk")
        .expect("spin-sdk is a dependency")["manifest_path"]
        .as_str()
        .unwrap()
        .to_owned();
    Path::new(&manifest).parent().unwrap().to_path_buf()
}

#[test]
fn wit_deps_match_spin_sdk() {
    let ours = chat_tests::repo_root().join("wit/deps");
    let sdk = spin_sdk_dir().join("wit/deps");
    let mut packages: Vec<_> = std::fs::read_dir(&ours)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    packages.sort();
    assert!(!packages.is_empty());
    for package in packages {
        let name = package.file_name().unwrap();
        for file in std::fs::read_dir(&package).unwrap() {
            let file = file.unwrap().path();
            let theirs = sdk.join(name).join(file.file_name().unwrap());
            assert_eq!(
                std::fs::read_to_string(&file).unwrap(),
                std::fs::read_to_string(&theirs).unwrap_or_default(),
                "{} differs from {}; run wit/sync-deps.sh",
                file.display(),
                theirs.display()
            );
        }
    }
}

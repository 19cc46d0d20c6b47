//! The Spin CLI on this project, typed as a Spin user would. Run by the Spin
//! pass of `tests/run.sh` (`cargo test -p chat-tests --test spin_cli`); plain
//! `cargo test` leaves it out, so it never needs a Spin.

use std::process::Command;

/// `spin build` runs every component's build command from spin.toml (the
/// cargo builds are up to date after `chat-host build`, so this is quick)
/// and leaves each component's `source` in place.
#[test]
fn spin_build_builds_every_component_of_the_manifest() {
    let spin = chat_tests::runtime::spin_binary();
    let root = chat_tests::repo_root();
    let output = Command::new(&spin)
        .arg("build")
        .current_dir(&root)
        .output()
        .expect("running spin build");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "spin build failed:\n{printed}");

    let manifest = chat_manifest::Manifest::load(&root.join("spin.toml")).expect("spin.toml");
    assert!(!manifest.components.is_empty());
    for (id, component) in &manifest.components {
        assert!(
            printed.contains(&format!("Building component {id}")),
            "spin build did not build {id}:\n{printed}"
        );
        assert!(
            component.source.is_file(),
            "{id}: {} is missing after spin build",
            component.source.display()
        );
    }
}

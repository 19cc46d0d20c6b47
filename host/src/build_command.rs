//! `chat-host build`: runs each component's `[component.X.build]` command,
//! as `spin build` does.

use anyhow::{Context, Result, bail};
use chat_manifest::Manifest;
use std::path::Path;
use std::process::Command;

pub fn build_all(manifest_path: &Path) -> Result<()> {
    let manifest = Manifest::load(manifest_path)?;
    for (id, component) in &manifest.components {
        let Some(build) = &component.build else {
            println!("{id}: no build command, skipped");
            continue;
        };
        for command in &build.commands {
            println!("Building component {id} with `{command}`");
            let status = Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(&build.workdir)
                .status()
                .with_context(|| format!("cannot run the build command of component {id}"))?;
            if !status.success() {
                bail!("building component {id} failed ({status}): `{command}`");
            }
        }
    }
    println!("Finished building all components");
    Ok(())
}

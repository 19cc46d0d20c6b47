//! `chat-host precompile`: the app's components compiled ahead of time for
//! [`engine::PRECOMPILED_CPU`], beside a copy of the manifest that points at
//! them, so a compiler-free chat-host serves them without compiling (a
//! Databricks Apps upload, a container image).

use crate::engine;
use anyhow::{Context, Result};
use chat_manifest::Manifest;
use std::path::Path;

/// Where, relative to the written manifest, the precompiled components go.
const COMPONENTS_DIR: &str = "components";
/// The manifest tables a deployment never reads: how to build each component.
const BUILD_TABLE: &str = "build";

/// Compiles every component of the manifest at `manifest_path` into
/// `out_dir/components/<id>.cwasm` and writes `out_dir/spin.toml`, the same
/// manifest with each `source` pointing at its precompiled file and without
/// build commands.
pub fn precompile_app(manifest_path: &Path, out_dir: &Path) -> Result<()> {
    let manifest = Manifest::load(manifest_path)?;
    let text = std::fs::read_to_string(manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    let mut document: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", manifest_path.display()))?;
    let components_dir = out_dir.join(COMPONENTS_DIR);
    std::fs::create_dir_all(&components_dir)
        .with_context(|| format!("creating {}", components_dir.display()))?;

    let engine = engine::precompiler()?;
    for (id, component) in &manifest.components {
        let wasm = std::fs::read(&component.source).with_context(|| {
            format!(
                "reading component {id} from {} (build it with `chat-host build`)",
                component.source.display()
            )
        })?;
        let compiled = engine
            .precompile_component(&wasm)
            .map_err(engine::anyhow_error)
            .with_context(|| format!("precompiling component {id}"))?;
        let file_name = format!("{id}.cwasm");
        let written = components_dir.join(&file_name);
        std::fs::write(&written, &compiled)
            .with_context(|| format!("writing {}", written.display()))?;
        println!(
            "{id}: {} ({} KiB)",
            written.display(),
            compiled.len().div_ceil(1024)
        );

        let declared = document
            .get_mut("component")
            .and_then(|components| components.get_mut(id.as_str()))
            .and_then(toml::Value::as_table_mut)
            .with_context(|| format!("component {id} is not a table in the manifest"))?;
        declared.insert(
            "source".to_owned(),
            toml::Value::String(format!("{COMPONENTS_DIR}/{file_name}")),
        );
        declared.remove(BUILD_TABLE);
    }

    let written = out_dir.join("spin.toml");
    let header = format!(
        "# Written by `chat-host precompile` from {}: its components are \
         precompiled for {} CPUs and load only in a chat-host with the same \
         wasmtime version and engine settings.\n",
        manifest_path.display(),
        engine::PRECOMPILED_CPU,
    );
    std::fs::write(&written, header + &toml::to_string(&document)?)
        .with_context(|| format!("writing {}", written.display()))?;
    println!("manifest: {}", written.display());
    Ok(())
}

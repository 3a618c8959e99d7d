//! Precompiled-module cache: `Module::serialize` output on disk, checked by SHA-256
//! before `Module::deserialize`.
//!
//! # Why the `unsafe` deserialize is sound here
//!
//! `Module::deserialize` is `unsafe` because wasmtime maps the bytes as native
//! code without validating them: bytes that did not come from `Module::serialize`
//! of a compatible engine could run arbitrary code in the host. This cache only
//! hands bytes to it when
//! 1. the file name binds the source module's SHA-256 (which the manifest pins) and
//!    a hash of the engine's compilation settings, so a file is never used for
//!    another module or another engine configuration;
//! 2. the file's first 32 bytes equal the SHA-256 of the rest, so a truncated,
//!    corrupted or half-written file is rejected (files are written to a temporary
//!    name and renamed, so readers never see a partial write);
//! 3. the folder is created owner-only (0700): it is part of the host's trusted
//!    installation, like the binary itself. Whoever can write there could also
//!    replace the host binary, so the digest is an integrity check, not a defence
//!    against that user.
//!
//! wasmtime additionally checks its own header (version, target, tunables) and
//! refuses incompatible artifacts with an error; we then recompile.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use crate::error::PluginError;

/// Path of the cache file for a module with `module_sha256` under `engine`.
pub(crate) fn cache_path(dir: &Path, engine: &Engine, module_sha256: &str) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{module_sha256}-{:016x}.cwasm", h.finish()))
}

/// Loads the module from the cache, or compiles it and stores it.
/// `module_sha256` must be the verified digest of `wasm`.
pub(crate) fn load_or_compile(
    engine: &Engine,
    dir: Option<&Path>,
    plugin: &str,
    wasm: &[u8],
    module_sha256: &str,
) -> Result<Module, PluginError> {
    let Some(dir) = dir else {
        return compile(engine, plugin, wasm);
    };
    let path = cache_path(dir, engine, module_sha256);
    if let Some(module) = read_cached(engine, &path)? {
        return Ok(module);
    }
    let module = compile(engine, plugin, wasm)?;
    write_cached(dir, &path, &module)?;
    Ok(module)
}

fn compile(engine: &Engine, plugin: &str, wasm: &[u8]) -> Result<Module, PluginError> {
    Module::new(engine, wasm).map_err(|e| PluginError::Load {
        plugin: plugin.into(),
        reason: format!("compile: {e:#}"),
    })
}

/// `Ok(None)` when there is no usable cache file (missing, corrupt, incompatible).
fn read_cached(engine: &Engine, path: &Path) -> Result<Option<Module>, PluginError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(PluginError::Cache {
                path: path.into(),
                reason: e.to_string(),
            });
        }
    };
    if bytes.len() < 32 || Sha256::digest(&bytes[32..]).as_slice() != &bytes[..32] {
        tracing::warn!(path = %path.display(), "precompiled module failed its SHA-256 check; recompiling");
        return Ok(None);
    }
    // SAFETY: see the module docs: the bytes are exactly what `Module::serialize`
    // wrote for this module under this engine configuration (SHA-256 checked above,
    // file name binds module digest and engine hash, folder is owner-only).
    match unsafe { Module::deserialize(engine, &bytes[32..]) } {
        Ok(m) => Ok(Some(m)),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "precompiled module incompatible; recompiling");
            Ok(None)
        }
    }
}

fn write_cached(dir: &Path, path: &Path, module: &Module) -> Result<(), PluginError> {
    let err = |e: String| PluginError::Cache {
        path: path.into(),
        reason: e,
    };
    create_private_dir(dir).map_err(|e| err(e.to_string()))?;
    let payload = module.serialize().map_err(|e| err(format!("{e:#}")))?;
    let mut bytes = Sha256::digest(&payload).to_vec();
    bytes.extend_from_slice(&payload);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &bytes).map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

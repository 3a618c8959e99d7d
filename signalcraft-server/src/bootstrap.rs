//! First-start work for `signalcraft serve`: the data directory, the commented default
//! config, and the bootstrap admin token.
//!
//! The admin token is created only when no admin token exists in the store. Its
//! value is written once to `<data-dir>/admin-token` with mode 0600 (created with
//! that mode, never widened) and only its SHA-256 is stored.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use signalcraft_core::store::Store;

use crate::auth::{Permission, Role, TokenRecord, TokenRegistry};
use crate::error::ServerError;

/// File name of the admin token inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
/// File name of the embedded store inside the data directory.
pub const STORE_FILE: &str = "signalcraft.redb";
/// Directory of the ingest journal inside the data directory (`[server] journal`).
pub const JOURNAL_DIR: &str = "journal";
/// File name of the default config written next to the data directory.
pub const DEFAULT_CONFIG_FILE: &str = "signalcraft.toml";

/// Creates the data directory (mode 0700 on Unix) if missing.
pub fn ensure_data_dir(dir: &Path) -> Result<(), ServerError> {
    create_private_dir(dir).map_err(|e| ServerError::io(dir, e))
}

/// Creates `dir` (and its parents) if missing, mode 0700 on Unix: for directories
/// holding what incidents hold (the data directory, the retention archive).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Where the default config goes: next to the data directory (its parent).
pub fn default_config_path(data_dir: &Path) -> PathBuf {
    let parent = data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parent.join(DEFAULT_CONFIG_FILE)
}

/// Writes the commented default config if no file exists there; returns whether it wrote.
pub fn write_default_config(
    path: &Path,
    listen: SocketAddr,
    data_dir: &Path,
) -> Result<bool, ServerError> {
    if path.exists() {
        return Ok(false);
    }
    let text = crate::config::default_config_text(listen, data_dir);
    std::fs::write(path, text).map_err(|e| ServerError::io(path, e))?;
    Ok(true)
}

/// Creates the bootstrap admin token if the store has no admin token yet.
/// Returns the path the token was written to, or `None` if one already existed.
pub async fn ensure_admin_token(
    store: &dyn Store,
    tokens: &TokenRegistry,
    data_dir: &Path,
    now: Timestamp,
) -> Result<Option<PathBuf>, ServerError> {
    if tokens.has_admin() {
        return Ok(None);
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    // Open the file first (create_new, 0600) so a token is never stored that could
    // not be handed to the operator.
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    if path.exists() {
        // A stale file from a store that was deleted: replace it.
        std::fs::remove_file(&path).map_err(|e| ServerError::io(&path, e))?;
    }
    let mut file = opts.open(&path).map_err(|e| ServerError::io(&path, e))?;
    let token = tokens
        .create(
            store,
            TokenRecord {
                name: "admin".into(),
                role: Role::Admin,
                permissions: vec![Permission::PageUser, Permission::ApproveRemediation],
                user: None,
                created_at: now,
                origin: "bootstrap".into(),
            },
        )
        .await?;
    writeln!(file, "{token}")
        .and_then(|_| file.sync_all())
        .map_err(|e| ServerError::io(&path, e))?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use signalcraft_core::memory::MemoryStore;

    #[tokio::test]
    async fn admin_token_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new();
        let reg = TokenRegistry::default();
        let p = ensure_admin_token(&store, &reg, dir.path(), Timestamp::UNIX_EPOCH)
            .await
            .unwrap()
            .unwrap();
        let tok = std::fs::read_to_string(&p).unwrap();
        let principal = reg.authenticate(tok.trim()).unwrap();
        assert_eq!(principal.role, Role::Admin);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // second start: nothing new
        assert!(
            ensure_admin_token(&store, &reg, dir.path(), Timestamp::UNIX_EPOCH)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), tok);
    }

    #[test]
    fn default_config_goes_next_to_the_data_dir() {
        assert_eq!(
            default_config_path(Path::new("./signalcraft-data")),
            PathBuf::from("./signalcraft.toml")
        );
        assert_eq!(
            default_config_path(Path::new("signalcraft-data")),
            PathBuf::from("./signalcraft.toml")
        );
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("x.toml");
        let dd = dir.path().join("data");
        assert!(write_default_config(&cfg, "127.0.0.1:9093".parse().unwrap(), &dd).unwrap());
        assert!(!write_default_config(&cfg, "127.0.0.1:9093".parse().unwrap(), &dd).unwrap());
        let c = crate::config::parse(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
        assert_eq!(c.server.data_dir, dd);
    }
}

//! API tokens, roles and permissions.
//!
//! * A token is `sc_` + 43 base64url characters (32 random bytes). Only its SHA-256
//!   (hex) is stored: in `Table::Tokens` under that hash, as a [`TokenRecord`].
//! * Roles are ordered `viewer < responder < manager < admin`; a route requires a
//!   minimum role. Paging a user and approving a remediation additionally require the
//!   explicit [`Permission`]s `page_user` / `approve_remediation`, whatever the role.
//! * [`Auth`] is the axum extractor: it reads `Authorization: Bearer <token>`, looks
//!   the hash up in the in-memory [`TokenRegistry`] and yields the [`Principal`] that
//!   every audited write is attributed to.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine as _;
use jiff::Timestamp;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use signalcraft_core::incident::Actor;
use signalcraft_core::store::{Scan, Store, StoreError, StoreExt, Table, WriteBatch};

use crate::error::ApiError;

/// What a token may do, ordered: each role can do everything the lower ones can.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Act on incidents (ack, resolve, notes, silences).
    Responder,
    /// Manage services, schedules, policies, integrations.
    Manager,
    /// Manage users, teams and tokens.
    Admin,
}

impl Role {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Responder => "responder",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }
}

/// Permissions that no role implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Page a specific person (`POST /api/v1/incidents/{id}/page`).
    PageUser,
    /// Approve a remediation run.
    ApproveRemediation,
}

/// A stored token (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenRecord {
    /// Token name (unique).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Extra permissions.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// User the token acts as; else the principal is `token:<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// `config` for tokens from the config file, `store` for ones created at run time.
    #[serde(default)]
    pub origin: String,
}

/// Who made an authenticated request.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// Token name.
    pub token: String,
    /// Role.
    pub role: Role,
    /// Extra permissions.
    pub permissions: Vec<Permission>,
    /// User id, if the token acts as a user.
    pub user: Option<String>,
}

impl Principal {
    /// The actor recorded in the audit log and timelines.
    pub fn actor(&self) -> Actor {
        match &self.user {
            Some(u) => Actor::user(u.clone()),
            None => Actor::user(format!("token:{}", self.token)),
        }
    }

    /// Fails with 403 unless the principal has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs role {} or higher; token {:?} has role {}",
                role.as_str(),
                self.token,
                self.role.as_str()
            )))
        }
    }

    /// Fails with 403 unless the principal holds `perm` explicitly (and at least `role`).
    pub fn require_permission(&self, role: Role, perm: Permission) -> Result<(), ApiError> {
        self.require(role)?;
        if self.permissions.contains(&perm) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the explicit permission {}; token {:?} does not have it",
                serde_json::to_value(perm)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                self.token
            )))
        }
    }
}

/// SHA-256 of a token, lowercase hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random token.
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "sc_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Token hashes → records, loaded from the store and the config; checked on every request.
#[derive(Debug, Default, Clone)]
pub struct TokenRegistry {
    by_hash: Arc<RwLock<HashMap<String, TokenRecord>>>,
}

impl TokenRegistry {
    /// Loads every stored token.
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let reg = TokenRegistry::default();
        for (hash, rec) in store
            .scan_json::<TokenRecord>(Table::Tokens, Scan::all())
            .await?
        {
            reg.by_hash.write().insert(hash, rec);
        }
        Ok(reg)
    }

    /// Adds a token known only in memory (config tokens: their values live in the config).
    pub fn insert_ephemeral(&self, token: &str, rec: TokenRecord) {
        self.by_hash.write().insert(hash_token(token), rec);
    }

    /// Creates and stores a new token; returns its value (shown once).
    pub async fn create(&self, store: &dyn Store, rec: TokenRecord) -> Result<String, StoreError> {
        if self.by_hash.read().values().any(|r| r.name == rec.name) {
            return Err(StoreError::Conflict(format!(
                "a token named {:?} already exists",
                rec.name
            )));
        }
        let token = generate_token();
        let hash = hash_token(&token);
        let mut batch = WriteBatch::new();
        batch.put(Table::Tokens, hash.clone(), &rec)?;
        store.commit(batch).await?;
        self.by_hash.write().insert(hash, rec);
        Ok(token)
    }

    /// Deletes a stored token by name; returns whether it existed.
    pub async fn revoke(&self, store: &dyn Store, name: &str) -> Result<bool, StoreError> {
        let hash = self
            .by_hash
            .read()
            .iter()
            .find(|(_, r)| r.name == name && r.origin != "config")
            .map(|(h, _)| h.clone());
        let Some(hash) = hash else { return Ok(false) };
        let mut batch = WriteBatch::new();
        batch.delete(Table::Tokens, hash.clone());
        store.commit(batch).await?;
        self.by_hash.write().remove(&hash);
        Ok(true)
    }

    /// Every token record (no secrets: records hold none).
    pub fn list(&self) -> Vec<TokenRecord> {
        let mut v: Vec<_> = self.by_hash.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Whether any admin token exists.
    pub fn has_admin(&self) -> bool {
        self.by_hash.read().values().any(|r| r.role == Role::Admin)
    }

    /// Looks a presented token up.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let rec = self.by_hash.read().get(&hash_token(token)).cloned()?;
        Some(Principal {
            token: rec.name,
            role: rec.role,
            permissions: rec.permissions,
            user: rec.user,
        })
    }
}

/// Extracts the bearer token of a request.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// The authenticated caller of an `/api/v1` route.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

/// Anything that holds a [`TokenRegistry`] (the app state).
pub trait HasTokens {
    /// The registry.
    fn tokens(&self) -> &TokenRegistry;
}

impl<S: HasTokens + Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::unauthorized("missing Authorization: Bearer <token> header")
                .with_field("Authorization")
        })?;
        state.tokens().authenticate(token).map(Auth).ok_or_else(|| {
            ApiError::unauthorized("the API token is not valid").with_field("Authorization")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signalcraft_core::memory::MemoryStore;

    fn rec(name: &str, role: Role) -> TokenRecord {
        TokenRecord {
            name: name.into(),
            role,
            permissions: vec![],
            user: None,
            created_at: Timestamp::UNIX_EPOCH,
            origin: "store".into(),
        }
    }

    #[test]
    fn roles_are_ordered_and_permissions_are_explicit() {
        assert!(Role::Viewer < Role::Responder && Role::Manager < Role::Admin);
        let p = Principal {
            token: "t".into(),
            role: Role::Admin,
            permissions: vec![],
            user: None,
        };
        assert!(p.require(Role::Manager).is_ok());
        let e = p
            .require_permission(Role::Responder, Permission::PageUser)
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 403);
        assert!(e.detail.contains("page_user"));
        let v = Principal {
            role: Role::Viewer,
            ..p
        };
        assert_eq!(v.require(Role::Responder).unwrap_err().status.as_u16(), 403);
        assert_eq!(v.actor(), Actor::user("token:t"));
    }

    #[tokio::test]
    async fn only_the_hash_is_stored() {
        let store = MemoryStore::new();
        let reg = TokenRegistry::default();
        let tok = reg.create(&store, rec("ci", Role::Manager)).await.unwrap();
        assert!(tok.starts_with("sc_") && tok.len() > 40);
        let rows = store.scan(Table::Tokens, Scan::all()).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, hash_token(&tok));
        assert!(!String::from_utf8_lossy(&rows[0].1).contains(&tok));
        // a fresh registry loaded from the store authenticates the same token
        let reg2 = TokenRegistry::load(&store).await.unwrap();
        assert_eq!(reg2.authenticate(&tok).unwrap().role, Role::Manager);
        assert!(reg2.authenticate("sc_wrong").is_none());
        assert!(reg.create(&store, rec("ci", Role::Viewer)).await.is_err());
        assert!(reg.revoke(&store, "ci").await.unwrap());
        assert!(reg.authenticate(&tok).is_none());
    }
}

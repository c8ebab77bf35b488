//! API keys: long-lived secrets that authenticate as their owner (ThingsBoard's
//! `X-Authorization: ApiKey tb_…`). The value is shown once at creation; only its SHA-256
//! digest is stored, so a database leak reveals no usable key.

use uuid::Uuid;

use crate::accounts::Access;
use crate::auth::Principal;
use crate::error::{AuthFailure, CoreError, CoreResult};
use crate::model::{ApiKey, User};
use crate::service::{Gatehouse, PageRequest};
use crate::store::ApiKeyQuery;
use crate::tokens::{digest_hex, random_token};

/// Prefix of every key value.
pub const API_KEY_PREFIX: &str = "tb_";

/// Random bytes of a key (ThingsBoard's default: 64, giving 86 base64url characters).
const API_KEY_BYTES: usize = 64;

/// Longest description accepted, in characters.
const MAX_DESCRIPTION_CHARS: usize = 1024;

/// A key to create.
#[derive(Debug, Clone)]
pub struct ApiKeyDraft {
    /// The owner.
    pub user_id: Uuid,
    /// What it is for.
    pub description: String,
    /// Whether it may be used.
    pub enabled: bool,
    /// Expiry, Unix ms; 0 means never.
    pub expiration_time: i64,
}

/// A page of a user's keys.
#[derive(Debug, Clone)]
pub struct ApiKeyPage {
    /// The keys of this page.
    pub items: Vec<ApiKey>,
    /// Keys matching the query across all pages.
    pub total: u64,
    /// Their owner.
    pub owner: User,
}

/// A key together with its owner (whose tenant ThingsBoard shows with the key).
#[derive(Debug, Clone)]
pub struct OwnedApiKey {
    /// The key.
    pub key: ApiKey,
    /// Its owner.
    pub owner: User,
}

/// Changes to a key. Owner and expiry are fixed at creation: giving them is allowed only
/// with their current values.
#[derive(Debug, Clone, Default)]
pub struct ApiKeyChange {
    /// A new description.
    pub description: Option<String>,
    /// A new enabled flag.
    pub enabled: Option<bool>,
    /// The owner, if the caller restates it.
    pub user_id: Option<Uuid>,
    /// The expiry, if the caller restates it.
    pub expiration_time: Option<i64>,
}

/// Checks a description: not blank, bounded.
pub fn check_description(description: &str) -> CoreResult<()> {
    if description.trim().is_empty() {
        return Err(CoreError::invalid("description", "must not be blank"));
    }
    if description.chars().any(|c| c.is_control() && c != '\t') {
        return Err(CoreError::invalid(
            "description",
            "must not contain control characters",
        ));
    }
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(CoreError::invalid(
            "description",
            "must be at most 1024 characters",
        ));
    }
    Ok(())
}

impl Gatehouse {
    /// Creates a key for a user the actor may manage; returns it with its value (shown once).
    pub async fn create_api_key(
        &self,
        actor: &User,
        draft: ApiKeyDraft,
    ) -> CoreResult<(OwnedApiKey, String)> {
        check_description(&draft.description)?;
        let now = self.clock.now_millis();
        if draft.expiration_time < 0 || (draft.expiration_time != 0 && draft.expiration_time <= now)
        {
            return Err(CoreError::invalid(
                "expirationTime",
                "must be 0 (never) or a time in the future, in epoch milliseconds",
            ));
        }
        let owner = self
            .managed_user(actor, draft.user_id, Access::Write)
            .await?;
        let value = format!("{API_KEY_PREFIX}{}", random_token(API_KEY_BYTES));
        let key = ApiKey {
            id: Uuid::new_v4(),
            user_id: draft.user_id,
            digest: digest_hex(&value),
            description: draft.description,
            enabled: draft.enabled,
            expiration_time: draft.expiration_time,
            created_at: now,
        };
        self.store.insert_api_key(key.clone()).await?;
        tracing::info!(api_key_id = %key.id, user_id = %key.user_id, "API key created");
        Ok((OwnedApiKey { key, owner }, value))
    }

    /// A key whose owner the actor may read or manage.
    pub async fn api_key(&self, actor: &User, id: Uuid, access: Access) -> CoreResult<OwnedApiKey> {
        let key = self
            .store
            .api_key(id)
            .await?
            .ok_or(CoreError::not_found("API key"))?;
        match self.managed_user(actor, key.user_id, access).await {
            Ok(owner) => Ok(OwnedApiKey { key, owner }),
            // A key of someone else's user is as invisible as a missing one.
            Err(CoreError::Forbidden { .. }) => Err(CoreError::not_found("API key")),
            Err(error) => Err(error),
        }
    }

    /// Changes a key's description and/or enabled flag; restating a different owner or
    /// expiry is refused.
    pub async fn update_api_key(
        &self,
        actor: &User,
        id: Uuid,
        change: ApiKeyChange,
    ) -> CoreResult<OwnedApiKey> {
        let mut owned = self.api_key(actor, id, Access::Write).await?;
        let key = &mut owned.key;
        if change.user_id.is_some_and(|owner| owner != key.user_id) {
            return Err(CoreError::invalid("userId", "cannot be changed"));
        }
        if change
            .expiration_time
            .is_some_and(|time| time != key.expiration_time)
        {
            return Err(CoreError::invalid("expirationTime", "cannot be changed"));
        }
        if let Some(description) = change.description {
            check_description(&description)?;
            key.description = description;
        }
        if let Some(enabled) = change.enabled {
            key.enabled = enabled;
        }
        if !self.store.update_api_key(key).await? {
            return Err(CoreError::not_found("API key"));
        }
        Ok(owned)
    }

    /// Deletes a key.
    pub async fn delete_api_key(&self, actor: &User, id: Uuid) -> CoreResult<()> {
        self.api_key(actor, id, Access::Write).await?;
        if !self.store.delete_api_key(id).await? {
            return Err(CoreError::not_found("API key"));
        }
        tracing::info!(api_key_id = %id, "API key deleted");
        Ok(())
    }

    /// A page of a user's keys, for an actor who may read that user.
    pub async fn list_api_keys(
        &self,
        actor: &User,
        mut query: ApiKeyQuery,
        page: PageRequest,
    ) -> CoreResult<ApiKeyPage> {
        let owner = self
            .managed_user(actor, query.user_id, Access::Read)
            .await?;
        query.offset = page.offset();
        query.limit = page.rows_per_page;
        let (items, total) = self.store.api_keys(&query).await?;
        Ok(ApiKeyPage {
            items,
            total,
            owner,
        })
    }

    /// Authenticates a request by key value: the key must exist, be enabled and unexpired, and
    /// its owner's credentials must be enabled.
    pub async fn authenticate_api_key(&self, value: &str) -> CoreResult<Principal> {
        const UNKNOWN: CoreError = CoreError::Unauthenticated(AuthFailure::BadCredentials);
        if !value.starts_with(API_KEY_PREFIX) || value.len() > 512 {
            return Err(UNKNOWN);
        }
        // Lookup by digest: the database compares digests of a high-entropy secret, so its
        // timing reveals nothing usable about the key.
        let key = self
            .store
            .api_key_by_digest(&digest_hex(value))
            .await?
            .ok_or(UNKNOWN)?;
        if !key.enabled {
            return Err(CoreError::unauthenticated(AuthFailure::NotActive));
        }
        if key.is_expired(self.clock.now_millis()) {
            return Err(CoreError::unauthenticated(AuthFailure::ApiKeyExpired));
        }
        let user = self.store.user(key.user_id).await?.ok_or(UNKNOWN)?;
        if !user.credentials_enabled {
            return Err(CoreError::unauthenticated(AuthFailure::NotActive));
        }
        self.principal(user, None, Some(key.id)).await
    }
}

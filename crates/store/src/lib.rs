//! Gatehouse's storage: the core's [`Store`] trait implemented once over sqlx's `Any` driver,
//! which serves both the embedded SQLite database and PostgreSQL.
//!
//! One query path for both engines: ids are stored as UUID text, times as Unix milliseconds and
//! flags as 0/1 integers, and every query uses `$N` placeholders, which both engines accept. The
//! only engine-specific parts are the two migration folders (kept in lockstep), the connection
//! settings, and how a write transaction begins (`BEGIN IMMEDIATE` on SQLite so that two writers
//! queue instead of failing on lock upgrade).

mod archive;
mod backup;
mod federation;
mod mfa;
mod oauth2;
mod registry;
mod rows;
mod signup;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::changes::{ChangeCounters, ChangeFeed};
use gatehouse_core::error::{CoreError, CoreResult, Rejection};
use gatehouse_core::federation::FederationLogin;
use gatehouse_core::mfa::{MfaFactor, MfaProvider};
use gatehouse_core::model::{
    ApiKey, BoundCertificate, CredentialToken, PermissionUsage, Profile, Role, Session,
    SessionKind, TokenPurpose, User, UserCredentials,
};
use gatehouse_core::oauth2::{
    Domain, DomainName, DomainQuery, OAuth2ClientQuery, OAuth2Template, SealedOAuth2Client,
};
use gatehouse_core::permission::Permission;
use gatehouse_core::registry::Registration;
use gatehouse_core::signup::DeletionScope;
use gatehouse_core::store::{
    ApiKeyQuery, ApiKeySort, MfaAttempt, NewUser, PasswordChange, RoleQuery, SignupRecord, Store,
    TrustedCertificate, UserQuery, UserUpdate,
};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Executor, Row};
use uuid::Uuid;

use rows::{
    api_key_from_row, count_u32, credentials_from_row, flag, parse_uuid, permission_from_row,
    role_from_row, session_from_row, token_from_row, user_from_row, API_KEY_COLUMNS,
    CREDENTIAL_COLUMNS, ROLE_COLUMNS, SESSION_COLUMNS, TOKEN_COLUMNS, USER_COLUMNS,
};

/// Which database engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Engine {
    /// The engine of a `sqlite:` or `postgres:`/`postgresql:` URL.
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Engine::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Engine::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }
}

/// Errors while opening the database.
#[derive(Debug)]
pub enum StoreError {
    /// The URL names neither SQLite nor PostgreSQL.
    UnsupportedUrl,
    /// Connecting failed.
    Connect(sqlx::Error),
    /// Applying migrations failed.
    Migrate(sqlx::migrate::MigrateError),
}

impl std::error::Error for StoreError {}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::UnsupportedUrl => {
                f.write_str("the database URL must start with sqlite:// or postgres://")
            }
            StoreError::Connect(error) => write!(f, "cannot connect to the database: {error}"),
            StoreError::Migrate(error) => write!(f, "cannot migrate the database: {error}"),
        }
    }
}

/// The sqlx implementation of [`Store`].
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    engine: Engine,
}

impl SqlStore {
    /// Connects to `url`, applies pending migrations and returns the store.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let engine = Engine::of_url(url)?;
        let options = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10));
        let options = match engine {
            Engine::Sqlite => options.after_connect(|connection, _| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer; FULL sync makes every acknowledged
                    // commit durable; waits instead of failing while another writer holds the lock.
                    connection
                        .execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                        )
                        .await?;
                    Ok(())
                })
            }),
            Engine::Postgres => options,
        };
        let pool = options.connect(url).await.map_err(StoreError::Connect)?;
        let migrator = match engine {
            Engine::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Engine::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.run(&pool).await.map_err(StoreError::Migrate)?;
        Ok(Self { pool, engine })
    }

    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Closes every connection (at shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin_write(&self) -> CoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        let transaction = match self.engine {
            Engine::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => self.pool.begin().await,
        };
        transaction.map_err(db_error)
    }
}

/// Maps a database error: unique violations become conflicts with `conflict`, missing
/// references become "not found", everything else is internal.
fn map_error(error: sqlx::Error, conflict: &str, missing: &'static str) -> CoreError {
    if let sqlx::Error::Database(database) = &error {
        if database.is_unique_violation() {
            return CoreError::conflict(conflict);
        }
        if database.is_foreign_key_violation() {
            return CoreError::not_found(missing);
        }
    }
    db_error(error)
}

/// Whether `error` is a unique violation of a constraint or index on `column` (PostgreSQL names
/// the constraint, SQLite names the column in the message).
fn violates_unique(error: &sqlx::Error, column: &str) -> bool {
    match error {
        sqlx::Error::Database(database) if database.is_unique_violation() => {
            database
                .constraint()
                .is_some_and(|constraint| constraint.contains(column))
                || database.message().contains(&format!(".{column}"))
        }
        _ => false,
    }
}

/// The conflict message of a duplicate email.
fn email_conflict(email: Option<&str>) -> String {
    format!(
        "a user with email '{}' already exists",
        email.unwrap_or_default()
    )
}

/// Maps an error of a statement that writes a user's username and/or email.
fn map_user_error(error: sqlx::Error, user: &User) -> CoreError {
    if violates_unique(&error, "email") {
        return CoreError::conflict(email_conflict(user.profile.email.as_deref()));
    }
    map_error(
        error,
        &format!("a user named '{}' already exists", user.username),
        "user",
    )
}

fn db_error(error: sqlx::Error) -> CoreError {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            CoreError::Unavailable {
                reason: "the database is not reachable".to_owned(),
            }
        }
        other => CoreError::internal(other),
    }
}

/// `$start, $start+1, …` for `count` values: the placeholders of an `IN (…)` list.
fn placeholders(start: usize, count: usize) -> String {
    (start..start + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ` WHERE ` and `conditions` joined by `AND`; nothing when there are none (so that a listing
/// without filters is a plain scan in index order, and its count a plain count).
fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// Groups `(key, item)` pairs under each of `keys`, in the order of `keys` (every key present,
/// possibly with no items); pairs whose key is not listed are dropped.
fn group_by<T>(keys: &[Uuid], pairs: Vec<(Uuid, T)>) -> Vec<(Uuid, Vec<T>)> {
    let mut groups: std::collections::HashMap<Uuid, Vec<T>> =
        keys.iter().map(|key| (*key, Vec::new())).collect();
    for (key, item) in pairs {
        if let Some(group) = groups.get_mut(&key) {
            group.push(item);
        }
    }
    keys.iter()
        .map(|key| (*key, groups.remove(key).unwrap_or_default()))
        .collect()
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// A query over the `Any` driver with its bound arguments.
type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

impl SqlStore {
    /// Runs a listing: `page`, which takes LIMIT and OFFSET as its last two parameters, and
    /// its total, counted by a query with the same filters or already known (then only the
    /// page is read).
    async fn page_rows(
        &self,
        count: Counting<'_>,
        page: AnyQuery<'_>,
        limit: u64,
        offset: u64,
    ) -> CoreResult<(Vec<AnyRow>, u64)> {
        let page = page.bind(clamp(limit)).bind(clamp(offset));
        match count {
            Counting::Known(total) => {
                let rows = page.fetch_all(&self.pool).await.map_err(db_error)?;
                Ok((rows, total))
            }
            Counting::Query(count) => {
                // Side by side on two connections: a page waits for the slower of the two
                // statements, not for both.
                let (count, rows) =
                    tokio::try_join!(count.fetch_one(&self.pool), page.fetch_all(&self.pool))
                        .map_err(db_error)?;
                let total: i64 = count.try_get("total").map_err(db_error)?;
                Ok((rows, u64::try_from(total).unwrap_or(0)))
            }
        }
    }
}

/// How a listing learns its total: by its count query, or from the caller.
pub(crate) enum Counting<'q> {
    /// Run this count (one row with a `total` column).
    Query(AnyQuery<'q>),
    /// The caller knows it.
    Known(u64),
}

async fn insert_user_row(tx: &mut Tx, user: &User, password_hash: Option<&str>) -> CoreResult<()> {
    let grant_types = serde_json::to_string(&user.grant_types).map_err(CoreError::internal)?;
    let password_changed_at = password_hash.map(|_| user.created_at);
    sqlx::query(
        "INSERT INTO users (id, username, password_hash, identity_provider, grant_types, \
         auto_generated, mqtt_publish_prefix, enforce_mfa_enrollment, mfa_enrolled, created_at, updated_at, \
         email, first_name, last_name, phone, additional_info, authority, tenant_id, customer_id, \
         credentials_enabled, password_changed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
    )
    .bind(user.id.to_string())
    .bind(&user.username)
    .bind(password_hash)
    .bind(user.identity_provider.as_str())
    .bind(grant_types)
    .bind(flag(user.auto_generated))
    .bind(user.mqtt_publish_prefix.as_deref())
    .bind(flag(user.enforce_mfa_enrollment))
    .bind(flag(user.mfa_enrolled))
    .bind(user.created_at)
    .bind(user.profile.email.as_deref())
    .bind(user.profile.first_name.as_deref())
    .bind(user.profile.last_name.as_deref())
    .bind(user.profile.phone.as_deref())
    .bind(user.profile.additional_info.as_deref())
    .bind(user.tenancy.authority.as_str())
    .bind(user.tenancy.tenant_id.to_string())
    .bind(user.tenancy.customer_id.to_string())
    .bind(flag(user.credentials_enabled))
    .bind(password_changed_at)
    .execute(&mut **tx)
    .await
    .map_err(|error| map_user_error(error, user))?;
    Ok(())
}

/// Appends a hash to the user's password history.
/// Inserts a user with its own role, roles and certificates (see [`NewUser`]).
async fn insert_new_user(tx: &mut Tx, new: &NewUser) -> CoreResult<()> {
    insert_user_row(tx, &new.user, new.password_hash.as_deref()).await?;
    let mut role_ids = new.role_ids.clone();
    if let Some(own) = &new.own_role {
        insert_role_row(tx, own).await?;
        role_ids.push(own.id);
    }
    insert_user_roles(tx, new.user.id, &role_ids).await?;
    for certificate in &new.certificates {
        insert_certificate(tx, new.user.id, certificate).await?;
    }
    Ok(())
}

async fn insert_history(tx: &mut Tx, user_id: &str, hash: &str, changed_at: i64) -> CoreResult<()> {
    sqlx::query(
        "INSERT INTO password_history (user_id, password_hash, changed_at) VALUES ($1, $2, $3)",
    )
    .bind(user_id)
    .bind(hash)
    .bind(changed_at)
    .execute(&mut **tx)
    .await
    .map_err(|error| map_error(error, "password history entry exists", "user"))?;
    Ok(())
}

/// A `LIKE … ESCAPE '\'` pattern matching descriptions that contain `text`, ignoring ASCII
/// case (the column side is `LOWER(…)`).
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for character in text.to_ascii_lowercase().chars() {
        if matches!(character, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

async fn insert_role_row(tx: &mut Tx, role: &Role) -> CoreResult<()> {
    sqlx::query(
        "INSERT INTO roles (id, name, is_shared, auto_generated, ldap_group_dn, ms_entra_id_group_ids, \
         owner_user_id, builtin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(role.id.to_string())
    .bind(&role.name)
    .bind(flag(role.is_shared))
    .bind(flag(role.auto_generated))
    .bind(role.ldap_group_dn.as_deref())
    .bind(role.ms_entra_id_group_ids.as_deref())
    .bind(role.owner_user_id.map(|id| id.to_string()))
    .bind(flag(role.builtin))
    .execute(&mut **tx)
    .await
    .map_err(|error| map_error(error, &format!("a role named '{}' already exists", role.name), "user"))?;
    insert_permission_rows(tx, role.id, &role.permissions).await
}

async fn insert_permission_rows(
    tx: &mut Tx,
    role_id: Uuid,
    permissions: &[Permission],
) -> CoreResult<()> {
    for permission in permissions {
        let grant = &permission.grant;
        sqlx::query(
            "INSERT INTO role_permissions (id, role_id, resource, operation, context) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(permission.id.to_string())
        .bind(role_id.to_string())
        .bind(grant.resource.as_str())
        .bind(grant.operation.as_str())
        .bind(grant.context.as_str())
        .execute(&mut **tx)
        .await
        .map_err(|error| {
            map_error(
                error,
                &format!(
                    "the role already declares resource '{}' in context {}",
                    grant.resource.as_str(),
                    grant.context
                ),
                "role",
            )
        })?;
    }
    Ok(())
}

async fn insert_user_roles(tx: &mut Tx, user_id: Uuid, role_ids: &[Uuid]) -> CoreResult<()> {
    for role_id in role_ids {
        let exists = sqlx::query("SELECT 1 FROM roles WHERE id = $1")
            .bind(role_id.to_string())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)?;
        if exists.is_none() {
            return Err(CoreError::invalid(
                "roles",
                format!("there is no role with id {role_id}"),
            ));
        }
        sqlx::query(
            "INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(user_id.to_string())
        .bind(role_id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(|error| map_error(error, "role already held", "role"))?;
    }
    Ok(())
}

impl SqlStore {
    /// The API key matching `filter` (a condition on `$1`), if any.
    async fn api_key_where(&self, filter: &str, value: &str) -> CoreResult<Option<ApiKey>> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE {filter}");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    /// The credentials of the user matching `filter` (a condition on `$1`), if any.
    async fn credentials_where(
        &self,
        filter: &str,
        value: &str,
    ) -> CoreResult<Option<UserCredentials>> {
        let sql = format!("SELECT {USER_COLUMNS}, {CREDENTIAL_COLUMNS} FROM users WHERE {filter}");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.as_ref().map(credentials_from_row).transpose()
    }

    /// Runs `template` with `{IDS}` replaced by placeholders for `ids` (and `{USERS}`,
    /// `{ROLES}` / `{SESSIONS}` by the column lists), binding the ids as text. No ids, no query.
    async fn fetch_in(&self, template: &str, ids: &[Uuid]) -> CoreResult<Vec<AnyRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = template
            .replace("{IDS}", &placeholders(1, ids.len()))
            .replace("{USERS}", USER_COLUMNS)
            .replace("{ROLES}", ROLE_COLUMNS)
            .replace("{SESSIONS}", SESSION_COLUMNS);
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.to_string());
        }
        query.fetch_all(&self.pool).await.map_err(db_error)
    }

    /// Turns role rows into roles with their permissions, keeping the row order. A role may
    /// appear in several rows (once per member); every copy gets its permissions.
    async fn roles_with_permissions(&self, rows: &[AnyRow]) -> CoreResult<Vec<Role>> {
        let mut roles = rows
            .iter()
            .map(role_from_row)
            .collect::<CoreResult<Vec<Role>>>()?;
        let mut ids: Vec<Uuid> = roles.iter().map(|role| role.id).collect();
        ids.sort();
        ids.dedup();
        let permission_rows = self
            .fetch_in(
                "SELECT id, role_id, resource, operation, context FROM role_permissions \
                 WHERE role_id IN ({IDS}) ORDER BY resource, context",
                &ids,
            )
            .await?;
        let pairs = permission_rows
            .iter()
            .map(|row| Ok((parse_uuid(row, "role_id")?, permission_from_row(row)?)))
            .collect::<CoreResult<Vec<_>>>()?;
        let permissions: std::collections::HashMap<Uuid, Vec<Permission>> =
            group_by(&ids, pairs).into_iter().collect();
        for role in &mut roles {
            role.permissions = permissions.get(&role.id).cloned().unwrap_or_default();
        }
        Ok(roles)
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn insert_users(&self, users: Vec<NewUser>) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        for new in &users {
            insert_new_user(&mut tx, new).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn user(&self, id: Uuid) -> CoreResult<Option<User>> {
        Ok(self.users_by_ids(&[id]).await?.pop())
    }

    async fn users_by_ids(&self, ids: &[Uuid]) -> CoreResult<Vec<User>> {
        let rows = self
            .fetch_in("SELECT {USERS} FROM users WHERE id IN ({IDS})", ids)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn credentials_by_username(&self, username: &str) -> CoreResult<Option<UserCredentials>> {
        self.credentials_where("username = $1", username).await
    }

    async fn credentials_by_email(&self, email: &str) -> CoreResult<Option<UserCredentials>> {
        self.credentials_where("email = $1", email).await
    }

    async fn credentials(&self, id: Uuid) -> CoreResult<Option<UserCredentials>> {
        self.credentials_where("id = $1", &id.to_string()).await
    }

    async fn users(&self, query: &UserQuery) -> CoreResult<(Vec<User>, u64)> {
        let mut conditions = Vec::new();
        if query.exclude_auto_generated {
            // A literal, so that the planner may use the partial index of migration 0007.
            conditions.push("auto_generated = 0".to_owned());
        }
        let names = query.usernames.as_deref().unwrap_or_default();
        if query.usernames.is_some() {
            if names.is_empty() {
                return Ok((Vec::new(), 0));
            }
            conditions.push(format!("username IN ({})", placeholders(1, names.len())));
        }
        let filter = where_clause(&conditions);
        let count_sql = format!("SELECT COUNT(*) AS total FROM users{filter}");
        // The page's usernames come from an index-only scan (the offset skips index entries,
        // not rows); only the page's own rows are read.
        let page_sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username IN \
             (SELECT username FROM users{filter} ORDER BY username LIMIT ${} OFFSET ${}) \
             ORDER BY username",
            names.len() + 1,
            names.len() + 2
        );
        let mut count = sqlx::query(AssertSqlSafe(count_sql));
        let mut page = sqlx::query(AssertSqlSafe(page_sql));
        for name in names {
            count = count.bind(name.clone());
            page = page.bind(name.clone());
        }
        let count = match query.known_total {
            Some(total) => Counting::Known(total),
            None => Counting::Query(count),
        };
        let (rows, total) = self
            .page_rows(count, page, query.limit, query.offset)
            .await?;
        let users = rows
            .iter()
            .map(user_from_row)
            .collect::<CoreResult<Vec<_>>>()?;
        Ok((users, total))
    }

    async fn update_user(&self, id: Uuid, update: UserUpdate) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        let id_text = id.to_string();
        let updated_at: i64 = sqlx::query("SELECT updated_at FROM users WHERE id = $1")
            .bind(&id_text)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or_else(|| CoreError::not_found("user"))?
            .try_get("updated_at")
            .map_err(db_error)?;
        if let Some(user) = &update.user {
            let grant_types =
                serde_json::to_string(&user.grant_types).map_err(CoreError::internal)?;
            sqlx::query(
                "UPDATE users SET username = $2, identity_provider = $3, grant_types = $4, \
                 mqtt_publish_prefix = $5, enforce_mfa_enrollment = $6, mfa_enrolled = $7, updated_at = $8 \
                 WHERE id = $1",
            )
            .bind(&id_text)
            .bind(&user.username)
            .bind(user.identity_provider.as_str())
            .bind(grant_types)
            .bind(user.mqtt_publish_prefix.as_deref())
            .bind(flag(user.enforce_mfa_enrollment))
            .bind(flag(user.mfa_enrolled))
            .bind(user.created_at.max(0))
            .execute(&mut *tx)
            .await
            .map_err(|error| map_error(error, &format!("a user named '{}' already exists", user.username), "user"))?;
            // The user's own role is named after the user.
            sqlx::query("UPDATE roles SET name = $2 WHERE owner_user_id = $1")
                .bind(&id_text)
                .bind(&user.username)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        if let Some(hash) = &update.password_hash {
            // Without a time the expiry period starts at the last recorded update: never later
            // than the truth, so a password cannot escape expiry.
            let changed_at = update.password_changed_at.unwrap_or(updated_at);
            sqlx::query(
                "UPDATE users SET password_hash = $2, password_changed_at = $3 WHERE id = $1",
            )
            .bind(&id_text)
            .bind(hash)
            .bind(changed_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            insert_history(&mut tx, &id_text, hash, changed_at).await?;
        }
        if let Some(role_ids) = &update.role_ids {
            sqlx::query(
                "DELETE FROM user_roles WHERE user_id = $1 AND role_id NOT IN \
                 (SELECT id FROM roles WHERE owner_user_id = $1)",
            )
            .bind(&id_text)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            insert_user_roles(&mut tx, id, role_ids).await?;
        }
        if let Some(own) = &update.own_role {
            let existing = sqlx::query("SELECT id FROM roles WHERE owner_user_id = $1")
                .bind(&id_text)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            match existing {
                Some(row) => {
                    let role_id = parse_uuid(&row, "id")?;
                    sqlx::query("DELETE FROM role_permissions WHERE role_id = $1")
                        .bind(role_id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    insert_permission_rows(&mut tx, role_id, &own.permissions).await?;
                }
                None => {
                    insert_role_row(&mut tx, own).await?;
                    insert_user_roles(&mut tx, id, &[own.id]).await?;
                }
            }
        }
        tx.commit().await.map_err(db_error)
    }

    async fn delete_user(&self, id: Uuid) -> CoreResult<bool> {
        let mut tx = self.begin_write().await?;
        // Cascades remove the own role, role memberships, certificates and sessions.
        let result = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn update_profile(&self, user: &User) -> CoreResult<()> {
        let result = sqlx::query(
            "UPDATE users SET email = $2, first_name = $3, last_name = $4, phone = $5, \
             additional_info = $6, authority = $7, tenant_id = $8, customer_id = $9 WHERE id = $1",
        )
        .bind(user.id.to_string())
        .bind(user.profile.email.as_deref())
        .bind(user.profile.first_name.as_deref())
        .bind(user.profile.last_name.as_deref())
        .bind(user.profile.phone.as_deref())
        .bind(user.profile.additional_info.as_deref())
        .bind(user.tenancy.authority.as_str())
        .bind(user.tenancy.tenant_id.to_string())
        .bind(user.tenancy.customer_id.to_string())
        .execute(&self.pool)
        .await
        .map_err(|error| map_user_error(error, user))?;
        if result.rows_affected() == 0 {
            return Err(CoreError::not_found("user"));
        }
        Ok(())
    }

    async fn reserve_login_attempt(
        &self,
        user_id: Uuid,
        limit: Option<u32>,
    ) -> CoreResult<Option<u32>> {
        // One statement: the row lock (PostgreSQL) or the write lock (SQLite) makes the check
        // and the increment atomic, so parallel attempts never exceed the limit.
        let row = sqlx::query(
            "UPDATE users SET failed_login_attempts = failed_login_attempts + 1 \
             WHERE id = $1 AND credentials_enabled = 1 AND ($2 IS NULL OR failed_login_attempts < $2) \
             RETURNING failed_login_attempts",
        )
        .bind(user_id.to_string())
        .bind(limit.map(i64::from))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|row| {
            row.try_get::<i64, _>("failed_login_attempts")
                .map(count_u32)
                .map_err(db_error)
        })
        .transpose()
    }

    async fn reset_login_attempts(&self, user_id: Uuid) -> CoreResult<()> {
        sqlx::query(
            "UPDATE users SET failed_login_attempts = 0 WHERE id = $1 AND failed_login_attempts <> 0",
        )
        .bind(user_id.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn lock_credentials(&self, user_id: Uuid) -> CoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let locked = sqlx::query(
            "UPDATE users SET credentials_enabled = 0 WHERE id = $1 AND credentials_enabled = 1",
        )
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected()
            > 0;
        tx.commit().await.map_err(db_error)?;
        Ok(locked)
    }

    async fn set_credentials_enabled(&self, user_id: Uuid, enabled: bool) -> CoreResult<bool> {
        let id_text = user_id.to_string();
        let mut tx = self.begin_write().await?;
        // Conditional on the current state: of several parallel calls exactly one changes it
        // (PostgreSQL re-checks the condition after waiting for the row lock).
        let changed = sqlx::query(
            "UPDATE users SET credentials_enabled = $2, \
             failed_login_attempts = CASE WHEN $2 = 1 THEN 0 ELSE failed_login_attempts END \
             WHERE id = $1 AND credentials_enabled <> $2",
        )
        .bind(&id_text)
        .bind(flag(enabled))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected()
            > 0;
        if changed {
            if !enabled {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(&id_text)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
        } else {
            // Enabling an enabled user still clears its failed attempts; either statement
            // tells a missing user apart.
            let exists = if enabled {
                sqlx::query("UPDATE users SET failed_login_attempts = 0 WHERE id = $1")
                    .bind(&id_text)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .rows_affected()
                    > 0
            } else {
                sqlx::query("SELECT 1 FROM users WHERE id = $1")
                    .bind(&id_text)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .is_some()
            };
            if !exists {
                return Err(CoreError::not_found("user"));
            }
        }
        tx.commit().await.map_err(db_error)?;
        Ok(changed)
    }

    async fn set_password(&self, change: PasswordChange) -> CoreResult<()> {
        let id_text = change.user_id.to_string();
        let mut tx = self.begin_write().await?;
        if let Some((digest, purpose)) = &change.consume_token {
            // Deleting the token is the check: of parallel uses only one deletes it.
            let consumed = sqlx::query(
                "DELETE FROM credential_tokens WHERE digest = $1 AND purpose = $2 AND user_id = $3",
            )
            .bind(digest)
            .bind(purpose.as_str())
            .bind(&id_text)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if consumed != 1 {
                return Err(CoreError::not_found("token"));
            }
            sqlx::query("DELETE FROM credential_tokens WHERE user_id = $1 AND purpose = $2")
                .bind(&id_text)
                .bind(purpose.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        let sql = if change.enable_credentials {
            "UPDATE users SET password_hash = $2, password_changed_at = $3, \
             credentials_enabled = 1, failed_login_attempts = 0 WHERE id = $1"
        } else {
            "UPDATE users SET password_hash = $2, password_changed_at = $3 WHERE id = $1"
        };
        let updated = sqlx::query(sql)
            .bind(&id_text)
            .bind(&change.password_hash)
            .bind(change.changed_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        if updated == 0 {
            return Err(CoreError::not_found("user"));
        }
        if change.history_keep == 0 {
            sqlx::query("DELETE FROM password_history WHERE user_id = $1")
                .bind(&id_text)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        } else {
            insert_history(&mut tx, &id_text, &change.password_hash, change.changed_at).await?;
            sqlx::query(
                "DELETE FROM password_history WHERE user_id = $1 AND id NOT IN \
                 (SELECT id FROM password_history WHERE user_id = $1 \
                  ORDER BY changed_at DESC, id DESC LIMIT $2)",
            )
            .bind(&id_text)
            .bind(i64::from(change.history_keep))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(&id_text)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn password_history(&self, user_id: Uuid, since_millis: i64) -> CoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT password_hash FROM password_history WHERE user_id = $1 AND changed_at >= $2 \
             ORDER BY changed_at DESC, id DESC",
        )
        .bind(user_id.to_string())
        .bind(since_millis)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| row.try_get("password_hash").map_err(db_error))
            .collect()
    }

    async fn insert_credential_token(&self, token: CredentialToken) -> CoreResult<()> {
        let user_id = token.user_id.to_string();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO credential_tokens (digest, user_id, purpose, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&token.digest)
        .bind(&user_id)
        .bind(token.purpose.as_str())
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|error| map_error(error, "the credential token exists already", "user"))?;
        sqlx::query("DELETE FROM credential_tokens WHERE user_id = $1 AND expires_at < $2")
            .bind(&user_id)
            .bind(token.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn credential_token(
        &self,
        digest: &str,
        purpose: TokenPurpose,
    ) -> CoreResult<Option<CredentialToken>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM credential_tokens WHERE digest = $1 AND purpose = $2"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(digest)
            .bind(purpose.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn insert_api_key(&self, key: ApiKey) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, digest, description, enabled, expiration_time, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(key.id.to_string())
        .bind(key.user_id.to_string())
        .bind(&key.digest)
        .bind(&key.description)
        .bind(flag(key.enabled))
        .bind(key.expiration_time)
        .bind(key.created_at)
        .execute(&self.pool)
        .await
        .map_err(|error| map_error(error, "the API key exists already", "user"))?;
        Ok(())
    }

    async fn api_key(&self, id: Uuid) -> CoreResult<Option<ApiKey>> {
        self.api_key_where("id = $1", &id.to_string()).await
    }

    async fn api_key_by_digest(&self, digest: &str) -> CoreResult<Option<ApiKey>> {
        self.api_key_where("digest = $1", digest).await
    }

    async fn api_keys(&self, query: &ApiKeyQuery) -> CoreResult<(Vec<ApiKey>, u64)> {
        let pattern = query
            .text_search
            .as_deref()
            .filter(|text| !text.is_empty())
            .map(like_pattern);
        let filter = if pattern.is_some() {
            "user_id = $1 AND LOWER(description) LIKE $2 ESCAPE '\\'"
        } else {
            "user_id = $1"
        };
        let next = if pattern.is_some() { 3 } else { 2 };
        // The ORDER BY text comes from this match only, never from input.
        let column = match query.sort {
            ApiKeySort::CreatedTime => "created_at",
            ApiKeySort::ExpirationTime => "expiration_time",
            ApiKeySort::Description => "description",
            ApiKeySort::Enabled => "enabled",
        };
        let direction = if query.descending { "DESC" } else { "ASC" };
        let count_sql = format!("SELECT COUNT(*) AS total FROM api_keys WHERE {filter}");
        let page_sql = format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE {filter} \
             ORDER BY {column} {direction}, id LIMIT ${next} OFFSET ${}",
            next + 1
        );
        let user_id = query.user_id.to_string();
        let mut count = sqlx::query(AssertSqlSafe(count_sql)).bind(user_id.clone());
        let mut page = sqlx::query(AssertSqlSafe(page_sql)).bind(user_id);
        if let Some(pattern) = pattern {
            count = count.bind(pattern.clone());
            page = page.bind(pattern);
        }
        let (rows, total) = self
            .page_rows(Counting::Query(count), page, query.limit, query.offset)
            .await?;
        let keys = rows
            .iter()
            .map(api_key_from_row)
            .collect::<CoreResult<Vec<_>>>()?;
        Ok((keys, total))
    }

    async fn update_api_key(&self, key: &ApiKey) -> CoreResult<bool> {
        let result =
            sqlx::query("UPDATE api_keys SET description = $2, enabled = $3 WHERE id = $1")
                .bind(key.id.to_string())
                .bind(&key.description)
                .bind(flag(key.enabled))
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_api_key(&self, id: Uuid) -> CoreResult<bool> {
        let result = sqlx::query("DELETE FROM api_keys WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn add_user_role(&self, user_id: Uuid, role_id: Uuid) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        let user = sqlx::query("SELECT 1 FROM users WHERE id = $1")
            .bind(user_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        if user.is_none() {
            return Err(CoreError::not_found("user"));
        }
        let role = sqlx::query("SELECT 1 FROM roles WHERE id = $1")
            .bind(role_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        if role.is_none() {
            return Err(CoreError::not_found("role"));
        }
        insert_user_roles(&mut tx, user_id, &[role_id]).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn remove_user_role(&self, user_id: Uuid, role_id: Uuid) -> CoreResult<bool> {
        let result = sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2")
            .bind(user_id.to_string())
            .bind(role_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn roles_of_users(&self, user_ids: &[Uuid]) -> CoreResult<Vec<(Uuid, Vec<Role>)>> {
        let rows = self
            .fetch_in(
                "SELECT ur.user_id AS member_id, {ROLES} FROM user_roles ur JOIN roles r ON r.id = ur.role_id \
                 WHERE ur.user_id IN ({IDS}) ORDER BY r.name",
                user_ids,
            )
            .await?;
        let roles = self.roles_with_permissions(&rows).await?;
        let pairs = rows
            .iter()
            .zip(roles)
            .map(|(row, role)| Ok((parse_uuid(row, "member_id")?, role)))
            .collect::<CoreResult<Vec<_>>>()?;
        Ok(group_by(user_ids, pairs))
    }

    async fn members_of_roles(
        &self,
        role_ids: &[Uuid],
    ) -> CoreResult<Vec<(Uuid, Vec<(Uuid, String)>)>> {
        let rows = self
            .fetch_in(
                "SELECT ur.role_id, u.id, u.username FROM user_roles ur JOIN users u ON u.id = ur.user_id \
                 WHERE ur.role_id IN ({IDS}) ORDER BY u.username",
                role_ids,
            )
            .await?;
        let pairs = rows
            .iter()
            .map(|row| {
                let member = (
                    parse_uuid(row, "id")?,
                    row.try_get::<String, _>("username").map_err(db_error)?,
                );
                Ok((parse_uuid(row, "role_id")?, member))
            })
            .collect::<CoreResult<Vec<_>>>()?;
        Ok(group_by(role_ids, pairs))
    }

    async fn add_certificate(
        &self,
        user_id: Uuid,
        certificate: BoundCertificate,
    ) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_certificate(&mut tx, user_id, &certificate).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn remove_certificate(&self, user_id: Uuid, fingerprint: &str) -> CoreResult<bool> {
        let result =
            sqlx::query("DELETE FROM user_certificates WHERE user_id = $1 AND fingerprint = $2")
                .bind(user_id.to_string())
                .bind(fingerprint)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn certificates_of_users(
        &self,
        user_ids: &[Uuid],
    ) -> CoreResult<Vec<(Uuid, Vec<BoundCertificate>)>> {
        let rows = self
            .fetch_in(
                "SELECT user_id, fingerprint, created_at, expires_at FROM user_certificates \
                 WHERE user_id IN ({IDS}) ORDER BY created_at, fingerprint",
                user_ids,
            )
            .await?;
        let pairs = rows
            .iter()
            .map(|row| {
                let certificate = BoundCertificate {
                    fingerprint: row.try_get("fingerprint").map_err(db_error)?,
                    created_at: row.try_get("created_at").map_err(db_error)?,
                    expires_at: row.try_get("expires_at").map_err(db_error)?,
                };
                Ok((parse_uuid(row, "user_id")?, certificate))
            })
            .collect::<CoreResult<Vec<_>>>()?;
        Ok(group_by(user_ids, pairs))
    }

    async fn insert_role(&self, role: Role) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_role_row(&mut tx, &role).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn role(&self, id: Uuid) -> CoreResult<Option<Role>> {
        let sql = format!("SELECT {ROLE_COLUMNS} FROM roles r WHERE r.id = $1");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(self.roles_with_permissions(&rows).await?.pop())
    }

    async fn roles(&self, query: &RoleQuery) -> CoreResult<(Vec<Role>, u64)> {
        let mut conditions = Vec::new();
        if let Some(auto_generated) = query.auto_generated {
            conditions.push(format!("r.auto_generated = {}", flag(auto_generated)));
        }
        if let Some(is_shared) = query.is_shared {
            conditions.push(format!("r.is_shared = {}", flag(is_shared)));
        }
        let names = query.names.as_deref().unwrap_or_default();
        if query.names.is_some() {
            if names.is_empty() {
                return Ok((Vec::new(), 0));
            }
            conditions.push(format!("r.name IN ({})", placeholders(1, names.len())));
        }
        let filter = where_clause(&conditions);
        let count_sql = format!("SELECT COUNT(*) AS total FROM roles r{filter}");
        // In the order of the index on (name, id) (migration 0007), which the page walks.
        let page_sql = format!(
            "SELECT {ROLE_COLUMNS} FROM roles r{filter} ORDER BY r.name, r.id LIMIT ${} OFFSET ${}",
            names.len() + 1,
            names.len() + 2
        );
        let mut count = sqlx::query(AssertSqlSafe(count_sql));
        let mut page = sqlx::query(AssertSqlSafe(page_sql));
        for name in names {
            count = count.bind(name.clone());
            page = page.bind(name.clone());
        }
        let (rows, total) = self
            .page_rows(Counting::Query(count), page, query.limit, query.offset)
            .await?;
        Ok((self.roles_with_permissions(&rows).await?, total))
    }

    async fn update_role(&self, role: Role, replace_permissions: bool) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE roles SET name = $2, is_shared = $3, ldap_group_dn = $4, ms_entra_id_group_ids = $5 WHERE id = $1",
        )
        .bind(role.id.to_string())
        .bind(&role.name)
        .bind(flag(role.is_shared))
        .bind(role.ldap_group_dn.as_deref())
        .bind(role.ms_entra_id_group_ids.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(|error| map_error(error, &format!("a role named '{}' already exists", role.name), "role"))?;
        if result.rows_affected() == 0 {
            return Err(CoreError::not_found("role"));
        }
        if replace_permissions {
            sqlx::query("DELETE FROM role_permissions WHERE role_id = $1")
                .bind(role.id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            insert_permission_rows(&mut tx, role.id, &role.permissions).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn delete_role(&self, id: Uuid) -> CoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query("DELETE FROM roles WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn insert_permission(&self, role_id: Uuid, permission: Permission) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_permission_rows(&mut tx, role_id, std::slice::from_ref(&permission)).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn update_permission(&self, role_id: Uuid, permission: Permission) -> CoreResult<bool> {
        let grant = &permission.grant;
        let result = sqlx::query(
            "UPDATE role_permissions SET resource = $3, operation = $4, context = $5 WHERE id = $1 AND role_id = $2",
        )
        .bind(permission.id.to_string())
        .bind(role_id.to_string())
        .bind(grant.resource.as_str())
        .bind(grant.operation.as_str())
        .bind(grant.context.as_str())
        .execute(&self.pool)
        .await
        .map_err(|error| {
            map_error(
                error,
                &format!("the role already declares resource '{}' in context {}", grant.resource.as_str(), grant.context),
                "role",
            )
        })?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_permission(&self, role_id: Uuid, permission_id: Uuid) -> CoreResult<bool> {
        let result = sqlx::query("DELETE FROM role_permissions WHERE id = $1 AND role_id = $2")
            .bind(permission_id.to_string())
            .bind(role_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn permission_usages(&self) -> CoreResult<Vec<PermissionUsage>> {
        let rows = sqlx::query(
            "SELECT p.id, p.resource, p.operation, p.context, r.id AS role_id, r.name AS role_name, \
             r.is_shared AS role_is_shared, u.id AS owner_id, u.username AS owner_name \
             FROM role_permissions p JOIN roles r ON r.id = p.role_id LEFT JOIN users u ON u.id = r.owner_user_id \
             ORDER BY p.resource, p.context, r.name, p.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let owner_id: Option<String> = row.try_get("owner_id").map_err(db_error)?;
                let owner = match owner_id {
                    Some(id) => Some((
                        Uuid::from_str(&id).map_err(CoreError::internal)?,
                        row.try_get::<String, _>("owner_name").map_err(db_error)?,
                    )),
                    None => None,
                };
                Ok(PermissionUsage {
                    permission: permission_from_row(row)?,
                    role_id: parse_uuid(row, "role_id")?,
                    role_name: row.try_get("role_name").map_err(db_error)?,
                    role_is_shared: row.try_get::<i64, _>("role_is_shared").map_err(db_error)? != 0,
                    owner,
                })
            })
            .collect()
    }

    async fn permissions_of_user(&self, user_id: Uuid) -> CoreResult<Vec<Permission>> {
        let rows = sqlx::query(
            "SELECT p.id, p.resource, p.operation, p.context FROM role_permissions p \
             JOIN user_roles ur ON ur.role_id = p.role_id WHERE ur.user_id = $1 ORDER BY p.resource, p.context, p.id",
        )
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(permission_from_row).collect()
    }

    async fn insert_session(&self, session: Session) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, kind, fingerprint, label, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(session.id.to_string())
        .bind(session.user_id.to_string())
        .bind(session.kind.as_str())
        .bind(&session.fingerprint)
        .bind(session.label.as_deref())
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|error| map_error(error, "session exists", "user"))?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND expires_at <= $2")
            .bind(session.user_id.to_string())
            .bind(session.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn session(&self, id: Uuid) -> CoreResult<Option<Session>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn sessions_of_users(
        &self,
        user_ids: &[Uuid],
        now_millis: i64,
    ) -> CoreResult<Vec<(Uuid, Vec<Session>)>> {
        let rows = self
            .fetch_in(
                "SELECT {SESSIONS} FROM sessions WHERE user_id IN ({IDS}) ORDER BY created_at DESC, id",
                user_ids,
            )
            .await?;
        let pairs = rows
            .iter()
            .map(session_from_row)
            // A login waiting for its second factor holds no token yet: not listed.
            .filter(|session| {
                session.as_ref().map_or(true, |session| {
                    session.expires_at > now_millis && session.kind != SessionKind::MfaPending
                })
            })
            .map(|session| session.map(|session| (session.user_id, session)))
            .collect::<CoreResult<Vec<_>>>()?;
        Ok(group_by(user_ids, pairs))
    }

    async fn rotate_session(
        &self,
        session_id: Uuid,
        old_fingerprint: &str,
        new_fingerprint: &str,
        new_expires_at: i64,
    ) -> CoreResult<bool> {
        // Compare-and-swap: of parallel refreshes with the same token only one matches.
        let result = sqlx::query(
            "UPDATE sessions SET fingerprint = $3, expires_at = $4 WHERE id = $1 AND fingerprint = $2",
        )
        .bind(session_id.to_string())
        .bind(old_fingerprint)
        .bind(new_fingerprint)
        .bind(new_expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn revoke_sessions(&self, user_id: Uuid, key: Option<&str>) -> CoreResult<u64> {
        let result = match key {
            Some(key) => {
                sqlx::query(
                    "DELETE FROM sessions WHERE user_id = $1 AND (id = $2 OR fingerprint = $2)",
                )
                .bind(user_id.to_string())
                .bind(key)
                .execute(&self.pool)
                .await
            }
            None => {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(user_id.to_string())
                    .execute(&self.pool)
                    .await
            }
        }
        .map_err(db_error)?;
        Ok(result.rows_affected())
    }

    async fn promote_session(
        &self,
        session_id: Uuid,
        from: SessionKind,
        to: SessionKind,
    ) -> CoreResult<bool> {
        let result = sqlx::query("UPDATE sessions SET kind = $3 WHERE id = $1 AND kind = $2")
            .bind(session_id.to_string())
            .bind(from.as_str())
            .bind(to.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected() == 1)
    }

    // --- MFA: implemented in `mfa.rs`

    async fn mfa_factors(&self, user_id: Uuid) -> CoreResult<Vec<MfaFactor>> {
        self.select_mfa_factors(user_id).await
    }

    async fn save_mfa_factor(
        &self,
        factor: MfaFactor,
        backup_code_digests: Option<Vec<String>>,
    ) -> CoreResult<()> {
        self.store_mfa_factor(factor, backup_code_digests).await
    }

    async fn delete_mfa_factors(
        &self,
        user_id: Uuid,
        providers: &[MfaProvider],
    ) -> CoreResult<u64> {
        self.remove_mfa_factors(user_id, providers).await
    }

    async fn accept_totp_step(&self, user_id: Uuid, step: u64) -> CoreResult<bool> {
        self.take_totp_step(user_id, step).await
    }

    async fn consume_backup_code(&self, user_id: Uuid, digest: &str) -> CoreResult<bool> {
        self.take_backup_code(user_id, digest).await
    }

    async fn set_mfa_code(
        &self,
        user_id: Uuid,
        provider: MfaProvider,
        enrolled: bool,
        digest: &str,
        expires_at: i64,
    ) -> CoreResult<bool> {
        self.put_mfa_code(user_id, provider, enrolled, digest, expires_at)
            .await
    }

    async fn consume_mfa_code(
        &self,
        user_id: Uuid,
        provider: MfaProvider,
        enrolled: bool,
        digest: &str,
        now: i64,
    ) -> CoreResult<bool> {
        self.take_mfa_code(user_id, provider, enrolled, digest, now)
            .await
    }

    async fn reserve_mfa_attempt(
        &self,
        user_id: Uuid,
        limit: Option<u32>,
        now: i64,
    ) -> CoreResult<MfaAttempt> {
        self.count_mfa_attempt(user_id, limit, now).await
    }

    async fn ban_mfa(&self, user_id: Uuid, until: i64, now: i64) -> CoreResult<i64> {
        self.start_mfa_ban(user_id, until, now).await
    }

    async fn reset_mfa_attempts(&self, user_id: Uuid) -> CoreResult<()> {
        self.clear_mfa_attempts(user_id).await
    }

    async fn insert_registration(&self, registration: Registration) -> CoreResult<()> {
        self.store_registration(registration).await
    }

    async fn registration(&self, username: &str) -> CoreResult<Option<Registration>> {
        Ok(self.select_registrations(Some(username)).await?.pop())
    }

    async fn registrations(&self) -> CoreResult<Vec<Registration>> {
        self.select_registrations(None).await
    }

    async fn count_pending_registrations(&self) -> CoreResult<u64> {
        self.count_pending().await
    }

    async fn insert_signup(
        &self,
        user: NewUser,
        record: SignupRecord,
        max_pending: u64,
    ) -> CoreResult<()> {
        self.store_signup(user, record, max_pending).await
    }

    async fn activate_signup(&self, user_id: Uuid, now: i64) -> CoreResult<()> {
        self.settle_signup(user_id, now).await
    }

    async fn user_by_address_any_case(&self, address: &str) -> CoreResult<Option<User>> {
        self.select_user_by_address(address).await
    }

    async fn signup(&self, user_id: Uuid) -> CoreResult<Option<SignupRecord>> {
        self.select_signup(user_id).await
    }

    async fn renew_pending_signup(
        &self,
        user_id: Uuid,
        password_hash: &str,
        profile: &Profile,
        now: i64,
    ) -> CoreResult<()> {
        self.renew_signup(user_id, password_hash, profile, now)
            .await
    }

    async fn verify_signup_email(
        &self,
        digest: &str,
        now: i64,
    ) -> CoreResult<Result<Uuid, Rejection>> {
        self.use_email_code(digest, now).await
    }

    async fn accept_privacy_policy(&self, user_id: Uuid, now: i64) -> CoreResult<()> {
        self.record_privacy_policy(user_id, now).await
    }

    async fn count_unverified_signups(&self) -> CoreResult<u64> {
        self.unverified_signups().await
    }

    async fn purge_unverified_signups(&self, created_before: i64, limit: u32) -> CoreResult<u64> {
        self.purge_signups(created_before, limit).await
    }

    async fn delete_tenancy(&self, scope: DeletionScope) -> CoreResult<u64> {
        self.remove_tenancy(scope).await
    }

    async fn grant_registration(
        &self,
        username: &str,
        user: NewUser,
        certificate: Option<String>,
    ) -> CoreResult<bool> {
        self.grant(username, user, certificate).await
    }

    async fn insert_oauth2_client(&self, client: &SealedOAuth2Client) -> CoreResult<()> {
        self.store_oauth2_client(client).await
    }

    async fn update_oauth2_client(&self, client: &SealedOAuth2Client) -> CoreResult<bool> {
        self.replace_oauth2_client(client).await
    }

    async fn oauth2_client(&self, id: Uuid) -> CoreResult<Option<SealedOAuth2Client>> {
        self.select_oauth2_client(id).await
    }

    async fn oauth2_clients_by_ids(&self, ids: &[Uuid]) -> CoreResult<Vec<SealedOAuth2Client>> {
        self.select_oauth2_clients_by_ids(ids).await
    }

    async fn oauth2_clients(
        &self,
        query: &OAuth2ClientQuery,
    ) -> CoreResult<(Vec<SealedOAuth2Client>, u64)> {
        self.select_oauth2_clients(query).await
    }

    async fn delete_oauth2_client(&self, id: Uuid) -> CoreResult<bool> {
        self.remove_oauth2_client(id).await
    }

    async fn oauth2_clients_of_domain(
        &self,
        name: &DomainName,
    ) -> CoreResult<Vec<SealedOAuth2Client>> {
        self.select_clients_of_domain(name).await
    }

    async fn oauth2_templates(&self) -> CoreResult<Vec<OAuth2Template>> {
        self.select_oauth2_templates().await
    }

    async fn oauth2_template(&self, id: Uuid) -> CoreResult<Option<OAuth2Template>> {
        self.select_oauth2_template(id).await
    }

    async fn insert_oauth2_template(&self, template: &OAuth2Template) -> CoreResult<()> {
        self.store_oauth2_template(template, false).await
    }

    async fn insert_missing_oauth2_templates(
        &self,
        templates: Vec<OAuth2Template>,
    ) -> CoreResult<()> {
        for template in &templates {
            self.store_oauth2_template(template, true).await?;
        }
        Ok(())
    }

    async fn update_oauth2_template(&self, template: &OAuth2Template) -> CoreResult<bool> {
        self.replace_oauth2_template(template).await
    }

    async fn delete_oauth2_template(&self, id: Uuid) -> CoreResult<bool> {
        self.remove_oauth2_template(id).await
    }

    async fn insert_domain(&self, domain: &Domain, client_ids: &[Uuid]) -> CoreResult<()> {
        self.store_domain(domain, client_ids).await
    }

    async fn update_domain(
        &self,
        domain: &Domain,
        client_ids: Option<&[Uuid]>,
    ) -> CoreResult<bool> {
        self.replace_domain(domain, client_ids).await
    }

    async fn set_domain_clients(&self, id: Uuid, client_ids: &[Uuid]) -> CoreResult<bool> {
        self.replace_domain_clients(id, client_ids).await
    }

    async fn domain(&self, id: Uuid) -> CoreResult<Option<Domain>> {
        self.select_domain(id).await
    }

    async fn domains(&self, query: &DomainQuery) -> CoreResult<(Vec<Domain>, u64)> {
        self.select_domains(query).await
    }

    async fn domain_clients(
        &self,
        ids: &[Uuid],
    ) -> CoreResult<Vec<(Uuid, Vec<SealedOAuth2Client>)>> {
        self.select_domain_clients(ids).await
    }

    async fn delete_domain(&self, id: Uuid) -> CoreResult<bool> {
        self.remove_domain(id).await
    }

    async fn insert_federation_login(&self, login: FederationLogin, now: i64) -> CoreResult<()> {
        self.store_federation_login(login, now).await
    }

    async fn count_federation_logins(&self, now: i64) -> CoreResult<u64> {
        self.count_logins(now).await
    }

    async fn take_federation_login(
        &self,
        state_digest: &str,
    ) -> CoreResult<Option<FederationLogin>> {
        self.take_login(state_digest).await
    }

    async fn federated_user(&self, provider: &str, subject: &str) -> CoreResult<Option<Uuid>> {
        self.select_federated_user(provider, subject).await
    }

    async fn link_federated_identity(
        &self,
        provider: &str,
        subject: &str,
        user_id: Uuid,
        now: i64,
    ) -> CoreResult<()> {
        self.insert_federated_identity(provider, subject, user_id, now)
            .await
    }

    async fn insert_trusted_certificates(
        &self,
        certificates: Vec<TrustedCertificate>,
    ) -> CoreResult<Vec<String>> {
        self.store_trusted(certificates).await
    }

    async fn trusted_certificates(&self) -> CoreResult<Vec<TrustedCertificate>> {
        self.select_trusted().await
    }

    async fn delete_trusted_certificate(&self, id: &str) -> CoreResult<bool> {
        self.remove_trusted(id).await
    }

    async fn setting(&self, key: &str) -> CoreResult<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.map(|row| row.try_get("value").map_err(db_error))
            .transpose()
    }

    async fn put_setting(&self, key: &str, value: &str) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> CoreResult<String> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        row.try_get("value").map_err(db_error)
    }

    async fn count_change(&self, feed: ChangeFeed) -> CoreResult<()> {
        sqlx::query("UPDATE change_counters SET value = value + 1 WHERE feed = $1")
            .bind(feed.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn change_counters(&self) -> CoreResult<ChangeCounters> {
        let rows = sqlx::query("SELECT feed, value FROM change_counters")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let mut counters = ChangeCounters::default();
        for row in rows {
            let feed: String = row.try_get("feed").map_err(db_error)?;
            let value: i64 = row.try_get("value").map_err(db_error)?;
            if feed == ChangeFeed::Identity.as_str() {
                counters.identity = value;
            } else if feed == ChangeFeed::Sessions.as_str() {
                counters.sessions = value;
            }
        }
        Ok(counters)
    }
}

async fn insert_certificate(
    tx: &mut Tx,
    user_id: Uuid,
    certificate: &BoundCertificate,
) -> CoreResult<()> {
    sqlx::query("INSERT INTO user_certificates (fingerprint, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(&certificate.fingerprint)
        .bind(user_id.to_string())
        .bind(certificate.created_at)
        .bind(certificate.expires_at)
        .execute(&mut **tx)
        .await
        .map_err(|error| {
            map_error(error, &format!("certificate {} is already bound to a user", certificate.fingerprint), "user")
        })?;
    Ok(())
}

//! Gatehouse's storage: the core's [`Store`] trait implemented once over sqlx's `Any` driver,
//! which serves both the embedded SQLite database and PostgreSQL.
//!
//! One query path for both engines: ids are stored as UUID text, times as Unix milliseconds and
//! flags as 0/1 integers, and every query uses `$N` placeholders, which both engines accept. The
//! only engine-specific parts are the two migration folders (kept in lockstep), the connection
//! settings, and how a write transaction begins (`BEGIN IMMEDIATE` on SQLite so that two writers
//! queue instead of failing on lock upgrade).

mod rows;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::error::{CoreError, CoreResult};
use gatehouse_core::model::{
    BoundCertificate, PermissionUsage, Role, Session, User, UserCredentials,
};
use gatehouse_core::permission::Permission;
use gatehouse_core::store::{NewUser, RoleQuery, Store, UserQuery, UserUpdate};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Executor, Row};
use uuid::Uuid;

use rows::{
    flag, parse_uuid, permission_from_row, role_from_row, session_from_row, user_from_row,
    ROLE_COLUMNS, USER_COLUMNS,
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

async fn insert_user_row(tx: &mut Tx, user: &User, password_hash: Option<&str>) -> CoreResult<()> {
    let grant_types = serde_json::to_string(&user.grant_types).map_err(CoreError::internal)?;
    sqlx::query(
        "INSERT INTO users (id, username, password_hash, identity_provider, grant_types, \
         auto_generated, mqtt_publish_prefix, enforce_mfa_enrollment, mfa_enrolled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
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
    .execute(&mut **tx)
    .await
    .map_err(|error| map_error(error, &format!("a user named '{}' already exists", user.username), "user"))?;
    Ok(())
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
    /// Runs `template` with `{IDS}` replaced by placeholders for `ids` (and `{USERS}` /
    /// `{ROLES}` by the column lists), binding the ids as text. No ids, no query.
    async fn fetch_in(&self, template: &str, ids: &[Uuid]) -> CoreResult<Vec<AnyRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = template
            .replace("{IDS}", &placeholders(1, ids.len()))
            .replace("{USERS}", USER_COLUMNS)
            .replace("{ROLES}", ROLE_COLUMNS);
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
            insert_user_row(&mut tx, &new.user, new.password_hash.as_deref()).await?;
            let mut role_ids = new.role_ids.clone();
            if let Some(own) = &new.own_role {
                insert_role_row(&mut tx, own).await?;
                role_ids.push(own.id);
            }
            insert_user_roles(&mut tx, new.user.id, &role_ids).await?;
            for certificate in &new.certificates {
                insert_certificate(&mut tx, new.user.id, certificate).await?;
            }
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
        let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.as_ref().map(rows::credentials_from_row).transpose()
    }

    async fn credentials(&self, id: Uuid) -> CoreResult<Option<UserCredentials>> {
        let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.as_ref().map(rows::credentials_from_row).transpose()
    }

    async fn users(&self, query: &UserQuery) -> CoreResult<(Vec<User>, u64)> {
        let names = query.usernames.clone().unwrap_or_default();
        let mut filter = String::from("($1 = 0 OR auto_generated = 0)");
        if query.usernames.is_some() {
            if names.is_empty() {
                return Ok((Vec::new(), 0));
            }
            filter.push_str(&format!(
                " AND username IN ({})",
                placeholders(2, names.len())
            ));
        }
        let count_sql = format!("SELECT COUNT(*) AS total FROM users WHERE {filter}");
        let page_sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {filter} ORDER BY username LIMIT ${} OFFSET ${}",
            names.len() + 2,
            names.len() + 3
        );
        let mut count =
            sqlx::query(AssertSqlSafe(count_sql)).bind(flag(query.exclude_auto_generated));
        let mut page =
            sqlx::query(AssertSqlSafe(page_sql)).bind(flag(query.exclude_auto_generated));
        for name in &names {
            count = count.bind(name.clone());
            page = page.bind(name.clone());
        }
        let total: i64 = count
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?
            .try_get("total")
            .map_err(db_error)?;
        let rows = page
            .bind(clamp(query.limit))
            .bind(clamp(query.offset))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let users = rows
            .iter()
            .map(user_from_row)
            .collect::<CoreResult<Vec<_>>>()?;
        Ok((users, u64::try_from(total).unwrap_or(0)))
    }

    async fn update_user(&self, id: Uuid, update: UserUpdate) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        let id_text = id.to_string();
        let exists = sqlx::query("SELECT username FROM users WHERE id = $1")
            .bind(&id_text)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        if exists.is_none() {
            return Err(CoreError::not_found("user"));
        }
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
            sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(&id_text)
                .bind(hash)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
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
        let names = query.names.clone().unwrap_or_default();
        let mut filter =
            String::from("($1 < 0 OR r.auto_generated = $1) AND ($2 < 0 OR r.is_shared = $2)");
        if query.names.is_some() {
            if names.is_empty() {
                return Ok((Vec::new(), 0));
            }
            filter.push_str(&format!(
                " AND r.name IN ({})",
                placeholders(3, names.len())
            ));
        }
        let tristate = |value: Option<bool>| value.map_or(-1, flag);
        let count_sql = format!("SELECT COUNT(*) AS total FROM roles r WHERE {filter}");
        let page_sql = format!(
            "SELECT {ROLE_COLUMNS} FROM roles r WHERE {filter} ORDER BY r.name, r.id LIMIT ${} OFFSET ${}",
            names.len() + 3,
            names.len() + 4
        );
        let mut count = sqlx::query(AssertSqlSafe(count_sql))
            .bind(tristate(query.auto_generated))
            .bind(tristate(query.is_shared));
        let mut page = sqlx::query(AssertSqlSafe(page_sql))
            .bind(tristate(query.auto_generated))
            .bind(tristate(query.is_shared));
        for name in &names {
            count = count.bind(name.clone());
            page = page.bind(name.clone());
        }
        let total: i64 = count
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?
            .try_get("total")
            .map_err(db_error)?;
        let rows = page
            .bind(clamp(query.limit))
            .bind(clamp(query.offset))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok((
            self.roles_with_permissions(&rows).await?,
            u64::try_from(total).unwrap_or(0),
        ))
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
            "INSERT INTO sessions (id, user_id, fingerprint, label, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(session.id.to_string())
        .bind(session.user_id.to_string())
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
        let row = sqlx::query(
            "SELECT id, user_id, fingerprint, label, created_at, expires_at FROM sessions WHERE id = $1",
        )
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
                "SELECT id, user_id, fingerprint, label, created_at, expires_at FROM sessions \
                 WHERE user_id IN ({IDS}) ORDER BY created_at DESC, id",
                user_ids,
            )
            .await?;
        let pairs = rows
            .iter()
            .map(session_from_row)
            .filter(|session| {
                session
                    .as_ref()
                    .map_or(true, |session| session.expires_at > now_millis)
            })
            .map(|session| session.map(|session| (session.user_id, session)))
            .collect::<CoreResult<Vec<_>>>()?;
        Ok(group_by(user_ids, pairs))
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

    async fn setting(&self, key: &str) -> CoreResult<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.map(|row| row.try_get("value").map_err(db_error))
            .transpose()
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

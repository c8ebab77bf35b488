//! The ThingsBoard OAuth2 part of the store: clients (a JSON document of everything but the
//! id, tenant, creation time, title and the sealed secrets, which are columns), registration
//! templates (unique provider id) and domains (unique name) with their links to clients.

use std::str::FromStr;

use gatehouse_core::error::{CoreError, CoreResult};
use gatehouse_core::oauth2::{
    Domain, DomainName, DomainQuery, DomainSort, OAuth2Client, OAuth2ClientQuery, OAuth2ClientSort,
    OAuth2Template, SealedOAuth2Client, DOMAIN_NAME_TAKEN, TEMPLATE_PROVIDER_TAKEN,
};
use sqlx::any::AnyRow;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::rows::{flag, get, get_flag, parse_uuid};
use crate::{db_error, group_by, like_pattern, map_error, placeholders, Counting, SqlStore, Tx};

/// Columns of `oauth2_clients c` read into a [`SealedOAuth2Client`].
const CLIENT_COLUMNS: &str = "c.id, c.tenant_id, c.created_at, c.title, c.document, \
    c.client_secret_sealed, c.mapper_password_sealed";

/// Columns of `oauth2_templates` read into an [`OAuth2Template`].
const TEMPLATE_COLUMNS: &str = "id, created_at, document";

/// Columns of `domains` read into a [`Domain`].
const DOMAIN_COLUMNS: &str = "id, tenant_id, created_at, name, oauth2_enabled, propagate_to_edge";

/// A stored document that no longer parses.
fn stored(what: &str, error: impl std::fmt::Display) -> CoreError {
    CoreError::internal(format!("stored {what}: {error}"))
}

fn client_from_row(row: &AnyRow) -> CoreResult<SealedOAuth2Client> {
    let document: String = get(row, "document")?;
    let mut client: OAuth2Client =
        serde_json::from_str(&document).map_err(|error| stored("OAuth2 client", error))?;
    client.id = parse_uuid(row, "id")?;
    client.tenant_id = parse_uuid(row, "tenant_id")?;
    client.created_at = get(row, "created_at")?;
    client.title = get(row, "title")?;
    Ok(SealedOAuth2Client {
        client,
        secret_sealed: get(row, "client_secret_sealed")?,
        password_sealed: get(row, "mapper_password_sealed")?,
    })
}

fn template_from_row(row: &AnyRow) -> CoreResult<OAuth2Template> {
    let document: String = get(row, "document")?;
    let mut template: OAuth2Template =
        serde_json::from_str(&document).map_err(|error| stored("OAuth2 template", error))?;
    template.id = parse_uuid(row, "id")?;
    template.created_at = get(row, "created_at")?;
    Ok(template)
}

fn domain_from_row(row: &AnyRow) -> CoreResult<Domain> {
    let name: String = get(row, "name")?;
    Ok(Domain {
        id: parse_uuid(row, "id")?,
        tenant_id: parse_uuid(row, "tenant_id")?,
        created_at: get(row, "created_at")?,
        name: DomainName::parse(&name).map_err(|error| stored("domain name", error))?,
        oauth2_enabled: get_flag(row, "oauth2_enabled")?,
        propagate_to_edge: get_flag(row, "propagate_to_edge")?,
    })
}

fn client_document(client: &OAuth2Client) -> CoreResult<String> {
    serde_json::to_string(client).map_err(CoreError::internal)
}

fn template_document(template: &OAuth2Template) -> CoreResult<String> {
    serde_json::to_string(template).map_err(CoreError::internal)
}

/// Links a domain to clients; a client that is gone is `NotFound`.
async fn insert_links(tx: &mut Tx, domain_id: Uuid, client_ids: &[Uuid]) -> CoreResult<()> {
    for client_id in client_ids {
        sqlx::query(
            "INSERT INTO domain_oauth2_clients (domain_id, client_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(domain_id.to_string())
        .bind(client_id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(
            |error| match map_error(error, "the link exists", "OAuth2 client") {
                // A client deleted since the caller checked the ids.
                CoreError::NotFound { .. } => CoreError::invalid(
                    "oauth2ClientIds",
                    format!("names no OAuth2 client: {client_id}"),
                ),
                other => other,
            },
        )?;
    }
    Ok(())
}

/// Replaces a domain's links.
async fn replace_links(tx: &mut Tx, domain_id: Uuid, client_ids: &[Uuid]) -> CoreResult<()> {
    sqlx::query("DELETE FROM domain_oauth2_clients WHERE domain_id = $1")
        .bind(domain_id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    insert_links(tx, domain_id, client_ids).await
}

/// The `WHERE` text of the conditions whose value is given (each `?` becomes its `$N`), and
/// their values in order; `1 = 1` when none is given.
fn filters(conditions: &[(&str, Option<String>)]) -> (String, Vec<String>) {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    for (clause, value) in conditions {
        if let Some(value) = value {
            values.push(value.clone());
            clauses.push(clause.replace('?', &format!("${}", values.len())));
        }
    }
    let filter = if clauses.is_empty() {
        "1 = 1".to_owned()
    } else {
        clauses.join(" AND ")
    };
    (filter, values)
}

impl SqlStore {
    pub(crate) async fn store_oauth2_client(&self, sealed: &SealedOAuth2Client) -> CoreResult<()> {
        let client = &sealed.client;
        sqlx::query(
            "INSERT INTO oauth2_clients (id, tenant_id, created_at, title, document, \
             client_secret_sealed, mapper_password_sealed) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(client.id.to_string())
        .bind(client.tenant_id.to_string())
        .bind(client.created_at)
        .bind(&client.title)
        .bind(client_document(client)?)
        .bind(&sealed.secret_sealed)
        .bind(sealed.password_sealed.as_deref())
        .execute(&self.pool)
        .await
        .map_err(|error| map_error(error, "the OAuth2 client exists already", "tenant"))?;
        Ok(())
    }

    pub(crate) async fn replace_oauth2_client(
        &self,
        sealed: &SealedOAuth2Client,
    ) -> CoreResult<bool> {
        let client = &sealed.client;
        let updated = sqlx::query(
            "UPDATE oauth2_clients SET title = $2, document = $3, client_secret_sealed = $4, \
             mapper_password_sealed = $5 WHERE id = $1",
        )
        .bind(client.id.to_string())
        .bind(&client.title)
        .bind(client_document(client)?)
        .bind(&sealed.secret_sealed)
        .bind(sealed.password_sealed.as_deref())
        .execute(&self.pool)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(updated > 0)
    }

    pub(crate) async fn select_oauth2_client(
        &self,
        id: Uuid,
    ) -> CoreResult<Option<SealedOAuth2Client>> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM oauth2_clients c WHERE c.id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.as_ref().map(client_from_row).transpose()
    }

    pub(crate) async fn select_oauth2_clients_by_ids(
        &self,
        ids: &[Uuid],
    ) -> CoreResult<Vec<SealedOAuth2Client>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth2_clients c WHERE c.id IN ({}) \
             ORDER BY c.created_at, c.id",
            placeholders(1, ids.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.to_string());
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db_error)?;
        rows.iter().map(client_from_row).collect()
    }

    pub(crate) async fn select_oauth2_clients(
        &self,
        query: &OAuth2ClientQuery,
    ) -> CoreResult<(Vec<SealedOAuth2Client>, u64)> {
        let (filter, values) = filters(&[
            ("c.tenant_id = ?", query.tenant_id.map(|id| id.to_string())),
            (
                "LOWER(c.title) LIKE ? ESCAPE '\\'",
                query
                    .text_search
                    .as_deref()
                    .filter(|text| !text.is_empty())
                    .map(like_pattern),
            ),
        ]);
        // The ORDER BY text comes from this match only, never from input.
        let column = match query.sort {
            OAuth2ClientSort::CreatedTime => "c.created_at",
            OAuth2ClientSort::Title => "LOWER(c.title)",
        };
        let direction = if query.descending { "DESC" } else { "ASC" };
        let next = values.len() + 1;
        let count_sql = format!("SELECT COUNT(*) AS total FROM oauth2_clients c WHERE {filter}");
        let page_sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth2_clients c WHERE {filter} \
             ORDER BY {column} {direction}, c.id LIMIT ${next} OFFSET ${}",
            next + 1
        );
        let mut count = sqlx::query(AssertSqlSafe(count_sql));
        let mut page = sqlx::query(AssertSqlSafe(page_sql));
        for value in values {
            count = count.bind(value.clone());
            page = page.bind(value);
        }
        let (rows, total) = self
            .page_rows(Counting::Query(count), page, query.limit, query.offset)
            .await?;
        let clients = rows
            .iter()
            .map(client_from_row)
            .collect::<CoreResult<Vec<_>>>()?;
        Ok((clients, total))
    }

    pub(crate) async fn remove_oauth2_client(&self, id: Uuid) -> CoreResult<bool> {
        let mut tx = self.begin_write().await?;
        // The links go first (the foreign keys would do it too; this does not depend on them).
        sqlx::query("DELETE FROM domain_oauth2_clients WHERE client_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let deleted = sqlx::query("DELETE FROM oauth2_clients WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(deleted > 0)
    }

    pub(crate) async fn select_clients_of_domain(
        &self,
        name: &DomainName,
    ) -> CoreResult<Vec<SealedOAuth2Client>> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth2_clients c \
             JOIN domain_oauth2_clients l ON l.client_id = c.id \
             JOIN domains d ON d.id = l.domain_id \
             WHERE d.name = $1 AND d.oauth2_enabled = $2 ORDER BY c.created_at, c.id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(name.as_str())
            .bind(flag(true))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter().map(client_from_row).collect()
    }

    pub(crate) async fn select_oauth2_templates(&self) -> CoreResult<Vec<OAuth2Template>> {
        let sql =
            format!("SELECT {TEMPLATE_COLUMNS} FROM oauth2_templates ORDER BY provider_id, id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter().map(template_from_row).collect()
    }

    pub(crate) async fn select_oauth2_template(
        &self,
        id: Uuid,
    ) -> CoreResult<Option<OAuth2Template>> {
        let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM oauth2_templates WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.as_ref().map(template_from_row).transpose()
    }

    pub(crate) async fn store_oauth2_template(
        &self,
        template: &OAuth2Template,
        skip_taken: bool,
    ) -> CoreResult<()> {
        let conflict = if skip_taken {
            " ON CONFLICT DO NOTHING"
        } else {
            ""
        };
        let sql = format!(
            "INSERT INTO oauth2_templates (id, provider_id, created_at, document) \
             VALUES ($1, $2, $3, $4){conflict}"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(template.id.to_string())
            .bind(&template.provider_id)
            .bind(template.created_at)
            .bind(template_document(template)?)
            .execute(&self.pool)
            .await
            .map_err(|error| map_error(error, TEMPLATE_PROVIDER_TAKEN, "template"))?;
        Ok(())
    }

    pub(crate) async fn replace_oauth2_template(
        &self,
        template: &OAuth2Template,
    ) -> CoreResult<bool> {
        let updated = sqlx::query(
            "UPDATE oauth2_templates SET provider_id = $2, document = $3 WHERE id = $1",
        )
        .bind(template.id.to_string())
        .bind(&template.provider_id)
        .bind(template_document(template)?)
        .execute(&self.pool)
        .await
        .map_err(|error| map_error(error, TEMPLATE_PROVIDER_TAKEN, "template"))?
        .rows_affected();
        Ok(updated > 0)
    }

    pub(crate) async fn remove_oauth2_template(&self, id: Uuid) -> CoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM oauth2_templates WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(deleted > 0)
    }

    pub(crate) async fn store_domain(
        &self,
        domain: &Domain,
        client_ids: &[Uuid],
    ) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO domains (id, tenant_id, name, oauth2_enabled, propagate_to_edge, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(domain.id.to_string())
        .bind(domain.tenant_id.to_string())
        .bind(domain.name.as_str())
        .bind(flag(domain.oauth2_enabled))
        .bind(flag(domain.propagate_to_edge))
        .bind(domain.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|error| map_error(error, DOMAIN_NAME_TAKEN, "domain"))?;
        insert_links(&mut tx, domain.id, client_ids).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    pub(crate) async fn replace_domain(
        &self,
        domain: &Domain,
        client_ids: Option<&[Uuid]>,
    ) -> CoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE domains SET name = $2, oauth2_enabled = $3, propagate_to_edge = $4 \
             WHERE id = $1",
        )
        .bind(domain.id.to_string())
        .bind(domain.name.as_str())
        .bind(flag(domain.oauth2_enabled))
        .bind(flag(domain.propagate_to_edge))
        .execute(&mut *tx)
        .await
        .map_err(|error| map_error(error, DOMAIN_NAME_TAKEN, "domain"))?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        if let Some(client_ids) = client_ids {
            replace_links(&mut tx, domain.id, client_ids).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    pub(crate) async fn replace_domain_clients(
        &self,
        id: Uuid,
        client_ids: &[Uuid],
    ) -> CoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT 1 FROM domains WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        if exists.is_none() {
            tx.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        replace_links(&mut tx, id, client_ids).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    pub(crate) async fn select_domain(&self, id: Uuid) -> CoreResult<Option<Domain>> {
        let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.as_ref().map(domain_from_row).transpose()
    }

    pub(crate) async fn select_domains(
        &self,
        query: &DomainQuery,
    ) -> CoreResult<(Vec<Domain>, u64)> {
        let (filter, values) = filters(&[(
            "name LIKE ? ESCAPE '\\'",
            query
                .text_search
                .as_deref()
                .filter(|text| !text.is_empty())
                .map(like_pattern),
        )]);
        // The ORDER BY text comes from this match only, never from input.
        let column = match query.sort {
            DomainSort::CreatedTime => "created_at",
            DomainSort::Name => "name",
        };
        let direction = if query.descending { "DESC" } else { "ASC" };
        let next = values.len() + 1;
        let count_sql = format!("SELECT COUNT(*) AS total FROM domains WHERE {filter}");
        let page_sql = format!(
            "SELECT {DOMAIN_COLUMNS} FROM domains WHERE {filter} \
             ORDER BY {column} {direction}, id LIMIT ${next} OFFSET ${}",
            next + 1
        );
        let mut count = sqlx::query(AssertSqlSafe(count_sql));
        let mut page = sqlx::query(AssertSqlSafe(page_sql));
        for value in values {
            count = count.bind(value.clone());
            page = page.bind(value);
        }
        let (rows, total) = self
            .page_rows(Counting::Query(count), page, query.limit, query.offset)
            .await?;
        let domains = rows
            .iter()
            .map(domain_from_row)
            .collect::<CoreResult<Vec<_>>>()?;
        Ok((domains, total))
    }

    pub(crate) async fn select_domain_clients(
        &self,
        ids: &[Uuid],
    ) -> CoreResult<Vec<(Uuid, Vec<SealedOAuth2Client>)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT l.domain_id, {CLIENT_COLUMNS} FROM domain_oauth2_clients l \
             JOIN oauth2_clients c ON c.id = l.client_id WHERE l.domain_id IN ({}) \
             ORDER BY c.created_at, c.id",
            placeholders(1, ids.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.to_string());
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db_error)?;
        let pairs = rows
            .iter()
            .map(|row| {
                let domain_id: String = get(row, "domain_id")?;
                let domain_id = Uuid::from_str(&domain_id).map_err(CoreError::internal)?;
                Ok((domain_id, client_from_row(row)?))
            })
            .collect::<CoreResult<Vec<_>>>()?;
        Ok(group_by(ids, pairs))
    }

    pub(crate) async fn remove_domain(&self, id: Uuid) -> CoreResult<bool> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM domain_oauth2_clients WHERE domain_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let deleted = sqlx::query("DELETE FROM domains WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(deleted > 0)
    }
}

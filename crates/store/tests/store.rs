//! The store's atomic operations against real databases: SQLite always, PostgreSQL when
//! `GATEHOUSE_TEST_DATABASE_URL` names a server (a fresh database per test, dropped afterwards).

use std::sync::Arc;

use gatehouse_core::error::CoreError;
use gatehouse_core::model::{
    ApiKey, Authority, CredentialToken, GrantMethod, GrantType, IdentityProvider, Profile, Session,
    SessionKind, Tenancy, TokenPurpose, User, NULL_UUID,
};
use gatehouse_core::store::{ApiKeyQuery, ApiKeySort, NewUser, PasswordChange, Store, UserUpdate};
use gatehouse_store::SqlStore;
use sqlx::Connection;
use uuid::Uuid;

/// A store on a fresh database, removed when dropped.
struct TestStore {
    store: Arc<SqlStore>,
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    Postgres { server_url: String, name: String },
}

impl TestStore {
    async fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("gh_store_{}.db", Uuid::new_v4().simple()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let store = SqlStore::connect(&url, 8).await.expect("open SQLite");
        Self {
            store: Arc::new(store),
            cleanup: Cleanup::File(path),
        }
    }

    async fn postgres(server_url: &str) -> Self {
        let name = format!("gh_store_{}", Uuid::new_v4().simple());
        let mut connection = sqlx::PgConnection::connect(server_url)
            .await
            .expect("GATEHOUSE_TEST_DATABASE_URL is set but PostgreSQL is unreachable");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .expect("create the test database");
        let _ = connection.close().await;
        let url = replace_database(server_url, &name);
        let store = SqlStore::connect(&url, 8).await.expect("open PostgreSQL");
        Self {
            store: Arc::new(store),
            cleanup: Cleanup::Postgres {
                server_url: server_url.to_owned(),
                name,
            },
        }
    }

    async fn finish(self) {
        self.store.close().await;
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres { server_url, name } => {
                if let Ok(mut connection) = sqlx::PgConnection::connect(server_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut connection)
                    .await;
                    let _ = connection.close().await;
                }
            }
        }
    }
}

/// `postgres://u@h:p/db?x` with the database replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// Runs each `async fn name(store: Arc<SqlStore>)` as `sqlite::name` and `postgres::name`.
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let test = super::TestStore::sqlite().await;
                    super::$name(test.store.clone()).await;
                    test.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(url) = std::env::var("GATEHOUSE_TEST_DATABASE_URL")
                        .ok()
                        .filter(|url| !url.is_empty())
                    else {
                        eprintln!("GATEHOUSE_TEST_DATABASE_URL is not set: PostgreSQL variant not run");
                        return;
                    };
                    let test = super::TestStore::postgres(&url).await;
                    super::$name(test.store.clone()).await;
                    test.finish().await;
                }
            )*
        }
    };
}

both_engines!(
    users_round_trip_new_fields,
    update_user_keeps_profile_and_lockout,
    update_profile_writes_profile_and_tenancy,
    reserve_login_attempt_is_atomic,
    reserve_login_attempt_without_limit_and_disabled,
    set_credentials_enabled_changes_once,
    set_password_consumes_token_once,
    set_password_trims_history,
    credential_tokens,
    api_keys_crud_and_listing,
    sessions_kind_and_rotation,
    put_setting_overwrites,
    delete_user_cascades,
);

fn user(name: &str, email: Option<&str>) -> User {
    User {
        id: Uuid::new_v4(),
        username: name.to_owned(),
        auto_generated: false,
        mqtt_publish_prefix: None,
        identity_provider: IdentityProvider::Local,
        grant_types: vec![GrantType {
            method: GrantMethod::Password,
            is_required: false,
        }],
        enforce_mfa_enrollment: false,
        mfa_enrolled: false,
        created_at: 1_000,
        profile: Profile {
            email: email.map(str::to_owned),
            ..Profile::default()
        },
        tenancy: Tenancy::default(),
        credentials_enabled: true,
    }
}

async fn create(store: &SqlStore, user: &User, hash: Option<&str>) {
    store
        .insert_users(vec![NewUser {
            user: user.clone(),
            password_hash: hash.map(str::to_owned),
            own_role: None,
            role_ids: Vec::new(),
            certificates: Vec::new(),
        }])
        .await
        .expect("insert user");
}

fn session(user_id: Uuid, kind: SessionKind, fingerprint: &str) -> Session {
    Session {
        id: Uuid::new_v4(),
        user_id,
        kind,
        fingerprint: fingerprint.to_owned(),
        label: None,
        created_at: 1_000,
        expires_at: i64::MAX / 2,
    }
}

async fn session_count(store: &SqlStore, user_id: Uuid) -> usize {
    store
        .sessions_of_users(&[user_id], 0)
        .await
        .expect("sessions")
        .pop()
        .map_or(0, |(_, sessions)| sessions.len())
}

fn token(user_id: Uuid, digest: &str, purpose: TokenPurpose, created_at: i64) -> CredentialToken {
    CredentialToken {
        digest: digest.to_owned(),
        user_id,
        purpose,
        created_at,
        expires_at: created_at + 1_000,
    }
}

fn change(user_id: Uuid, hash: &str, at: i64, keep: u32) -> PasswordChange {
    PasswordChange {
        user_id,
        password_hash: hash.to_owned(),
        changed_at: at,
        history_keep: keep,
        consume_token: None,
        enable_credentials: false,
    }
}

fn is_conflict(error: &CoreError) -> bool {
    matches!(error, CoreError::Conflict { .. })
}

async fn users_round_trip_new_fields(store: Arc<SqlStore>) {
    let mut alice = user("alice", Some("alice@example.com"));
    alice.profile.first_name = Some("Alice".into());
    alice.profile.additional_info = Some(r#"{"lang":"en"}"#.into());
    alice.tenancy = Tenancy {
        authority: Authority::TenantAdmin,
        tenant_id: Uuid::new_v4(),
        customer_id: NULL_UUID,
    };
    alice.credentials_enabled = false;
    create(&store, &alice, Some("hash-1")).await;
    assert_eq!(store.user(alice.id).await.unwrap(), Some(alice.clone()));

    let credentials = store
        .credentials_by_email("alice@example.com")
        .await
        .unwrap()
        .expect("by email");
    assert_eq!(credentials.user, alice);
    assert_eq!(credentials.password_hash.as_deref(), Some("hash-1"));
    assert_eq!(credentials.password_changed_at, Some(alice.created_at));
    assert_eq!(credentials.failed_login_attempts, 0);
    assert!(store
        .credentials_by_email("ALICE@example.com")
        .await
        .unwrap()
        .is_none());

    let bob = user("bob", None);
    create(&store, &bob, None).await;
    let credentials = store.credentials(bob.id).await.unwrap().expect("bob");
    assert_eq!(credentials.password_changed_at, None);
    assert_eq!(credentials.user.tenancy, Tenancy::default());

    // Duplicate email and duplicate username are told apart.
    let error = store
        .insert_users(vec![NewUser {
            user: user("carol", Some("alice@example.com")),
            password_hash: None,
            own_role: None,
            role_ids: Vec::new(),
            certificates: Vec::new(),
        }])
        .await
        .unwrap_err();
    assert!(is_conflict(&error), "{error:?}");
    assert!(format!("{error}").contains("email"), "{error}");
    let error = store
        .insert_users(vec![NewUser {
            user: user("alice", Some("other@example.com")),
            password_hash: None,
            own_role: None,
            role_ids: Vec::new(),
            certificates: Vec::new(),
        }])
        .await
        .unwrap_err();
    assert!(is_conflict(&error), "{error:?}");
    assert!(format!("{error}").contains("named"), "{error}");
}

async fn update_user_keeps_profile_and_lockout(store: Arc<SqlStore>) {
    let alice = user("alice", Some("alice@example.com"));
    create(&store, &alice, Some("hash-1")).await;
    store.reserve_login_attempt(alice.id, None).await.unwrap();
    store
        .set_credentials_enabled(alice.id, false)
        .await
        .unwrap();

    let mut edited = alice.clone();
    edited.username = "alice2".into();
    edited.profile.email = Some("changed@example.com".into());
    edited.tenancy = Tenancy::system_admin();
    edited.credentials_enabled = true;
    store
        .update_user(
            alice.id,
            UserUpdate {
                user: Some(edited),
                password_hash: Some("hash-2".into()),
                password_changed_at: Some(5_000),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    let credentials = store.credentials(alice.id).await.unwrap().unwrap();
    assert_eq!(credentials.user.username, "alice2");
    assert_eq!(
        credentials.user.profile.email.as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(credentials.user.tenancy, Tenancy::default());
    assert!(!credentials.user.credentials_enabled);
    assert_eq!(credentials.failed_login_attempts, 1);
    assert_eq!(credentials.password_hash.as_deref(), Some("hash-2"));
    assert_eq!(credentials.password_changed_at, Some(5_000));
    assert_eq!(
        store.password_history(alice.id, 0).await.unwrap(),
        vec!["hash-2".to_owned()]
    );
}

async fn update_profile_writes_profile_and_tenancy(store: Arc<SqlStore>) {
    let alice = user("alice", Some("alice@example.com"));
    let bob = user("bob", Some("bob@example.com"));
    create(&store, &alice, None).await;
    create(&store, &bob, None).await;

    let mut edited = alice.clone();
    edited.username = "ignored".into();
    edited.credentials_enabled = false;
    edited.profile = Profile {
        email: Some("a@example.com".into()),
        first_name: Some("A".into()),
        last_name: Some("L".into()),
        phone: Some("+1".into()),
        additional_info: Some("{}".into()),
    };
    edited.tenancy = Tenancy {
        authority: Authority::CustomerUser,
        tenant_id: Uuid::new_v4(),
        customer_id: Uuid::new_v4(),
    };
    store.update_profile(&edited).await.unwrap();
    let stored = store.user(alice.id).await.unwrap().unwrap();
    assert_eq!(stored.profile, edited.profile);
    assert_eq!(stored.tenancy, edited.tenancy);
    assert_eq!(stored.username, "alice");
    assert!(stored.credentials_enabled);

    let mut clash = bob.clone();
    clash.profile.email = Some("a@example.com".into());
    let error = store.update_profile(&clash).await.unwrap_err();
    assert!(is_conflict(&error), "{error:?}");
    assert!(
        format!("{error}").contains("a user with email 'a@example.com' already exists"),
        "{error}"
    );

    let error = store
        .update_profile(&user("ghost", None))
        .await
        .unwrap_err();
    assert!(matches!(error, CoreError::NotFound { .. }), "{error:?}");
}

async fn reserve_login_attempt_is_atomic(store: Arc<SqlStore>) {
    let alice = user("alice", None);
    create(&store, &alice, Some("hash")).await;
    let id = alice.id;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.reserve_login_attempt(id, Some(5)).await })
        })
        .collect();
    let mut counts = Vec::new();
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Some(count) => counts.push(count),
            None => refused += 1,
        }
    }
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 2, 3, 4, 5]);
    assert_eq!(refused, 45);
    let credentials = store.credentials(alice.id).await.unwrap().unwrap();
    assert_eq!(credentials.failed_login_attempts, 5);

    store.reset_login_attempts(alice.id).await.unwrap();
    assert_eq!(
        store
            .reserve_login_attempt(alice.id, Some(5))
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .reserve_login_attempt(Uuid::new_v4(), Some(5))
            .await
            .unwrap(),
        None
    );
}

async fn reserve_login_attempt_without_limit_and_disabled(store: Arc<SqlStore>) {
    let alice = user("alice", None);
    create(&store, &alice, Some("hash")).await;
    for expected in 1..=7 {
        assert_eq!(
            store.reserve_login_attempt(alice.id, None).await.unwrap(),
            Some(expected)
        );
    }
    assert_eq!(
        store
            .reserve_login_attempt(alice.id, Some(7))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .reserve_login_attempt(alice.id, Some(8))
            .await
            .unwrap(),
        Some(8)
    );
    assert_eq!(
        store
            .reserve_login_attempt(alice.id, Some(0))
            .await
            .unwrap(),
        None
    );
    assert!(store
        .set_credentials_enabled(alice.id, false)
        .await
        .unwrap());
    assert_eq!(
        store.reserve_login_attempt(alice.id, None).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .credentials(alice.id)
            .await
            .unwrap()
            .unwrap()
            .failed_login_attempts,
        8
    );
}

async fn set_credentials_enabled_changes_once(store: Arc<SqlStore>) {
    let alice = user("alice", None);
    create(&store, &alice, Some("hash")).await;
    store
        .insert_session(session(alice.id, SessionKind::Token, "f1"))
        .await
        .unwrap();
    store
        .insert_session(session(alice.id, SessionKind::Pair, "f2"))
        .await
        .unwrap();
    for _ in 0..3 {
        store.reserve_login_attempt(alice.id, None).await.unwrap();
    }

    let id = alice.id;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.set_credentials_enabled(id, false).await })
        })
        .collect();
    let mut changed = 0;
    for task in tasks {
        if task.await.unwrap().unwrap() {
            changed += 1;
        }
    }
    assert_eq!(changed, 1);
    assert_eq!(session_count(&store, alice.id).await, 0);
    let credentials = store.credentials(alice.id).await.unwrap().unwrap();
    assert!(!credentials.user.credentials_enabled);
    assert_eq!(credentials.failed_login_attempts, 3);

    assert!(store.set_credentials_enabled(alice.id, true).await.unwrap());
    let credentials = store.credentials(alice.id).await.unwrap().unwrap();
    assert!(credentials.user.credentials_enabled);
    assert_eq!(credentials.failed_login_attempts, 0);
    // Enabling an enabled user changes nothing but still clears the count.
    store.reserve_login_attempt(alice.id, None).await.unwrap();
    assert!(!store.set_credentials_enabled(alice.id, true).await.unwrap());
    assert_eq!(
        store
            .credentials(alice.id)
            .await
            .unwrap()
            .unwrap()
            .failed_login_attempts,
        0
    );

    for enabled in [true, false] {
        let error = store
            .set_credentials_enabled(Uuid::new_v4(), enabled)
            .await
            .unwrap_err();
        assert!(matches!(error, CoreError::NotFound { .. }), "{error:?}");
    }
}

async fn set_password_consumes_token_once(store: Arc<SqlStore>) {
    let alice = user("alice", Some("alice@example.com"));
    create(&store, &alice, None).await;
    assert_eq!(
        store.reserve_login_attempt(alice.id, None).await.unwrap(),
        Some(1)
    );
    assert!(store
        .set_credentials_enabled(alice.id, false)
        .await
        .unwrap());
    store
        .insert_session(session(alice.id, SessionKind::Pair, "f1"))
        .await
        .unwrap();
    for digest in ["d1", "d2"] {
        store
            .insert_credential_token(token(alice.id, digest, TokenPurpose::Activation, 10_000))
            .await
            .unwrap();
    }
    store
        .insert_credential_token(token(alice.id, "r1", TokenPurpose::PasswordReset, 10_000))
        .await
        .unwrap();

    let id = alice.id;
    let tasks: Vec<_> = (0..2)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut change = change(id, &format!("hash-{n}"), 20_000, 5);
                change.consume_token = Some(("d1".to_owned(), TokenPurpose::Activation));
                change.enable_credentials = true;
                store.set_password(change).await
            })
        })
        .collect();
    let mut succeeded = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => succeeded += 1,
            Err(error) => assert!(matches!(error, CoreError::NotFound { .. }), "{error:?}"),
        }
    }
    assert_eq!(succeeded, 1);

    let credentials = store.credentials(alice.id).await.unwrap().unwrap();
    assert!(credentials.user.credentials_enabled);
    assert_eq!(credentials.failed_login_attempts, 0);
    assert_eq!(credentials.password_changed_at, Some(20_000));
    assert_eq!(session_count(&store, alice.id).await, 0);
    // The other activation token went with it; the reset token stays.
    assert!(store
        .credential_token("d2", TokenPurpose::Activation)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .credential_token("r1", TokenPurpose::PasswordReset)
        .await
        .unwrap()
        .is_some());
    // The wrong purpose does not consume a token.
    let mut wrong = change(alice.id, "hash-x", 30_000, 5);
    wrong.consume_token = Some(("r1".to_owned(), TokenPurpose::Activation));
    assert!(matches!(
        store.set_password(wrong).await.unwrap_err(),
        CoreError::NotFound { .. }
    ));
    assert_eq!(store.password_history(alice.id, 0).await.unwrap().len(), 1);

    let error = store
        .set_password(change(Uuid::new_v4(), "hash", 1, 5))
        .await
        .unwrap_err();
    assert!(matches!(error, CoreError::NotFound { .. }), "{error:?}");
}

async fn set_password_trims_history(store: Arc<SqlStore>) {
    let alice = user("alice", None);
    create(&store, &alice, Some("hash-0")).await;
    for n in 1..=5 {
        store
            .set_password(change(alice.id, &format!("hash-{n}"), 1_000 * n, 3))
            .await
            .unwrap();
    }
    assert_eq!(
        store.password_history(alice.id, 0).await.unwrap(),
        vec!["hash-5", "hash-4", "hash-3"]
    );
    assert_eq!(
        store.password_history(alice.id, 4_000).await.unwrap(),
        vec!["hash-5", "hash-4"]
    );
    // Entries set in the same millisecond keep their order.
    store
        .set_password(change(alice.id, "hash-6", 5_000, 2))
        .await
        .unwrap();
    assert_eq!(
        store.password_history(alice.id, 0).await.unwrap(),
        vec!["hash-6", "hash-5"]
    );
    store
        .set_password(change(alice.id, "hash-7", 6_000, 0))
        .await
        .unwrap();
    assert!(store
        .password_history(alice.id, 0)
        .await
        .unwrap()
        .is_empty());
    let credentials = store.credentials(alice.id).await.unwrap().unwrap();
    assert_eq!(credentials.password_hash.as_deref(), Some("hash-7"));
}

async fn credential_tokens(store: Arc<SqlStore>) {
    let alice = user("alice", None);
    create(&store, &alice, None).await;
    let old = token(alice.id, "old", TokenPurpose::PasswordReset, 1_000);
    store.insert_credential_token(old.clone()).await.unwrap();
    assert_eq!(
        store
            .credential_token("old", TokenPurpose::PasswordReset)
            .await
            .unwrap(),
        Some(old.clone())
    );
    assert!(store
        .credential_token("old", TokenPurpose::Activation)
        .await
        .unwrap()
        .is_none());
    assert!(is_conflict(
        &store
            .insert_credential_token(old.clone())
            .await
            .unwrap_err()
    ));
    // A later token removes the expired one.
    let new = token(alice.id, "new", TokenPurpose::Activation, 5_000);
    store.insert_credential_token(new.clone()).await.unwrap();
    assert!(store
        .credential_token("old", TokenPurpose::PasswordReset)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .credential_token("new", TokenPurpose::Activation)
            .await
            .unwrap(),
        Some(new)
    );
    let error = store
        .insert_credential_token(token(Uuid::new_v4(), "x", TokenPurpose::Activation, 1))
        .await
        .unwrap_err();
    assert!(matches!(error, CoreError::NotFound { .. }), "{error:?}");
}

async fn api_keys_crud_and_listing(store: Arc<SqlStore>) {
    let alice = user("alice", None);
    let bob = user("bob", None);
    create(&store, &alice, None).await;
    create(&store, &bob, None).await;
    let descriptions = [
        "Deploy key",
        "deploy_BOT",
        "CI 100% green",
        "backslash \\ key",
        "reader",
    ];
    let mut keys = Vec::new();
    for (n, description) in descriptions.iter().enumerate() {
        let n = i64::try_from(n).unwrap();
        let key = ApiKey {
            id: Uuid::new_v4(),
            user_id: alice.id,
            digest: format!("digest-{n}"),
            description: (*description).to_owned(),
            enabled: n % 2 == 0,
            expiration_time: 10_000 - n,
            created_at: 1_000 + n,
        };
        store.insert_api_key(key.clone()).await.unwrap();
        keys.push(key);
    }
    let bobs = ApiKey {
        id: Uuid::new_v4(),
        user_id: bob.id,
        digest: "digest-bob".into(),
        description: "deploy".into(),
        enabled: true,
        expiration_time: 0,
        created_at: 1,
    };
    store.insert_api_key(bobs.clone()).await.unwrap();
    let mut duplicate = bobs.clone();
    duplicate.id = Uuid::new_v4();
    assert!(is_conflict(
        &store.insert_api_key(duplicate).await.unwrap_err()
    ));

    assert_eq!(
        store.api_key(keys[0].id).await.unwrap(),
        Some(keys[0].clone())
    );
    assert_eq!(
        store.api_key_by_digest("digest-bob").await.unwrap(),
        Some(bobs.clone())
    );

    let query = |text: Option<&str>, sort, descending, offset, limit| ApiKeyQuery {
        user_id: alice.id,
        text_search: text.map(str::to_owned),
        sort,
        descending,
        offset,
        limit,
    };
    let descriptions_of = |keys: Vec<ApiKey>| -> Vec<String> {
        keys.into_iter().map(|key| key.description).collect()
    };

    let (page, total) = store
        .api_keys(&query(None, ApiKeySort::CreatedTime, false, 0, 100))
        .await
        .unwrap();
    assert_eq!(total, 5);
    assert_eq!(descriptions_of(page), descriptions);

    let (page, total) = store
        .api_keys(&query(
            Some("DEPLOY"),
            ApiKeySort::Description,
            false,
            0,
            100,
        ))
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(descriptions_of(page), vec!["Deploy key", "deploy_BOT"]);

    // Wildcards in the search text match themselves only.
    for (text, expected) in [
        ("_", vec!["deploy_BOT"]),
        ("%", vec!["CI 100% green"]),
        ("\\", vec!["backslash \\ key"]),
        ("y_b", vec!["deploy_BOT"]),
        ("y b", vec![]),
    ] {
        let (page, total) = store
            .api_keys(&query(Some(text), ApiKeySort::Description, false, 0, 100))
            .await
            .unwrap();
        assert_eq!(descriptions_of(page), expected, "search {text:?}");
        assert_eq!(total, u64::try_from(expected.len()).unwrap());
    }

    let (page, total) = store
        .api_keys(&query(None, ApiKeySort::ExpirationTime, false, 1, 2))
        .await
        .unwrap();
    assert_eq!(total, 5);
    assert_eq!(
        descriptions_of(page),
        vec!["backslash \\ key", "CI 100% green"]
    );

    let (page, _) = store
        .api_keys(&query(None, ApiKeySort::Description, true, 0, 2))
        .await
        .unwrap();
    assert_eq!(descriptions_of(page), vec!["reader", "deploy_BOT"]);

    let (page, _) = store
        .api_keys(&query(None, ApiKeySort::Enabled, true, 0, 100))
        .await
        .unwrap();
    let enabled: Vec<bool> = page.iter().map(|key| key.enabled).collect();
    assert_eq!(enabled, vec![true, true, true, false, false]);

    let mut edited = keys[1].clone();
    edited.description = "renamed".into();
    edited.enabled = true;
    edited.digest = "ignored".into();
    edited.expiration_time = 1;
    assert!(store.update_api_key(&edited).await.unwrap());
    let stored = store.api_key(edited.id).await.unwrap().unwrap();
    assert_eq!(stored.description, "renamed");
    assert!(stored.enabled);
    assert_eq!(stored.digest, keys[1].digest);
    assert_eq!(stored.expiration_time, keys[1].expiration_time);
    let mut ghost = edited.clone();
    ghost.id = Uuid::new_v4();
    assert!(!store.update_api_key(&ghost).await.unwrap());

    assert!(store.delete_api_key(keys[0].id).await.unwrap());
    assert!(!store.delete_api_key(keys[0].id).await.unwrap());
    assert!(store.api_key(keys[0].id).await.unwrap().is_none());
}

async fn sessions_kind_and_rotation(store: Arc<SqlStore>) {
    let alice = user("alice", None);
    create(&store, &alice, None).await;
    let pair = session(alice.id, SessionKind::Pair, "refresh-1");
    let single = session(alice.id, SessionKind::Token, "token-1");
    store.insert_session(pair.clone()).await.unwrap();
    store.insert_session(single.clone()).await.unwrap();
    assert_eq!(store.session(pair.id).await.unwrap(), Some(pair.clone()));
    assert_eq!(
        store.session(single.id).await.unwrap(),
        Some(single.clone())
    );

    let pair_id = pair.id;
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .rotate_session(pair_id, "refresh-1", &format!("refresh-2-{n}"), 9_000)
                    .await
            })
        })
        .collect();
    let mut rotated = 0;
    for task in tasks {
        if task.await.unwrap().unwrap() {
            rotated += 1;
        }
    }
    assert_eq!(rotated, 1);
    let stored = store.session(pair.id).await.unwrap().unwrap();
    assert!(stored.fingerprint.starts_with("refresh-2-"));
    assert_eq!(stored.expires_at, 9_000);
    assert_eq!(stored.kind, SessionKind::Pair);
    assert!(!store
        .rotate_session(Uuid::new_v4(), "refresh-1", "x", 1)
        .await
        .unwrap());
}

async fn put_setting_overwrites(store: Arc<SqlStore>) {
    assert_eq!(store.setting("k").await.unwrap(), None);
    store.put_setting("k", "one").await.unwrap();
    assert_eq!(store.setting("k").await.unwrap().as_deref(), Some("one"));
    store.put_setting("k", "two").await.unwrap();
    assert_eq!(store.setting("k").await.unwrap().as_deref(), Some("two"));
    assert_eq!(store.setting_or_insert("k", "three").await.unwrap(), "two");
}

async fn delete_user_cascades(store: Arc<SqlStore>) {
    let alice = user("alice", Some("alice@example.com"));
    create(&store, &alice, Some("hash")).await;
    store
        .set_password(change(alice.id, "hash-2", 2_000, 5))
        .await
        .unwrap();
    store
        .insert_credential_token(token(alice.id, "t", TokenPurpose::PasswordReset, 3_000))
        .await
        .unwrap();
    let key = ApiKey {
        id: Uuid::new_v4(),
        user_id: alice.id,
        digest: "k".into(),
        description: "key".into(),
        enabled: true,
        expiration_time: 0,
        created_at: 1,
    };
    store.insert_api_key(key.clone()).await.unwrap();
    store
        .insert_session(session(alice.id, SessionKind::Pair, "f"))
        .await
        .unwrap();

    assert!(store.delete_user(alice.id).await.unwrap());
    assert!(store
        .password_history(alice.id, 0)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .credential_token("t", TokenPurpose::PasswordReset)
        .await
        .unwrap()
        .is_none());
    assert!(store.api_key(key.id).await.unwrap().is_none());
    assert_eq!(session_count(&store, alice.id).await, 0);
    // The email is free again.
    create(&store, &user("alice", Some("alice@example.com")), None).await;
}

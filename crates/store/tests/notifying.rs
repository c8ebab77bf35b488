//! [`NotifyingStore`] over a real SQLite store: writes of identity data bump the generation,
//! reads and other writes do not.

use std::sync::Arc;

use gatehouse_core::changes::{CacheGenerations, ChangeCounters, ChangeFollower, NotifyingStore};
use gatehouse_core::model::{
    GrantMethod, GrantType, IdentityProvider, Profile, Role, Session, SessionKind, Tenancy, User,
};
use gatehouse_core::permission::{Context, Grant, Operation, Permission, Resource};
use gatehouse_core::store::{NewUser, PasswordChange, RoleQuery, Store, UserQuery};
use gatehouse_store::SqlStore;
use uuid::Uuid;

fn user(name: &str) -> User {
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
        profile: Profile::default(),
        tenancy: Tenancy::default(),
        credentials_enabled: true,
    }
}

#[tokio::test]
async fn identity_writes_bump_the_generation() {
    let path = std::env::temp_dir().join(format!("gh_notify_{}.db", Uuid::new_v4().simple()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let sql = Arc::new(SqlStore::connect(&url, 4).await.expect("open SQLite"));
    let generations = CacheGenerations::default();
    let generation = generations.identity.clone();
    let store = NotifyingStore::new(sql.clone(), generations.clone());

    // insert_users bumps.
    let alice = user("alice");
    store
        .insert_users(vec![NewUser {
            user: alice.clone(),
            password_hash: Some("hash-1".into()),
            own_role: None,
            role_ids: Vec::new(),
            certificates: Vec::new(),
        }])
        .await
        .expect("insert user");
    assert_eq!(generation.current(), 1);

    // Reads do not.
    assert!(store.user(alice.id).await.expect("user").is_some());
    let (users, _) = store
        .users(&UserQuery {
            limit: 10,
            ..UserQuery::default()
        })
        .await
        .expect("users");
    assert_eq!(users.len(), 1);
    store
        .roles(&RoleQuery {
            limit: u64::MAX,
            ..RoleQuery::default()
        })
        .await
        .expect("roles");
    assert_eq!(generation.current(), 1);

    // Sessions do not.
    store
        .insert_session(Session {
            id: Uuid::new_v4(),
            user_id: alice.id,
            kind: SessionKind::Token,
            fingerprint: "fp".into(),
            label: None,
            created_at: 1_000,
            expires_at: i64::MAX / 2,
        })
        .await
        .expect("insert session");
    assert_eq!(generation.current(), 1);

    // Counting failed attempts does not.
    assert_eq!(
        store
            .reserve_login_attempt(alice.id, Some(5))
            .await
            .expect("reserve"),
        Some(1)
    );
    assert_eq!(generation.current(), 1);

    // lock_credentials bumps only when it disabled the credentials.
    assert!(store.lock_credentials(alice.id).await.expect("lock"));
    assert_eq!(generation.current(), 2);
    assert!(!store.lock_credentials(alice.id).await.expect("lock again"));
    assert_eq!(generation.current(), 2);

    // set_password bumps.
    store
        .set_password(PasswordChange {
            user_id: alice.id,
            password_hash: "hash-2".into(),
            changed_at: 2_000,
            history_keep: 3,
            consume_token: None,
            enable_credentials: false,
        })
        .await
        .expect("set password");
    assert_eq!(generation.current(), 3);

    // insert_permission bumps (the role is an identity write too).
    let role = Role {
        id: Uuid::new_v4(),
        name: "operators".into(),
        is_shared: true,
        auto_generated: false,
        ldap_group_dn: None,
        ms_entra_id_group_ids: None,
        owner_user_id: None,
        builtin: false,
        permissions: Vec::new(),
    };
    store.insert_role(role.clone()).await.expect("insert role");
    assert_eq!(generation.current(), 4);
    store
        .insert_permission(
            role.id,
            Permission {
                id: Uuid::new_v4(),
                grant: Grant {
                    resource: Resource::parse("plant/#", Context::Mqtt).expect("resource"),
                    operation: Operation::Read,
                    context: Context::Mqtt,
                },
            },
        )
        .await
        .expect("insert permission");
    assert_eq!(generation.current(), 5);

    // A failed write does not bump: the role name is taken.
    let duplicate = Role {
        id: Uuid::new_v4(),
        ..role
    };
    assert!(store.insert_role(duplicate).await.is_err());
    assert_eq!(generation.current(), 5);

    // Every bump was counted in the database too, for the other processes; no revocation yet.
    assert_eq!(
        sql.change_counters().await.expect("counters"),
        ChangeCounters {
            identity: 5,
            sessions: 0
        }
    );

    // A revocation counts on the sessions feed, here and in the database; revoking nothing
    // does not.
    let session = Session {
        id: Uuid::new_v4(),
        user_id: alice.id,
        kind: SessionKind::Token,
        fingerprint: "fp-2".into(),
        label: None,
        created_at: 3_000,
        expires_at: i64::MAX / 2,
    };
    store
        .insert_session(session.clone())
        .await
        .expect("insert session");
    assert_eq!(
        store
            .revoke_sessions(alice.id, Some(&session.id.to_string()))
            .await
            .expect("revoke"),
        1
    );
    assert_eq!(generations.sessions.current(), 1);
    assert_eq!(
        store
            .revoke_sessions(alice.id, Some(&session.id.to_string()))
            .await
            .expect("revoke again"),
        0
    );
    assert_eq!(generations.sessions.current(), 1);
    assert_eq!(generation.current(), 5);
    assert_eq!(
        sql.change_counters().await.expect("counters"),
        ChangeCounters {
            identity: 5,
            sessions: 1
        }
    );

    // Another process follows the counters: its first reading bumps both feeds (it cannot
    // know what it missed), a reading with nothing new bumps nothing, and a change counted by
    // this process bumps exactly its feed there.
    let elsewhere = CacheGenerations::default();
    let mut follower = ChangeFollower::new(sql.clone(), elsewhere.clone());
    follower.poll().await.expect("first reading");
    assert_eq!(
        (elsewhere.identity.current(), elsewhere.sessions.current()),
        (1, 1)
    );
    follower.poll().await.expect("nothing new");
    assert_eq!(
        (elsewhere.identity.current(), elsewhere.sessions.current()),
        (1, 1)
    );
    store
        .set_credentials_enabled(alice.id, true)
        .await
        .expect("enable");
    follower.poll().await.expect("identity moved");
    assert_eq!(
        (elsewhere.identity.current(), elsewhere.sessions.current()),
        (2, 1)
    );

    drop(store);
    sql.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

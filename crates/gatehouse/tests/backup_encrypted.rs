//! Archives encrypted with `backup.passphrase`: written encrypted, restored with the passphrase,
//! refused without it or with another one, and plain archives still accepted.

mod common;

use common::backup::{backup, dump, restore, upload, wait_idle, SharedKeys};
use common::{Engine, TestApp, ADMIN_PASSWORD};
use reqwest::StatusCode;
use serde_json::json;

both_engines!(encrypted_archives_need_their_passphrase);

const PASSPHRASE: &str = "correct horse battery staple";

async fn with_passphrase(engine: Engine, keys: &SharedKeys, passphrase: Option<&str>) -> TestApp {
    TestApp::spawn_with(
        engine,
        |settings| {
            keys.apply(settings);
            settings.backup.passphrase = passphrase.map(str::to_owned);
        },
        None,
    )
    .await
}

async fn encrypted_archives_need_their_passphrase(plain_app: TestApp) {
    let keys = SharedKeys::of(&plain_app);
    let engine = plain_app.engine;
    let mut app = with_passphrase(engine, &keys, Some(PASSPHRASE)).await;
    let secret_name = "encrypted-archive-user";
    let (status, body) = app
        .post(
            "/api/users",
            &app.admin_token,
            json!({"username": secret_name, "password": "a-long-password-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().expect("the user's id").to_owned();

    let (_, archive) = backup(&mut app).await;
    assert!(
        archive.starts_with(b"age-encryption.org/v1\n"),
        "not an age file"
    );
    assert!(
        !archive
            .windows(secret_name.len())
            .any(|window| window == secret_name.as_bytes()),
        "the archive shows its content in plain text"
    );

    // Refused without the passphrase and with another one; the target is left alone.
    for passphrase in [None, Some("another passphrase")] {
        let target = with_passphrase(engine, &keys, passphrase).await;
        let before = dump(&target).await;
        let (status, body) = upload(&target, &target.admin_token, archive.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let expected = if passphrase.is_some() {
            "the passphrase does not open this archive"
        } else {
            "the archive is encrypted with a passphrase"
        };
        assert!(body.to_string().contains(expected), "{body}");
        assert_eq!(dump(&target).await, before);
        target.stop().await;
    }

    // A damaged encrypted archive is refused as such.
    let mut damaged = archive.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    let (status, body) = upload(&app, &app.admin_token, damaged).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("damaged"), "{body}");
    wait_idle(&mut app).await;

    // With the passphrase it restores: the user deleted after the backup is back.
    let (status, _) = app
        .delete(&format!("/api/users/{id}"), &app.admin_token, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.try_login(secret_name, "a-long-password-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    restore(&mut app, archive).await;
    app.login(secret_name, "a-long-password-1").await;

    // A server with a passphrase still restores plain archives.
    let mut plain = plain_app;
    let (_, plain_archive) = backup(&mut plain).await;
    assert!(plain_archive.starts_with(b"{\"format\":\"gatehouse-backup\""));
    restore(&mut app, plain_archive).await;
    let (status, _) = app.try_login(secret_name, "a-long-password-1").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the plain archive has no such user"
    );
    app.login("admin", ADMIN_PASSWORD).await;
}

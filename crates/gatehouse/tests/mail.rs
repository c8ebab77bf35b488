//! Outgoing mail: `SmtpMailer` against a real SMTP server (aiosmtpd), its failures, the choice
//! between it and `NoMailer`, and the `[mail]` configuration section.

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::smtp::{link_in, SmtpServer};
use gatehouse::config::{Overrides, Settings};
use gatehouse::mail::{mailer, MailSettings, MailTls, SmtpMailer};
use gatehouse_core::error::CoreError;
use gatehouse_core::mail::{Mail, Mailer};

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port");
    listener.local_addr().expect("its address").port()
}

fn mail(to: &str, text: &str) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: "Activate your account".to_owned(),
        text: text.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_arrives_with_recipient_subject_and_decoded_body() {
    let server = SmtpServer::start();
    let mailer = SmtpMailer::new(&common::smtp::mail_settings(server.port())).expect("a mailer");
    assert!(mailer.is_configured());

    // Longer than a quoted-printable line, with `=` (encoded as `=3D`) and `?`, so the body is
    // sent quoted-printable with soft line breaks inside the URL.
    let url = format!(
        "https://gatehouse.example/ui/activate?token={}==&user=alice%40example.com&next=/a?b=c",
        "Zm9vYmFyYmF6cXV4".repeat(6)
    );
    let text = format!("Hello Alice,\n\nactivate your account: {url}\n\nGrüße, Gatehouse\n");
    mailer
        .send(Mail {
            to: "alice@example.com".to_owned(),
            subject: "Aktivierung – Ihr Konto bei Gatehouse".to_owned(),
            text: text.clone(),
        })
        .await
        .expect("sent");

    let received = server
        .wait_for_mail("alice@example.com", Duration::from_secs(10))
        .await;
    assert_eq!(received.to, "alice@example.com");
    assert_eq!(received.subject, "Aktivierung – Ihr Konto bei Gatehouse");
    assert_eq!(received.text.trim_end(), text.trim_end());
    assert_eq!(link_in(&received.text, "/ui/activate"), Some(url.clone()));
    // The wire form really was encoded: the URL is not in the raw message as it is.
    let raw = received.raw.to_ascii_lowercase();
    assert!(
        raw.contains("content-transfer-encoding: quoted-printable"),
        "{raw}"
    );
    assert!(
        raw.contains("content-type: text/plain; charset=utf-8"),
        "{raw}"
    );
    assert!(!received.raw.contains(&url), "{}", received.raw);
    assert!(received.raw.contains("gatehouse@example.com"));
    assert_eq!(server.mails().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_messages_to_one_address_are_read_in_order() {
    let server = SmtpServer::start();
    let mailer = SmtpMailer::new(&common::smtp::mail_settings(server.port())).expect("a mailer");
    for n in 1..=2 {
        let mut message = mail("bob@example.com", &format!("link http://x.example/r/{n}."));
        message.subject = format!("mail {n}");
        mailer.send(message).await.expect("sent");
    }
    let timeout = Duration::from_secs(10);
    let first = server.wait_for_mail("BOB@example.com", timeout).await;
    let second = server.wait_for_mail("bob@example.com", timeout).await;
    assert_eq!(
        (first.subject.as_str(), second.subject.as_str()),
        ("mail 1", "mail 2")
    );
    assert_eq!(
        link_in(&second.text, "/r/"),
        Some("http://x.example/r/2".to_owned())
    );
    assert_eq!(server.mails().len(), 2);
}

#[test]
fn link_in_finds_the_first_matching_url() {
    let text = "See https://a.example/docs. Then open <https://a.example/reset?t=1=2> or \
                http://b.example/reset/x, please.";
    assert_eq!(
        link_in(text, "/reset").as_deref(),
        Some("https://a.example/reset?t=1=2")
    );
    assert_eq!(
        link_in(text, "b.example").as_deref(),
        Some("http://b.example/reset/x")
    );
    assert_eq!(link_in(text, "/activate"), None);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let mailer = SmtpMailer::new(&common::smtp::mail_settings(closed_port())).expect("a mailer");
    let error = mailer
        .send(mail("alice@example.com", "body"))
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, CoreError::Unavailable { .. }), "{error:?}");
}

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("the buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_send_is_logged_without_the_body() {
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Current-thread runtime: the send runs on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let mailer = SmtpMailer::new(&common::smtp::mail_settings(closed_port())).expect("a mailer");
    let secret = "one-time-token-6f1c2d";
    let result = mailer
        .send(mail(
            "alice@example.com",
            &format!("https://gatehouse.example/reset?token={secret}"),
        ))
        .await;
    assert!(matches!(result, Err(CoreError::Unavailable { .. })));

    let log = String::from_utf8(buffer.0.lock().expect("the buffer").clone()).expect("UTF-8");
    assert!(log.contains("mail could not be sent"), "{log}");
    assert!(log.contains("alice@example.com"), "{log}");
    assert!(!log.contains(secret), "{log}");
}

#[tokio::test]
async fn an_invalid_recipient_is_invalid() {
    let mailer = SmtpMailer::new(&common::smtp::mail_settings(closed_port())).expect("a mailer");
    for to in [
        "",
        "alice",
        "alice@",
        "@example.com",
        "alice@example.com\r\nBcc: eve@example.com",
        "Alice <alice@example.com>, eve@example.com",
    ] {
        let error = mailer
            .send(mail(to, "body"))
            .await
            .expect_err("an invalid recipient");
        assert!(
            matches!(&error, CoreError::Invalid { field, .. } if field == "email"),
            "{to:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn without_a_host_the_mailer_is_no_mailer() {
    let none = mailer(&MailSettings::default()).expect("a mailer");
    assert!(!none.is_configured());
    let error = none
        .send(mail("alice@example.com", "body"))
        .await
        .expect_err("no server");
    assert!(matches!(error, CoreError::Unavailable { .. }), "{error:?}");

    let blank = MailSettings {
        host: Some("  ".to_owned()),
        ..MailSettings::default()
    };
    assert!(!mailer(&blank).expect("a mailer").is_configured());

    let configured = MailSettings {
        host: Some("smtp.example.com".to_owned()),
        ..MailSettings::default()
    };
    assert!(mailer(&configured).expect("a mailer").is_configured());
}

#[test]
fn malformed_mail_settings_are_refused_with_the_setting_named() {
    let base = MailSettings {
        host: Some("smtp.example.com".to_owned()),
        ..MailSettings::default()
    };
    let cases = [
        (
            MailSettings {
                from: "not an address".to_owned(),
                ..base.clone()
            },
            "mail.from",
        ),
        (
            MailSettings {
                username: Some("gatehouse".to_owned()),
                ..base.clone()
            },
            "mail.password",
        ),
        (
            MailSettings {
                password: Some("secret".to_owned()),
                ..base.clone()
            },
            "mail.username",
        ),
        (
            MailSettings {
                host: Some("bad host name".to_owned()),
                ..base.clone()
            },
            "mail.host",
        ),
        (
            MailSettings {
                host: Some("smtp.example.com:587".to_owned()),
                tls: MailTls::None,
                ..base.clone()
            },
            "mail.port",
        ),
    ];
    for (settings, named) in cases {
        let error = mailer(&settings)
            .map(|_| ())
            .expect_err(&format!("malformed settings: {settings:?}"));
        assert!(error.contains(named), "{named}: {error}");
    }
    // Authentication and both TLS modes build.
    for tls in [MailTls::Starttls, MailTls::Tls, MailTls::None] {
        let settings = MailSettings {
            username: Some("gatehouse".to_owned()),
            password: Some("secret".to_owned()),
            tls,
            ..base.clone()
        };
        assert!(mailer(&settings).is_ok(), "{tls:?}");
    }
    for host in ["localhost", "127.0.0.1", "::1", "mail-1.example.com."] {
        let settings = MailSettings {
            host: Some(host.to_owned()),
            tls: MailTls::None,
            ..base.clone()
        };
        assert!(mailer(&settings).is_ok(), "{host}");
    }
}

#[test]
fn the_port_defaults_by_tls_mode() {
    let port = |tls, port| {
        MailSettings {
            tls,
            port,
            ..MailSettings::default()
        }
        .effective_port()
    };
    assert_eq!(port(MailTls::None, None), 25);
    assert_eq!(port(MailTls::Starttls, None), 587);
    assert_eq!(port(MailTls::Tls, None), 465);
    assert_eq!(port(MailTls::Tls, Some(2465)), 2465);
    assert_eq!(MailSettings::default().tls, MailTls::Starttls);
    assert_eq!(MailSettings::default().from, "gatehouse@localhost");
    assert_eq!(MailSettings::default().timeout_secs, 10);
    assert_eq!(MailSettings::default().host, None);
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("a temporary file");
    file.write_all(text.as_bytes()).expect("written");
    file
}

/// The one test that sets `GATEHOUSE_MAIL__*` variables (tests run in parallel; no other test
/// here depends on them).
#[test]
fn the_mail_section_loads_from_toml_and_the_environment() {
    let file = config_file(
        r#"
[mail]
host = "smtp.example.com"
port = 2525
username = "gatehouse"
password = "toml-secret-password"
tls = "tls"
from = "Gatehouse <noreply@example.com>"
timeout_secs = 3
"#,
    );
    let settings = Settings::load(Some(file.path()), &Overrides::default()).expect("loads");
    assert_eq!(
        settings.mail,
        MailSettings {
            host: Some("smtp.example.com".to_owned()),
            port: Some(2525),
            username: Some("gatehouse".to_owned()),
            password: Some("toml-secret-password".to_owned()),
            tls: MailTls::Tls,
            from: "Gatehouse <noreply@example.com>".to_owned(),
            timeout_secs: 3,
        }
    );
    // The password never shows in `Debug`, of the section or of all settings.
    for printed in [format!("{settings:?}"), format!("{:#?}", settings.mail)] {
        assert!(!printed.contains("toml-secret-password"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
    }

    // A partial section keeps the defaults of the other keys.
    let partial = config_file("[mail]\nhost = \"mail.internal\"\ntls = \"none\"\n");
    let settings = Settings::load(Some(partial.path()), &Overrides::default()).expect("loads");
    assert_eq!(settings.mail.host.as_deref(), Some("mail.internal"));
    assert_eq!(settings.mail.effective_port(), 25);
    assert_eq!(settings.mail.from, "gatehouse@localhost");

    // The environment overrides the file; the user name and password are taken verbatim.
    std::env::set_var("GATEHOUSE_MAIL__PORT", "2587");
    std::env::set_var("GATEHOUSE_MAIL__USERNAME", "12345");
    std::env::set_var("GATEHOUSE_MAIL__PASSWORD", "00012345");
    let loaded = Settings::load(Some(file.path()), &Overrides::default());
    std::env::remove_var("GATEHOUSE_MAIL__PORT");
    std::env::remove_var("GATEHOUSE_MAIL__USERNAME");
    std::env::remove_var("GATEHOUSE_MAIL__PASSWORD");
    let settings = loaded.expect("loads");
    assert_eq!(settings.mail.port, Some(2587));
    assert_eq!(settings.mail.username.as_deref(), Some("12345"));
    assert_eq!(settings.mail.password.as_deref(), Some("00012345"));
    assert_eq!(settings.mail.host.as_deref(), Some("smtp.example.com"));

    // No `[mail]` at all: mail is off.
    let empty = config_file("");
    let settings = Settings::load(Some(empty.path()), &Overrides::default()).expect("loads");
    assert_eq!(settings.mail, MailSettings::default());
}

#[test]
fn an_unknown_or_mistyped_mail_key_is_rejected() {
    for text in [
        "[mail]\nhostname = \"smtp.example.com\"\n",
        "[mail]\ntls = \"ssl\"\n",
        "[mail]\ntls = \"STARTTLS\"\n",
        "[mail]\ntimeout_secs = -1\n",
    ] {
        let file = config_file(text);
        let error = Settings::load(Some(file.path()), &Overrides::default())
            .expect_err("a malformed [mail] section");
        assert!(error.to_string().contains("mail"), "{text}: {error}");
    }
}

//! A real SMTP server for tests: aiosmtpd (Python) with its `Mailbox` handler, which stores
//! every message it accepts as one file in a Maildir. Tests send through the application and
//! read what arrived, decoded (quoted-printable, soft line breaks, encoded headers) by
//! `mail-parser`, never by a regex over the raw file.
//!
//! The Python interpreter is `GATEHOUSE_TEST_PYTHON` (set by `scripts/test` to its virtualenv,
//! where it installs aiosmtpd), else `python3`. Without aiosmtpd the test fails loudly: it is
//! never skipped.

use std::collections::HashSet;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use mail_parser::MessageParser;
use tempfile::TempDir;

use super::ports::free_port;

/// Longest wait for aiosmtpd to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between two polls (of the port, of the mailbox).
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// One message as the server received it, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The addresses of the `To` header, joined with `, `.
    pub to: String,
    /// The decoded `Subject` header.
    pub subject: String,
    /// The decoded plain-text body, with line endings normalised to `\n`.
    pub text: String,
    /// The message exactly as stored (headers and encoded body), to check the wire form.
    pub raw: String,
}

/// A running aiosmtpd on a free loopback port, killed (and its mailbox removed) on drop.
pub struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
    /// Files already handed out by [`SmtpServer::wait_for_mail`].
    taken: Mutex<HashSet<PathBuf>>,
    directory: TempDir,
}

impl SmtpServer {
    /// Starts aiosmtpd and returns once it accepts connections. Panics (never skips) if Python
    /// or aiosmtpd is missing or the server does not come up.
    pub fn start() -> SmtpServer {
        let python = python();
        ensure_aiosmtpd(&python);
        let directory = tempfile::tempdir().expect("a temporary directory");
        // The Mailbox handler creates the Maildir itself and fails every send if it exists.
        let maildir = directory.path().join("mailbox");
        let log_path = directory.path().join("aiosmtpd.log");
        // A port found free may be taken before aiosmtpd binds it: try a few.
        let mut last_failure = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log = File::create(&log_path).expect("the aiosmtpd log file");
            let stderr = log.try_clone().expect("the aiosmtpd log file");
            let mut child = Command::new(&python)
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&maildir)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
            match wait_until_listening(&mut child, port) {
                Ok(()) => {
                    return SmtpServer {
                        child,
                        port,
                        maildir,
                        taken: Mutex::new(HashSet::new()),
                        directory,
                    };
                }
                Err(reason) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    last_failure = format!("{reason}; its output:\n{log}");
                }
            }
        }
        panic!("aiosmtpd did not start: {last_failure}");
    }

    /// The loopback port the server listens on (host `127.0.0.1`, no TLS, no authentication).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message received so far, oldest first.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.files().iter().map(|path| read_mail(path)).collect()
    }

    /// Waits for a message to `to` (compared without regard to case) that no earlier call
    /// returned, and returns it; oldest first, so two sends to one address are read in order.
    /// Panics after `timeout`, listing what did arrive. Async, so that an application running
    /// on the test's runtime keeps serving (and sending) while the test waits.
    pub async fn wait_for_mail(&self, to: &str, timeout: Duration) -> ReceivedMail {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut taken = self.taken.lock().expect("the taken set");
                for path in self.files() {
                    if taken.contains(&path) {
                        continue;
                    }
                    let mail = read_mail(&path);
                    let addressed = mail
                        .to
                        .split(',')
                        .any(|address| address.trim().eq_ignore_ascii_case(to.trim()));
                    if addressed {
                        taken.insert(path);
                        return mail;
                    }
                }
            }
            if Instant::now() >= deadline {
                let received: Vec<String> = self
                    .mails()
                    .iter()
                    .map(|mail| format!("to {:?}: {:?}", mail.to, mail.subject))
                    .collect();
                panic!(
                    "no new mail to {to} within {timeout:?}; received: {received:?}; server \
                     output:\n{}",
                    std::fs::read_to_string(self.directory.path().join("aiosmtpd.log"))
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The files of `new/`, oldest first (modification time, then name).
    fn files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new(); // nothing received yet
        };
        let mut files: Vec<(SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let modified = entry.metadata().ok()?.modified().ok()?;
                Some((modified, entry.path()))
            })
            .collect();
        files.sort();
        files.into_iter().map(|(_, path)| path).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first `http://` or `https://` URL in `text` that contains `path_fragment`, without
/// trailing sentence punctuation.
pub fn link_in(text: &str, path_fragment: &str) -> Option<String> {
    let mut rest = text;
    while let Some(start) = ["http://", "https://"]
        .iter()
        .filter_map(|scheme| rest.find(scheme))
        .min()
    {
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | '`'))
            .unwrap_or(candidate.len());
        let url = candidate[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']']);
        if url.contains(path_fragment) {
            return Some(url.to_owned());
        }
        rest = &candidate[end..];
    }
    None
}

/// The interpreter: `GATEHOUSE_TEST_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("GATEHOUSE_TEST_PYTHON")
        .ok()
        .filter(|python| !python.trim().is_empty())
        .unwrap_or_else(|| "python3".to_owned())
}

/// Panics with what to do if `python` cannot import aiosmtpd (checked once per test binary).
fn ensure_aiosmtpd(python: &str) {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECKED.get_or_init(|| {
        let output = Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("cannot run {python:?}: {error}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{python:?} cannot import aiosmtpd: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    });
    if let Err(reason) = result {
        panic!(
            "the SMTP tests need aiosmtpd: {reason}. Run `scripts/test` (it installs \
             aiosmtpd==1.4.6 into .venv and sets GATEHOUSE_TEST_PYTHON), or point \
             GATEHOUSE_TEST_PYTHON at a Python that has aiosmtpd."
        );
    }
}

/// Polls until `port` accepts a connection; fails early if the process exits.
fn wait_until_listening(child: &mut Child, port: u16) -> Result<(), String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(|error| error.to_string())? {
            return Err(format!("aiosmtpd exited with {status}"));
        }
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("port {port} not accepting after {START_TIMEOUT:?}"));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn read_mail(path: &Path) -> ReceivedMail {
    let raw = std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let message = MessageParser::default()
        .parse(&raw)
        .unwrap_or_else(|| panic!("{}: not a parsable message", path.display()));
    let to = message
        .to()
        .map(|addresses| {
            addresses
                .iter()
                .filter_map(|address| address.address())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    ReceivedMail {
        to,
        subject: message.subject().unwrap_or_default().to_owned(),
        text: message
            .body_text(0)
            .map(|text| text.replace("\r\n", "\n"))
            .unwrap_or_default(),
        raw: String::from_utf8_lossy(&raw).into_owned(),
    }
}

/// `[mail]` towards a plain-text SMTP server on the loopback port `port`.
pub fn mail_settings(port: u16) -> gatehouse::mail::MailSettings {
    gatehouse::mail::MailSettings {
        host: Some("127.0.0.1".to_owned()),
        port: Some(port),
        tls: gatehouse::mail::MailTls::None,
        from: "Gatehouse <gatehouse@example.com>".to_owned(),
        timeout_secs: 5,
        ..gatehouse::mail::MailSettings::default()
    }
}

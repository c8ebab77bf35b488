//! `gatehouse`: the command line. Only parses flags, loads the configuration and starts the
//! application or runs a maintenance command; everything else lives in the library half.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use gatehouse::config::{Overrides, Settings};
use gatehouse::startup::Application;
use gatehouse::telemetry;

/// Gatehouse: identity and access server for IoT platforms.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML configuration file.
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (creates the database and the `admin` user on first start).
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Write an archive of the whole database to a file.
    #[command(
        long_about = "Write an archive of the whole database to a file, read in one consistent \
                      snapshot; the file appears complete or not at all. A server may keep \
                      running on the database meanwhile. The archive restores on SQLite and \
                      PostgreSQL alike (`gatehouse restore`, or POST /api/maintenance/db/restore)."
    )]
    Backup {
        /// The archive file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Encrypt the archive with the passphrase on the first line of FILE [default:
        /// backup.passphrase, if set].
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Replace the content of the database by an archive (every session ends).
    #[command(
        long_about = "Replace the content of the database by an archive, all or nothing: the \
                      archive is verified first, an archive of an older schema is migrated \
                      forward, and on any error the database is left as it was.",
        after_help = "Every session ends: users and devices log in again. A server running on \
                      the same database keeps serving; its caches catch up with the restored \
                      data within broker.cache_ttl_secs."
    )]
    Restore {
        /// The archive to restore.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Open an encrypted archive with the passphrase on the first line of FILE [default:
        /// backup.passphrase, if set].
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// Where the database is: the flags every command that opens it takes.
#[derive(Debug, Args)]
struct DatabaseArgs {
    /// Directory for the embedded SQLite database [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long)]
    database_url: Option<String>,
}

impl DatabaseArgs {
    fn overrides(self, listen: Option<std::net::SocketAddr>) -> Overrides {
        Overrides {
            listen,
            data_dir: self.data_dir,
            database_url: self.database_url,
        }
    }
}

/// Keeps large allocations (from 1 MiB) in their own memory maps, returned to the system when
/// freed. glibc's default threshold grows each time a mapped block is freed, so after the first
/// argon2id hash (19 MiB by default) every later one came from the heap arenas, whose freed
/// memory stays resident: a server that had served logins kept 450–580 MiB (BENCHMARKS.md).
/// An operator's own `MALLOC_MMAP_THRESHOLD_` wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_allocations_mapped() {
    const THRESHOLD_BYTES: libc::c_int = 1024 * 1024;
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only sets a parameter of glibc's allocator, which takes its own lock;
        // it touches no memory of ours. A refusal (0) leaves the default, which is still safe.
        let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD_BYTES) };
    }
}

/// Other allocators return large blocks on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_allocations_mapped() {}

#[tokio::main]
async fn main() -> ExitCode {
    keep_large_allocations_mapped();
    let cli = Cli::parse();
    let config = cli.config.as_deref();
    match cli.command {
        Command::Serve { listen, database } => {
            let Some(settings) = load(config, &database.overrides(listen)) else {
                return ExitCode::from(2);
            };
            serve(&settings).await
        }
        Command::Backup {
            out,
            passphrase_file,
            database,
        } => {
            let Some(settings) = load(config, &database.overrides(None)) else {
                return ExitCode::from(2);
            };
            let outcome =
                gatehouse::maintenance::back_up(&settings, &out, passphrase_file.as_deref()).await;
            report(outcome)
        }
        Command::Restore {
            file,
            passphrase_file,
            database,
        } => {
            let Some(settings) = load(config, &database.overrides(None)) else {
                return ExitCode::from(2);
            };
            let outcome =
                gatehouse::maintenance::restore(&settings, &file, passphrase_file.as_deref()).await;
            report(outcome)
        }
    }
}

/// The settings, with logging set up by them; `None` (and a message) when they are invalid.
fn load(config: Option<&Path>, overrides: &Overrides) -> Option<Settings> {
    match Settings::load(config, overrides) {
        Ok(settings) => {
            telemetry::init(&settings.log);
            Some(settings)
        }
        Err(error) => {
            eprintln!("gatehouse: invalid configuration: {error}");
            None
        }
    }
}

/// Prints the outcome of a maintenance command: its line on stdout, or the error on stderr.
fn report(outcome: Result<String, gatehouse::maintenance::CommandError>) -> ExitCode {
    match outcome {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("gatehouse: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `gatehouse serve`: runs the server until SIGINT or SIGTERM.
async fn serve(settings: &Settings) -> ExitCode {
    let application = match Application::build(settings).await {
        Ok(application) => application,
        Err(error) => {
            tracing::error!(%error, "start-up failed");
            eprintln!("gatehouse: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(password) = &application.generated_admin_password {
        // Printed once, on purpose not through the log.
        println!("Created the user 'admin' with the generated password: {password}");
        println!(
            "It is shown only now. Log in with it and change it (PUT /api/users/change-password)."
        );
    }
    match application.local_addr() {
        Ok(address) => tracing::info!(%address, "gatehouse is listening"),
        Err(error) => tracing::warn!(%error, "cannot read the listening address"),
    }
    match application.run_until(shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("gatehouse stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

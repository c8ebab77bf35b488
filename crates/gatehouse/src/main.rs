//! `gatehouse`: the command line. Only parses flags, loads the configuration and starts the
//! application; everything else lives in the library half.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
        /// Directory for the embedded SQLite database [default: ./data].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Database URL: sqlite://PATH or postgres://USER@HOST/DB.
        #[arg(long)]
        database_url: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Serve {
        listen,
        data_dir,
        database_url,
    } = cli.command;
    let overrides = Overrides {
        listen,
        data_dir,
        database_url,
    };
    let settings = match Settings::load(cli.config.as_deref(), &overrides) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("gatehouse: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    let application = match Application::build(&settings).await {
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

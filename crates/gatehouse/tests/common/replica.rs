//! A second replica of a test app: another `Application` on the same database and data
//! directory, as a second server behind a load balancer would be.

use std::sync::Arc;

use gatehouse::startup::Application;
use gatehouse_core::clock::Clock;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{send_json, serve_in_background, TestApp};

/// A second replica of a [`TestApp`].
pub struct Replica {
    /// `http://127.0.0.1:PORT` of this replica.
    pub base: String,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Replica {
    /// Starts a replica of `app` (its settings, database and data directory) on `clock`.
    pub async fn start(app: &TestApp, clock: Arc<dyn Clock>) -> Self {
        let application = Application::build_with_clock(&app.settings, clock)
            .await
            .expect("second replica starts");
        let base = format!("http://{}", application.local_addr().expect("address"));
        let (shutdown, server) = serve_in_background(application);
        Self {
            base,
            shutdown,
            server,
        }
    }

    /// Sends a request to this replica with `app`'s client (see [`send_json`]).
    pub async fn request(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base);
        send_json(&app.client, method, url, token, body).await
    }

    /// POSTs JSON to this replica (with the admin token of `app` when `admin`).
    pub async fn post(
        &self,
        app: &TestApp,
        path: &str,
        admin: bool,
        body: Value,
    ) -> (StatusCode, Value) {
        let token = admin.then_some(app.admin_token.as_str());
        self.request(app, Method::POST, path, token, Some(body))
            .await
    }

    /// Stops this replica and waits for it.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.server.await;
    }
}

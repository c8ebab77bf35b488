//! The HTTP baseline of `bench/run`: the least an axum server on the same runtime can do for a
//! request, which reads the whole body and answers a fixed JSON body. Gatehouse's hot paths are
//! measured as a ratio of this server's requests per second, in the same run, on the same core.
//!
//! The fixed body is Gatehouse's own answer to the scenario's request: the harness sets it with
//! `PUT /bench-baseline/answer` before each scenario, so that both servers write the same bytes
//! (a Connectware session with 101 permissions is several kilobytes, a hook answer a few bytes).

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::put;
use axum::Router;
use clap::Parser;

/// Command line of the baseline server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
}

/// The body every request is answered with.
type Answer = Arc<RwLock<Bytes>>;

/// Answers every request, whatever its method and path, with the fixed body.
async fn fixed(
    State(answer): State<Answer>,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], Bytes) {
    std::hint::black_box(body);
    // A poisoned lock can only come from a panic while replacing the bytes; the old ones are
    // still whole.
    let answer = match answer.read() {
        Ok(bytes) => bytes.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    ([("content-type", "application/json")], answer)
}

/// Replaces the fixed body.
async fn set_answer(State(answer): State<Answer>, body: Bytes) {
    match answer.write() {
        Ok(mut bytes) => *bytes = body,
        Err(poisoned) => *poisoned.into_inner() = body,
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let answer: Answer = Arc::new(RwLock::new(Bytes::from_static(br#"{"result":"ok"}"#)));
    let app = Router::new()
        .route("/bench-baseline/answer", put(set_answer))
        .fallback(fixed)
        .with_state(answer);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("bench-baseline listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}

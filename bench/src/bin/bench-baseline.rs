//! The HTTP baseline of `bench/run`: the least an axum server on the same runtime can do for a
//! request, which reads the whole body and answers a fixed JSON body. Gatehouse's hot paths are
//! measured as a ratio of this server's requests per second, in the same run, on the same core.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::Router;
use clap::Parser;

/// Command line of the baseline server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
}

/// Answers every request, whatever its method and path, like a broker hook that allows.
async fn fixed(body: Bytes) -> ([(&'static str, &'static str); 1], &'static str) {
    std::hint::black_box(body);
    ([("content-type", "application/json")], r#"{"result":"ok"}"#)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let app = Router::new().fallback(fixed);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("bench-baseline listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}

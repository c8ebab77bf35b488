//! The fixed-rate load generator of `bench/run`: sends one HTTP/1.1 request over keep-alive
//! connections on a fixed schedule and prints the latency percentiles as JSON, for targets such
//! as "p99 < 2 ms at half the saturation rate" that wrk (closed loop, no fixed rate) cannot
//! measure.
//!
//! The load is open loop, as in wrk2: request `i` is due at `start + i / rate`, whether or not
//! the earlier ones have been answered, and its latency runs from that scheduled time to the end
//! of its response body. A server that falls behind therefore shows its queueing in the
//! percentiles instead of slowing the generator down (no coordinated omission).
//!
//! A pacer thread releases one permit per scheduled request at its due time (the OS sleep, not
//! the runtime's millisecond timer wheel, so a request is released within tens of microseconds of
//! its time). Each of the `--connections` keep-alive connections is one task on a single-threaded
//! runtime that, whenever its connection is idle, takes the next permit and the next scheduled
//! request in order: the connections share one first-in, first-out queue, and a request that
//! finds all of them busy waits for one, with that wait counted in its latency.
//!
//! Prints one JSON object: `scheduled`, `sent`, `completed` (2xx answers), `errors` (non-2xx,
//! transport errors, and timeouts: requests unanswered or unsent `--grace` seconds after the
//! schedule ends), `achieved_rate` (2xx answers per second from the start to the last answer),
//! `p50_ms` … `p99_9_ms`, `max_ms` over every answer, and `pacer_lag_p99_ms`/`pacer_lag_max_ms`,
//! how late the generator itself was.
//!
//! Usage: `bench-rate --url http://127.0.0.1:8080/api/broker/http/acl --method POST
//! --header 'content-type: application/json' --body '{...}' --rate 5000 --duration 10`

use std::error::Error;
use std::future::poll_fn;
use std::path::PathBuf;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use clap::Parser;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::{HeaderMap, Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Command line of the load generator.
#[derive(Parser)]
#[command(
    about = "Open-loop fixed-rate HTTP/1.1 load generator (latency from the scheduled send time)"
)]
struct Args {
    /// The URL to load (plain `http://` only).
    #[arg(long)]
    url: Uri,
    /// The request method.
    #[arg(long, default_value = "GET")]
    method: Method,
    /// A request header, `name: value`; repeat for more.
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The request body.
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// A file whose content is the request body.
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// Requests per second to schedule, over all connections.
    #[arg(long)]
    rate: f64,
    /// Seconds over which requests are scheduled.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Keep-alive connections (HTTP/1.1, one request in flight on each).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds to wait after the last scheduled time for outstanding answers; what is still
    /// unanswered (or unsent) then counts as timed out.
    #[arg(long, default_value_t = 2.0)]
    grace: f64,
}

/// Parses `name: value` into a header.
fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("not `name: value`: {text:?}"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|error| error.to_string())?;
    let value = HeaderValue::from_str(value.trim()).map_err(|error| error.to_string())?;
    Ok((name, value))
}

/// A request body that is one chunk of bytes, sent with its `content-length`.
struct Fixed(Option<Bytes>);

impl Body for Fixed {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.take().map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |data| data.len() as u64))
    }
}

/// What every connection sends, and when.
struct Plan {
    /// `host:port` to connect to.
    address: String,
    method: Method,
    /// The origin-form target (path and query).
    target: Uri,
    /// The given headers, with `host`.
    headers: HeaderMap,
    body: Option<Bytes>,
    /// Requests to send in all.
    total: u64,
    rate: f64,
    /// Time zero of the schedule; request `i` is due at `start + i / rate`.
    start: Instant,
    /// When waiting stops: the last scheduled time plus the grace period.
    deadline: Instant,
}

impl Plan {
    /// The time request `index` is due.
    fn due(&self, index: u64) -> Instant {
        self.start + Duration::from_secs_f64(index as f64 / self.rate)
    }

    fn request(&self) -> Request<Fixed> {
        let mut request = Request::new(Fixed(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.target.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// The outcome of one connection's share of the requests.
#[derive(Default)]
struct Tally {
    /// Requests taken from the schedule.
    sent: u64,
    /// Latencies of every request answered, whatever its status, in nanoseconds.
    latencies: Vec<u64>,
    /// Answers with a status outside 2xx.
    non_2xx: u64,
    /// Requests that failed on the connection (refused, reset, malformed answer).
    transport: u64,
    /// Requests sent but not answered by the deadline.
    timeouts: u64,
    /// When the last answer ended.
    last_answer: Option<Instant>,
    /// The first transport error, to explain the count.
    first_error: Option<String>,
}

/// Opens one keep-alive connection; its driver runs as a task of its own.
async fn connect(address: &str) -> Result<SendRequest<Fixed>, Box<dyn Error + Send + Sync>> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // A broken connection shows up as an error of the request on it; nothing to add here.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request on `sender` and reads the whole answer; its status.
async fn exchange(sender: &mut SendRequest<Fixed>, plan: &Plan) -> Result<u16, hyper::Error> {
    let response = sender.send_request(plan.request()).await?;
    let status = response.status().as_u16();
    let mut body = pin!(response.into_body());
    while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        frame?;
    }
    Ok(status)
}

/// One connection: takes the next scheduled request whenever it is idle, until the schedule is
/// exhausted or the deadline passes.
async fn run_connection(
    plan: Arc<Plan>,
    permits: Arc<Semaphore>,
    next: Arc<AtomicU64>,
    mut sender: Option<SendRequest<Fixed>>,
) -> Tally {
    let mut tally = Tally::default();
    loop {
        // Be idle and ready before taking a request, so that its latency is the server's.
        if let Some(ready) = sender.as_mut() {
            if !matches!(
                tokio::time::timeout_at(plan.deadline.into(), ready.ready()).await,
                Ok(Ok(()))
            ) {
                sender = None;
            }
        }
        let permit = match tokio::time::timeout_at(plan.deadline.into(), permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            // The deadline passed, or the semaphore was closed: nothing more to send.
            Ok(Err(_)) | Err(_) => break,
        };
        permit.forget();
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= plan.total {
            break;
        }
        let due = plan.due(index);
        tally.sent += 1;
        let attempt = tokio::time::timeout_at(plan.deadline.into(), async {
            if sender.is_none() {
                sender = Some(
                    connect(&plan.address)
                        .await
                        .map_err(|error| error.to_string())?,
                );
            }
            match sender.as_mut() {
                Some(live) => exchange(live, &plan)
                    .await
                    .map_err(|error| error.to_string()),
                None => Err("no connection".to_owned()),
            }
        })
        .await;
        match attempt {
            Ok(Ok(status)) => {
                let now = Instant::now();
                tally
                    .latencies
                    .push(nanos(now.saturating_duration_since(due)));
                tally.last_answer = Some(now);
                if !(200..300).contains(&status) {
                    tally.non_2xx += 1;
                }
            }
            Ok(Err(error)) => {
                tally.transport += 1;
                tally.first_error.get_or_insert(error);
                sender = None;
            }
            Err(_) => {
                tally.timeouts += 1;
                break;
            }
        }
    }
    tally
}

/// Releases one permit at each scheduled time (and, at the end, one per connection more, so that
/// every connection finds the schedule exhausted and stops). Returns how late each release was
/// (the generator's own lag, in nanoseconds, for the oldest request of each release).
fn pace(plan: &Plan, permits: &Semaphore, connections: usize) -> Vec<u64> {
    let mut lags = Vec::new();
    let mut released: u64 = 0;
    while released < plan.total {
        let next = plan.due(released);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        // Every request up to floor(elapsed × rate) is due by now; at least the one slept for.
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(plan.start).as_secs_f64();
        let due = ((elapsed * plan.rate).floor() as u64 + 1).clamp(released + 1, plan.total);
        permits.add_permits(usize::try_from(due - released).unwrap_or(usize::MAX));
        lags.push(nanos(now.saturating_duration_since(next)));
        released = due;
    }
    permits.add_permits(connections);
    lags
}

/// `duration` in nanoseconds (saturating: u64 nanoseconds last 584 years).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The value at quantile `q` (0..=1) of sorted nanoseconds, in milliseconds.
fn quantile_ms(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

/// Prints `message` and exits with status 2 (a bad argument).
fn refuse(message: String) -> ! {
    eprintln!("bench-rate: {message}");
    std::process::exit(2)
}

fn main() {
    let args = Args::parse();
    if !(args.rate.is_finite() && args.rate > 0.0) {
        refuse(format!("--rate must be positive, not {}", args.rate));
    }
    if !(args.duration.is_finite() && args.duration > 0.0) {
        refuse(format!(
            "--duration must be positive, not {}",
            args.duration
        ));
    }
    if !(args.grace.is_finite() && args.grace >= 0.0) {
        refuse(format!("--grace must not be negative, not {}", args.grace));
    }
    if args.connections == 0 {
        refuse("--connections must be at least 1".to_owned());
    }
    if args.url.scheme_str() != Some("http") {
        refuse(format!("only http:// URLs are supported, not {}", args.url));
    }
    let Some(authority) = args.url.authority().cloned() else {
        refuse(format!("the URL has no host: {}", args.url));
    };
    let total = (args.rate * args.duration).round() as u64;
    if total == 0 {
        refuse("--rate × --duration schedules no request".to_owned());
    }
    let body = match (&args.body, &args.body_file) {
        (Some(text), _) => Some(Bytes::from(text.clone())),
        (None, Some(path)) => match std::fs::read(path) {
            Ok(bytes) => Some(Bytes::from(bytes)),
            Err(error) => refuse(format!("cannot read {}: {error}", path.display())),
        },
        (None, None) => None,
    };
    let mut headers = HeaderMap::new();
    match HeaderValue::from_str(authority.as_str()) {
        Ok(host) => headers.insert(HOST, host),
        Err(error) => refuse(format!("bad host {authority}: {error}")),
    };
    for (name, value) in &args.headers {
        headers.append(name.clone(), value.clone());
    }
    let target = match args.url.path_and_query() {
        Some(path) => path.as_str(),
        None => "/",
    };
    let target = match target.parse::<Uri>() {
        Ok(target) => target,
        Err(error) => refuse(format!("bad path {target}: {error}")),
    };
    let address = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench-rate: cannot start the runtime: {error}");
            std::process::exit(1)
        }
    };
    match runtime.block_on(run(args, address, target, headers, body, total)) {
        Ok(report) => println!("{report}"),
        Err(error) => {
            eprintln!("bench-rate: {error}");
            std::process::exit(1)
        }
    }
}

/// Opens the connections, runs the schedule and summarizes it as JSON.
async fn run(
    args: Args,
    address: String,
    target: Uri,
    headers: HeaderMap,
    body: Option<Bytes>,
    total: u64,
) -> Result<serde_json::Value, String> {
    let mut senders = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        senders.push(
            connect(&address)
                .await
                .map_err(|error| format!("cannot connect to {address}: {error}"))?,
        );
    }
    let start = Instant::now() + Duration::from_millis(10);
    let plan = Arc::new(Plan {
        address,
        method: args.method.clone(),
        target,
        headers,
        body,
        total,
        rate: args.rate,
        start,
        deadline: start + Duration::from_secs_f64(args.duration + args.grace),
    });
    let permits = Arc::new(Semaphore::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let pacer = {
        let (plan, permits, connections) = (plan.clone(), permits.clone(), args.connections);
        std::thread::spawn(move || pace(&plan, &permits, connections))
    };
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|sender| {
            tokio::spawn(run_connection(
                plan.clone(),
                permits.clone(),
                next.clone(),
                Some(sender),
            ))
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        let part = task
            .await
            .map_err(|error| format!("a connection task failed: {error}"))?;
        tally.sent += part.sent;
        tally.latencies.extend(part.latencies);
        tally.non_2xx += part.non_2xx;
        tally.transport += part.transport;
        tally.timeouts += part.timeouts;
        tally.last_answer = tally.last_answer.max(part.last_answer);
        if tally.first_error.is_none() {
            tally.first_error = part.first_error;
        }
    }
    // The pacer has released every permit by the time the connections stop (or the deadline,
    // which is after its last release, has passed).
    let mut lags = pacer
        .join()
        .map_err(|_| "the pacer thread panicked".to_owned())?;
    lags.sort_unstable();

    let mut latencies = tally.latencies;
    latencies.sort_unstable();
    let answered = latencies.len() as u64;
    let completed = answered - tally.non_2xx;
    // Scheduled requests never sent by the deadline are timeouts too.
    let timeouts = tally.timeouts + (total - tally.sent);
    let elapsed = tally.last_answer.map_or(0.0, |last| {
        last.saturating_duration_since(start).as_secs_f64()
    });
    let achieved = if elapsed > 0.0 {
        completed as f64 / elapsed
    } else {
        0.0
    };
    let round = |value: f64| (value * 1000.0).round() / 1000.0;
    Ok(serde_json::json!({
        "url": args.url.to_string(),
        "method": args.method.as_str(),
        "connections": args.connections,
        "target_rate": args.rate,
        "duration_s": args.duration,
        "scheduled": total,
        "sent": tally.sent,
        "completed": completed,
        "errors": tally.non_2xx + tally.transport + timeouts,
        "non_2xx": tally.non_2xx,
        "transport_errors": tally.transport,
        "timeouts": timeouts,
        "first_error": tally.first_error,
        "achieved_rate": round(achieved),
        "p50_ms": round(quantile_ms(&latencies, 0.50)),
        "p90_ms": round(quantile_ms(&latencies, 0.90)),
        "p99_ms": round(quantile_ms(&latencies, 0.99)),
        "p99_9_ms": round(quantile_ms(&latencies, 0.999)),
        "max_ms": round(quantile_ms(&latencies, 1.0)),
        // How late the generator itself released requests: when this comes near the latencies,
        // the generator (or its core) was the bottleneck, not the server.
        "pacer_lag_p99_ms": round(quantile_ms(&lags, 0.99)),
        "pacer_lag_max_ms": round(quantile_ms(&lags, 1.0)),
    }))
}

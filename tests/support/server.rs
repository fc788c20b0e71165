//! A local HTTP server for integration tests: it serves a [`Site`] plus a set of built-in
//! routes for error handling (`/status/{code}`, `/slow/{ms}`, `/big/{bytes}`, `/reset`, ...),
//! and records every request it receives so a test can check what a crawler did.
//!
//! The server runs on its own thread with its own actix `System`, so it is independent of
//! whatever runtime the test uses (a crawler in the test's `System`, or a crawler in a
//! subprocess) and cannot be starved or stopped by it. It binds loopback addresses only, each
//! on an ephemeral port, and stops when the [`FixtureServer`] is dropped; its threads end with
//! the test process in any case.
//!
//! Built-in routes (a [`Site::Static`] entry with the same path takes precedence):
//!
//! | route | response |
//! | --- | --- |
//! | `/status/{code}` | that status (200–599) with a small HTML body |
//! | `/slow/{ms}` | waits `ms` milliseconds (at most 60 s), then 200 HTML |
//! | `/big/{bytes}` | 200 with a streamed body of that many bytes, with `Content-Length` |
//! | `/big-chunked/{bytes}` | the same with chunked transfer encoding (no `Content-Length`) |
//! | `/broken` | 200 `text/html`: badly broken HTML with one link (`/p/0`) and invalid UTF-8 |
//! | `/latin1` | 200 `text/html; charset=iso-8859-1` with `<title>café</title>` in Latin-1 |
//! | `/reset` | the connection is closed without any response |
//! | `/redirect?to=PATH` | 302 to `PATH` |
//! | `/echo` | 200 JSON `{method, path, headers: [[name, value], ...], body}` of the request |
//!
//! `/echo` lists headers as [`LogEntry::headers`] does and decodes the body lossily as UTF-8.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::body::SizedStream;
use actix_web::dev::{Extensions, ServerHandle};
use actix_web::http::{header, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::stream;

use super::site::{PreparedSite, Site};

/// One request received by a [`FixtureServer`].
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// Request method, e.g. `GET`.
    pub method: String,
    /// Path and query as sent, e.g. `/p/3` or `/redirect?to=/p/1`.
    pub path: String,
    /// The local IP address the request arrived on, e.g. `127.0.0.2`.
    pub host: String,
    /// Request headers with lower-case names, sorted by name (actix does not keep the order
    /// they were sent in); repeated headers keep their relative order. Values are decoded
    /// lossily as UTF-8.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// Status the server answered with; 0 if no response was sent (`/reset`, or the client
    /// went away before the response was ready).
    pub status: u16,
    /// When the server started handling the request.
    pub started: Instant,
    /// When the response head was ready (a streamed body may still be going out), or when
    /// the request was abandoned.
    pub finished: Instant,
}

impl LogEntry {
    /// The value of the first header named `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running fixture server; dropping it stops the server.
pub struct FixtureServer {
    /// The addresses served, in the order given to [`FixtureServer::start_on`].
    addrs: Vec<SocketAddr>,
    recorder: Arc<Recorder>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl FixtureServer {
    /// Serves `site` on `127.0.0.1` on an ephemeral port.
    pub fn start(site: Site) -> FixtureServer {
        FixtureServer::start_on(&["127.0.0.1"], site)
    }

    /// Serves `site` on each of `ips` (loopback addresses such as `127.0.0.1`, `127.0.0.2`),
    /// each on its own ephemeral port. All addresses share one app, so they serve the same
    /// content and the same request log; statistics are kept per address.
    ///
    /// Panics if an address is not a loopback address or cannot be bound: a test cannot run
    /// without its server.
    pub fn start_on(ips: &[&str], site: Site) -> FixtureServer {
        assert!(
            !ips.is_empty(),
            "FixtureServer::start_on needs at least one IP"
        );
        let mut listeners = Vec::with_capacity(ips.len());
        let mut addrs = Vec::with_capacity(ips.len());
        for ip in ips {
            let ip: IpAddr = ip
                .parse()
                .unwrap_or_else(|err| panic!("fixture server: {ip:?} is not an IP address: {err}"));
            // Tests must never listen on, or send traffic to, anything but this machine.
            assert!(
                ip.is_loopback(),
                "fixture server: {ip} is not a loopback address"
            );
            // Binding here rather than in the server thread makes the port known at once and
            // turns a bind failure into a panic in the test that asked for it.
            let listener = TcpListener::bind((ip, 0))
                .unwrap_or_else(|err| panic!("fixture server: cannot bind {ip}:0: {err}"));
            let addr = listener
                .local_addr()
                .expect("fixture server: a bound listener has a local address");
            addrs.push(addr);
            listeners.push(listener);
        }

        let recorder = Arc::new(Recorder::default());
        let site = site.prepare();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread_recorder = Arc::clone(&recorder);
        let thread = std::thread::Builder::new()
            .name(format!("fixture-server-{}", addrs[0].port()))
            .spawn(move || run_server(listeners, site, thread_recorder, ready_tx))
            .expect("fixture server: cannot spawn the server thread");
        let handle = match ready_rx.recv() {
            Ok(Ok(handle)) => handle,
            Ok(Err(err)) => panic!("fixture server: cannot start: {err}"),
            Err(_) => panic!("fixture server: the server thread exited during startup"),
        };

        FixtureServer {
            addrs,
            recorder,
            handle,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/path` on the first address served. `path` may omit the
    /// leading `/`.
    pub fn url(&self, path: &str) -> String {
        make_url(self.addrs[0], path)
    }

    /// Like [`FixtureServer::url`], on the address `ip` (which must be one served).
    pub fn url_on(&self, ip: &str, path: &str) -> String {
        make_url(self.addr(ip), path)
    }

    /// The port serving `ip` (which must be one served).
    pub fn port(&self, ip: &str) -> u16 {
        self.addr(ip).port()
    }

    /// Every request received so far, in the order they finished.
    pub fn log(&self) -> Vec<LogEntry> {
        self.recorder.log().clone()
    }

    /// The distinct `path`s (path and query) of all requests received so far.
    pub fn fetched_paths(&self) -> BTreeSet<String> {
        self.recorder
            .log()
            .iter()
            .map(|entry| entry.path.clone())
            .collect()
    }

    /// The most requests in progress at once on `ip`, as seen by the server. A request is in
    /// progress from when its handler starts until its response head is ready, so slow
    /// responses (`/slow/{ms}`) measure a client's concurrency best.
    pub fn max_concurrent(&self, ip: &str) -> usize {
        self.stats(ip).max_in_progress
    }

    /// The most TCP connections open at once on `ip`, counted from accept to close.
    pub fn max_connections(&self, ip: &str) -> usize {
        self.stats(ip).max_connections
    }

    /// The number of TCP connections accepted on `ip` so far (fewer than requests means the
    /// client reused connections).
    pub fn total_connections(&self, ip: &str) -> usize {
        self.stats(ip).total_connections
    }

    /// The served address for `ip`; panics with a clear message if `ip` is not served.
    fn addr(&self, ip: &str) -> SocketAddr {
        let wanted: IpAddr = ip
            .parse()
            .unwrap_or_else(|err| panic!("fixture server: {ip:?} is not an IP address: {err}"));
        *self
            .addrs
            .iter()
            .find(|addr| addr.ip() == wanted)
            .unwrap_or_else(|| {
                panic!(
                    "fixture server: not serving {ip} (serving {:?})",
                    self.addrs
                )
            })
    }

    fn stats(&self, ip: &str) -> IpStats {
        let ip = self.addr(ip).ip();
        self.recorder.stats().get(&ip).cloned().unwrap_or_default()
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        // A graceful stop lets requests in progress finish, but actix checks for that only
        // once a second, so it would delay every test by a second for the sake of idle
        // keep-alive connections. Stop at once when nothing is in progress.
        let graceful = self.recorder.in_progress() > 0;
        // `stop` sends the command right away; its future only reports completion, which
        // joining the thread below waits for anyway.
        drop(self.handle.stop(graceful));
        if let Some(thread) = self.thread.take() {
            // A panic in the server thread has already been printed; panicking again in a
            // destructor could abort the test binary and hide the real failure.
            let _ = thread.join();
        }
    }
}

/// `http://addr/path`, with `[]` around IPv6 addresses.
fn make_url(addr: SocketAddr, path: &str) -> String {
    let slash = if path.starts_with('/') { "" } else { "/" };
    format!("http://{addr}{slash}{path}")
}

/// Per-address counters.
#[derive(Clone, Debug, Default)]
struct IpStats {
    in_progress: usize,
    max_in_progress: usize,
    open_connections: usize,
    max_connections: usize,
    total_connections: usize,
}

/// What the server has seen; shared by the test thread and the server's worker.
#[derive(Default)]
struct Recorder {
    log: Mutex<Vec<LogEntry>>,
    stats: Mutex<HashMap<IpAddr, IpStats>>,
}

impl Recorder {
    // A panic while a lock is held (there is no code that could) must not turn every later
    // assertion into a confusing poison error, so poisoning is ignored.
    fn log(&self) -> MutexGuard<'_, Vec<LogEntry>> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stats(&self) -> MutexGuard<'_, HashMap<IpAddr, IpStats>> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn in_progress(&self) -> usize {
        self.stats().values().map(|s| s.in_progress).sum()
    }
}

/// Counts a request as in progress while alive; on drop (normal completion, or the handler
/// future being dropped because the client went away) it ends the count and logs the request.
struct InProgress {
    recorder: Arc<Recorder>,
    ip: IpAddr,
    entry: LogEntry,
}

impl InProgress {
    fn begin(recorder: Arc<Recorder>, ip: IpAddr, entry: LogEntry) -> InProgress {
        {
            let mut stats = recorder.stats();
            let stats = stats.entry(ip).or_default();
            stats.in_progress += 1;
            stats.max_in_progress = stats.max_in_progress.max(stats.in_progress);
        }
        InProgress {
            recorder,
            ip,
            entry,
        }
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        if let Some(stats) = self.recorder.stats().get_mut(&self.ip) {
            stats.in_progress -= 1;
        }
        self.entry.finished = Instant::now();
        let entry = self.entry.clone();
        self.recorder.log().push(entry);
    }
}

/// Lives in a connection's extensions, which actix drops when the connection closes.
struct ConnectionGuard {
    recorder: Arc<Recorder>,
    ip: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(stats) = self.recorder.stats().get_mut(&self.ip) {
            stats.open_connections -= 1;
        }
    }
}

/// `on_connect` callback: counts the new connection on its local address.
fn on_connect(recorder: &Arc<Recorder>, io: &dyn Any, ext: &mut Extensions) {
    let Some(stream) = io.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let ip = local.ip();
    {
        let mut stats = recorder.stats();
        let stats = stats.entry(ip).or_default();
        stats.open_connections += 1;
        stats.total_connections += 1;
        stats.max_connections = stats.max_connections.max(stats.open_connections);
    }
    ext.insert(ConnectionGuard {
        recorder: Arc::clone(recorder),
        ip,
    });
}

/// State shared by all requests.
struct Shared {
    site: PreparedSite,
    recorder: Arc<Recorder>,
}

/// Largest request body accepted (and logged); tests post small bodies.
const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// Runs the server on the current (dedicated) thread until it is stopped, reporting its handle
/// (or why it could not start) on `ready`.
fn run_server(
    listeners: Vec<TcpListener>,
    site: PreparedSite,
    recorder: Arc<Recorder>,
    ready: mpsc::Sender<io::Result<ServerHandle>>,
) {
    let system = actix_rt::System::new();
    system.block_on(async move {
        let connection_recorder = Arc::clone(&recorder);
        let shared = web::Data::new(Shared { site, recorder });
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .app_data(web::PayloadConfig::new(MAX_REQUEST_BODY))
                .default_service(web::to(dispatch))
        })
        // One worker handles any test's load (it is all async) and keeps thread count low
        // when many tests run at once.
        .workers(1)
        // The test process's signals belong to the test harness (and to crawlers under test).
        .disable_signals()
        .shutdown_timeout(1)
        .on_connect(move |io, ext| on_connect(&connection_recorder, io, ext));
        for listener in listeners {
            server = match server.listen(listener) {
                Ok(server) => server,
                Err(err) => {
                    let _ = ready.send(Err(err));
                    return;
                }
            };
        }
        let server = server.run();
        if ready.send(Ok(server.handle())).is_err() {
            // Nobody is waiting for this server any more.
            return;
        }
        if let Err(err) = server.await {
            log::error!("fixture server failed: {err}");
        }
    });
}

/// `req`'s headers as [`LogEntry::headers`] describes them.
fn header_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_string(), value)
        })
        .collect();
    // Stable, so values of a repeated header stay in order.
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    headers
}

/// The one handler: logs the request, then answers from the site or a built-in route.
async fn dispatch(req: HttpRequest, body: Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let entry = LogEntry {
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map_or_else(|| req.path().to_string(), |pq| pq.as_str().to_string()),
        host: req.app_config().local_addr().ip().to_string(),
        headers: header_pairs(&req),
        body: body.to_vec(),
        status: 0,
        started: Instant::now(),
        finished: Instant::now(),
    };
    let ip = req.app_config().local_addr().ip();
    let mut in_progress = InProgress::begin(Arc::clone(&shared.recorder), ip, entry);
    let (response, sent) = respond(&req, &body, &shared.site).await;
    if sent {
        in_progress.entry.status = response.status().as_u16();
    }
    drop(in_progress);
    response
}

/// The response to `req`, and whether it really is sent (false for `/reset`).
async fn respond(req: &HttpRequest, body: &[u8], site: &PreparedSite) -> (HttpResponse, bool) {
    let path = req.path();
    let query = req.query_string();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    if let Some((status, content_type, body)) = site.respond(path, query, host) {
        let response = match StatusCode::from_u16(status) {
            Ok(status) => HttpResponse::build(status)
                .content_type(content_type)
                .body(body),
            Err(_) => small_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("invalid status {status} in Site::Static"),
            ),
        };
        return (response, true);
    }

    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let response = match (segments.next().unwrap_or_default(), segments.next()) {
        ("status", Some(code)) => status(code),
        ("slow", Some(ms)) => slow(ms).await,
        ("big", Some(bytes)) => big(bytes, true),
        ("big-chunked", Some(bytes)) => big(bytes, false),
        ("broken", None) => HttpResponse::Ok()
            .content_type("text/html")
            .body(BROKEN_HTML),
        ("latin1", None) => HttpResponse::Ok()
            .content_type("text/html; charset=iso-8859-1")
            .body(LATIN1_HTML),
        ("reset", None) => return (reset(), false),
        ("redirect", None) => redirect(query),
        ("echo", None) => echo(req, body),
        _ => small_page(StatusCode::NOT_FOUND, "no such page"),
    };
    (response, true)
}

/// A small HTML page with the given status.
fn small_page(status: StatusCode, message: &str) -> HttpResponse {
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("Unknown");
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n\
             <body><h1>{code} {reason}</h1><p>{message}</p></body></html>\n"
        ))
}

/// `/status/{code}`.
fn status(code: &str) -> HttpResponse {
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|code| (200..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok());
    match status {
        // These statuses cannot have a body.
        Some(status) if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED => {
            HttpResponse::build(status).finish()
        }
        Some(status) => small_page(status, &format!("status {code} as requested")),
        None => small_page(
            StatusCode::BAD_REQUEST,
            "/status/{code} takes a code from 200 to 599",
        ),
    }
}

/// Longest wait `/slow/{ms}` accepts, so a typo cannot hang a test run.
const MAX_SLOW_MS: u64 = 60_000;

/// `/slow/{ms}`.
async fn slow(ms: &str) -> HttpResponse {
    let Some(ms) = ms.parse::<u64>().ok().filter(|ms| *ms <= MAX_SLOW_MS) else {
        return small_page(
            StatusCode::BAD_REQUEST,
            "/slow/{ms} takes milliseconds up to 60000",
        );
    };
    actix_rt::time::sleep(Duration::from_millis(ms)).await;
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!DOCTYPE html>\n<html><head><title>Slow {ms}</title></head>\n\
             <body><p>Answered after {ms} ms.</p></body></html>\n"
        ))
}

/// Size of the chunks `/big` streams; also the size of the shared buffer they are cut from.
const BIG_CHUNK: usize = 64 * 1024;

/// The bytes every `/big` body is made of, shared so a body of any size costs no memory.
static BIG_FILLER: [u8; BIG_CHUNK] = [b'x'; BIG_CHUNK];

/// Largest body `/big` serves (16 GiB): effectively unbounded, yet a typo cannot stream
/// forever.
const MAX_BIG_BYTES: u64 = 16 << 30;

/// `/big/{bytes}` (with Content-Length) and `/big-chunked/{bytes}` (without).
fn big(bytes: &str, sized: bool) -> HttpResponse {
    let Some(total) = bytes.parse::<u64>().ok().filter(|b| *b <= MAX_BIG_BYTES) else {
        return small_page(StatusCode::BAD_REQUEST, "/big/{bytes} takes a byte count");
    };
    let mut remaining = total;
    let chunks = stream::iter(std::iter::from_fn(move || {
        if remaining == 0 {
            return None;
        }
        let len = remaining.min(BIG_CHUNK as u64);
        remaining -= len;
        // `len <= BIG_CHUNK`, so the cast is lossless.
        Some(Ok::<_, Infallible>(Bytes::from_static(
            &BIG_FILLER[..len as usize],
        )))
    }));
    let mut response = HttpResponse::Ok();
    response.content_type("application/octet-stream");
    if sized {
        response.body(SizedStream::new(total, chunks))
    } else {
        response.streaming(chunks)
    }
}

/// `/broken`: unclosed and stray tags, a link to `/p/0` amid garbage, invalid UTF-8.
const BROKEN_HTML: &[u8] = b"<html><head><title>Broken page</title>\n\
<body><div class=\"main\"><p>Unclosed <b>bold <i>italic\n\
</span></div></div></td></tr></table>\n\
<table><tr><td>cell<td>cell <<<>>> &&; &nosuchentity\n\
<p <p>>stray <a href=\"/p/0\">first page</a></b></b></ul>\n\
<p>Invalid UTF-8: \xff\xfe \xc3\x28 \x80 end</p>\n\
<div><span>never closed\n\
<!-- unterminated comment\n";

/// `/latin1`: "café" (and more) encoded in ISO-8859-1.
const LATIN1_HTML: &[u8] = b"<!DOCTYPE html>\n<html><head><title>caf\xe9</title></head>\n\
<body><p>caf\xe9 cr\xe8me br\xfbl\xe9e</p></body></html>\n";

/// `/reset`: a response whose body fails before a single byte is written, which makes actix
/// drop the connection with its response head still unsent: the client sees the connection
/// closed with no reply at all.
fn reset() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html")
        .streaming(stream::once(async {
            Err::<Bytes, _>(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "fixture /reset closes the connection",
            ))
        }))
}

/// `/redirect?to=PATH`.
fn redirect(query: &str) -> HttpResponse {
    let target = web::Query::<HashMap<String, String>>::from_query(query)
        .ok()
        .and_then(|query| query.get("to").cloned());
    match target {
        // The body has no link, so a crawler that ignores redirects finds nothing to follow.
        Some(target) => HttpResponse::Found()
            .insert_header((header::LOCATION, target))
            .content_type("text/html; charset=utf-8")
            .body("<html><body><p>Moved.</p></body></html>\n"),
        None => small_page(StatusCode::BAD_REQUEST, "/redirect needs ?to=PATH"),
    }
}

/// `/echo`: the request as JSON.
fn echo(req: &HttpRequest, body: &[u8]) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map_or(req.path(), |pq| pq.as_str()),
        "headers": header_pairs(req),
        "body": String::from_utf8_lossy(body),
    }))
}

//! Issue 3, acceptance 4 and 5, against real local servers:
//!
//! - HttpCompression: a 10 MB body gzipped to ~10 KB is cut off at `DOWNLOAD_MAXSIZE` =
//!   1 MB (errback gets `MaxSizeExceeded`, counted) without the process ever holding the
//!   10 MB — a counting global allocator in this test binary measures the peak heap during
//!   the crawl, and a control crawl without a limit shows the same measurement does see
//!   the whole body when it is inflated; gzip, x-gzip, deflate (zlib-wrapped and raw), br,
//!   zstd and stacked codings decode, and a corrupt body is a counted error.
//! - Cookies: a cookie set by one response goes back to that host and not to another
//!   (127.0.0.1 and 127.0.0.2), two `cookiejar` sessions stay apart, `COOKIES_DEBUG` logs
//!   both directions, and `COOKIES_ENABLED=false` sends none.
//!
//! The server is a small actix-web app of this file (the fixture server cannot send
//! `Content-Encoding` or `Set-Cookie`), recording each request's `Cookie` and
//! `Accept-Encoding` headers. Tests run one at a time (the allocator's peak is global).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use arachne::prelude::*;
use arachne::stats::StatsMap;
use serde_json::{json, Value};
use support::logs::{capture_logs, logged};

// --- a heap that counts ---------------------------------------------------------------------

/// Bytes allocated now, and the most at any time since the last [`reset_peak`].
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

impl Counting {
    fn grew(by: usize) {
        let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            Counting::grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            Counting::grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size >= layout.size() {
                Counting::grew(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static HEAP: Counting = Counting;

/// Starts a peak measurement; returns the heap size it starts from.
fn reset_peak() -> usize {
    let now = CURRENT.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// One test at a time: the heap peak is process-wide.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// --- the server -----------------------------------------------------------------------------

/// One request the server received.
#[derive(Clone, Debug)]
struct Hit {
    /// The local address it arrived on (`127.0.0.1`, `127.0.0.2`).
    ip: String,
    /// Path and query.
    path: String,
    cookie: Option<String>,
    accept_encoding: Option<String>,
}

/// Fixed responses: path → (headers, body).
type Pages = HashMap<String, (Vec<(String, String)>, Vec<u8>)>;

struct Shared {
    pages: Pages,
    hits: Arc<Mutex<Vec<Hit>>>,
}

/// A server on ephemeral ports of the given loopback addresses. Besides `pages` it serves
/// `/set?k=v&...` (one `Set-Cookie: k=v; Path=/` per pair) and `/show...` (200, empty).
struct Server {
    addrs: Vec<SocketAddr>,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Server {
    fn start(ips: &[&str], pages: Pages) -> Server {
        let listeners: Vec<TcpListener> = ips
            .iter()
            .map(|ip| TcpListener::bind((*ip, 0)).expect("bind a loopback port"))
            .collect();
        let addrs = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let shared = web::Data::new(Shared {
            pages,
            hits: hits.clone(),
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let mut server = HttpServer::new(move || {
                    App::new()
                        .app_data(shared.clone())
                        .default_service(web::to(serve))
                })
                .workers(1)
                .disable_signals();
                for l in listeners {
                    server = server.listen(l).expect("listen");
                }
                let server = server.run();
                tx.send(()).unwrap();
                let _ = server.await;
            })
        });
        rx.recv().expect("server started");
        Server { addrs, hits }
    }

    fn url_on(&self, i: usize, path: &str) -> String {
        format!("http://{}{path}", self.addrs[i])
    }

    fn url(&self, path: &str) -> String {
        self.url_on(0, path)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// The one request for `path` on address `i`.
    fn hit(&self, i: usize, path: &str) -> Hit {
        let ip = self.addrs[i].ip().to_string();
        let found: Vec<Hit> = self
            .hits()
            .into_iter()
            .filter(|h| h.ip == ip && h.path == path)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "requests for {ip} {path}: {:#?}",
            self.hits()
        );
        found.into_iter().next().unwrap()
    }
}

async fn serve(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    shared.hits.lock().unwrap().push(Hit {
        ip: req.app_config().local_addr().ip().to_string(),
        path: path.clone(),
        cookie: header("cookie"),
        accept_encoding: header("accept-encoding"),
    });
    if let Some((headers, body)) = shared.pages.get(&path) {
        let mut resp = HttpResponse::Ok();
        for (k, v) in headers {
            resp.insert_header((k.as_str(), v.as_str()));
        }
        return resp.body(body.clone());
    }
    if req.path() == "/set" {
        let mut resp = HttpResponse::Ok();
        for pair in req.query_string().split('&').filter(|p| !p.is_empty()) {
            resp.append_header(("Set-Cookie", format!("{pair}; Path=/")));
        }
        return resp.body("set");
    }
    if req.path() == "/show" {
        return HttpResponse::Ok().body("shown");
    }
    HttpResponse::NotFound().finish()
}

// --- the spider -----------------------------------------------------------------------------

/// What the spider saw: URL → body text, URL → Content-Encoding left on the response,
/// URL → failure kind.
#[derive(Clone, Default)]
struct Seen {
    bodies: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    encodings: Arc<Mutex<BTreeMap<String, Option<String>>>>,
    failures: Arc<Mutex<BTreeMap<String, String>>>,
}

/// Requests the given start requests; a response whose request has a `next` callback
/// argument (a list of `{"url": ..., "jar": ...}`) requests those next, with `cookiejar`
/// set to `jar` unless it is null.
struct Probe {
    start: Vec<Request>,
    seen: Seen,
}

impl Probe {
    fn record(&self, response: &Response) {
        let url = response.url.to_string();
        self.seen
            .bodies
            .lock()
            .unwrap()
            .insert(url.clone(), response.body.to_vec());
        self.seen.encodings.lock().unwrap().insert(
            url,
            response
                .headers
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_string()),
        );
    }
}

/// This spider's callbacks: pages go to `parse`, failures to `failed`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Cb {
    Parse,
    /// Requests these next, each in its cookie jar (`Value::Null`: the default one).
    Then {
        next: Vec<(String, Value)>,
    },
    Failed,
}

#[async_trait(?Send)]
impl Spider for Probe {
    type Callback = Cb;

    fn name(&self) -> &str {
        "probe"
    }

    fn start(self: Arc<Self>) -> Start {
        let reqs: Vec<_> = self
            .start
            .iter()
            .map(|r| Ok::<_, SpiderError>(r.clone().errback(Cb::Failed).dont_filter(true)))
            .collect();
        start_from_iter(reqs)
    }

    async fn parse(&self, response: &Response) -> CallbackResult {
        self.record(response);
        Ok(Output::new())
    }

    async fn callback(&self, cb: Cb, response: &Response) -> CallbackResult {
        self.record(response);
        let mut out = Output::new();
        if let Cb::Then { next } = cb {
            for (url, jar) in next {
                let mut r = Request::get(url)?.dont_filter(true);
                if !jar.is_null() {
                    r = r.meta("cookiejar", jar);
                }
                out.request(r);
            }
        }
        Ok(out)
    }

    async fn errback(&self, _: Cb, failure: &Failure) -> CallbackResult {
        self.seen
            .failures
            .lock()
            .unwrap()
            .insert(failure.request.url.to_string(), failure.kind().to_string());
        Ok(Output::new())
    }
}

fn settings() -> Settings {
    Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false)
        .with("RETRY_ENABLED", false)
}

async fn crawl(start: Vec<Request>, settings: Settings) -> (StatsMap, Seen) {
    let seen = Seen::default();
    let spider = Probe {
        start,
        seen: seen.clone(),
    };
    let stats = Crawler::new(spider, settings)
        .run()
        .await
        .expect("crawl runs");
    assert_eq!(stats["finish_reason"], "finished", "{stats:#?}");
    (stats, seen)
}

fn stat(stats: &StatsMap, key: &str) -> u64 {
    stats.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn page(encoding: &str, body: Vec<u8>) -> (Vec<(String, String)>, Vec<u8>) {
    (
        vec![
            ("Content-Type".into(), "text/plain; charset=utf-8".into()),
            ("Content-Encoding".into(), encoding.into()),
        ],
        body,
    )
}

// --- compression ----------------------------------------------------------------------------

const BOMB: usize = 10_000_000;
const LIMIT: u64 = 1_000_000;

/// A 10 MB gzip bomb of ~10 KB is cut off at a 1 MB `DOWNLOAD_MAXSIZE`, counted, sent to
/// the errback, and the heap never grows by anything near 10 MB; without a limit the same
/// measurement sees the whole 10 MB.
#[actix::test]
async fn gzip_bomb_is_cut_off_without_holding_it() {
    let _serial = SERIAL.lock().await;
    let bomb = gzip(&vec![0u8; BOMB]);
    assert!(bomb.len() < 20_000, "the bomb is {} bytes", bomb.len());
    let server = Server::start(
        &["127.0.0.1"],
        HashMap::from([("/bomb".to_string(), page("gzip", bomb))]),
    );
    let url = server.url("/bomb");

    let base = reset_peak();
    let (stats, seen) = crawl(
        vec![Request::get(&url).unwrap()],
        settings().with("DOWNLOAD_MAXSIZE", LIMIT),
    )
    .await;
    let grew = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    assert_eq!(
        seen.failures.lock().unwrap().get(&url).map(String::as_str),
        Some("MaxSizeExceeded"),
        "{stats:#?}"
    );
    assert!(seen.bodies.lock().unwrap().is_empty());
    assert_eq!(
        stat(&stats, "downloader/exception_type_count/MaxSizeExceeded"),
        1,
        "{stats:#?}"
    );
    assert_eq!(stat(&stats, "downloader/exception_count"), 1);
    assert_eq!(stat(&stats, "httpcompression/response_count"), 0);
    // The limit, one decoding chunk and the crawl's own working set — far below 10 MB.
    assert!(
        grew < 4_000_000,
        "the heap grew by {grew} bytes during a crawl limited to {LIMIT}"
    );

    // Control: no limit — the body is inflated whole, and the measurement shows it.
    let base = reset_peak();
    let (stats, seen) = crawl(
        vec![Request::get(&url).unwrap()],
        settings().with("DOWNLOAD_MAXSIZE", 0),
    )
    .await;
    let grew = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    let bodies = seen.bodies.lock().unwrap();
    let body = bodies.get(&url).expect("the unlimited crawl got the body");
    assert_eq!(body.len(), BOMB);
    assert!(body.iter().all(|b| *b == 0));
    assert_eq!(stat(&stats, "httpcompression/response_count"), 1);
    assert_eq!(stat(&stats, "httpcompression/response_bytes"), BOMB as u64);
    assert!(grew >= BOMB, "the heap grew by only {grew} bytes");
}

/// gzip, x-gzip, deflate (zlib and raw), br, zstd and `gzip, br` bodies reach the callback
/// decoded, without `Content-Encoding`; `Accept-Encoding` was sent; a corrupt body fails
/// with a counted error.
#[actix::test]
async fn every_coding_decodes() {
    let _serial = SERIAL.lock().await;
    let text = |name: &str| format!("plain text for {name} ").repeat(50).into_bytes();
    let zlib = {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&text("zlib")).unwrap();
        e.finish().unwrap()
    };
    let raw = {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&text("raw")).unwrap();
        e.finish().unwrap()
    };
    let br = |data: &[u8]| {
        let mut out = Vec::new();
        brotli::BrotliCompress(&mut &data[..], &mut out, &Default::default()).unwrap();
        out
    };
    let pages: Pages = HashMap::from([
        ("/gzip".to_string(), page("gzip", gzip(&text("gzip")))),
        ("/x-gzip".to_string(), page("x-gzip", gzip(&text("x-gzip")))),
        ("/zlib".to_string(), page("deflate", zlib)),
        ("/raw".to_string(), page("deflate", raw)),
        ("/br".to_string(), page("br", br(&text("br")))),
        (
            "/zstd".to_string(),
            page("zstd", zstd::encode_all(&text("zstd")[..], 3).unwrap()),
        ),
        (
            "/stacked".to_string(),
            page("gzip, br", br(&gzip(&text("stacked")))),
        ),
        (
            "/corrupt".to_string(),
            page("br", b"this is not brotli at all".to_vec()),
        ),
    ]);
    let server = Server::start(&["127.0.0.1"], pages);
    let names = ["gzip", "x-gzip", "zlib", "raw", "br", "zstd", "stacked"];
    let mut start: Vec<Request> = names
        .iter()
        .map(|n| Request::get(server.url(&format!("/{n}"))).unwrap())
        .collect();
    start.push(Request::get(server.url("/corrupt")).unwrap());
    let (stats, seen) = crawl(start, settings()).await;

    let bodies = seen.bodies.lock().unwrap();
    let encodings = seen.encodings.lock().unwrap();
    for n in names {
        let url = server.url(&format!("/{n}"));
        assert_eq!(
            bodies
                .get(&url)
                .map(|b| String::from_utf8_lossy(b).into_owned()),
            Some(String::from_utf8(text(n)).unwrap()),
            "{n}"
        );
        assert_eq!(
            encodings[&url], None,
            "{n}: Content-Encoding left on the response"
        );
        assert_eq!(
            server.hit(0, &format!("/{n}")).accept_encoding.as_deref(),
            Some("gzip, deflate, br, zstd")
        );
    }
    assert_eq!(
        seen.failures
            .lock()
            .unwrap()
            .get(&server.url("/corrupt"))
            .map(String::as_str),
        Some("DownloadError")
    );
    assert_eq!(
        stat(&stats, "httpcompression/response_count"),
        names.len() as u64
    );
    assert_eq!(
        stat(&stats, "downloader/exception_type_count/DownloadError"),
        1,
        "{stats:#?}"
    );
    assert_eq!(stat(&stats, "downloader/exception_count"), 1);
}

// --- cookies --------------------------------------------------------------------------------

fn next(urls: &[(String, Value)]) -> Cb {
    Cb::Then {
        next: urls.to_vec(),
    }
}

/// A cookie set by 127.0.0.1 is sent back to 127.0.0.1 and not to 127.0.0.2, and
/// `COOKIES_DEBUG` logs what was received and sent.
#[actix::test]
async fn cookies_go_back_to_their_host_only() {
    let _serial = SERIAL.lock().await;
    capture_logs();
    let server = Server::start(&["127.0.0.1", "127.0.0.2"], Pages::new());
    let set = server.url_on(0, "/set?sid=abc");
    let same = server.url_on(0, "/show?n=1");
    let other = server.url_on(1, "/show?n=2");
    let first = Request::get(&set)
        .unwrap()
        .callback(next(&[(same.clone(), Value::Null), (other, Value::Null)]));
    crawl(vec![first], settings().with("COOKIES_DEBUG", true)).await;

    assert_eq!(server.hit(0, "/set?sid=abc").cookie, None);
    assert_eq!(
        server.hit(0, "/show?n=1").cookie.as_deref(),
        Some("sid=abc")
    );
    assert_eq!(server.hit(1, "/show?n=2").cookie, None);
    assert!(logged(
        log::Level::Debug,
        &[&format!(
            "Received cookies from: <200 {set}>\nSet-Cookie: sid=abc; Path=/\n"
        )]
    ));
    assert!(logged(
        log::Level::Debug,
        &[&format!(
            "Sending cookies to: <GET {same}>\nCookie: sid=abc\n"
        )]
    ));
}

/// Two `cookiejar` sessions on one host keep their own cookies; the default jar and a
/// third, unused jar have neither.
#[actix::test]
async fn cookiejar_sessions_stay_apart() {
    let _serial = SERIAL.lock().await;
    let server = Server::start(&["127.0.0.1"], Pages::new());
    let one = Request::get(server.url("/set?sid=one"))
        .unwrap()
        .meta("cookiejar", 1)
        .callback(next(&[
            (server.url("/show?jar=1"), json!(1)),
            (server.url("/show?jar=default"), Value::Null),
            (server.url("/show?jar=3"), json!(3)),
        ]));
    let two = Request::get(server.url("/set?sid=two"))
        .unwrap()
        .meta("cookiejar", "two")
        .callback(next(&[(server.url("/show?jar=two"), json!("two"))]));
    let (_, seen) = crawl(vec![one, two], settings()).await;
    assert!(seen.failures.lock().unwrap().is_empty());
    assert_eq!(
        server.hit(0, "/show?jar=1").cookie.as_deref(),
        Some("sid=one")
    );
    assert_eq!(
        server.hit(0, "/show?jar=two").cookie.as_deref(),
        Some("sid=two")
    );
    assert_eq!(server.hit(0, "/show?jar=default").cookie, None);
    assert_eq!(server.hit(0, "/show?jar=3").cookie, None);
}

/// With `COOKIES_ENABLED=false` a cookie set by a response is never sent back.
#[actix::test]
async fn cookies_disabled_sends_none() {
    let _serial = SERIAL.lock().await;
    let server = Server::start(&["127.0.0.1"], Pages::new());
    let first = Request::get(server.url("/set?sid=abc"))
        .unwrap()
        .callback(next(&[(server.url("/show?n=1"), Value::Null)]));
    crawl(vec![first], settings().with("COOKIES_ENABLED", false)).await;
    assert_eq!(server.hits().len(), 2);
    assert!(
        server.hits().iter().all(|h| h.cookie.is_none()),
        "{:#?}",
        server.hits()
    );
}

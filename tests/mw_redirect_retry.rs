//! Acceptance 1 and 2 of the middleware issue, plus the request-side middlewares, each
//! against a real local server:
//!
//! - Redirect: chains are followed and recorded (`redirect_urls`, `redirect_reasons`); a
//!   loop stops at `REDIRECT_MAX_TIMES` with a logged, counted `IgnoreRequest`; POST
//!   redirects follow Scrapy's method rules (303/302/301 → bodiless GET, 307/308 keep
//!   POST and body); `dont_redirect` and `handle_httpstatus_list` leave the 3xx to the
//!   spider.
//! - Retry: a server failing twice with 503 is retried until it answers; one that always
//!   fails is given up after `RETRY_TIMES`; refused connections are retried too;
//!   `RETRY_ENABLED=false` makes one request.
//! - UserAgent / DefaultHeaders / DownloadTimeout, HttpAuth, MetaRefresh and AjaxCrawl.
//!
//! Stateful routes ("fail twice, then succeed", redirect loops, 3xx for a POST) come from a
//! small actix-web app in this file ([`Stateful`]); the fixture server serves the rest.
//! Each server logs every request, so "the server saw N requests" is checked directly.

mod support;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::http::{header, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use arachne::http::{Meta, Method};
use arachne::prelude::*;
use arachne::stats::StatsMap;
use serde_json::{json, Value};
use support::logs::{capture_logs, logged};
use support::server::FixtureServer;
use support::site::Site;

// --- a stateful server --------------------------------------------------------------------

/// One request [`Stateful`] received.
#[derive(Debug, Clone)]
struct Hit {
    method: String,
    /// Path and query.
    path: String,
    /// Lower-case names.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Hit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Hits = Arc<Mutex<Vec<Hit>>>;

/// A server whose answers depend on what it has seen. Routes:
///
/// | route | answer |
/// | --- | --- |
/// | `/r/{code}/{rest}` | status `code` with `Location: /{rest}` |
/// | `/loop` | 302 to `/loop` |
/// | `/flaky/{n}/{name}` | 503 the first `n` times, then 200 HTML |
/// | `/always/{code}` | status `code`, every time |
/// | anything else | 200 HTML |
struct Stateful {
    addr: SocketAddr,
    hits: Hits,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl Stateful {
    fn start() -> Stateful {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound address");
        let hits: Hits = Arc::default();
        let (tx, rx) = mpsc::channel();
        let data = web::Data::new(hits.clone());
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .default_service(web::to(route))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener)
                .expect("listen")
                .run();
                let _ = tx.send(server.handle());
                let _ = server.await;
            });
        });
        let handle = rx.recv().expect("stateful server starts");
        Stateful {
            addr,
            hits,
            handle,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request for exactly this path (and query).
    fn hits(&self, path: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }

    fn paths(&self) -> Vec<String> {
        self.hits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|h| h.path.clone())
            .collect()
    }
}

impl Drop for Stateful {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn route(req: HttpRequest, body: web::Bytes, hits: web::Data<Hits>) -> HttpResponse {
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path().to_string(), |pq| pq.as_str().to_string());
    let seen = {
        let mut hits = hits.lock().unwrap_or_else(PoisonError::into_inner);
        hits.push(Hit {
            method: req.method().to_string(),
            path: path.clone(),
            headers: req
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        });
        hits.iter().filter(|h| h.path == path).count()
    };
    let segments: Vec<&str> = req.path().trim_start_matches('/').splitn(3, '/').collect();
    match segments.as_slice() {
        ["r", code, rest] => redirect(code.parse().unwrap_or(302), &format!("/{rest}")),
        ["loop"] => redirect(302, "/loop"),
        ["flaky", n, _] if seen <= n.parse().unwrap_or(0) => page(503, "flaky"),
        ["always", code] => page(code.parse().unwrap_or(500), "always"),
        _ => page(200, &path),
    }
}

fn redirect(code: u16, location: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(code).expect("valid status"))
        .insert_header((header::LOCATION, location))
        .content_type("text/html; charset=utf-8")
        .body("<html><body>Moved</body></html>")
}

fn page(code: u16, title: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(code).expect("valid status"))
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<html><head><title>{title}</title></head><body>{code}</body></html>"
        ))
}

// --- the spider ---------------------------------------------------------------------------

/// A page the callback received.
#[derive(Debug, Clone)]
struct Page {
    url: String,
    status: u16,
    meta: Meta,
}

/// A failure the errback received.
#[derive(Debug, Clone)]
struct Failed {
    url: String,
    kind: String,
    status: Option<u16>,
}

#[derive(Debug, Clone, Default)]
struct Seen {
    pages: Arc<Mutex<Vec<Page>>>,
    failures: Arc<Mutex<Vec<Failed>>>,
}

impl Seen {
    fn pages(&self) -> Vec<Page> {
        self.pages.lock().unwrap().clone()
    }
    fn page(&self, url: &str) -> Option<Page> {
        self.pages().into_iter().find(|p| p.url == url)
    }
    fn failures(&self) -> Vec<Failed> {
        self.failures.lock().unwrap().clone()
    }
}

/// Makes the given requests, records what reaches `parse` and the `record` errback, and
/// answers `attr` from a table.
struct Probe {
    requests: Vec<Request>,
    attrs: HashMap<String, Value>,
    seen: Seen,
}

impl Probe {
    fn new(requests: Vec<Request>) -> Probe {
        Probe {
            requests,
            attrs: HashMap::new(),
            seen: Seen::default(),
        }
    }

    fn attr(mut self, name: &str, value: Value) -> Probe {
        self.attrs.insert(name.to_string(), value);
        self
    }
}

/// This spider's callbacks: pages go to `parse`, failures to `record`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Cb {
    Parse,
    Record,
}

#[async_trait(?Send)]
impl Spider for Probe {
    type Callback = Cb;

    fn name(&self) -> &str {
        "mw_probe"
    }

    fn start(self: Arc<Self>) -> Start {
        start_from_iter(self.requests.clone().into_iter().map(Ok::<_, SpiderError>))
    }

    fn attr(&self, name: &str) -> Option<Value> {
        self.attrs.get(name).cloned()
    }

    async fn parse(&self, response: &Response) -> CallbackResult {
        self.seen.pages.lock().unwrap().push(Page {
            url: response.url.to_string(),
            status: response.status,
            meta: response.meta().clone(),
        });
        Ok(Output::new().with_item(json!({ "url": response.url.as_str() })))
    }

    async fn errback(&self, eb: Cb, failure: &Failure) -> CallbackResult {
        if !matches!(eb, Cb::Record) {
            return Err(SpiderError::unknown_callback(&format!("{eb:?}")));
        }
        self.seen.failures.lock().unwrap().push(Failed {
            url: failure.request.url.to_string(),
            kind: failure.kind().to_string(),
            status: failure.response().map(|r| r.status),
        });
        Ok(Output::new())
    }
}

fn settings() -> Settings {
    Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false)
}

/// Runs the crawl; returns the stats and what the spider saw.
async fn crawl(spider: Probe, settings: Settings) -> (StatsMap, Seen) {
    capture_logs();
    let seen = spider.seen.clone();
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

fn get(url: String) -> Request {
    Request::get(url).expect("valid URL")
}

fn post(url: String) -> Request {
    Request::new(Method::POST, url)
        .expect("valid URL")
        .body("a=1&b=2")
        .header("Content-Type", "application/x-www-form-urlencoded")
}

/// A port on 127.0.0.1 that nobody listens on (bound, then released).
fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("bound address").port()
}

// --- redirects ----------------------------------------------------------------------------

/// A 301 → 302 → 307 → 308 chain is followed, and the final response records every URL and
/// status on the way.
#[actix::test]
async fn redirect_chain_is_followed_and_recorded() {
    let server = Stateful::start();
    let start = "/r/301/r/302/r/307/r/308/final";
    let spider = Probe::new(vec![get(server.url(start)).dont_filter(true)]);
    let (stats, seen) = crawl(spider, settings()).await;

    assert_eq!(
        server.paths(),
        [
            start,
            "/r/302/r/307/r/308/final",
            "/r/307/r/308/final",
            "/r/308/final",
            "/final"
        ]
    );
    let pages = seen.pages();
    assert_eq!(pages.len(), 1, "only the final page is parsed: {pages:#?}");
    let page = &pages[0];
    assert_eq!(page.url, server.url("/final"));
    assert_eq!(page.status, 200);
    assert_eq!(
        page.meta["redirect_urls"],
        json!([
            server.url(start),
            server.url("/r/302/r/307/r/308/final"),
            server.url("/r/307/r/308/final"),
            server.url("/r/308/final"),
        ])
    );
    assert_eq!(page.meta["redirect_reasons"], json!([301, 302, 307, 308]));
    assert_eq!(page.meta["redirect_times"], 4);
    assert_eq!(page.meta["redirect_ttl"], 16);
    assert_eq!(stat(&stats, "item_scraped_count"), 1);
    assert!(logged(
        log::Level::Debug,
        &[&format!(
            "Redirecting (301) to <GET {}> from <GET {}>",
            server.url("/r/302/r/307/r/308/final"),
            server.url(start)
        )]
    ));
}

/// A redirected request keeps the original's `dont_filter`: two redirects to one URL fetch
/// it once when the originals may be filtered.
#[actix::test]
async fn redirected_requests_keep_dont_filter() {
    let server = Stateful::start();
    let spider = Probe::new(vec![
        get(server.url("/r/302/shared")),
        get(server.url("/r/301/shared")),
        get(server.url("/r/302/twice")).dont_filter(true),
        get(server.url("/r/301/twice")).dont_filter(true),
    ]);
    let (stats, _) = crawl(spider, settings()).await;
    assert_eq!(server.hits("/shared").len(), 1, "{:?}", server.paths());
    assert_eq!(server.hits("/twice").len(), 2, "{:?}", server.paths());
    assert_eq!(stat(&stats, "dupefilter/filtered"), 1, "{stats:#?}");
}

/// A redirect loop stops after `REDIRECT_MAX_TIMES` redirections with a logged, counted
/// `IgnoreRequest` that reaches the errback.
#[actix::test]
async fn redirect_loop_stops_at_max_times() {
    let server = Stateful::start();
    let url = server.url("/loop");
    let spider = Probe::new(vec![get(url.clone()).dont_filter(true).errback(Cb::Record)]);
    let (stats, seen) = crawl(spider, settings().with("REDIRECT_MAX_TIMES", 3)).await;

    assert_eq!(
        server.hits("/loop").len(),
        4,
        "the request and 3 redirections"
    );
    assert!(seen.pages().is_empty());
    let failures = seen.failures();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0].kind, "IgnoreRequest");
    assert_eq!(failures[0].url, url);
    assert_eq!(stat(&stats, "redirect/max_reached"), 1, "{stats:#?}");
    // As in Scrapy, an IgnoreRequest from process_response is no download exception.
    assert_eq!(
        stat(&stats, "downloader/exception_type_count/IgnoreRequest"),
        0
    );
    assert!(logged(
        log::Level::Debug,
        &[&format!("Discarding <GET {url}>: max redirections reached")]
    ));
}

/// POST redirects follow Scrapy's rules: 303, 302 and 301 become a GET without body or
/// `Content-Type`; 307 and 308 repeat the POST with its body; a HEAD stays a HEAD.
#[actix::test]
async fn post_redirects_follow_scrapy_method_rules() {
    let server = Stateful::start();
    let mut requests: Vec<Request> = [303, 302, 301, 307, 308]
        .into_iter()
        .map(|code| post(server.url(&format!("/r/{code}/got{code}"))))
        .collect();
    requests.push(Request::new(Method::HEAD, server.url("/r/302/gothead")).expect("valid URL"));
    let (_, seen) = crawl(Probe::new(requests), settings()).await;

    for code in [303, 302, 301] {
        let origin = server.hits(&format!("/r/{code}/got{code}"));
        assert_eq!(origin[0].method, "POST");
        assert_eq!(origin[0].body, b"a=1&b=2");
        let hits = server.hits(&format!("/got{code}"));
        assert_eq!(hits.len(), 1, "{code}: {:?}", server.paths());
        assert_eq!(hits[0].method, "GET", "{code}");
        assert!(hits[0].body.is_empty(), "{code}: body {:?}", hits[0].body);
        assert_eq!(hits[0].header("content-type"), None, "{code}");
    }
    for code in [307, 308] {
        let hits = server.hits(&format!("/got{code}"));
        assert_eq!(hits.len(), 1, "{code}: {:?}", server.paths());
        assert_eq!(hits[0].method, "POST", "{code}");
        assert_eq!(hits[0].body, b"a=1&b=2", "{code}");
        assert_eq!(
            hits[0].header("content-type"),
            Some("application/x-www-form-urlencoded"),
            "{code}"
        );
    }
    let head = server.hits("/gothead");
    assert_eq!(head.len(), 1);
    assert_eq!(head[0].method, "HEAD");
    assert_eq!(seen.pages().len(), 6);
}

/// With `dont_redirect` the 3xx is not followed and, as in Scrapy, the HttpError spider
/// middleware hands it to the errback; `handle_httpstatus_list` gives it to the callback.
#[actix::test]
async fn dont_redirect_leaves_the_response_to_the_spider() {
    let server = Stateful::start();
    let spider = Probe::new(vec![
        get(server.url("/r/302/never"))
            .meta("dont_redirect", true)
            .errback(Cb::Record),
        get(server.url("/r/302/never2")).meta("handle_httpstatus_list", json!([302])),
    ]);
    let (stats, seen) = crawl(spider, settings()).await;

    assert!(server.hits("/never").is_empty());
    assert!(server.hits("/never2").is_empty());
    let failures = seen.failures();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0].kind, "HttpError");
    assert_eq!(failures[0].status, Some(302));
    let pages = seen.pages();
    assert_eq!(pages.len(), 1, "{pages:#?}");
    assert_eq!(pages[0].url, server.url("/r/302/never2"));
    assert_eq!(pages[0].status, 302);
    assert_eq!(stat(&stats, "redirect/max_reached"), 0);
}

// --- retries ------------------------------------------------------------------------------

/// A server failing twice with 503 then succeeding is retried and the page is scraped.
#[actix::test]
async fn flaky_server_is_retried_until_it_succeeds() {
    let server = Stateful::start();
    let spider = Probe::new(vec![get(server.url("/flaky/2/a"))]);
    let (stats, seen) = crawl(spider, settings()).await;

    assert_eq!(server.hits("/flaky/2/a").len(), 3);
    let page = seen.page(&server.url("/flaky/2/a")).expect("page parsed");
    assert_eq!(page.status, 200);
    assert_eq!(page.meta["retry_times"], 2);
    assert_eq!(stat(&stats, "item_scraped_count"), 1);
    assert_eq!(stat(&stats, "retry/count"), 2, "{stats:#?}");
    assert_eq!(
        stat(&stats, "retry/reason_count/503 Service Unavailable"),
        2,
        "{stats:#?}"
    );
    assert_eq!(stat(&stats, "retry/max_reached"), 0);
    assert!(logged(
        log::Level::Debug,
        &[&format!(
            "Retrying <GET {}> (failed 2 times): 503 Service Unavailable",
            server.url("/flaky/2/a")
        )]
    ));
}

/// A server that always fails is given up after `RETRY_TIMES` retries; `max_retry_times`
/// and `dont_retry` in meta override it.
#[actix::test]
async fn retry_gives_up_after_retry_times() {
    let server = Stateful::start();
    let url = server.url("/always/503");
    let spider = Probe::new(vec![
        get(url.clone()).errback(Cb::Record),
        get(server.url("/always/500")).meta("max_retry_times", 0),
        get(server.url("/always/502")).meta("dont_retry", true),
    ]);
    let (stats, seen) = crawl(spider, settings().with("RETRY_TIMES", 2)).await;

    assert_eq!(server.hits("/always/503").len(), 3);
    assert_eq!(server.hits("/always/500").len(), 1);
    assert_eq!(server.hits("/always/502").len(), 1);
    assert_eq!(stat(&stats, "retry/count"), 2, "{stats:#?}");
    // /always/503 after its two retries, and /always/500 at once; dont_retry counts nothing.
    assert_eq!(stat(&stats, "retry/max_reached"), 2, "{stats:#?}");
    // The last response passed on to the HttpError middleware, then the errback.
    let failures = seen.failures();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(
        (failures[0].kind.as_str(), failures[0].status),
        ("HttpError", Some(503))
    );
    assert!(logged(
        log::Level::Error,
        &[&format!(
            "Gave up retrying <GET {url}> (failed 3 times): 503 Service Unavailable"
        )]
    ));
}

/// A refused connection is retried `RETRY_TIMES` times, then reaches the errback.
#[actix::test]
async fn connection_refused_is_retried() {
    let url = format!("http://127.0.0.1:{}/down", refused_port());
    let spider = Probe::new(vec![get(url.clone()).errback(Cb::Record)]);
    let (stats, seen) = crawl(spider, settings().with("RETRY_TIMES", 2)).await;

    assert_eq!(stat(&stats, "retry/count"), 2, "{stats:#?}");
    assert_eq!(
        stat(&stats, "retry/reason_count/ConnectionRefusedError"),
        2,
        "{stats:#?}"
    );
    assert_eq!(stat(&stats, "retry/max_reached"), 1);
    assert_eq!(
        stat(
            &stats,
            "downloader/exception_type_count/ConnectionRefusedError"
        ),
        3,
        "every attempt is a download exception: {stats:#?}"
    );
    let failures = seen.failures();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0].kind, "ConnectionRefusedError");
    for n in 1..=2 {
        assert!(logged(
            log::Level::Debug,
            &[&format!("Retrying <GET {url}> (failed {n} times)")]
        ));
    }
    assert!(logged(
        log::Level::Error,
        &[&format!("Gave up retrying <GET {url}> (failed 3 times)")]
    ));
}

/// `RETRY_ENABLED=false`: one request, no retry stats.
#[actix::test]
async fn retry_disabled_makes_one_request() {
    let server = Stateful::start();
    let spider = Probe::new(vec![get(server.url("/always/503"))]);
    let (stats, _) = crawl(spider, settings().with("RETRY_ENABLED", false)).await;
    assert_eq!(server.hits("/always/503").len(), 1);
    assert!(!stats.keys().any(|k| k.starts_with("retry/")), "{stats:#?}");
}

// --- request headers ----------------------------------------------------------------------

fn header_site() -> Site {
    Site::html_pages([
        ("/a", "<html><head><title>A</title></head></html>"),
        ("/b", "<html><head><title>B</title></head></html>"),
        (
            "/private",
            "<html><head><title>Private</title></head></html>",
        ),
    ])
}

/// The server sees `USER_AGENT` and `DEFAULT_REQUEST_HEADERS`; a request's own headers win;
/// every request gets meta `download_timeout` from `DOWNLOAD_TIMEOUT`.
#[actix::test]
async fn user_agent_and_default_headers_are_sent() {
    let server = FixtureServer::start(header_site());
    let spider = Probe::new(vec![
        get(server.url("/a")),
        get(server.url("/b"))
            .header("User-Agent", "Mine/1.0")
            .header("Accept", "text/plain")
            .meta("download_timeout", 30),
    ]);
    let (_, seen) = crawl(spider, settings()).await;

    let defaults = Settings::new();
    let log = server.log();
    let a = log.iter().find(|e| e.path == "/a").expect("/a fetched");
    assert_eq!(
        a.header("user-agent"),
        Some(defaults.get_str("USER_AGENT").as_str())
    );
    assert!(a.header("user-agent").unwrap().starts_with("Arachne/"));
    assert_eq!(
        a.header("accept"),
        Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
    );
    assert_eq!(a.header("accept-language"), Some("en"));
    let b = log.iter().find(|e| e.path == "/b").expect("/b fetched");
    assert_eq!(b.header("user-agent"), Some("Mine/1.0"));
    assert_eq!(b.header("accept"), Some("text/plain"));
    assert_eq!(b.header("accept-language"), Some("en"));

    let a = seen.page(&server.url("/a")).expect("/a parsed");
    assert_eq!(a.meta["download_timeout"], 180.0);
    let b = seen.page(&server.url("/b")).expect("/b parsed");
    assert_eq!(b.meta["download_timeout"], 30);
}

/// The spider's `user_agent` and `download_timeout` attributes win over the settings.
#[actix::test]
async fn spider_attributes_override_settings() {
    let server = FixtureServer::start(header_site());
    let spider = Probe::new(vec![get(server.url("/a"))])
        .attr("user_agent", json!("SpiderBot/2.0"))
        .attr("download_timeout", json!(7));
    let (_, seen) = crawl(spider, settings().with("USER_AGENT", "FromSettings/1")).await;
    let log = server.log();
    assert_eq!(log[0].header("user-agent"), Some("SpiderBot/2.0"));
    let a = seen.page(&server.url("/a")).expect("/a parsed");
    assert_eq!(a.meta["download_timeout"], 7.0);
}

/// With UserAgentMiddleware and DefaultHeadersMiddleware disabled, none of their headers
/// is sent (the HTTP client adds no User-Agent of its own).
#[actix::test]
async fn disabled_header_middlewares_send_nothing() {
    let server = FixtureServer::start(header_site());
    let spider = Probe::new(vec![get(server.url("/a"))]);
    let s = settings().with(
        "DOWNLOADER_MIDDLEWARES",
        json!({"UserAgentMiddleware": null, "DefaultHeadersMiddleware": null}),
    );
    let (_, seen) = crawl(spider, s).await;
    let log = server.log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].header("user-agent"), None, "{:?}", log[0].headers);
    assert_eq!(log[0].header("accept-language"), None);
    assert_eq!(seen.pages().len(), 1);
}

/// HttpAuth sends `Authorization` to `http_auth_domain` only — not to another host, not
/// after a redirect to another host — and leaves a request's own header alone.
#[actix::test]
async fn http_auth_goes_to_its_domain_only() {
    let server = FixtureServer::start_on(&["127.0.0.1", "127.0.0.2"], header_site());
    let other = server.url_on("127.0.0.2", "/private?via=redirect");
    let spider = Probe::new(vec![
        get(server.url_on("127.0.0.1", "/private")),
        get(server.url_on("127.0.0.2", "/private")),
        get(server.url_on("127.0.0.1", &format!("/redirect?to={other}"))),
        get(server.url_on("127.0.0.1", "/private?own=1")).header("Authorization", "Bearer mine"),
    ])
    .attr("http_user", json!("user"))
    .attr("http_pass", json!("pass"))
    .attr("http_auth_domain", json!("127.0.0.1"));
    let (_, seen) = crawl(spider, settings()).await;

    let log = server.log();
    let find = |host: &str, path: &str| {
        log.iter()
            .find(|e| e.host == host && e.path == path)
            .unwrap_or_else(|| panic!("{host}{path} not fetched: {log:#?}"))
    };
    let basic = Some("Basic dXNlcjpwYXNz");
    assert_eq!(find("127.0.0.1", "/private").header("authorization"), basic);
    let redirect = log
        .iter()
        .find(|e| e.path.starts_with("/redirect?to="))
        .expect("redirect fetched");
    assert_eq!(redirect.header("authorization"), basic);
    assert_eq!(find("127.0.0.2", "/private").header("authorization"), None);
    assert_eq!(
        find("127.0.0.2", "/private?via=redirect").header("authorization"),
        None
    );
    assert_eq!(
        find("127.0.0.1", "/private?own=1").header("authorization"),
        Some("Bearer mine")
    );
    assert_eq!(seen.pages().len(), 4);
}

// --- meta refresh and AJAX crawlable pages ------------------------------------------------

/// A page with a meta refresh below `METAREFRESH_MAXDELAY` is followed and recorded like a
/// redirect; one at the maximum delay is parsed as it is.
#[actix::test]
async fn meta_refresh_is_followed() {
    let server = FixtureServer::start(Site::html_pages([
        (
            "/refresh",
            r#"<html><head><meta http-equiv="refresh" content="1; url=/target"></head></html>"#,
        ),
        (
            "/slow-refresh",
            r#"<html><head><meta http-equiv="refresh" content="100; url=/never"></head></html>"#,
        ),
        ("/target", "<html><head><title>Target</title></head></html>"),
    ]));
    let spider = Probe::new(vec![
        get(server.url("/refresh")),
        get(server.url("/slow-refresh")),
    ]);
    let (_, seen) = crawl(spider, settings()).await;

    let fetched = server.fetched_paths();
    assert!(fetched.contains("/target"), "{fetched:?}");
    assert!(!fetched.contains("/never"), "{fetched:?}");
    assert!(seen.page(&server.url("/refresh")).is_none());
    let target = seen.page(&server.url("/target")).expect("/target parsed");
    assert_eq!(
        target.meta["redirect_urls"],
        json!([server.url("/refresh")])
    );
    assert_eq!(target.meta["redirect_reasons"], json!(["meta refresh"]));
    assert!(seen.page(&server.url("/slow-refresh")).is_some());
    assert!(logged(
        log::Level::Debug,
        &[&format!(
            "Redirecting (meta refresh) to <GET {}> from <GET {}>",
            server.url("/target"),
            server.url("/refresh")
        )]
    ));
}

/// With `AJAXCRAWL_ENABLED`, a page declaring `<meta name="fragment" content="!">` is
/// fetched again as its `_escaped_fragment_` variant, which is what the spider parses.
#[actix::test]
async fn ajax_crawlable_page_is_fetched_as_escaped_fragment() {
    let server = FixtureServer::start(Site::html_pages([(
        "/app",
        r#"<html><head><meta name="fragment" content="!"></head><body>app</body></html>"#,
    )]));
    let spider = Probe::new(vec![get(server.url("/app"))]);
    let (_, seen) = crawl(spider, settings().with("AJAXCRAWL_ENABLED", true)).await;

    let fetched = server.fetched_paths();
    assert!(fetched.contains("/app?_escaped_fragment_="), "{fetched:?}");
    let pages = seen.pages();
    assert_eq!(pages.len(), 1, "{pages:#?}");
    assert_eq!(pages[0].url, server.url("/app?_escaped_fragment_="));
    assert_eq!(pages[0].meta["ajax_crawlable"], true);
}

//! Acceptance 7 (issue 3): `HttpCacheMiddleware` against real local servers. With
//! `HTTPCACHE_ENABLED`, a second crawl of the same site makes no request to the server
//! and yields the same items; `HTTPCACHE_IGNORE_HTTP_CODES` responses are not cached;
//! entries expire after `HTTPCACHE_EXPIRATION_SECS`; `HTTPCACHE_IGNORE_MISSING` and meta
//! `dont_cache` work; under `RFC2616Policy`, `Cache-Control: no-store` is not cached,
//! `max-age` is respected and a stale entry is revalidated with `If-None-Match` (a 304
//! gives the cached page back).

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use arachne::prelude::*;
use arachne::stats::StatsMap;
use serde_json::{json, Value};
use support::server::FixtureServer;
use support::site::Site;

// --- the spider ---------------------------------------------------------------------------

/// One scraped page.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Page {
    url: String,
    status: u16,
    title: String,
    body: String,
}

/// What the spider saw.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// Items yielded.
    items: Arc<Mutex<Vec<Page>>>,
    /// URLs whose response came flagged `cached`.
    cached: Arc<Mutex<BTreeSet<String>>>,
    /// URL → failure kind the errback got.
    failed: Arc<Mutex<Vec<(String, String)>>>,
}

/// Starts from a list of requests and follows same-host links.
struct CacheSpider {
    start: Vec<Request>,
    seen: Seen,
}

/// This spider's callbacks: pages go to `parse`, failures to `record`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Cb {
    Parse,
    Record,
}

#[async_trait(?Send)]
impl Spider for CacheSpider {
    type Callback = Cb;

    fn name(&self) -> &str {
        "cache"
    }

    fn start(self: Arc<Self>) -> Start {
        let requests: Vec<_> = self
            .start
            .iter()
            .cloned()
            .map(Ok::<_, SpiderError>)
            .collect();
        start_from_iter(requests)
    }

    async fn parse(&self, response: &Response) -> CallbackResult {
        if response.flags.iter().any(|f| f == "cached") {
            self.seen
                .cached
                .lock()
                .unwrap()
                .insert(response.url.to_string());
        }
        let page = Page {
            url: response.url.to_string(),
            status: response.status,
            title: response.css("title::text")?.getall().concat(),
            body: response.text().into_owned(),
        };
        self.seen.items.lock().unwrap().push(page.clone());
        let mut out = Output::new().with_item(json!({ "url": page.url, "title": page.title }));
        for href in response.css("a::attr(href)")?.getall() {
            let next = response.follow(&href)?;
            if next.url.host_str() == response.url.host_str() {
                out.request(next);
            }
        }
        Ok(out)
    }

    async fn errback(&self, _: Cb, failure: &Failure) -> CallbackResult {
        self.seen
            .failed
            .lock()
            .unwrap()
            .push((failure.request.url.to_string(), failure.kind().to_string()));
        Ok(Output::new())
    }
}

fn settings(dir: &Path, extra: &[(&str, Value)]) -> Settings {
    let mut s = Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false)
        .with("HTTPCACHE_ENABLED", true)
        .with("HTTPCACHE_DIR", dir.to_str().unwrap());
    for (k, v) in extra {
        s = s.with(k, v.clone());
    }
    s
}

/// Crawls from `start` to the end; returns the stats and what the spider saw.
async fn crawl(start: Vec<Request>, settings: Settings) -> (StatsMap, Seen) {
    let seen = Seen::default();
    let spider = CacheSpider {
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

fn get(url: String) -> Request {
    Request::get(url).unwrap().errback(Cb::Record)
}

fn stat(stats: &StatsMap, key: &str) -> u64 {
    stats.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn sorted_items(seen: &Seen) -> Vec<Page> {
    let mut items = seen.items.lock().unwrap().clone();
    items.sort();
    items
}

// --- tests --------------------------------------------------------------------------------

/// A second crawl of a whole site is served from the cache: the server sees no request
/// at all, and the spider yields the same items, every response flagged `cached`.
#[actix::test]
async fn second_crawl_makes_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::random(25, 3, 7);
    let reachable = site.reachable();
    let server = FixtureServer::start(site);
    let start = || vec![get(server.url("/p/0"))];

    let (stats1, seen1) = crawl(start(), settings(dir.path(), &[])).await;
    let requests_after_first = server.log().len();
    assert_eq!(server.fetched_paths(), reachable);
    assert_eq!(
        stat(&stats1, "httpcache/miss"),
        reachable.len() as u64,
        "{stats1:#?}"
    );
    assert_eq!(
        stat(&stats1, "httpcache/store"),
        reachable.len() as u64,
        "{stats1:#?}"
    );
    assert_eq!(stat(&stats1, "httpcache/hit"), 0);
    assert!(seen1.cached.lock().unwrap().is_empty());
    // Scrapy's layout: <dir>/<spider>/<fp[0:2]>/<fp>/{meta,response_body,...}.
    let first = Request::get(server.url("/p/0")).unwrap();
    let fp = arachne::http::fingerprint::to_hex(&first.fingerprint());
    let entry = dir.path().join("cache").join(&fp[..2]).join(&fp);
    for file in [
        "meta",
        "response_headers",
        "response_body",
        "request_headers",
        "request_body",
    ] {
        assert!(
            entry.join(file).is_file(),
            "{} missing",
            entry.join(file).display()
        );
    }
    let meta: Value = serde_json::from_slice(&std::fs::read(entry.join("meta")).unwrap()).unwrap();
    assert_eq!(meta["url"], server.url("/p/0"));
    assert_eq!(meta["status"], 200);

    let (stats2, seen2) = crawl(start(), settings(dir.path(), &[])).await;
    assert_eq!(
        server.log().len(),
        requests_after_first,
        "the second crawl reached the server"
    );
    assert_eq!(sorted_items(&seen1), sorted_items(&seen2));
    assert_eq!(seen2.items.lock().unwrap().len(), reachable.len());
    assert_eq!(seen2.cached.lock().unwrap().len(), reachable.len());
    assert_eq!(
        stat(&stats2, "httpcache/hit"),
        reachable.len() as u64,
        "{stats2:#?}"
    );
    assert_eq!(stat(&stats2, "httpcache/miss"), 0, "{stats2:#?}");
    assert_eq!(
        stat(&stats2, "item_scraped_count"),
        stat(&stats1, "item_scraped_count")
    );
}

/// Statuses in `HTTPCACHE_IGNORE_HTTP_CODES` are not stored: the second crawl asks
/// the server for them again, and only for them.
#[actix::test]
async fn ignored_http_codes_are_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let server = FixtureServer::start(Site::html_pages([(
        "/ok",
        "<html><title>ok</title></html>",
    )]));
    let start = || {
        vec![
            get(server.url("/ok")),
            get(server.url("/status/404")),
            get(server.url("/status/503")),
        ]
    };
    let extra = [
        ("HTTPCACHE_IGNORE_HTTP_CODES", json!([404, 503])),
        ("RETRY_ENABLED", json!(false)),
    ];
    let (stats, _) = crawl(start(), settings(dir.path(), &extra)).await;
    assert_eq!(stat(&stats, "httpcache/store"), 1, "{stats:#?}");
    assert_eq!(stat(&stats, "httpcache/uncacheable"), 2, "{stats:#?}");
    let before = server.log().len();

    let (stats, seen) = crawl(start(), settings(dir.path(), &extra)).await;
    let again: Vec<String> = server.log()[before..]
        .iter()
        .map(|e| e.path.clone())
        .collect();
    let again: BTreeSet<String> = again.into_iter().collect();
    assert_eq!(
        again,
        BTreeSet::from(["/status/404".to_string(), "/status/503".to_string()])
    );
    assert_eq!(stat(&stats, "httpcache/hit"), 1, "{stats:#?}");
    assert_eq!(
        *seen.cached.lock().unwrap(),
        BTreeSet::from([server.url("/ok")])
    );
}

/// With `HTTPCACHE_EXPIRATION_SECS` = 1, an entry 1.2 s old is refetched.
#[actix::test]
async fn expired_entries_are_refetched() {
    let dir = tempfile::tempdir().unwrap();
    let server = FixtureServer::start(Site::html_pages([(
        "/page",
        "<html><title>page</title></html>",
    )]));
    let extra = [("HTTPCACHE_EXPIRATION_SECS", json!(1))];
    crawl(vec![get(server.url("/page"))], settings(dir.path(), &extra)).await;
    assert_eq!(server.log().len(), 1);

    actix_rt::time::sleep(Duration::from_millis(1200)).await;
    let (stats, seen) = crawl(vec![get(server.url("/page"))], settings(dir.path(), &extra)).await;
    assert_eq!(server.log().len(), 2, "the expired entry was not refetched");
    assert_eq!(stat(&stats, "httpcache/miss"), 1, "{stats:#?}");
    assert!(seen.cached.lock().unwrap().is_empty());

    // Stored again: an immediate third crawl is served from the cache.
    let (stats, _) = crawl(vec![get(server.url("/page"))], settings(dir.path(), &extra)).await;
    assert_eq!(server.log().len(), 2);
    assert_eq!(stat(&stats, "httpcache/hit"), 1, "{stats:#?}");
}

/// `HTTPCACHE_IGNORE_MISSING` turns a miss into an ignored request (errback gets
/// `IgnoreRequest`, the server sees nothing); meta `dont_cache` bypasses the cache.
#[actix::test]
async fn ignore_missing_and_dont_cache() {
    let dir = tempfile::tempdir().unwrap();
    let server = FixtureServer::start(Site::html_pages([
        ("/a", "<html><title>a</title></html>"),
        ("/b", "<html><title>b</title></html>"),
    ]));
    let extra = [("HTTPCACHE_IGNORE_MISSING", json!(true))];
    let (stats, seen) = crawl(vec![get(server.url("/a"))], settings(dir.path(), &extra)).await;
    assert!(server.log().is_empty());
    assert_eq!(
        *seen.failed.lock().unwrap(),
        vec![(server.url("/a"), "IgnoreRequest".to_string())]
    );
    assert_eq!(stat(&stats, "httpcache/ignore"), 1, "{stats:#?}");

    // Fill the cache, then a dont_cache request goes to the server all the same.
    crawl(vec![get(server.url("/b"))], settings(dir.path(), &[])).await;
    assert_eq!(server.log().len(), 1);
    let bypass = get(server.url("/b")).meta("dont_cache", true);
    let (_, seen) = crawl(vec![bypass], settings(dir.path(), &extra)).await;
    assert_eq!(server.log().len(), 2);
    assert!(seen.cached.lock().unwrap().is_empty());
    assert_eq!(seen.items.lock().unwrap().len(), 1);
}

// --- RFC2616Policy, against a server that sends cache headers -----------------------------

/// One request the server saw: path and `If-None-Match`.
type Seen304 = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A server on its own thread: `/fresh` (max-age=3600), `/nostore` (no-store),
/// `/plain` (no cache headers at all), `/short` (max-age=1, ETag "v1"; answers 304 to
/// `If-None-Match: "v1"`).
struct CacheHeadersServer {
    port: u16,
    log: Seen304,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn cache_headers_page(req: HttpRequest, log: Seen304) -> HttpResponse {
    let inm = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let path = req.path().to_string();
    log.lock().unwrap().push((path.clone(), inm.clone()));
    let page =
        |title: &str| format!("<html><title>{title}</title><body>{title} body</body></html>");
    match path.as_str() {
        "/fresh" => HttpResponse::Ok()
            .insert_header(("Cache-Control", "public, max-age=3600"))
            .content_type("text/html")
            .body(page("fresh")),
        "/nostore" => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store, max-age=3600"))
            .content_type("text/html")
            .body(page("nostore")),
        "/short" if inm.as_deref() == Some("\"v1\"") => HttpResponse::NotModified()
            .insert_header(("Cache-Control", "max-age=1"))
            .insert_header(("ETag", "\"v1\""))
            .finish(),
        "/short" => HttpResponse::Ok()
            .insert_header(("Cache-Control", "max-age=1"))
            .insert_header(("ETag", "\"v1\""))
            .content_type("text/html")
            .body(page("short")),
        _ => HttpResponse::Ok()
            .content_type("text/html")
            .body(page("plain")),
    }
}

impl CacheHeadersServer {
    fn start() -> CacheHeadersServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log: Seen304 = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_log = log.clone();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let log = thread_log.clone();
                    App::new().default_service(web::to(move |req: HttpRequest| {
                        cache_headers_page(req, log.clone())
                    }))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener)
                .unwrap()
                .run();
                tx.send(server.handle()).unwrap();
                let _ = server.await;
            });
        });
        let handle = rx.recv().unwrap();
        CacheHeadersServer {
            port,
            log,
            handle,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn paths(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }
}

impl Drop for CacheHeadersServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn rfc2616(dir: &Path) -> Settings {
    settings(
        dir,
        &[(
            "HTTPCACHE_POLICY",
            json!("scrapy.extensions.httpcache.RFC2616Policy"),
        )],
    )
}

/// RFC2616Policy: a `max-age` response is served from the cache, `no-store` and a
/// response without expiration or validators are not stored.
#[actix::test]
async fn rfc2616_max_age_and_no_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = CacheHeadersServer::start();
    let start = || {
        vec![
            get(server.url("/fresh")),
            get(server.url("/nostore")),
            get(server.url("/plain")),
        ]
    };
    let (stats, _) = crawl(start(), rfc2616(dir.path())).await;
    assert_eq!(server.paths().len(), 3);
    assert_eq!(stat(&stats, "httpcache/store"), 1, "{stats:#?}");
    assert_eq!(stat(&stats, "httpcache/uncacheable"), 2, "{stats:#?}");

    let (stats, seen) = crawl(start(), rfc2616(dir.path())).await;
    let again: BTreeSet<String> = server.paths()[3..].iter().cloned().collect();
    assert_eq!(
        again,
        BTreeSet::from(["/nostore".to_string(), "/plain".to_string()])
    );
    assert_eq!(
        *seen.cached.lock().unwrap(),
        BTreeSet::from([server.url("/fresh")])
    );
    assert_eq!(stat(&stats, "httpcache/hit"), 1, "{stats:#?}");
}

/// RFC2616Policy: once `max-age` has passed, the entry is revalidated with its ETag;
/// the server's 304 makes the cached page the response.
#[actix::test]
async fn rfc2616_stale_entry_is_revalidated() {
    let dir = tempfile::tempdir().unwrap();
    let server = CacheHeadersServer::start();
    let (_, seen1) = crawl(vec![get(server.url("/short"))], rfc2616(dir.path())).await;
    assert_eq!(server.paths(), vec!["/short"]);

    actix_rt::time::sleep(Duration::from_millis(1200)).await;
    let (stats, seen2) = crawl(vec![get(server.url("/short"))], rfc2616(dir.path())).await;
    let log = server.log.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![
            ("/short".to_string(), None),
            ("/short".to_string(), Some("\"v1\"".to_string())),
        ]
    );
    assert_eq!(stat(&stats, "httpcache/revalidate"), 1, "{stats:#?}");
    // The spider got the cached 200 page, not the 304.
    assert_eq!(sorted_items(&seen1), sorted_items(&seen2));
    assert_eq!(seen2.items.lock().unwrap()[0].status, 200);
    assert!(seen2.items.lock().unwrap()[0].body.contains("short body"));
    assert_eq!(
        *seen2.cached.lock().unwrap(),
        BTreeSet::from([server.url("/short")])
    );
}

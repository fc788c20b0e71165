//! Acceptance 3 (issue 3): `RobotsTxtMiddleware` against real local servers. A
//! disallowed page is never requested (the server's log proves it), is counted in
//! `robotstxt/forbidden`, logged, and its errback gets an `IgnoreRequest` failure;
//! robots.txt is fetched exactly once per host, before any page of that host, even with
//! many concurrent requests; a 500 or a missing robots.txt allows all; a redirected
//! robots.txt is followed; `ROBOTSTXT_USER_AGENT` (else `USER_AGENT`) picks the group.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use arachne::prelude::*;
use arachne::stats::StatsMap;
use serde_json::{json, Value};
use support::logs::{capture_logs, logged};
use support::server::FixtureServer;
use support::site::Site;

// --- the spider ---------------------------------------------------------------------------

/// What the spider saw.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// URLs parsed.
    parsed: Arc<Mutex<BTreeSet<String>>>,
    /// URL → failure kind the errback got.
    failed: Arc<Mutex<BTreeMap<String, String>>>,
}

/// Requests a fixed list of URLs, each with the `record` errback.
struct ListSpider {
    urls: Vec<String>,
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
impl Spider for ListSpider {
    type Callback = Cb;

    fn name(&self) -> &str {
        "robots"
    }

    fn start(self: Arc<Self>) -> Start {
        let requests: Vec<_> = self
            .urls
            .iter()
            .map(|u| Ok::<_, SpiderError>(Request::get(u).unwrap().errback(Cb::Record)))
            .collect();
        start_from_iter(requests)
    }

    async fn parse(&self, response: &Response) -> CallbackResult {
        self.seen
            .parsed
            .lock()
            .unwrap()
            .insert(response.url.to_string());
        Ok(Output::new().with_item(json!({ "url": response.url.as_str() })))
    }

    async fn errback(&self, eb: Cb, failure: &Failure) -> CallbackResult {
        assert!(matches!(eb, Cb::Record), "{eb:?}");
        self.seen
            .failed
            .lock()
            .unwrap()
            .insert(failure.request.url.to_string(), failure.kind().to_string());
        Ok(Output::new())
    }
}

fn settings(extra: &[(&str, Value)]) -> Settings {
    let mut s = Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false)
        .with("ROBOTSTXT_OBEY", true);
    for (k, v) in extra {
        s = s.with(k, v.clone());
    }
    s
}

/// Crawls `urls` to the end; returns the stats and what the spider saw.
async fn crawl(urls: Vec<String>, settings: Settings) -> (StatsMap, Seen) {
    let seen = Seen::default();
    let spider = ListSpider {
        urls,
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

/// A site with a robots.txt and a few pages.
fn site(robots: Option<(u16, &str)>, pages: &[&str]) -> Site {
    let mut map: HashMap<String, (u16, String, Vec<u8>)> = pages
        .iter()
        .map(|p| {
            let html = format!("<html><head><title>{p}</title></head></html>");
            (
                p.to_string(),
                (200, "text/html; charset=utf-8".into(), html.into_bytes()),
            )
        })
        .collect();
    if let Some((status, body)) = robots {
        map.insert(
            "/robots.txt".into(),
            (status, "text/plain".into(), body.as_bytes().to_vec()),
        );
    }
    Site::Static(map)
}

/// How many times the server saw `path`.
fn hits(server: &FixtureServer, path: &str) -> usize {
    server.log().iter().filter(|e| e.path == path).count()
}

// --- tests --------------------------------------------------------------------------------

/// A disallowed page is never requested, is counted and logged, and its errback gets an
/// `IgnoreRequest` failure; the allowed page is crawled.
#[actix::test]
async fn disallowed_page_is_never_requested() {
    capture_logs();
    let server = FixtureServer::start(site(
        Some((200, "User-agent: *\nDisallow: /private\n")),
        &["/public", "/private/secret"],
    ));
    let urls = vec![server.url("/public"), server.url("/private/secret")];
    let (stats, seen) = crawl(urls, settings(&[])).await;

    assert_eq!(hits(&server, "/private/secret"), 0, "{:?}", server.log());
    assert_eq!(hits(&server, "/public"), 1);
    assert_eq!(hits(&server, "/robots.txt"), 1);
    assert_eq!(
        *seen.parsed.lock().unwrap(),
        BTreeSet::from([server.url("/public")])
    );
    assert_eq!(
        seen.failed
            .lock()
            .unwrap()
            .get(&server.url("/private/secret")),
        Some(&"IgnoreRequest".to_string())
    );
    assert_eq!(stat(&stats, "robotstxt/forbidden"), 1, "{stats:#?}");
    assert_eq!(stat(&stats, "robotstxt/request_count"), 1, "{stats:#?}");
    assert_eq!(stat(&stats, "robotstxt/response_count"), 1, "{stats:#?}");
    assert_eq!(
        stat(&stats, "robotstxt/response_status_count/200"),
        1,
        "{stats:#?}"
    );
    let shown = format!(
        "Forbidden by robots.txt: <GET {}>",
        server.url("/private/secret")
    );
    assert!(logged(log::Level::Debug, &[&shown]), "not logged: {shown}");
}

/// With 30 start URLs and 16 concurrent requests, robots.txt is downloaded exactly once,
/// every page request waits for it, and every disallowed page is left alone.
#[actix::test]
async fn robots_fetched_once_under_concurrency() {
    let pages: Vec<String> = (0..30).map(|i| format!("/p/{i}")).collect();
    let page_refs: Vec<&str> = pages.iter().map(String::as_str).collect();
    // Disallows /p/1 and /p/10 .. /p/19.
    let server = FixtureServer::start(site(
        Some((200, "User-agent: *\nDisallow: /p/1\n")),
        &page_refs,
    ));
    let urls = pages.iter().map(|p| server.url(p)).collect();
    let (stats, seen) = crawl(
        urls,
        settings(&[
            ("CONCURRENT_REQUESTS", json!(16)),
            ("CONCURRENT_REQUESTS_PER_DOMAIN", json!(16)),
        ]),
    )
    .await;

    let log = server.log();
    let robots: Vec<_> = log.iter().filter(|e| e.path == "/robots.txt").collect();
    assert_eq!(robots.len(), 1, "{log:#?}");
    for entry in log.iter().filter(|e| e.path != "/robots.txt") {
        assert!(
            entry.started >= robots[0].finished,
            "{} was requested before robots.txt was answered",
            entry.path
        );
    }
    let forbidden: BTreeSet<String> = pages
        .iter()
        .filter(|p| *p == "/p/1" || p.starts_with("/p/1"))
        .cloned()
        .collect();
    assert_eq!(forbidden.len(), 11);
    let fetched: BTreeSet<String> = log.iter().map(|e| e.path.clone()).collect();
    assert!(fetched.is_disjoint(&forbidden), "{fetched:?}");
    assert_eq!(fetched.len(), 30 - 11 + 1, "{fetched:?}");
    assert_eq!(seen.parsed.lock().unwrap().len(), 19);
    assert_eq!(seen.failed.lock().unwrap().len(), 11);
    assert_eq!(stat(&stats, "robotstxt/forbidden"), 11, "{stats:#?}");
    assert_eq!(stat(&stats, "robotstxt/request_count"), 1, "{stats:#?}");
}

/// A robots.txt answered with 500 allows everything, even when its body disallows all.
#[actix::test]
async fn server_error_robots_allows_all() {
    let server = FixtureServer::start(site(
        Some((500, "User-agent: *\nDisallow: /\n")),
        &["/a", "/b"],
    ));
    let urls = vec![server.url("/a"), server.url("/b")];
    let (stats, seen) = crawl(urls, settings(&[])).await;

    assert_eq!(seen.parsed.lock().unwrap().len(), 2, "{stats:#?}");
    assert_eq!(hits(&server, "/a"), 1);
    assert_eq!(hits(&server, "/b"), 1);
    // Retried like any 500 (RETRY_TIMES = 2): the middleware follows the rescheduled
    // requests and parses the final answer.
    assert_eq!(hits(&server, "/robots.txt"), 3);
    assert_eq!(stat(&stats, "robotstxt/forbidden"), 0, "{stats:#?}");
    assert_eq!(stat(&stats, "robotstxt/request_count"), 1, "{stats:#?}");
    assert_eq!(
        stat(&stats, "robotstxt/response_status_count/500"),
        1,
        "{stats:#?}"
    );
}

/// A missing robots.txt (404) allows everything.
#[actix::test]
async fn missing_robots_allows_all() {
    let server = FixtureServer::start(site(None, &["/a", "/b"]));
    let urls = vec![server.url("/a"), server.url("/b")];
    let (stats, seen) = crawl(urls, settings(&[])).await;

    assert_eq!(seen.parsed.lock().unwrap().len(), 2, "{stats:#?}");
    assert_eq!(hits(&server, "/robots.txt"), 1);
    assert_eq!(
        stat(&stats, "robotstxt/response_status_count/404"),
        1,
        "{stats:#?}"
    );
    assert_eq!(stat(&stats, "robotstxt/forbidden"), 0);
}

/// A robots.txt on a port nobody listens on: the download error is counted and logged,
/// and everything is allowed (the pages fail on their own, with a connection error).
#[actix::test]
async fn robots_download_error_allows_all() {
    capture_logs();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let urls = vec![format!("http://127.0.0.1:{port}/a")];
    let (stats, seen) = crawl(urls.clone(), settings(&[("RETRY_ENABLED", json!(false))])).await;

    assert_eq!(
        stat(&stats, "robotstxt/exception_count/ConnectionRefusedError"),
        1,
        "{stats:#?}"
    );
    assert_eq!(stat(&stats, "robotstxt/forbidden"), 0);
    // Not ignored by robots.txt: the page itself was tried and refused.
    assert_eq!(
        seen.failed.lock().unwrap().get(&urls[0]),
        Some(&"ConnectionRefusedError".to_string())
    );
    let shown = format!("Error downloading <GET http://127.0.0.1:{port}/robots.txt>");
    assert!(logged(log::Level::Error, &[&shown]), "not logged: {shown}");
}

const GROUPS: &str = "User-agent: *\nDisallow: /\n\nUser-agent: GoodBot\nDisallow: /private\n";

/// `ROBOTSTXT_USER_AGENT` picks the group whose token it contains.
#[actix::test]
async fn robotstxt_user_agent_picks_the_group() {
    let server = FixtureServer::start(site(Some((200, GROUPS)), &["/public", "/private"]));
    let urls = vec![server.url("/public"), server.url("/private")];
    let (stats, seen) = crawl(
        urls,
        settings(&[(
            "ROBOTSTXT_USER_AGENT",
            json!("Mozilla/5.0 (compatible; GoodBot/2.1)"),
        )]),
    )
    .await;
    assert_eq!(
        *seen.parsed.lock().unwrap(),
        BTreeSet::from([server.url("/public")])
    );
    assert_eq!(hits(&server, "/private"), 0);
    assert_eq!(stat(&stats, "robotstxt/forbidden"), 1);
}

/// Without `ROBOTSTXT_USER_AGENT`, `USER_AGENT` is matched: the default agent falls in
/// the `*` group (everything disallowed), a `USER_AGENT` of GoodBot in its own.
#[actix::test]
async fn user_agent_is_the_fallback() {
    let server = FixtureServer::start(site(Some((200, GROUPS)), &["/public", "/private"]));
    let urls = || vec![server.url("/public"), server.url("/private")];

    let (stats, seen) = crawl(urls(), settings(&[])).await;
    assert!(seen.parsed.lock().unwrap().is_empty());
    assert_eq!(stat(&stats, "robotstxt/forbidden"), 2);

    let (stats, seen) = crawl(urls(), settings(&[("USER_AGENT", json!("GoodBot/1.0"))])).await;
    assert_eq!(
        *seen.parsed.lock().unwrap(),
        BTreeSet::from([server.url("/public")])
    );
    assert_eq!(stat(&stats, "robotstxt/forbidden"), 1);
    assert_eq!(hits(&server, "/private"), 0);
    assert_eq!(hits(&server, "/public"), 1);
}

/// Requests with meta `dont_obey_robotstxt` are not checked.
#[actix::test]
async fn dont_obey_robotstxt_passes() {
    struct Bypass(String);
    #[async_trait(?Send)]
    impl Spider for Bypass {
        type Callback = DefaultCallback;

        fn name(&self) -> &str {
            "bypass"
        }
        fn start(self: Arc<Self>) -> Start {
            let r = Request::get(&self.0)
                .unwrap()
                .meta("dont_obey_robotstxt", true);
            start_from_iter(std::iter::once(Ok::<_, SpiderError>(r)))
        }
        async fn parse(&self, _: &Response) -> CallbackResult {
            Ok(Output::new())
        }
    }
    let server = FixtureServer::start(site(Some((200, "User-agent: *\nDisallow: /\n")), &["/x"]));
    let stats = Crawler::new(Bypass(server.url("/x")), settings(&[]))
        .run()
        .await
        .unwrap();
    assert_eq!(hits(&server, "/x"), 1);
    // Nothing needed robots.txt.
    assert_eq!(hits(&server, "/robots.txt"), 0);
    assert_eq!(stat(&stats, "robotstxt/request_count"), 0);
}

// --- a server that redirects robots.txt ---------------------------------------------------

/// A tiny server on its own thread: `/robots.txt` redirects to `/real-robots.txt`,
/// which disallows `/private`; everything else is a page. Records request paths.
struct RedirectingServer {
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RedirectingServer {
    fn start() -> RedirectingServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_log = log.clone();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let log = thread_log.clone();
                    App::new().default_service(web::to(move |req: HttpRequest| {
                        let log = log.clone();
                        async move {
                            let path = req.path().to_string();
                            log.lock().unwrap().push(path.clone());
                            match path.as_str() {
                                "/robots.txt" => HttpResponse::MovedPermanently()
                                    .insert_header(("Location", "/real-robots.txt"))
                                    .finish(),
                                "/real-robots.txt" => HttpResponse::Ok()
                                    .content_type("text/plain")
                                    .body("User-agent: *\nDisallow: /private\n"),
                                _ => HttpResponse::Ok()
                                    .content_type("text/html")
                                    .body("<html><title>page</title></html>"),
                            }
                        }
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
        RedirectingServer {
            port,
            log,
            handle,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self, path: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

impl Drop for RedirectingServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A redirected robots.txt is followed and its rules are obeyed.
#[actix::test]
async fn redirected_robots_is_followed() {
    let server = RedirectingServer::start();
    let urls = vec![server.url("/public"), server.url("/private")];
    let (stats, seen) = crawl(urls, settings(&[])).await;

    assert_eq!(server.hits("/robots.txt"), 1);
    assert_eq!(server.hits("/real-robots.txt"), 1);
    assert_eq!(server.hits("/private"), 0);
    assert_eq!(
        *seen.parsed.lock().unwrap(),
        BTreeSet::from([server.url("/public")])
    );
    assert_eq!(stat(&stats, "robotstxt/forbidden"), 1, "{stats:#?}");
    assert_eq!(stat(&stats, "robotstxt/request_count"), 1, "{stats:#?}");
    assert_eq!(
        stat(&stats, "robotstxt/response_status_count/200"),
        1,
        "{stats:#?}"
    );
}

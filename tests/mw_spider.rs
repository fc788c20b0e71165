//! Acceptance (middleware issue): offsite requests are filtered and counted,
//! `DEPTH_LIMIT` cuts the crawl at that depth, the `Referer` header is set; a
//! user-defined downloader middleware added through settings can short-circuit a
//! request with its own response, and one set to `None` in settings is not run.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arachne::error::DownloadError;
use arachne::middleware::downloader::{DownloaderMiddleware, RequestFlow};
use arachne::prelude::*;
use support::server::FixtureServer;
use support::site::Site;

/// Follows every link, one item per page with its depth.
struct Walk {
    start: String,
    domains: Vec<String>,
}

#[async_trait(?Send)]
impl Spider for Walk {
    type Callback = DefaultCallback;

    fn name(&self) -> &str {
        "walk"
    }
    fn allowed_domains(&self) -> Vec<String> {
        self.domains.clone()
    }
    fn start(self: Arc<Self>) -> Start {
        start_from_iter(std::iter::once(
            Request::get(&self.start).map_err(SpiderError::from),
        ))
    }
    async fn parse(&self, response: &Response) -> CallbackResult {
        let mut out = Output::new().with_item(serde_json::json!({
            "path": response.url.path(),
            "depth": response.request.depth(),
        }));
        for href in response.css("a::attr(href)")?.getall() {
            if let Ok(r) = response.follow(&href) {
                out.request(r);
            }
        }
        Ok(out)
    }
}

fn quiet() -> Settings {
    Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false)
}

/// Offsite links (another loopback host, `example.invalid`) are filtered and counted.
#[actix::test]
async fn offsite_filtered_and_counted() {
    let server = FixtureServer::start_on(&["127.0.0.1", "127.0.0.2"], Site::random(40, 4, 3));
    let other = server.url_on("127.0.0.2", "/p/1");
    let mut pages = std::collections::HashMap::new();
    let body = format!("<a href=\"{other}\">other host</a><a href=\"/p/0\">home</a>");
    pages.insert(
        "/entry".to_string(),
        (200, "text/html".to_string(), body.into_bytes()),
    );
    let entry_server = FixtureServer::start(Site::Static(pages));
    let stats = Crawler::new(
        Walk {
            start: entry_server.url("/entry"),
            domains: vec!["127.0.0.1".into()],
        },
        quiet(),
    )
    .run()
    .await
    .unwrap();
    assert!(
        server.log().iter().all(|e| e.host != "127.0.0.2"),
        "offsite host contacted"
    );
    assert_eq!(stats["offsite/filtered"], 1);
    assert_eq!(stats["offsite/domains"], 1);
}

/// A redirect from an allowed page to another host (a start request, and a link found
/// on a page) is refused in the downloader: never requested, counted as offsite.
#[actix::test]
async fn redirect_offsite_is_never_requested() {
    let server = FixtureServer::start_on(&["127.0.0.1", "127.0.0.2"], Site::random(10, 2, 5));
    let target = server.url_on("127.0.0.2", "/p/1");
    let escape = server.url_on("127.0.0.1", &format!("/redirect?to={target}"));
    let mut pages = std::collections::HashMap::new();
    let body = format!("<a href=\"{escape}&via=link\">moved</a>");
    pages.insert(
        "/entry".to_string(),
        (200, "text/html".to_string(), body.into_bytes()),
    );
    let entry_server = FixtureServer::start(Site::Static(pages));
    let stats = Crawler::new(
        Walk {
            start: entry_server.url("/entry"),
            domains: vec!["127.0.0.1".into()],
        },
        quiet(),
    )
    .run()
    .await
    .unwrap();
    assert_eq!(stats["finish_reason"], "finished");
    let log = server.log();
    assert!(
        log.iter().any(|e| e.path.starts_with("/redirect")),
        "the redirecting page was fetched: {log:#?}"
    );
    assert!(
        log.iter().all(|e| e.host != "127.0.0.2"),
        "a redirect steered the crawl to another host: {log:#?}"
    );
    assert_eq!(stats["offsite/filtered"], 1, "{stats:#?}");
    assert_eq!(stats["offsite/domains"], 1, "{stats:#?}");
    assert_eq!(stats["item_scraped_count"], 1, "only /entry: {stats:#?}");
}

/// `DEPTH_LIMIT` = 2: nothing deeper than 2 is requested; everything within is.
#[actix::test]
async fn depth_limit_cuts_the_crawl() {
    let site = Site::random(200, 3, 21);
    let depths = site.depths();
    let server = FixtureServer::start(site);
    let stats = Crawler::new(
        Walk {
            start: server.url("/p/0"),
            domains: vec!["127.0.0.1".into()],
        },
        quiet()
            .with("DEPTH_LIMIT", 2)
            .with("DEPTH_STATS_VERBOSE", true),
    )
    .run()
    .await
    .unwrap();
    let fetched: BTreeSet<String> = server.log().iter().map(|e| e.path.clone()).collect();
    let within: BTreeSet<String> = depths
        .iter()
        .filter(|(_, d)| **d <= 2)
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(fetched, within);
    assert_eq!(stats["request_depth_max"], 2);
    assert!(stats["request_depth_count/2"].as_u64().unwrap() > 0);
}

/// The Referer header is the page the link was found on (and absent on the start request).
#[actix::test]
async fn referer_is_set() {
    let server = FixtureServer::start(Site::html_pages([
        ("/a", "<a href=\"/b\">b</a>"),
        ("/b", "<a href=\"/c#x\">c</a>"),
        ("/c", "end"),
    ]));
    Crawler::new(
        Walk {
            start: server.url("/a"),
            domains: vec![],
        },
        quiet(),
    )
    .run()
    .await
    .unwrap();
    let log = server.log();
    let referer = |path: &str| {
        log.iter()
            .find(|e| e.path == path)
            .and_then(|e| e.header("referer").map(String::from))
    };
    assert_eq!(referer("/a"), None);
    assert_eq!(referer("/b"), Some(server.url("/a")));
    assert_eq!(referer("/c"), Some(server.url("/b")));

    // `REFERER_ENABLED = false` sends none.
    let server = FixtureServer::start(Site::html_pages([
        ("/a", "<a href=\"/b\">b</a>"),
        ("/b", "end"),
    ]));
    Crawler::new(
        Walk {
            start: server.url("/a"),
            domains: vec![],
        },
        quiet().with("REFERER_ENABLED", false),
    )
    .run()
    .await
    .unwrap();
    assert!(server.log().iter().all(|e| e.header("referer").is_none()));
}

/// Answers `/fake*` requests itself and counts what it sees.
struct Faker(Arc<AtomicUsize>);

#[async_trait(?Send)]
impl DownloaderMiddleware for Faker {
    async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        if request.url.path().starts_with("/fake") {
            let body = "<title>made up</title><a href=\"/real\">real</a>";
            return Ok(RequestFlow::Respond(Response::new(
                request.clone(),
                200,
                body.into(),
            )));
        }
        Ok(RequestFlow::Continue)
    }
}

/// A user downloader middleware short-circuits requests with its own response; one
/// set to `None` is not run.
#[actix::test]
async fn user_downloader_middleware() {
    let server = FixtureServer::start(Site::html_pages([("/real", "<title>real</title>")]));
    let seen = Arc::new(AtomicUsize::new(0));
    let disabled = Arc::new(AtomicUsize::new(0));
    let (s1, s2) = (seen.clone(), disabled.clone());
    let stats = Crawler::new(
        Walk {
            start: server.url("/fake/1"),
            domains: vec![],
        },
        quiet().with(
            "DOWNLOADER_MIDDLEWARES",
            serde_json::json!({ "Faker": 543, "Disabled": null }),
        ),
    )
    .downloader_middleware("Faker", move |_| Ok(Some(Box::new(Faker(s1.clone())))))
    .downloader_middleware("Disabled", move |_| Ok(Some(Box::new(Faker(s2.clone())))))
    .run()
    .await
    .unwrap();
    let paths: Vec<String> = server.log().iter().map(|e| e.path.clone()).collect();
    assert_eq!(paths, ["/real"], "the fake page never reached the server");
    assert_eq!(stats["item_scraped_count"], 2);
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!(
        disabled.load(Ordering::SeqCst),
        0,
        "a middleware set to None ran"
    );
}

/// A spider middleware from settings sees the output; `SPIDER_MIDDLEWARES` null disables a built-in.
#[actix::test]
async fn spider_middlewares_from_settings() {
    let server = FixtureServer::start(Site::html_pages([(
        "/a",
        "<a href=\"http://example.invalid/\">x</a>",
    )]));
    // With Offsite disabled, the offsite request reaches the scheduler; the user
    // middleware drops it before the downloader would try.
    struct DropExternal;
    #[async_trait(?Send)]
    impl arachne::middleware::spider::SpiderMiddleware for DropExternal {
        async fn process_spider_output(
            &self,
            _: Option<&Response>,
            _: &Request,
            output: Vec<arachne::spider::OutputEntry>,
        ) -> Vec<arachne::spider::OutputEntry> {
            output
                .into_iter()
                .filter(|e| !matches!(e, arachne::spider::OutputEntry::Request(r) if r.url.host_str() == Some("example.invalid")))
                .collect()
        }
    }
    let stats = Crawler::new(
        Walk {
            start: server.url("/a"),
            domains: vec!["127.0.0.1".into()],
        },
        quiet().with(
            "SPIDER_MIDDLEWARES",
            serde_json::json!({ "OffsiteMiddleware": null, "DropExternal": 600 }),
        ),
    )
    .spider_middleware("DropExternal", |_| Ok(Some(Box::new(DropExternal))))
    .run()
    .await
    .unwrap();
    assert!(
        stats.get("offsite/filtered").is_none(),
        "Offsite ran although disabled"
    );
    assert_eq!(stats["item_scraped_count"], 1);
    assert!(stats.get("downloader/exception_count").is_none());
}

/// Links longer than `URLLENGTH_LIMIT` are dropped and counted; `0` disables the check.
#[actix::test]
async fn url_length_limit() {
    let long = format!("/long?{}", "x".repeat(200));
    let page = format!("<a href=\"{long}\">long</a><a href=\"/short\">short</a>");
    let server = FixtureServer::start(Site::html_pages([("/a", page.as_str()), ("/short", "s")]));
    let walk = |s: &FixtureServer| Walk {
        start: s.url("/a"),
        domains: vec![],
    };
    let stats = Crawler::new(walk(&server), quiet().with("URLLENGTH_LIMIT", 100))
        .run()
        .await
        .unwrap();
    assert_eq!(stats["urllength/request_ignored_count"], 1);
    let paths: BTreeSet<String> = server.log().iter().map(|e| e.path.clone()).collect();
    assert!(paths.contains("/short") && !paths.iter().any(|p| p.starts_with("/long")));

    let server = FixtureServer::start(Site::html_pages([("/a", page.as_str()), ("/short", "s")]));
    let stats = Crawler::new(walk(&server), quiet().with("URLLENGTH_LIMIT", 0))
        .run()
        .await
        .unwrap();
    assert!(stats.get("urllength/request_ignored_count").is_none());
    assert!(server.log().iter().any(|e| e.path.starts_with("/long")));
}

/// Panics on `/boom` requests and on their output.
struct Boom;

#[async_trait(?Send)]
impl DownloaderMiddleware for Boom {
    async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
        if request.url.path() == "/boom" {
            panic!("downloader middleware bug");
        }
        Ok(RequestFlow::Continue)
    }
}

#[async_trait(?Send)]
impl arachne::middleware::spider::SpiderMiddleware for Boom {
    async fn process_spider_output(
        &self,
        response: Option<&Response>,
        _: &Request,
        output: Vec<arachne::spider::OutputEntry>,
    ) -> Vec<arachne::spider::OutputEntry> {
        if response.is_some_and(|r| r.url.path() == "/spider-boom") {
            panic!("spider middleware bug");
        }
        output
    }
}

/// Panicking user middlewares fail their request only: counted, logged, crawl finishes.
#[actix::test]
async fn panicking_middlewares_do_not_crash_the_crawl() {
    let server = FixtureServer::start(Site::html_pages([
        (
            "/a",
            "<a href=\"/boom\">x</a><a href=\"/spider-boom\">y</a><a href=\"/fine\">z</a>",
        ),
        ("/boom", "never served"),
        ("/spider-boom", "served"),
        ("/fine", "fine"),
    ]));
    let stats = Crawler::new(
        Walk {
            start: server.url("/a"),
            domains: vec![],
        },
        quiet()
            .with("DOWNLOADER_MIDDLEWARES", serde_json::json!({ "Boom": 543 }))
            .with("SPIDER_MIDDLEWARES", serde_json::json!({ "Boom": 543 })),
    )
    .downloader_middleware("Boom", |_| Ok(Some(Box::new(Boom))))
    .spider_middleware("Boom", |_| Ok(Some(Box::new(Boom))))
    .run()
    .await
    .unwrap();
    assert_eq!(stats["finish_reason"], "finished");
    assert_eq!(stats["spider_exceptions/Panic"], 1, "{stats:?}");
    assert_eq!(stats["item_scraped_count"], 2, "/a and /fine");
    let paths: BTreeSet<String> = server.log().iter().map(|e| e.path.clone()).collect();
    assert!(!paths.contains("/boom"));
    assert!(paths.contains("/fine"));
}

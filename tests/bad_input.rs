//! Acceptance 6: bad input. An invalid start URL, an unsupported scheme, connection refused,
//! a timeout, a body over `DOWNLOAD_MAXSIZE` (announced or chunked), a 404 and a 500, a
//! connection closed without a response, broken HTML, a Latin-1 page, a callback that
//! panics, one that returns an error and an unknown callback name: each is logged, counted
//! in the stats (`downloader/exception_type_count/...`, `spider_exceptions/...`,
//! `httperror/...`), sent to the errback where one is set, and the crawl goes on to finish
//! normally.
//!
//! The log is captured by a small `log::Log` installed by this test binary, so "is logged"
//! is checked too.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use arachne::prelude::*;
use arachne::spider::CallbackData;
use arachne::stats::StatsMap;
use serde_json::{json, Value};
use support::logs::{capture_logs, logged};
use support::server::FixtureServer;
use support::site::Site;

// --- the spider ---------------------------------------------------------------------------

/// What the errback saw.
#[derive(Debug, Clone)]
struct Failed {
    kind: String,
    status: Option<u16>,
}

/// What the spider saw, shared with the test.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// URL → failures the errback received for it.
    failures: Arc<Mutex<BTreeMap<String, Vec<Failed>>>>,
    /// URL → title of each page the `parse` callback handled.
    titles: Arc<Mutex<BTreeMap<String, String>>>,
    /// URL → the decoded body text.
    texts: Arc<Mutex<BTreeMap<String, String>>>,
}

/// The spider's callbacks and its one errback.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Cb {
    Parse,
    Panics,
    Fails,
    Record,
}

struct BadInput {
    base: String,
    refused_port: u16,
    seen: Seen,
}

impl BadInput {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

#[async_trait(?Send)]
impl Spider for BadInput {
    type Callback = Cb;

    fn name(&self) -> &str {
        "bad_input"
    }

    fn start(self: Arc<Self>) -> Start {
        let get = |url: String| Request::get(url).map(|r| r.errback(Cb::Record));
        // A callback name that came from outside the program (a persisted request, the
        // command line) and names nothing the spider has.
        let mut unknown = get(self.url("/page?cb=unknown")).unwrap();
        unknown.callback = Some(CallbackData::named("no_such_callback"));
        let requests: Vec<Result<Request, SpiderError>> = vec![
            Request::get("not a url").map_err(SpiderError::from),
            Ok(get("ftp://127.0.0.1/x".into()).unwrap()),
            Ok(get(format!("http://127.0.0.1:{}/refused", self.refused_port)).unwrap()),
            Ok(get(self.url("/slow/3000"))
                .unwrap()
                .meta("download_timeout", 0.5)),
            Ok(get(self.url("/big/3000000")).unwrap()),
            Ok(get(self.url("/big-chunked/3000000")).unwrap()),
            Ok(get(self.url("/status/404")).unwrap()),
            Ok(get(self.url("/status/500")).unwrap()),
            Ok(get(self.url("/reset")).unwrap()),
            Ok(get(self.url("/broken")).unwrap()),
            Ok(get(self.url("/latin1")).unwrap()),
            Ok(get(self.url("/page?cb=panics"))
                .unwrap()
                .callback(Cb::Panics)),
            Ok(get(self.url("/page?cb=fails")).unwrap().callback(Cb::Fails)),
            Ok(unknown),
        ];
        start_from_iter(requests)
    }

    async fn parse(&self, response: &Response) -> CallbackResult {
        let url = response.url.to_string();
        let title = response.css("title::text")?.getall().concat();
        self.seen
            .titles
            .lock()
            .unwrap()
            .insert(url.clone(), title.clone());
        self.seen
            .texts
            .lock()
            .unwrap()
            .insert(url.clone(), response.text().into_owned());
        let mut out = Output::new().with_item(json!({ "url": url, "title": title }));
        for href in response.css("a::attr(href)")?.getall() {
            out.request(response.follow(&href)?);
        }
        Ok(out)
    }

    async fn callback(&self, cb: Cb, response: &Response) -> CallbackResult {
        match cb {
            Cb::Parse => self.parse(response).await,
            Cb::Panics => panic!("deliberate panic in a callback"),
            Cb::Fails => {
                let n: i32 = "not a number".parse()?;
                Ok(Output::new().with_item(json!({ "n": n })))
            }
            Cb::Record => Err(SpiderError::unknown_callback("record")),
        }
    }

    async fn errback(&self, eb: Cb, failure: &Failure) -> CallbackResult {
        if !matches!(eb, Cb::Record) {
            return Err(SpiderError::unknown_callback(&format!("{eb:?}")));
        }
        let url = failure.request.url.to_string();
        self.seen
            .failures
            .lock()
            .unwrap()
            .entry(url)
            .or_default()
            .push(Failed {
                kind: failure.kind().to_string(),
                status: failure.response().map(|r| r.status),
            });
        // An errback may schedule more work: after the timeout, one more normal page.
        if failure.request.url.path() == "/slow/3000" {
            return Ok(Output::new().with_request(Request::get(self.url("/ok?after=timeout"))?));
        }
        Ok(Output::new())
    }
}

fn site() -> Site {
    Site::html_pages([
        ("/p/0", "<html><head><title>Page 0</title></head></html>"),
        ("/ok", "<html><head><title>OK</title></head></html>"),
        ("/page", "<html><head><title>Page</title></head></html>"),
    ])
}

/// `http://127.0.0.1:PORT`, without a trailing slash, to append paths to.
fn base(server: &FixtureServer) -> String {
    server.url("/").trim_end_matches('/').to_string()
}

/// A port on 127.0.0.1 that nobody listens on (bound, then released).
fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().unwrap().port()
}

fn stat(stats: &StatsMap, key: &str) -> u64 {
    stats.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Every kind of bad input is logged, counted and sent to the errback; the crawl finishes.
#[actix::test]
async fn bad_input_is_counted_and_the_crawl_goes_on() {
    capture_logs();
    let server = FixtureServer::start(site());
    let seen = Seen::default();
    let spider = BadInput {
        base: base(&server),
        refused_port: refused_port(),
        seen: seen.clone(),
    };
    let refused_url = format!("http://127.0.0.1:{}/refused", spider.refused_port);
    let settings = Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false)
        .with("DOWNLOAD_MAXSIZE", 1_000_000)
        // Scrapy would retry timeouts, refused connections and 500s first; this test is
        // about what happens once a request has finally failed.
        .with("RETRY_ENABLED", false);
    let stats = Crawler::new(spider, settings)
        .run()
        .await
        .expect("crawl runs");

    // The crawl finished normally and the good pages were scraped, including one requested
    // by the errback after the timeout (the slowest failure).
    assert_eq!(stats["finish_reason"], "finished", "{stats:#?}");
    let titles = seen.titles.lock().unwrap().clone();
    let want_titles: BTreeMap<String, String> = [
        ("/broken", "Broken page"),
        ("/latin1", "café"),
        ("/p/0", "Page 0"),
        ("/ok?after=timeout", "OK"),
    ]
    .into_iter()
    .map(|(p, t)| (server.url(p), t.to_string()))
    .collect();
    assert_eq!(titles, want_titles);
    assert_eq!(stat(&stats, "item_scraped_count"), 4, "{stats:#?}");
    let texts = seen.texts.lock().unwrap().clone();
    assert!(texts[&server.url("/latin1")].contains("crème brûlée"));
    assert!(
        texts[&server.url("/broken")].contains('\u{FFFD}'),
        "invalid UTF-8 is replaced, not fatal"
    );

    // Failures reached the errback, once each, with the right kind.
    let failures = seen.failures.lock().unwrap().clone();
    let mut want: HashMap<String, (&str, Option<u16>)> = [
        ("ftp://127.0.0.1/x".to_string(), ("NotSupported", None)),
        (refused_url.clone(), ("ConnectionRefusedError", None)),
        (server.url("/slow/3000"), ("TimeoutError", None)),
        (server.url("/big/3000000"), ("MaxSizeExceeded", None)),
        (
            server.url("/big-chunked/3000000"),
            ("MaxSizeExceeded", None),
        ),
        (server.url("/status/404"), ("HttpError", Some(404))),
        (server.url("/status/500"), ("HttpError", Some(500))),
    ]
    .into_iter()
    .collect();
    let reset_url = server.url("/reset");
    assert_eq!(
        failures.len(),
        want.len() + 1,
        "errback calls: {failures:#?}"
    );
    for (url, got) in &failures {
        assert_eq!(got.len(), 1, "{url}: errback called {} times", got.len());
        let got = &got[0];
        if *url == reset_url {
            // The exact kind depends on when the client notices; it must be a download
            // error, counted under its own kind.
            assert_ne!(got.kind, "HttpError", "{url}");
            assert_eq!(
                stat(
                    &stats,
                    &format!("downloader/exception_type_count/{}", got.kind)
                ),
                1,
                "{url}: {got:?} not counted; {stats:#?}"
            );
            continue;
        }
        let (kind, status) = want
            .remove(url)
            .unwrap_or_else(|| panic!("unexpected errback call for {url}: {got:?}"));
        assert_eq!(got.kind, kind, "{url}");
        assert_eq!(got.status, status, "{url}");
    }
    assert!(want.is_empty(), "errback never called for {want:?}");

    // Counted in the stats.
    for (key, n) in [
        ("spider_exceptions/InvalidUrl", 1),
        ("spider_exceptions/Panic", 1),
        ("spider_exceptions/ParseIntError", 1),
        ("spider_exceptions/UnknownCallback", 1),
        ("downloader/exception_type_count/NotSupported", 1),
        ("downloader/exception_type_count/ConnectionRefusedError", 1),
        ("downloader/exception_type_count/TimeoutError", 1),
        ("downloader/exception_type_count/MaxSizeExceeded", 2),
        ("downloader/exception_count", 6),
        // The 404 and the 500 went to an errback that handled them: not "ignored"
        // (Scrapy counts httperror/* in process_spider_exception, after errbacks).
        ("httperror/response_ignored_count", 0),
        ("httperror/response_ignored_status_count/404", 0),
        ("httperror/response_ignored_status_count/500", 0),
        ("downloader/response_status_count/404", 1),
        ("downloader/response_status_count/500", 1),
    ] {
        assert_eq!(stat(&stats, key), n, "{key}; stats: {stats:#?}");
    }
    let by_type: u64 = stats
        .iter()
        .filter(|(k, _)| k.starts_with("downloader/exception_type_count/"))
        .map(|(_, v)| v.as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        by_type,
        stat(&stats, "downloader/exception_count"),
        "exception_count is not the sum of exception_type_count/*"
    );

    // Logged.
    use log::Level::{Error, Info};
    assert!(logged(
        Error,
        &["Error while obtaining start requests", "not a url"]
    ));
    for url in [
        "ftp://127.0.0.1/x".to_string(),
        refused_url,
        server.url("/slow/3000"),
        server.url("/big/3000000"),
        server.url("/big-chunked/3000000"),
        reset_url,
    ] {
        assert!(
            logged(Error, &[&format!("Error downloading <GET {url}>")]),
            "no error logged for {url}"
        );
    }
    // Handled by the errback, so not "ignored" (that line is for unhandled ones; see
    // `failures_without_errback_are_counted`).
    for code in ["404", "500"] {
        let url = server.url(&format!("/status/{code}"));
        assert!(
            !logged(Info, &[&format!("Ignoring response <{code} {url}>")]),
            "{url} was handled by its errback but logged as ignored"
        );
    }
    for (cb, kind) in [
        ("panics", "Panic"),
        ("fails", "ParseIntError"),
        ("unknown", "UnknownCallback"),
    ] {
        let url = server.url(&format!("/page?cb={cb}"));
        assert!(
            logged(
                Error,
                &[&format!("Spider error processing <GET {url}>"), kind]
            ),
            "{url}: spider error not logged"
        );
    }
}

/// Fetches a 404 and a reset connection without errbacks, and a 500 whose errback the
/// spider does not have.
struct NoErrback(String);

#[async_trait(?Send)]
impl Spider for NoErrback {
    type Callback = DefaultCallback;

    fn name(&self) -> &str {
        "no_errback"
    }
    fn start(self: Arc<Self>) -> Start {
        let base = self.0.clone();
        let with_missing_errback = |mut r: Request| {
            r.errback = Some(CallbackData::named("missing"));
            r
        };
        start_from_iter([
            Request::get(format!("{base}/status/404")),
            Request::get(format!("{base}/reset")),
            Request::get(format!("{base}/status/500")).map(with_missing_errback),
            Request::get(format!("{base}/ok")),
        ])
    }
    async fn parse(&self, _: &Response) -> CallbackResult {
        Ok(Output::new().with_item(json!({ "ok": true })))
    }
}

/// Failures without an errback, or with an unknown one, are counted and the crawl finishes.
#[actix::test]
async fn failures_without_errback_are_counted() {
    capture_logs();
    let server = FixtureServer::start(site());
    let settings = Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false)
        .with("RETRY_ENABLED", false);
    let stats = Crawler::new(NoErrback(base(&server)), settings)
        .run()
        .await
        .expect("crawl runs");
    assert_eq!(stats["finish_reason"], "finished", "{stats:#?}");
    assert_eq!(stat(&stats, "item_scraped_count"), 1, "{stats:#?}");
    assert_eq!(
        stat(&stats, "httperror/response_ignored_status_count/404"),
        1
    );
    // The 500's errback does not exist: the errback fails with UnknownCallback, a new
    // error, and the HttpError itself is not what reaches the exception chain (as in
    // Scrapy when an errback raises something else).
    assert_eq!(
        stat(&stats, "httperror/response_ignored_status_count/500"),
        0
    );
    assert_eq!(stat(&stats, "httperror/response_ignored_count"), 1);
    assert_eq!(stat(&stats, "downloader/exception_count"), 1, "{stats:#?}");
    assert_eq!(
        stat(&stats, "spider_exceptions/UnknownCallback"),
        1,
        "{stats:#?}"
    );
    assert!(logged(
        log::Level::Error,
        &[&format!("Error downloading <GET {}>", server.url("/reset"))]
    ));
    let url = server.url("/status/404");
    assert!(
        logged(
            log::Level::Info,
            &[&format!("Ignoring response <404 {url}>")]
        ),
        "{url} not logged"
    );
}

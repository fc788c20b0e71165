//! The spider API as a user meets it, end to end against a local server: typed
//! callbacks carrying data, a document parsed once however many queries a callback
//! runs, struct items exported in declared field order, the `opened` / `closed`
//! hooks, `meta["depth"]` on start responses, fragment-free `response.url`,
//! `response.json()` and `follow_all`.
//!
//! The parse counter is global to the process, so the tests of this file run one at a
//! time.

mod support;

use std::sync::{Arc, Mutex};

use arachne::extension::CrawlerHandle;
use arachne::prelude::*;
use arachne::selector::documents_parsed;
use arachne::signals::CloseReason;
use support::server::FixtureServer;
use support::site::Site;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn quiet() -> Settings {
    Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false)
}

const LISTING: &str = r#"<html><head><title>Listing</title></head><body>
<div class="quote"><span class="text">One</span><a class="author" href="/author/ann">Ann</a>
  <div class="tags"><a class="tag">a</a><a class="tag">b</a></div></div>
<div class="quote"><span class="text">Two</span><a class="author" href="/author/bob">Bob</a>
  <div class="tags"><a class="tag">c</a></div></div>
<a class="api" href="/api.json">api</a>
</body></html>"#;

fn site() -> Site {
    let Site::Static(mut pages) = Site::html_pages([
        ("/", LISTING),
        ("/author/ann", "<h3>Ann</h3>"),
        ("/author/bob", "<h3>Bob</h3>"),
    ]) else {
        unreachable!("html_pages builds a static site")
    };
    pages.insert(
        "/api.json".into(),
        (
            200,
            "application/json".into(),
            br#"{"count": 2, "names": ["x", "y"]}"#.to_vec(),
        ),
    );
    Site::Static(pages)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Cb {
    Parse,
    Author { listed_on: String, position: usize },
    Api,
}

/// One quote, with its fields deliberately not in alphabetical order.
#[derive(Serialize)]
struct Quote {
    z: String,
    a: Vec<String>,
    m: usize,
}

#[derive(Default)]
struct Record {
    parsed_in_listing: Option<u64>,
    authors: Vec<(String, String, usize)>,
    api: Option<(u64, Vec<String>)>,
    depth_at_start: Option<serde_json::Value>,
    start_url: Option<String>,
    opened: Option<String>,
    closed: Option<String>,
    parses_before_opened: Option<bool>,
}

struct Quotes {
    start: String,
    record: Arc<Mutex<Record>>,
}

#[async_trait(?Send)]
impl Spider for Quotes {
    type Callback = Cb;

    fn name(&self) -> &str {
        "quotes"
    }

    fn start_urls(&self) -> Vec<String> {
        vec![self.start.clone()]
    }

    async fn opened(&self, crawler: &CrawlerHandle) {
        let mut r = self.record.lock().unwrap();
        r.opened = Some(crawler.spider_name.to_string());
        r.parses_before_opened = Some(r.start_url.is_some());
    }

    async fn closed(&self, reason: &CloseReason) {
        self.record.lock().unwrap().closed = Some(reason.to_string());
    }

    async fn parse(&self, response: &Response) -> CallbackResult {
        let before = documents_parsed();
        let mut out = Output::new();
        // Ten queries (and nested ones) on one response: one parse.
        let title = response.css("title::text")?.get().unwrap_or_default();
        for (i, quote) in response.css("div.quote")?.iter().enumerate() {
            out.item(Quote {
                z: quote.css("span.text::text")?.get().unwrap_or_default(),
                a: quote.css("div.tags a.tag::text")?.getall(),
                m: i,
            });
        }
        for _ in 0..6 {
            response.css("a.author::attr(href)")?;
        }
        let authors = response.follow_all_css("a.author::attr(href)")?;
        for (position, request) in authors.into_iter().enumerate() {
            out.request(request.callback(Cb::Author {
                listed_on: title.clone(),
                position,
            }));
        }
        if let Some(api) = response.css("a.api::attr(href)")?.get() {
            out.request(response.follow(&api)?.callback(Cb::Api));
        }
        let mut r = self.record.lock().unwrap();
        r.parsed_in_listing = Some(documents_parsed() - before);
        r.depth_at_start = response.meta().get("depth").cloned();
        r.start_url = Some(response.url.to_string());
        Ok(out)
    }

    async fn callback(&self, cb: Cb, response: &Response) -> CallbackResult {
        match cb {
            Cb::Parse => self.parse(response).await,
            Cb::Author {
                listed_on,
                position,
            } => {
                let name = response.css("h3::text")?.get().unwrap_or_default();
                self.record
                    .lock()
                    .unwrap()
                    .authors
                    .push((name, listed_on, position));
                Ok(Output::new())
            }
            Cb::Api => {
                #[derive(Deserialize)]
                struct Api {
                    count: u64,
                    names: Vec<String>,
                }
                let api: Api = response.json()?;
                self.record.lock().unwrap().api = Some((api.count, api.names));
                Ok(Output::new())
            }
        }
    }
}

/// Acceptance 1, 2, 5 (field order), 6 (`closed`), and the smaller API points.
#[actix::test]
async fn typed_callbacks_parse_once_ordered_items_and_hooks() {
    let _serial = SERIAL.lock().await;
    let server = FixtureServer::start(site());
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("items.jsonl");
    let record = Arc::new(Mutex::new(Record::default()));
    let spider = Quotes {
        // The fragment is not part of the page: Scrapy strips it before download.
        start: server.url("/#top"),
        record: record.clone(),
    };
    let settings = quiet().with(
        "FEEDS",
        json!({ feed.to_str().unwrap(): { "format": "jsonlines" } }),
    );
    let stats = Crawler::new(spider, settings).run().await.unwrap();
    assert_eq!(stats["finish_reason"], "finished", "{stats:#?}");

    let r = record.lock().unwrap();
    assert_eq!(
        r.parsed_in_listing,
        Some(1),
        "ten css() calls on one response parse it once"
    );
    let mut authors = r.authors.clone();
    authors.sort();
    assert_eq!(
        authors,
        [
            ("Ann".to_string(), "Listing".to_string(), 0),
            ("Bob".to_string(), "Listing".to_string(), 1)
        ],
        "variant fields reach the callback"
    );
    assert_eq!(r.api, Some((2, vec!["x".to_string(), "y".to_string()])));
    assert_eq!(
        r.depth_at_start,
        Some(json!(0)),
        "start responses have depth 0"
    );
    assert_eq!(r.start_url.as_deref(), Some(server.url("/").as_str()));
    assert_eq!(r.opened.as_deref(), Some("quotes"));
    assert_eq!(
        r.parses_before_opened,
        Some(false),
        "opened runs before the first callback"
    );
    assert_eq!(r.closed.as_deref(), Some("finished"));

    let lines: Vec<String> = std::fs::read_to_string(&feed)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            r#"{"z":"One","a":["a","b"],"m":0}"#,
            r#"{"z":"Two","a":["c"],"m":1}"#
        ],
        "struct items keep their declared field order"
    );
}

/// `closed` hears the reason a crawl was closed for, not only `finished`.
#[actix::test]
async fn closed_hook_gets_the_close_reason() {
    let _serial = SERIAL.lock().await;
    let server = FixtureServer::start(site());
    let record = Arc::new(Mutex::new(Record::default()));
    let spider = Quotes {
        start: server.url("/"),
        record: record.clone(),
    };
    let settings = quiet().with("CLOSESPIDER_ITEMCOUNT", 1);
    let stats = Crawler::new(spider, settings).run().await.unwrap();
    assert_eq!(stats["finish_reason"], "closespider_itemcount");
    assert_eq!(
        record.lock().unwrap().closed.as_deref(),
        Some("closespider_itemcount")
    );
}

/// A callback named from outside the program maps onto the spider's type by its
/// snake_case name, with its data; an unknown name is a clear error.
#[test]
fn callback_names_from_outside_map_onto_the_type() {
    use arachne::spider::CallbackData;
    let author = CallbackData::with_data("author", json!({"listed_on": "L", "position": 3}));
    assert_eq!(
        author.resolve::<Cb>().unwrap(),
        Cb::Author {
            listed_on: "L".into(),
            position: 3
        }
    );
    assert_eq!(CallbackData::named("api").resolve::<Cb>().unwrap(), Cb::Api);
    let err = CallbackData::named("athor").resolve::<Cb>().unwrap_err();
    assert_eq!(err.kind, "UnknownCallback");
    assert!(err.to_string().contains("athor"), "{err}");
    // A persisted request carries its callback as data and comes back typed.
    let request = Request::get("http://127.0.0.1/a")
        .unwrap()
        .callback(Cb::Author {
            listed_on: "L".into(),
            position: 1,
        });
    let json = serde_json::to_string(&request).unwrap();
    assert!(
        json.contains(r#""author":{"listed_on":"L","position":1}"#),
        "{json}"
    );
    let back: Request = serde_json::from_str(&json).unwrap();
    assert_eq!(
        back.callback.unwrap().resolve::<Cb>().unwrap(),
        Cb::Author {
            listed_on: "L".into(),
            position: 1
        }
    );
}

/// Adds a header to every request, so the test can see the middleware ran.
struct Tag;

#[async_trait(?Send)]
impl arachne::middleware::downloader::DownloaderMiddleware for Tag {
    async fn process_request(
        &self,
        request: &mut Request,
    ) -> Result<arachne::middleware::downloader::RequestFlow, arachne::error::DownloadError> {
        request.headers.insert(
            arachne::http::HeaderName::from_static("x-tag"),
            arachne::http::HeaderValue::from_static("tagged"),
        );
        Ok(arachne::middleware::downloader::RequestFlow::Continue)
    }
}

/// Fetches one more page inline from its callback (Scrapy's `engine.download`).
struct Inline {
    start: String,
    extra: String,
    crawler: std::sync::OnceLock<CrawlerHandle>,
    waited: Arc<Mutex<Option<(std::time::Duration, String)>>>,
}

#[async_trait(?Send)]
impl Spider for Inline {
    type Callback = DefaultCallback;

    fn name(&self) -> &str {
        "inline"
    }

    fn start_urls(&self) -> Vec<String> {
        vec![self.start.clone()]
    }

    async fn opened(&self, crawler: &CrawlerHandle) {
        let _ = self.crawler.set(crawler.clone());
    }

    async fn parse(&self, response: &Response) -> CallbackResult {
        let Some(crawler) = self.crawler.get() else {
            return Err(SpiderError::msg("opened() did not run"));
        };
        let started = std::time::Instant::now();
        let extra = crawler
            .engine()
            .download(Request::get(&self.extra)?)
            .await?;
        let title = extra.css("title::text")?.get().unwrap_or_default();
        *self.waited.lock().unwrap() = Some((started.elapsed(), title.clone()));
        Ok(Output::new().with_item(json!({
            "page": response.css("title::text")?.get(),
            "inline": title,
        })))
    }
}

/// Acceptance 6: an inline `download().await` goes through a user downloader
/// middleware and waits for the slot's delay like any request of that slot.
#[actix::test]
async fn inline_download_goes_through_middlewares_and_the_slot() {
    let _serial = SERIAL.lock().await;
    let server = FixtureServer::start(Site::html_pages([
        ("/", "<title>first</title>"),
        ("/extra", "<title>extra</title>"),
    ]));
    let waited = Arc::new(Mutex::new(None));
    let spider = Inline {
        start: server.url("/"),
        extra: server.url("/extra"),
        crawler: std::sync::OnceLock::new(),
        waited: waited.clone(),
    };
    let settings = quiet()
        .with("DOWNLOAD_DELAY", 0.4)
        .with("RANDOMIZE_DOWNLOAD_DELAY", false)
        .with("DOWNLOADER_MIDDLEWARES", json!({ "Tag": 500 }));
    let stats = Crawler::new(spider, settings)
        .downloader_middleware("Tag", |_| Ok(Some(Box::new(Tag))))
        .run()
        .await
        .unwrap();
    assert_eq!(stats["finish_reason"], "finished", "{stats:#?}");
    assert_eq!(stats["item_scraped_count"], 1, "{stats:#?}");
    let (elapsed, title) = waited.lock().unwrap().clone().expect("callback ran");
    assert_eq!(title, "extra");
    // Same slot as the page just fetched: the inline request waits out the delay.
    assert!(
        elapsed >= std::time::Duration::from_millis(350),
        "inline download took {elapsed:?}, less than DOWNLOAD_DELAY"
    );
    let log = server.log();
    let extra = log
        .iter()
        .find(|e| e.path == "/extra")
        .expect("/extra was fetched");
    assert_eq!(extra.header("x-tag"), Some("tagged"));
    assert_eq!(
        stats["downloader/request_count"], 2,
        "the inline request is counted like any other: {stats:#?}"
    );
}

/// Pauses the engine from its first callback, checks the status, reads and changes
/// its slot's delay through the downloader handle, then resumes.
struct Pausing {
    start: String,
    crawler: std::sync::OnceLock<CrawlerHandle>,
    seen: Arc<Mutex<Vec<String>>>,
}

#[async_trait(?Send)]
impl Spider for Pausing {
    type Callback = DefaultCallback;

    fn name(&self) -> &str {
        "pausing"
    }

    fn start_urls(&self) -> Vec<String> {
        vec![self.start.clone()]
    }

    async fn opened(&self, crawler: &CrawlerHandle) {
        let _ = self.crawler.set(crawler.clone());
    }

    async fn parse(&self, response: &Response) -> CallbackResult {
        let Some(crawler) = self.crawler.get() else {
            return Err(SpiderError::msg("opened() did not run"));
        };
        let mut seen = vec![response.url.path().to_string()];
        if response.url.path() == "/" {
            let engine = crawler.engine();
            engine.pause();
            let status = engine.status().await;
            seen.push(format!("paused={}", status.paused));
            let downloader = crawler.downloader();
            let delay = downloader.slot_delay("127.0.0.1").await;
            seen.push(format!("delay={delay:?}"));
            downloader.set_slot_delay("127.0.0.1", std::time::Duration::from_millis(5));
            let delay = downloader.slot_delay("127.0.0.1").await;
            seen.push(format!("delay={delay:?}"));
            engine.unpause();
            seen.push(format!("paused={}", engine.status().await.paused));
        }
        self.seen.lock().unwrap().extend(seen);
        let mut out = Output::new();
        for r in response.follow_all_css("a::attr(href)")? {
            out.request(r);
        }
        Ok(out)
    }
}

/// The engine and downloader handles: pause / status / unpause and a slot's delay.
#[actix::test]
async fn engine_and_downloader_handles() {
    let _serial = SERIAL.lock().await;
    let server = FixtureServer::start(Site::html_pages([
        ("/", r#"<a href="/next">next</a>"#),
        ("/next", "<title>next</title>"),
    ]));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let spider = Pausing {
        start: server.url("/"),
        crawler: std::sync::OnceLock::new(),
        seen: seen.clone(),
    };
    let settings = quiet()
        .with("DOWNLOAD_DELAY", 0.05)
        .with("RANDOMIZE_DOWNLOAD_DELAY", false);
    let stats = Crawler::new(spider, settings).run().await.unwrap();
    assert_eq!(stats["finish_reason"], "finished", "{stats:#?}");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "/",
            "paused=true",
            "delay=Some(50ms)",
            "delay=Some(5ms)",
            "paused=false",
            "/next"
        ]
    );
}

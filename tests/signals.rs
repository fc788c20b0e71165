//! Acceptance: the signals of a one-page crawl arrive in Scrapy's order at a user's own
//! extension actor; a `SpiderIdle` handler that schedules more requests and votes
//! "don't close" keeps the crawl going.

mod support;

use std::sync::{Arc, Mutex};

use actix::{Actor, AsyncContext, Context, Handler, Message};
use arachne::extension::{ComponentHandle, CrawlerHandle};
use arachne::prelude::*;
use arachne::signals::*;
use support::server::FixtureServer;
use support::site::Site;

/// A user extension that records the name of every signal it receives.
struct Probe {
    crawler: CrawlerHandle,
    seen: Arc<Mutex<Vec<String>>>,
    /// Requests to schedule at the first idle signals, one per signal.
    on_idle: Vec<Request>,
}

impl Actor for Probe {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        macro_rules! sub {
            ($($s:ty),*) => { $( self.crawler.subscribe::<$s>(ctx.address().recipient()); )* };
        }
        sub!(
            EngineStarted,
            EngineStopped,
            SpiderOpened,
            SpiderClosed,
            SpiderIdle,
            SpiderErrored,
            ItemScraped,
            ItemDropped,
            ItemError,
            RequestScheduled,
            RequestDropped,
            RequestReachedDownloader,
            RequestLeftDownloader,
            HeadersReceived,
            BytesReceived,
            ResponseDownloaded,
            ResponseReceived
        );
    }
}

macro_rules! record {
    ($($s:ty => $ret:expr),* $(,)?) => {$(
        impl Handler<$s> for Probe {
            type Result = <$s as Message>::Result;
            fn handle(&mut self, _: $s, _: &mut Context<Self>) -> Self::Result {
                self.seen.lock().unwrap().push(<$s as Signal>::NAME.to_string());
                $ret
            }
        }
    )*};
}

record!(
    EngineStarted => (), EngineStopped => (), SpiderOpened => (), SpiderClosed => (),
    SpiderErrored => (), ItemScraped => (), ItemDropped => (), ItemError => (),
    RequestScheduled => ScheduleVote::Accept, RequestDropped => (), RequestReachedDownloader => (),
    RequestLeftDownloader => (), ResponseDownloaded => (), ResponseReceived => (),
    HeadersReceived => DownloadVote::Continue, BytesReceived => DownloadVote::Continue,
);

impl Handler<SpiderIdle> for Probe {
    type Result = IdleVote;
    fn handle(&mut self, _: SpiderIdle, _: &mut Context<Self>) -> IdleVote {
        self.seen.lock().unwrap().push("spider_idle".into());
        match self.on_idle.pop() {
            Some(r) => {
                self.crawler.engine().crawl(r);
                IdleVote::DontClose
            }
            None => IdleVote::Close,
        }
    }
}

/// One item per page.
struct OnePage {
    url: String,
}

#[async_trait(?Send)]
impl Spider for OnePage {
    type Callback = DefaultCallback;

    fn name(&self) -> &str {
        "onepage"
    }
    fn start_urls(&self) -> Vec<String> {
        vec![self.url.clone()]
    }
    async fn parse(&self, response: &Response) -> CallbackResult {
        Ok(Output::new().with_item(serde_json::json!({ "url": response.url.as_str() })))
    }
}

fn settings() -> Settings {
    Settings::new()
        .with("EXTENSIONS", serde_json::json!({ "Probe": 500 }))
        .with("LOGSTATS_INTERVAL", 0)
}

fn probe_factory(
    seen: Arc<Mutex<Vec<String>>>,
    on_idle: Vec<Request>,
) -> impl Fn(&CrawlerHandle) -> Result<Option<ComponentHandle>, arachne::error::ConfigError> {
    move |crawler| {
        let addr = Probe {
            crawler: crawler.clone(),
            seen: seen.clone(),
            on_idle: on_idle.clone(),
        }
        .start();
        Ok(Some(ComponentHandle::new(addr)))
    }
}

/// A one-page crawl's signals arrive at a user extension in Scrapy's order.
#[actix::test]
async fn one_page_signal_order() {
    let server = FixtureServer::start(Site::html_pages([("/only", "<title>x</title>")]));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stats = Crawler::new(
        OnePage {
            url: server.url("/only"),
        },
        settings(),
    )
    .extension("Probe", probe_factory(seen.clone(), vec![]))
    .run()
    .await
    .unwrap();
    assert_eq!(stats["finish_reason"], "finished");
    let seen = seen.lock().unwrap().clone();
    let seen: Vec<&str> = seen.iter().map(String::as_str).collect();
    assert_eq!(
        seen,
        [
            "spider_opened",
            "engine_started",
            "request_scheduled",
            "request_reached_downloader",
            "headers_received",
            "bytes_received",
            "response_downloaded",
            "request_left_downloader",
            "response_received",
            "item_scraped",
            "spider_idle",
            "spider_closed",
            "engine_stopped",
        ]
    );
}

/// A `SpiderIdle` handler that schedules a request and votes "don't close" keeps the
/// crawl going until it lets go.
#[actix::test]
async fn idle_handler_keeps_spider_open() {
    let server = FixtureServer::start(Site::html_pages([
        ("/first", "<title>1</title>"),
        ("/second", "<title>2</title>"),
        ("/third", "<title>3</title>"),
    ]));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let extra = vec![
        Request::get(server.url("/third")).unwrap(),
        Request::get(server.url("/second")).unwrap(),
    ];
    let stats = Crawler::new(
        OnePage {
            url: server.url("/first"),
        },
        settings(),
    )
    .extension("Probe", probe_factory(seen.clone(), extra))
    .run()
    .await
    .unwrap();
    assert_eq!(stats["finish_reason"], "finished");
    assert_eq!(stats["item_scraped_count"], 3);
    let paths: Vec<String> = server.log().iter().map(|e| e.path.clone()).collect();
    assert_eq!(paths, ["/first", "/second", "/third"]);
    let idles = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| *s == "spider_idle")
        .count();
    assert_eq!(idles, 3, "two votes to stay open, then one to close");
}

/// A user extension can close the spider with its own reason through the handle.
#[actix::test]
async fn extension_closes_with_own_reason() {
    struct Closer(CrawlerHandle);
    impl Actor for Closer {
        type Context = Context<Self>;
        fn started(&mut self, ctx: &mut Context<Self>) {
            self.0
                .subscribe::<ResponseReceived>(ctx.address().recipient());
        }
    }
    impl Handler<ResponseReceived> for Closer {
        type Result = ();
        fn handle(&mut self, _: ResponseReceived, _: &mut Context<Self>) {
            self.0.engine().close(CloseReason::from("my_reason"));
        }
    }
    let server = FixtureServer::start(Site::random(50, 4, 1));
    struct Follow(String);
    #[async_trait(?Send)]
    impl Spider for Follow {
        type Callback = DefaultCallback;

        fn name(&self) -> &str {
            "f"
        }
        fn start_urls(&self) -> Vec<String> {
            vec![self.0.clone()]
        }
        fn allowed_domains(&self) -> Vec<String> {
            vec!["127.0.0.1".into()]
        }
        async fn parse(&self, response: &Response) -> CallbackResult {
            let mut out = Output::new();
            for href in response.css("a::attr(href)")?.getall() {
                if let Ok(r) = response.follow(&href) {
                    out.request(r);
                }
            }
            Ok(out)
        }
    }
    let stats = Crawler::new(
        Follow(server.url("/p/0")),
        Settings::new()
            .with("EXTENSIONS", serde_json::json!({ "Closer": 0 }))
            .with("LOGSTATS_INTERVAL", 0)
            .with("CONCURRENT_REQUESTS", 1),
    )
    .extension("Closer", |c| {
        Ok(Some(ComponentHandle::new(Closer(c.clone()).start())))
    })
    .run()
    .await
    .unwrap();
    assert_eq!(stats["finish_reason"], "my_reason");
    assert!(server.log().len() < 50, "closed early");
}

//! Signal semantics found by comparing with Scrapy, end to end on a local server:
//! `request_scheduled` is sent for every request *before* the duplicate filter decides
//! (so a duplicate is announced, then dropped) and a handler can veto a request
//! (Scrapy's `IgnoreRequest`); `request_reached_downloader` / `request_left_downloader`
//! come in pairs, and only for requests that really reached a download slot — not for
//! one a downloader middleware answered itself.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use actix::{Actor, AsyncContext, Context, Handler};
use arachne::error::DownloadError;
use arachne::extension::{ComponentHandle, CrawlerHandle};
use arachne::middleware::downloader::{DownloaderMiddleware, RequestFlow};
use arachne::prelude::*;
use arachne::signals::{
    RequestDropped, RequestLeftDownloader, RequestReachedDownloader, RequestScheduled, ScheduleVote,
};
use support::server::FixtureServer;
use support::site::Site;

/// signal name → request paths, in arrival order.
type Seen = Arc<Mutex<BTreeMap<&'static str, Vec<String>>>>;

/// Records four signals; vetoes any request whose path starts with `/veto`.
struct Recorder {
    crawler: CrawlerHandle,
    seen: Seen,
}

impl Recorder {
    fn note(&self, signal: &'static str, request: &Request) {
        self.seen
            .lock()
            .unwrap()
            .entry(signal)
            .or_default()
            .push(request.url.path().to_string());
    }
}

impl Actor for Recorder {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.crawler
            .subscribe::<RequestScheduled>(ctx.address().recipient());
        self.crawler
            .subscribe::<RequestDropped>(ctx.address().recipient());
        self.crawler
            .subscribe::<RequestReachedDownloader>(ctx.address().recipient());
        self.crawler
            .subscribe::<RequestLeftDownloader>(ctx.address().recipient());
    }
}

impl Handler<RequestScheduled> for Recorder {
    type Result = ScheduleVote;
    fn handle(&mut self, msg: RequestScheduled, _: &mut Context<Self>) -> ScheduleVote {
        self.note("scheduled", &msg.request);
        if msg.request.url.path().starts_with("/veto") {
            ScheduleVote::Ignore
        } else {
            ScheduleVote::Accept
        }
    }
}

impl Handler<RequestDropped> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: RequestDropped, _: &mut Context<Self>) {
        self.note("dropped", &msg.request);
    }
}

impl Handler<RequestReachedDownloader> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: RequestReachedDownloader, _: &mut Context<Self>) {
        self.note("reached", &msg.request);
    }
}

impl Handler<RequestLeftDownloader> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: RequestLeftDownloader, _: &mut Context<Self>) {
        self.note("left", &msg.request);
    }
}

/// Answers `/fake` itself, as a cache would.
struct Fake;

#[async_trait(?Send)]
impl DownloaderMiddleware for Fake {
    async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
        if request.url.path() == "/fake" {
            return Ok(RequestFlow::Respond(Response::new(
                request.clone(),
                200,
                "<title>fake</title>".into(),
            )));
        }
        Ok(RequestFlow::Continue)
    }
}

struct Links(String);

#[async_trait(?Send)]
impl Spider for Links {
    type Callback = DefaultCallback;
    fn name(&self) -> &str {
        "links"
    }
    fn start(self: Arc<Self>) -> Start {
        // Filtered like any request, so a link back to it would be a duplicate.
        start_from_iter([Request::get(&self.0)])
    }
    async fn parse(&self, response: &Response) -> CallbackResult {
        let mut out = Output::new();
        for r in response.follow_all_css("a::attr(href)")? {
            out.request(r);
        }
        Ok(out)
    }
}

#[actix::test]
async fn scheduled_before_the_dupefilter_vetoable_and_downloader_pairs() {
    let server = FixtureServer::start(Site::html_pages([
        (
            "/",
            r#"<a href="/a">a</a><a href="/a">again</a><a href="/">home</a>
               <a href="/veto">veto</a><a href="/fake">fake</a>"#,
        ),
        ("/a", "<title>a</title>"),
        ("/veto", "<title>never</title>"),
    ]));
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let settings = Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false)
        .with("EXTENSIONS", json!({ "Recorder": 10 }))
        .with("DOWNLOADER_MIDDLEWARES", json!({ "Fake": 500 }));
    let stats = Crawler::new(Links(server.url("/")), settings)
        .extension("Recorder", move |c| {
            Ok(Some(ComponentHandle::new(
                Recorder {
                    crawler: c.clone(),
                    seen: s.clone(),
                }
                .start(),
            )))
        })
        .downloader_middleware("Fake", |_| Ok(Some(Box::new(Fake))))
        .run()
        .await
        .unwrap();
    assert_eq!(stats["finish_reason"], "finished", "{stats:#?}");
    let seen = seen.lock().unwrap().clone();
    let sorted = |k: &str| {
        let mut v = seen.get(k).cloned().unwrap_or_default();
        v.sort();
        v
    };
    // Every request is announced, duplicates and the vetoed one included.
    assert_eq!(
        sorted("scheduled"),
        ["/", "/", "/a", "/a", "/fake", "/veto"],
        "{seen:#?}"
    );
    // The duplicate filter dropped the second /a and the link home; the vetoed
    // request never reached the scheduler, so it is not "dropped" either.
    assert_eq!(sorted("dropped"), ["/", "/a"], "{seen:#?}");
    assert_eq!(stats["dupefilter/filtered"], 2, "{stats:#?}");
    assert!(
        !server.fetched_paths().contains("/veto"),
        "a vetoed request was downloaded"
    );
    // Pairs, and none for /fake (answered by a middleware) or /veto.
    assert_eq!(sorted("reached"), ["/", "/a"], "{seen:#?}");
    assert_eq!(sorted("left"), sorted("reached"), "{seen:#?}");
    assert_eq!(stats["response_received_count"], 3, "{stats:#?}");
}

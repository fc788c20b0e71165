//! Issue 12, acceptance 1: a page of deeply nested elements (200,000 `<div>`s here;
//! examples/html_limits.rs measures 1,000,000) does not take the crawl down: it is
//! parsed up to the nesting limit, counted as `html/truncated/depth`, the callback
//! still sees what came before the cut, and the other pages are crawled normally.

mod support;

use std::sync::{Arc, Mutex};

use arachne::prelude::*;
use support::server::FixtureServer;
use support::site::Site;

struct Titles {
    start: String,
    titles: Arc<Mutex<Vec<String>>>,
}

#[async_trait(?Send)]
impl Spider for Titles {
    type Callback = DefaultCallback;
    fn name(&self) -> &str {
        "titles"
    }
    fn start_urls(&self) -> Vec<String> {
        vec![self.start.clone()]
    }
    async fn parse(&self, response: &Response) -> CallbackResult {
        let title = response.css("title::text")?.get().unwrap_or_default();
        self.titles.lock().unwrap().push(title);
        let mut out = Output::new();
        for r in response.follow_all_css("a::attr(href)")? {
            out.request(r);
        }
        Ok(out)
    }
}

#[actix::test]
async fn deep_nesting_is_truncated_and_counted() {
    let deep = format!(
        "<html><head><title>deep</title></head><body>{}x{}</body></html>",
        "<div>".repeat(200_000),
        "</div>".repeat(200_000)
    );
    let server = FixtureServer::start(Site::html_pages([
        (
            "/",
            r#"<title>home</title><a href="/deep">d</a><a href="/a">a</a>"#,
        ),
        ("/deep", deep.as_str()),
        ("/a", "<title>a</title>"),
    ]));
    let titles = Arc::new(Mutex::new(Vec::new()));
    let spider = Titles {
        start: server.url("/"),
        titles: titles.clone(),
    };
    let settings = Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false);
    let stats = Crawler::new(spider, settings).run().await.unwrap();
    assert_eq!(stats["finish_reason"], "finished", "{stats:#?}");
    assert_eq!(stats["html/truncated_count"], 1, "{stats:#?}");
    assert_eq!(stats["html/truncated/depth"], 1, "{stats:#?}");
    let mut titles = titles.lock().unwrap().clone();
    titles.sort();
    assert_eq!(titles, ["a", "deep", "home"]);
}

//! A spider that fetches a given list of requests and records what happened to each:
//! the page title on success, the failure kind and message in its errback. Tests that
//! are about the transport (proxies, TLS) use it instead of writing their own.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arachne::prelude::*;
use arachne::stats::StatsMap;

/// URL → page title; URL → (failure kind, failure message).
#[derive(Clone, Default)]
pub struct Seen {
    titles: Arc<Mutex<BTreeMap<String, String>>>,
    failures: Arc<Mutex<BTreeMap<String, (String, String)>>>,
}

impl Seen {
    /// The title scraped from `url`.
    pub fn title(&self, url: &str) -> Option<String> {
        self.titles.lock().unwrap().get(url).cloned()
    }

    /// How many pages were scraped.
    pub fn pages(&self) -> usize {
        self.titles.lock().unwrap().len()
    }

    /// The failure kind the errback got for `url`.
    pub fn failure(&self, url: &str) -> Option<String> {
        self.failures
            .lock()
            .unwrap()
            .get(url)
            .map(|(k, _)| k.clone())
    }

    /// Every failure: URL → (kind, message).
    pub fn failures(&self) -> BTreeMap<String, (String, String)> {
        self.failures.lock().unwrap().clone()
    }
}

/// The probe's callbacks: pages go to `parse`, failures to `failed`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cb {
    /// [`Spider::parse`].
    Parse,
    /// Records the failure.
    Failed,
}

/// Fetches its start requests (each with the `failed` errback, unfiltered); one item
/// per page with its URL and title.
pub struct Probe {
    start: Vec<Request>,
    seen: Seen,
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
        let title = response.css("title::text")?.getall().concat();
        self.seen
            .titles
            .lock()
            .unwrap()
            .insert(response.url.to_string(), title.clone());
        Ok(Output::new().with_item(serde_json::json!({
            "url": response.url.as_str(),
            "title": title,
        })))
    }

    async fn errback(&self, _: Cb, failure: &Failure) -> CallbackResult {
        self.seen.failures.lock().unwrap().insert(
            failure.request.url.to_string(),
            (failure.kind().to_string(), failure.to_string()),
        );
        Ok(Output::new())
    }
}

/// Crawls `start` with `settings` (quiet: no periodic log, no stats dump) and checks
/// the crawl finished normally.
pub async fn crawl(start: Vec<Request>, settings: Settings) -> (StatsMap, Seen) {
    let seen = Seen::default();
    let spider = Probe {
        start,
        seen: seen.clone(),
    };
    let settings = settings
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false);
    let stats = Crawler::new(spider, settings)
        .run()
        .await
        .expect("crawl runs");
    assert_eq!(stats["finish_reason"], "finished", "{stats:#?}");
    (stats, seen)
}

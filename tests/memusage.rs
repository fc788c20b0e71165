//! MemoryUsage end to end: a real crawl whose `MEMUSAGE_LIMIT_MB` is below what the
//! process already uses closes with `memusage_exceeded`, and every crawl records
//! `memusage/startup` and `memusage/max` (bytes) as Scrapy does.

mod support;

use arachne::prelude::*;
use support::server::FixtureServer;
use support::site::Site;

struct Walk(String);

#[async_trait(?Send)]
impl Spider for Walk {
    type Callback = DefaultCallback;
    fn name(&self) -> &str {
        "walk"
    }
    fn start_urls(&self) -> Vec<String> {
        vec![self.0.clone()]
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
async fn a_crawl_over_its_memory_limit_closes() {
    let server = FixtureServer::start(Site::random(300, 5, 3));
    let settings = Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false)
        .with("MEMUSAGE_LIMIT_MB", 1)
        .with("MEMUSAGE_CHECK_INTERVAL_SECONDS", 0.05)
        .with("DOWNLOAD_DELAY", 0.01)
        .with("CONCURRENT_REQUESTS", 1);
    let stats = Crawler::new(Walk(server.url("/p/0")), settings)
        .run()
        .await
        .unwrap();
    assert_eq!(stats["finish_reason"], "memusage_exceeded", "{stats:#?}");
    assert_eq!(stats["memusage/limit_reached"], 1);
    // Checked as the engine starts (Scrapy's `now=True`): it stops before the site is done.
    let pages = stats
        .get("response_received_count")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    assert!(pages < 300, "{pages}");
    let startup = stats
        .get("memusage/startup")
        .and_then(|v| v.as_u64())
        .unwrap_or_else(|| panic!("{stats:#?}"));
    assert!(startup > 1024 * 1024, "{startup}");
    assert!(stats["memusage/max"].as_f64().unwrap() >= startup as f64);
}

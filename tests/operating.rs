//! Issue 9's extensions end to end, on real crawls:
//! - MemoryUsage: a crawl whose `MEMUSAGE_LIMIT_MB` is below what the process already
//!   uses closes with `memusage_exceeded`, and records `memusage/startup` and
//!   `memusage/max` (bytes) as Scrapy does;
//! - PeriodicLog: the delta, stats and time sections at open, every interval and at
//!   close, the deltas adding up to the final stats.

mod support;

use arachne::prelude::*;
use support::logs::{capture_logs, messages};
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
    // The site links to example.invalid: never looked up.
    fn allowed_domains(&self) -> Vec<String> {
        vec!["127.0.0.1".into()]
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

#[actix::test]
async fn periodic_log_sections_add_up() {
    capture_logs();
    let server = FixtureServer::start(Site::random(40, 4, 5));
    let settings = Settings::new()
        .with("LOGSTATS_INTERVAL", 0.05)
        .with("STATS_DUMP", false)
        .with("DOWNLOAD_DELAY", 0.01)
        .with("RANDOMIZE_DOWNLOAD_DELAY", false)
        .with("CONCURRENT_REQUESTS", 1)
        .with("PERIODIC_LOG_DELTA", true)
        .with(
            "PERIODIC_LOG_STATS",
            json!({"include": ["downloader/"], "exclude": ["bytes"]}),
        )
        .with("PERIODIC_LOG_TIMING_ENABLED", true);
    let stats = Crawler::new(Walk(server.url("/p/0")), settings)
        .run()
        .await
        .unwrap();
    let entries: Vec<serde_json::Value> = messages(log::Level::Info)
        .iter()
        .filter(|m| m.starts_with('{') && m.contains("\"delta\""))
        .map(|m| serde_json::from_str(m).expect("each entry is JSON"))
        .collect();
    // At open, at least once in between (the crawl takes over 0.4 s), and at close.
    assert!(entries.len() >= 3, "{} entries", entries.len());
    let total: i64 = entries
        .iter()
        .map(|e| e["delta"]["response_received_count"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(Some(total), stats["response_received_count"].as_i64());
    let last = entries.last().unwrap();
    assert_eq!(
        last["stats"]["downloader/response_count"],
        stats["downloader/response_count"]
    );
    for e in &entries {
        for key in e["stats"].as_object().unwrap().keys() {
            assert!(
                key.contains("downloader/") && !key.contains("bytes"),
                "{key}"
            );
        }
        let time = &e["time"];
        assert_eq!(time["log_interval"], 0.05);
        assert!(time["elapsed"].as_f64().is_some() && time["log_interval_real"].as_f64().is_some());
        assert_eq!(time["utcnow"].as_str().map(str::len), Some(19), "{time}");
    }
}

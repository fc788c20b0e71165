//! Issue 12, acceptance 7: one crawl meets every trap at once — a connection reset, a
//! server that answers too slowly, a body over `DOWNLOAD_MAXSIZE` (announced and
//! chunked), 404 and 500 pages, broken HTML with invalid UTF-8, a Latin-1 page, a page
//! nested 200,000 deep, megabytes of NUL bytes (one as a 404 body), a page of 50,000
//! links, and a redirect to a host outside `allowed_domains`. The crawl must finish,
//! fetch each of the 201 normal pages exactly once, count every trap in the stats,
//! and keep this process's peak RSS (server included) under 300 MB.

mod support;

use std::sync::Arc;

use arachne::prelude::*;
use support::server::FixtureServer;

use support::fault_site::{fault_site, NORMAL};

struct Walk {
    start: String,
}

#[async_trait(?Send)]
impl Spider for Walk {
    type Callback = DefaultCallback;
    fn name(&self) -> &str {
        "walk"
    }
    fn allowed_domains(&self) -> Vec<String> {
        vec!["127.0.0.1".into()]
    }
    fn start(self: Arc<Self>) -> Start {
        start_from_iter([Request::get(&self.start)])
    }
    async fn parse(&self, response: &Response) -> CallbackResult {
        let mut out = Output::new().with_item(json!({ "url": response.url.as_str() }));
        for r in response.follow_all_css("a::attr(href)")? {
            out.request(r);
        }
        Ok(out)
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[actix::test]
async fn every_trap_at_once() {
    let server = FixtureServer::start(fault_site(20, 40));
    let settings = Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false)
        .with("DOWNLOAD_TIMEOUT", 1)
        .with("DOWNLOAD_MAXSIZE", 30_000_000)
        .with("RETRY_ENABLED", false)
        .with("CONCURRENT_REQUESTS", 8);
    let stats = Crawler::new(
        Walk {
            start: server.url("/n/0"),
        },
        settings,
    )
    .run()
    .await
    .unwrap();
    assert_eq!(stats["finish_reason"], "finished", "{stats:#?}");

    let log = server.log();
    for i in 0..NORMAL {
        let path = format!("/n/{i}");
        let n = log.iter().filter(|e| e.path == path).count();
        assert_eq!(n, 1, "{path} fetched {n} times");
    }
    let stat = |k: &str| stats.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    for (key, at_least) in [
        ("downloader/exception_type_count/ConnectionLost", 1),
        ("downloader/exception_type_count/TimeoutError", 1),
        ("downloader/exception_type_count/MaxSizeExceeded", 2),
        ("httperror/response_ignored_status_count/404", 2),
        ("httperror/response_ignored_status_count/500", 1),
        ("html/truncated/depth", 1),
        ("offsite/filtered", 1),
        ("dupefilter/filtered", 1),
    ] {
        assert!(stat(key) >= at_least, "{key} < {at_least}: {stats:#?}");
    }
    assert_eq!(
        stat("downloader/exception_type_count/ConnectionRefusedError"),
        0,
        "the offsite redirect was followed: {stats:#?}"
    );
    // 201 normal pages, /broken, /latin1, /deep, /nul and /links give items.
    assert_eq!(stat("item_scraped_count"), NORMAL as u64 + 5, "{stats:#?}");
    let peak = peak_rss_mb();
    eprintln!("fault suite: peak RSS {peak:.0} MB");
    assert!(peak <= 300.0, "peak RSS {peak:.0} MB");
}

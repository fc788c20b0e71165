//! The benchmark crawl of `../shared/bench` written for Arachne: the same spider as
//! `scrapy_follow.py` (start at `/p/0.html`, follow every link, one item per page with
//! `div.item`'s `name`, `price`, `sku`), printing pages/s and peak RSS.
//!
//! ```sh
//! (cd ../shared/bench && ./site.sh start)
//! cargo run --release --example bench_follow -- [START_URL] [CONCURRENCY] [FEED_PATH] [JOBDIR]
//! ```
//!
//! `FEED_PATH` may be `-` for no feed; a `JOBDIR` (a fresh directory each run) measures
//! the crawl on the disk frontier.

use std::time::Instant;

use arachne::prelude::*;
use arachne::selector::Css;

struct Follow {
    start: String,
    item: Css,
    name: Css,
    price: Css,
    sku: Css,
    links: Css,
}

#[async_trait(?Send)]
impl Spider for Follow {
    type Callback = DefaultCallback;

    fn name(&self) -> &str {
        "bench_follow"
    }
    fn allowed_domains(&self) -> Vec<String> {
        vec!["127.0.0.1".into()]
    }
    fn start(self: Arc<Self>) -> Start {
        // Filtered like the Scrapy version, so /p/0.html is fetched once.
        let r = Request::get(&self.start).map_err(SpiderError::from);
        start_from_iter(std::iter::once(r))
    }
    async fn parse(&self, response: &Response) -> CallbackResult {
        let html = response.html();
        let mut out = Output::new();
        let item = self.item.select(&html);
        out.item(serde_json::json!({
            "url": response.url.as_str(),
            "name": item.select(&self.name).get(),
            "price": item.select(&self.price).get(),
            "sku": item.select(&self.sku).get(),
        }));
        for href in self.links.select(&html).getall() {
            out.request(response.follow(&href)?);
        }
        Ok(out)
    }
}

/// Peak resident set size in MB (Linux `VmHWM`).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let start = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8899/p/0.html".into());
    let concurrency: usize = args.next().map_or(Ok(64), |c| c.parse())?;
    let feed = args.next().filter(|f| f != "-");
    let jobdir = args.next();
    arachne::cli::init_logging("INFO");
    let mut settings = Settings::new()
        .with("CONCURRENT_REQUESTS", concurrency)
        .with("CONCURRENT_REQUESTS_PER_DOMAIN", concurrency)
        .with("DOWNLOAD_TIMEOUT", 15)
        .with("LOGSTATS_INTERVAL", 10)
        .with("STATS_DUMP", false);
    if let Some(f) = feed {
        settings = settings.with(
            "FEEDS",
            serde_json::json!({ f: { "format": "jsonlines", "overwrite": true } }),
        );
    }
    if let Some(dir) = &jobdir {
        settings = settings.with("JOBDIR", dir.as_str());
    }
    let spider = Follow {
        start,
        item: Css::parse("div.item")?,
        name: Css::parse("span.name::text")?,
        price: Css::parse("span.price::text")?,
        sku: Css::parse("span.sku::text")?,
        links: Css::parse("a::attr(href)")?,
    };
    let t0 = Instant::now();
    let stats = CrawlerProcess::new(settings)
        .crawl(spider)
        .start()
        .remove(0)?;
    let wall = t0.elapsed().as_secs_f64();
    let pages = stats["response_received_count"].as_u64().unwrap_or(0);
    let items = stats["item_scraped_count"].as_u64().unwrap_or(0);
    let crawl = stats["elapsed_time_seconds"].as_f64().unwrap_or(wall);
    println!(
        "SUMMARY frontier={} pages={pages} items={items} crawl_s={crawl:.2} wall_s={wall:.2} pages_per_s={:.0} peak_rss_mb={:.1}",
        if jobdir.is_some() { "jobdir" } else { "memory" },
        pages as f64 / crawl,
        peak_rss_mb()
    );
    Ok(())
}

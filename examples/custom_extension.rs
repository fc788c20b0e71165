//! A user-written extension: an actor that subscribes to `ItemScraped` through the
//! crawler handle, counts items per domain, and logs the counts (and puts them in the
//! stats through the stats handle) when the spider closes. It reaches the crawl only
//! through `CrawlerHandle` and its handles — never an actor of the framework. It is plugged in exactly like a built-in one:
//! registered by name, enabled through `EXTENSIONS`.
//!
//! ```sh
//! cargo run --example custom_extension
//! ```

#[path = "support/quotes_site.rs"]
mod quotes_site;

use std::collections::BTreeMap;

use actix::{Actor, AsyncContext, Context, Handler};
use arachne::extension::{ComponentHandle, CrawlerHandle};
use arachne::prelude::*;
use arachne::signals::{ItemScraped, SpiderClosed};

/// Counts scraped items per domain.
struct ItemsPerDomain {
    crawler: CrawlerHandle,
    counts: BTreeMap<String, u64>,
}

impl ItemsPerDomain {
    /// The factory `EXTENSIONS` calls; `Ok(None)` would mean "not configured".
    fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<ComponentHandle>, arachne::error::ConfigError> {
        let addr = ItemsPerDomain {
            crawler: crawler.clone(),
            counts: BTreeMap::new(),
        }
        .start();
        Ok(Some(ComponentHandle::new(addr)))
    }
}

impl Actor for ItemsPerDomain {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.crawler
            .subscribe::<ItemScraped>(ctx.address().recipient());
        self.crawler
            .subscribe::<SpiderClosed>(ctx.address().recipient());
    }
}

impl Handler<ItemScraped> for ItemsPerDomain {
    type Result = ();
    fn handle(&mut self, msg: ItemScraped, _: &mut Context<Self>) {
        let domain = msg
            .response
            .as_ref()
            .and_then(|r| r.url.host_str().map(str::to_string))
            .unwrap_or_else(|| "-".into());
        *self.counts.entry(domain).or_default() += 1;
    }
}

impl Handler<SpiderClosed> for ItemsPerDomain {
    type Result = ();
    fn handle(&mut self, msg: SpiderClosed, _: &mut Context<Self>) {
        for (domain, n) in &self.counts {
            log::info!("items from {domain}: {n}");
            self.crawler
                .stats()
                .set(format!("items_per_domain/{domain}"), *n);
        }
        log::info!("spider {} closed ({})", msg.spider, msg.reason);
    }
}

/// A tiny spider: every quote on the listing pages.
struct Quotes(String);

#[async_trait(?Send)]
impl Spider for Quotes {
    type Callback = DefaultCallback;

    fn name(&self) -> &str {
        "quotes-per-domain"
    }
    fn start_urls(&self) -> Vec<String> {
        vec![self.0.clone()]
    }
    async fn parse(&self, response: &Response) -> CallbackResult {
        let html = response.html();
        let mut out = Output::new();
        for text in html.css("div.quote span.text::text")?.getall() {
            out.item(serde_json::json!({ "text": text }));
        }
        if let Some(next) = html.css("li.next a::attr(href)")?.get() {
            out.request(response.follow(&next)?);
        }
        Ok(out)
    }
}

fn main() -> anyhow::Result<()> {
    arachne::cli::init_logging("INFO");
    let site = quotes_site::QuotesSite::start()?;
    let settings = Settings::new()
        .with("EXTENSIONS", serde_json::json!({ "ItemsPerDomain": 500 }))
        .with("STATS_DUMP", false);
    let results = CrawlerProcess::new(settings)
        .extension("ItemsPerDomain", ItemsPerDomain::from_crawler)
        .crawl(Quotes(site.url("/")))
        .start();
    for r in results {
        let stats = r?;
        println!(
            "finish_reason={} items_per_domain/127.0.0.1={}",
            stats["finish_reason"], stats["items_per_domain/127.0.0.1"]
        );
    }
    Ok(())
}

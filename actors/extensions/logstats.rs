//! LogStats: every `LOGSTATS_INTERVAL` seconds, Scrapy's line
//! "Crawled N pages (at N pages/min), scraped N items (at N items/min)". It counts
//! from signals rather than polling the Stats actor. `LOGSTATS_INTERVAL = 0` disables it.

use std::time::Duration;

use actix::prelude::*;

use crate::error::ConfigError;
use crate::extension::{ComponentHandle, CrawlerHandle};
use crate::signals::{ItemScraped, ResponseReceived, SpiderClosed, SpiderOpened};

/// The extension.
#[derive(Debug)]
pub struct LogStats {
    crawler: CrawlerHandle,
    interval: Duration,
    pages: u64,
    items: u64,
    pages_prev: u64,
    items_prev: u64,
    timer: Option<SpawnHandle>,
}

/// Scrapy's line, with rates per minute over the last interval.
pub fn format_line(
    pages: u64,
    items: u64,
    pages_prev: u64,
    items_prev: u64,
    interval: Duration,
) -> String {
    let multiplier = 60.0 / interval.as_secs_f64();
    let prate = ((pages - pages_prev) as f64 * multiplier) as u64;
    let irate = ((items - items_prev) as f64 * multiplier) as u64;
    format!("Crawled {pages} pages (at {prate} pages/min), scraped {items} items (at {irate} items/min)")
}

impl LogStats {
    /// Not configured when `LOGSTATS_INTERVAL` is 0.
    pub fn from_crawler(crawler: &CrawlerHandle) -> Result<Option<ComponentHandle>, ConfigError> {
        let interval = crawler.settings.get_duration("LOGSTATS_INTERVAL")?;
        if interval.is_zero() {
            return Ok(None);
        }
        Ok(Some(ComponentHandle::new(
            LogStats {
                crawler: crawler.clone(),
                interval,
                pages: 0,
                items: 0,
                pages_prev: 0,
                items_prev: 0,
                timer: None,
            }
            .start(),
        )))
    }

    fn log(&mut self) {
        log::info!(
            "{}",
            format_line(
                self.pages,
                self.items,
                self.pages_prev,
                self.items_prev,
                self.interval
            )
        );
        self.pages_prev = self.pages;
        self.items_prev = self.items;
    }
}

impl Actor for LogStats {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        let c = &self.crawler;
        c.subscribe::<SpiderOpened>(ctx.address().recipient());
        c.subscribe::<SpiderClosed>(ctx.address().recipient());
        c.subscribe::<ItemScraped>(ctx.address().recipient());
        c.subscribe::<ResponseReceived>(ctx.address().recipient());
    }
}

impl Handler<SpiderOpened> for LogStats {
    type Result = ();
    fn handle(&mut self, _: SpiderOpened, ctx: &mut Context<Self>) {
        self.log();
        self.timer = Some(ctx.run_interval(self.interval, |act, _| act.log()));
    }
}

impl Handler<SpiderClosed> for LogStats {
    type Result = ();
    fn handle(&mut self, _: SpiderClosed, ctx: &mut Context<Self>) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
    }
}

impl Handler<ItemScraped> for LogStats {
    type Result = ();
    fn handle(&mut self, _: ItemScraped, _: &mut Context<Self>) {
        self.items += 1;
    }
}

impl Handler<ResponseReceived> for LogStats {
    type Result = ();
    fn handle(&mut self, _: ResponseReceived, _: &mut Context<Self>) {
        self.pages += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line matches Scrapy's wording and per-minute rates.
    #[test]
    fn line() {
        assert_eq!(
            format_line(30, 12, 10, 2, Duration::from_secs(30)),
            "Crawled 30 pages (at 40 pages/min), scraped 12 items (at 20 items/min)"
        );
    }
}

//! CoreStats: Scrapy's core counters — `start_time`, `finish_time`, `finish_reason`,
//! `elapsed_time_seconds`, `item_scraped_count`, `response_received_count`,
//! `item_dropped_count`, `item_dropped_reasons_count/<kind>` — plus Arachne's
//! `item_error_count`. Pure subscriber of signals.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use serde_json::Value;

use crate::error::ConfigError;
use crate::extension::{ComponentHandle, CrawlerHandle};
use crate::signals::{
    ItemDropped, ItemError, ItemScraped, ResponseReceived, SpiderClosed, SpiderOpened,
};

/// The extension.
#[derive(Debug)]
pub struct CoreStats {
    crawler: CrawlerHandle,
    started: Option<Instant>,
}

impl CoreStats {
    /// Always configured.
    pub fn from_crawler(crawler: &CrawlerHandle) -> Result<Option<ComponentHandle>, ConfigError> {
        Ok(Some(ComponentHandle::new(
            CoreStats {
                crawler: crawler.clone(),
                started: None,
            }
            .start(),
        )))
    }
}

/// Seconds since the epoch, as Scrapy's datetimes become in a JSON dump.
fn now_epoch() -> Value {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    Value::from(secs)
}

impl Actor for CoreStats {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        let c = &self.crawler;
        c.subscribe::<SpiderOpened>(ctx.address().recipient());
        c.subscribe::<SpiderClosed>(ctx.address().recipient());
        c.subscribe::<ItemScraped>(ctx.address().recipient());
        c.subscribe::<ItemDropped>(ctx.address().recipient());
        c.subscribe::<ItemError>(ctx.address().recipient());
        c.subscribe::<ResponseReceived>(ctx.address().recipient());
    }
}

impl Handler<SpiderOpened> for CoreStats {
    type Result = ();
    fn handle(&mut self, _: SpiderOpened, _: &mut Context<Self>) {
        self.started = Some(Instant::now());
        self.crawler.stats().set("start_time", now_epoch());
    }
}

impl Handler<SpiderClosed> for CoreStats {
    type Result = ();
    fn handle(&mut self, msg: SpiderClosed, _: &mut Context<Self>) {
        let stats = self.crawler.stats();
        let elapsed = self
            .started
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        stats.set("finish_time", now_epoch());
        stats.set("elapsed_time_seconds", Value::from(elapsed));
        stats.set("finish_reason", Value::from(msg.reason.to_string()));
    }
}

impl Handler<ItemScraped> for CoreStats {
    type Result = ();
    fn handle(&mut self, _: ItemScraped, _: &mut Context<Self>) {
        self.crawler.stats().inc("item_scraped_count");
    }
}

impl Handler<ItemDropped> for CoreStats {
    type Result = ();
    fn handle(&mut self, msg: ItemDropped, _: &mut Context<Self>) {
        self.crawler.stats().inc("item_dropped_count");
        self.crawler
            .stats()
            .inc(format!("item_dropped_reasons_count/{}", msg.kind));
    }
}

impl Handler<ItemError> for CoreStats {
    type Result = ();
    fn handle(&mut self, _: ItemError, _: &mut Context<Self>) {
        self.crawler.stats().inc("item_error_count");
    }
}

impl Handler<ResponseReceived> for CoreStats {
    type Result = ();
    fn handle(&mut self, _: ResponseReceived, _: &mut Context<Self>) {
        self.crawler.stats().inc("response_received_count");
    }
}

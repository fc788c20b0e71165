//! SpiderState: with a `JOBDIR`, the spider's [`State`](crate::spider::State) map is
//! loaded from `JOBDIR/spider.state` when the spider opens and saved there when it
//! closes (JSON, written atomically), as Scrapy's `SpiderState` extension does. Without
//! a `JOBDIR`, or for a spider that keeps no state, it is not configured.

use actix::prelude::*;

use crate::error::ConfigError;
use crate::extension::{ComponentHandle, CrawlerHandle};
use crate::signals::{SpiderClosed, SpiderOpened};

/// The extension.
#[derive(Debug)]
pub struct SpiderState {
    crawler: CrawlerHandle,
}

impl SpiderState {
    /// Configured only with a `JOBDIR` and a spider that has a state.
    pub fn from_crawler(crawler: &CrawlerHandle) -> Result<Option<ComponentHandle>, ConfigError> {
        let Some(job) = crawler.jobdir() else {
            return Ok(None);
        };
        let Some(state) = crawler.spider.state() else {
            return Ok(None);
        };
        // Loaded here rather than at `spider_opened`, so the spider's `opened` hook and
        // start requests already see it; a file that is not a JSON object is an error
        // at start, not a silent reset.
        if let Some(saved) = job
            .read_map("spider.state")
            .map_err(|e| ConfigError::Invalid(e.to_string()))?
        {
            state.with(|m| {
                for (k, v) in saved {
                    m.insert(k, v);
                }
            });
        }
        Ok(Some(ComponentHandle::new(
            SpiderState {
                crawler: crawler.clone(),
            }
            .start(),
        )))
    }
}

impl Actor for SpiderState {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.crawler
            .subscribe::<SpiderOpened>(ctx.address().recipient());
        self.crawler
            .subscribe::<SpiderClosed>(ctx.address().recipient());
    }
}

impl Handler<SpiderOpened> for SpiderState {
    type Result = ();
    fn handle(&mut self, _: SpiderOpened, _: &mut Context<Self>) {}
}

impl Handler<SpiderClosed> for SpiderState {
    type Result = ();
    fn handle(&mut self, _: SpiderClosed, _: &mut Context<Self>) {
        let (Some(job), Some(state)) = (self.crawler.jobdir(), self.crawler.spider.state()) else {
            return;
        };
        let value = serde_json::Value::Object(state.with(|m| m.clone()));
        if let Err(e) = job.write_json("spider.state", &value) {
            log::error!(
                "Cannot save the spider state in {}: {e}",
                job.path().display()
            );
        }
    }
}

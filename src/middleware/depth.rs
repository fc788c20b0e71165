//! DepthMiddleware (order 900): records each request's depth in meta `depth` (its
//! parent's plus one; start requests are depth 0), lowers its priority by
//! `depth × DEPTH_PRIORITY` (a positive value gives breadth-first order with the FIFO
//! queue), and drops requests deeper than `DEPTH_LIMIT` (0: no limit).
//!
//! Stats: `request_depth_max`; with `DEPTH_STATS_VERBOSE`, `request_depth_count/<depth>`.

use std::cell::Cell;

use crate::error::ConfigError;
use crate::extension::CrawlerHandle;
use crate::http::{Request, Response};
use crate::middleware::spider::SpiderMiddleware;
use crate::spider::OutputEntry;

/// The middleware.
#[derive(Debug)]
pub struct DepthMiddleware {
    crawler: CrawlerHandle,
    limit: u64,
    priority: i64,
    verbose: bool,
    /// Depth 0 is counted once, at the first response (as Scrapy does).
    counted_root: Cell<bool>,
}

impl DepthMiddleware {
    /// Reads `DEPTH_LIMIT`, `DEPTH_PRIORITY`, `DEPTH_STATS_VERBOSE`.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn SpiderMiddleware>>, ConfigError> {
        let s = &crawler.settings;
        Ok(Some(Box::new(DepthMiddleware {
            crawler: crawler.clone(),
            limit: s.get_usize("DEPTH_LIMIT")? as u64,
            priority: s.get_i64("DEPTH_PRIORITY")?,
            verbose: s.get_bool("DEPTH_STATS_VERBOSE")?,
            counted_root: Cell::new(false),
        })))
    }

    /// Sets depth and priority; `false` when the request is too deep.
    pub fn admit(&self, parent_depth: u64, request: &mut Request) -> bool {
        let depth = parent_depth + 1;
        request.meta.insert("depth".into(), depth.into());
        if self.priority != 0 {
            let adjusted =
                i64::from(request.priority) - (depth as i64).saturating_mul(self.priority);
            request.priority = adjusted.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        }
        if self.limit > 0 && depth > self.limit {
            log::debug!("Ignoring link (depth > {}): {}", self.limit, request.url);
            return false;
        }
        if self.verbose {
            self.crawler
                .stats()
                .inc(format!("request_depth_count/{depth}"));
        }
        self.crawler.stats().max("request_depth_max", depth as f64);
        true
    }
}

#[async_trait::async_trait(?Send)]
impl SpiderMiddleware for DepthMiddleware {
    async fn process_spider_output(
        &self,
        _response: Option<&Response>,
        parent: &Request,
        output: Vec<OutputEntry>,
    ) -> Vec<OutputEntry> {
        let parent_depth = parent.depth();
        if self.verbose && parent_depth == 0 && !self.counted_root.replace(true) {
            self.crawler.stats().inc("request_depth_count/0");
        }
        output
            .into_iter()
            .filter_map(|entry| match entry {
                OutputEntry::Request(mut r) => self
                    .admit(parent_depth, &mut r)
                    .then_some(OutputEntry::Request(r)),
                item => Some(item),
            })
            .collect()
    }
}

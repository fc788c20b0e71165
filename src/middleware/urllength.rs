//! UrlLengthMiddleware (order 800): drops requests whose URL is longer than
//! `URLLENGTH_LIMIT` (default 2083; 0 disables it), as Scrapy's does.
//!
//! Stats: `urllength/request_ignored_count`. Logs "Ignoring link (url length > N): url".

use crate::error::ConfigError;
use crate::extension::CrawlerHandle;
use crate::http::{Request, Response};
use crate::middleware::spider::SpiderMiddleware;
use crate::spider::OutputEntry;

/// The middleware.
#[derive(Debug)]
pub struct UrlLengthMiddleware {
    crawler: CrawlerHandle,
    limit: usize,
}

impl UrlLengthMiddleware {
    /// Not configured when `URLLENGTH_LIMIT` is 0.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn SpiderMiddleware>>, ConfigError> {
        let limit = crawler.settings.get_usize("URLLENGTH_LIMIT")?;
        if limit == 0 {
            return Ok(None);
        }
        Ok(Some(Box::new(UrlLengthMiddleware {
            crawler: crawler.clone(),
            limit,
        })))
    }
}

#[async_trait::async_trait(?Send)]
impl SpiderMiddleware for UrlLengthMiddleware {
    async fn process_spider_output(
        &self,
        _response: Option<&Response>,
        _parent: &Request,
        output: Vec<OutputEntry>,
    ) -> Vec<OutputEntry> {
        output
            .into_iter()
            .filter(|entry| match entry {
                OutputEntry::Request(r) if r.url.as_str().len() > self.limit => {
                    log::info!("Ignoring link (url length > {}): {}", self.limit, r.url);
                    self.crawler.stats().inc("urllength/request_ignored_count");
                    false
                }
                _ => true,
            })
            .collect()
    }
}

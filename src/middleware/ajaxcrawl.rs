//! Placeholder: AjaxCrawlMiddleware (being written).
use crate::error::ConfigError;
use crate::extension::CrawlerHandle;
use crate::middleware::downloader::DownloaderMiddleware;

/// AjaxCrawlMiddleware.
#[derive(Debug)]
pub struct AjaxCrawlMiddleware;

impl AjaxCrawlMiddleware {
    /// Not configured yet.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        let _ = crawler;
        Ok(None)
    }
}

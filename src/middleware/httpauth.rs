//! Placeholder: HttpAuthMiddleware (being written).
use crate::error::ConfigError;
use crate::extension::CrawlerHandle;
use crate::middleware::downloader::DownloaderMiddleware;

/// HttpAuthMiddleware.
#[derive(Debug)]
pub struct HttpAuthMiddleware;

impl HttpAuthMiddleware {
    /// Not configured yet.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        let _ = crawler;
        Ok(None)
    }
}

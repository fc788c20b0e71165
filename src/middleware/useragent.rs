//! Placeholder: UserAgentMiddleware (being written).
use crate::error::ConfigError;
use crate::extension::CrawlerHandle;
use crate::middleware::downloader::DownloaderMiddleware;

/// UserAgentMiddleware.
#[derive(Debug)]
pub struct UserAgentMiddleware;

impl UserAgentMiddleware {
    /// Not configured yet.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        let _ = crawler;
        Ok(None)
    }
}

//! Placeholder: MetaRefreshMiddleware (being written).
use crate::error::ConfigError;
use crate::extension::CrawlerHandle;
use crate::middleware::downloader::DownloaderMiddleware;

/// MetaRefreshMiddleware.
#[derive(Debug)]
pub struct MetaRefreshMiddleware;

impl MetaRefreshMiddleware {
    /// Not configured yet.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        let _ = crawler;
        Ok(None)
    }
}

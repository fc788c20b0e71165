//! Placeholder: DownloadTimeoutMiddleware (being written).
use crate::error::ConfigError;
use crate::extension::CrawlerHandle;
use crate::middleware::downloader::DownloaderMiddleware;

/// DownloadTimeoutMiddleware.
#[derive(Debug)]
pub struct DownloadTimeoutMiddleware;

impl DownloadTimeoutMiddleware {
    /// Not configured yet.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        let _ = crawler;
        Ok(None)
    }
}

//! DownloadTimeoutMiddleware (order 350): gives every request a `download_timeout` meta
//! key, as Scrapy's `scrapy.downloadermiddlewares.downloadtimeout.DownloadTimeoutMiddleware`
//! does. The download slot enforces it.
//!
//! The timeout is the spider attribute `download_timeout` when the spider has one (a
//! number of seconds; `null` or 0 sets none), else the `DOWNLOAD_TIMEOUT` setting (180).
//! A request that already has `download_timeout` in its meta keeps it; a timeout of 0
//! sets nothing (the slot's default then applies).
//!
//! Settings: `DOWNLOAD_TIMEOUT` (180). Spider attribute: `download_timeout`.
//! Meta keys: `download_timeout` (seconds, written when absent). Stats: none.

use serde_json::Value;

use crate::error::{ConfigError, DownloadError};
use crate::extension::CrawlerHandle;
use crate::http::Request;
use crate::middleware::downloader::{DownloaderMiddleware, RequestFlow};

/// Sets meta `download_timeout`.
#[derive(Debug)]
pub struct DownloadTimeoutMiddleware {
    /// Seconds; 0 sets nothing.
    timeout: f64,
}

impl DownloadTimeoutMiddleware {
    /// Reads `DOWNLOAD_TIMEOUT` and the spider's `download_timeout` attribute.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        let setting = crawler.settings.get_f64("DOWNLOAD_TIMEOUT")?;
        let timeout = timeout(setting, crawler.spider.attr("download_timeout"))?;
        Ok(Some(Box::new(DownloadTimeoutMiddleware { timeout })))
    }
}

/// The timeout in force: the spider attribute if set (`null` means none), else the
/// setting.
fn timeout(setting: f64, attr: Option<Value>) -> Result<f64, ConfigError> {
    let bad = |value: String| ConfigError::InvalidValue {
        key: "download_timeout (spider attribute)".into(),
        value,
        expected: "a non-negative number of seconds",
    };
    let secs = match attr {
        None => setting,
        Some(Value::Null) => 0.0,
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| bad(n.to_string()))?,
        Some(Value::String(s)) => s.trim().parse().map_err(|_| bad(s.clone()))?,
        Some(other) => return Err(bad(other.to_string())),
    };
    if secs.is_finite() && secs >= 0.0 {
        Ok(secs)
    } else {
        Err(bad(secs.to_string()))
    }
}

#[async_trait::async_trait(?Send)]
impl DownloaderMiddleware for DownloadTimeoutMiddleware {
    async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
        set_default_timeout(request, self.timeout);
        Ok(RequestFlow::Continue)
    }
}

/// Scrapy's `request.meta.setdefault("download_timeout", timeout)` when `timeout` is set.
fn set_default_timeout(request: &mut Request, timeout: f64) {
    if timeout != 0.0 && !request.meta.contains_key("download_timeout") {
        request
            .meta
            .insert("download_timeout".into(), Value::from(timeout));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The spider attribute wins over the setting; `null` disables.
    #[test]
    fn attribute_wins() {
        assert_eq!(timeout(180.0, None).unwrap(), 180.0);
        assert_eq!(timeout(180.0, Some(json!(5))).unwrap(), 5.0);
        assert_eq!(timeout(180.0, Some(json!("2.5"))).unwrap(), 2.5);
        assert_eq!(timeout(180.0, Some(Value::Null)).unwrap(), 0.0);
        assert!(timeout(180.0, Some(json!("soon"))).is_err());
        assert!(timeout(180.0, Some(json!(-1))).is_err());
    }

    /// Only an absent key is set, and never to 0.
    #[test]
    fn setdefault() {
        let mut r = Request::get("http://a.test/").unwrap();
        set_default_timeout(&mut r, 10.0);
        assert_eq!(r.meta["download_timeout"], 10.0);
        set_default_timeout(&mut r, 20.0);
        assert_eq!(r.meta["download_timeout"], 10.0);
        let mut r = Request::get("http://a.test/").unwrap();
        set_default_timeout(&mut r, 0.0);
        assert!(!r.meta.contains_key("download_timeout"));
    }
}

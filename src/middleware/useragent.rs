//! UserAgentMiddleware (order 500): sends `User-Agent` on every request that has none,
//! as Scrapy's `scrapy.downloadermiddlewares.useragent.UserAgentMiddleware` does. Without
//! this middleware (`DOWNLOADER_MIDDLEWARES = {"UserAgentMiddleware": null}`) no
//! `User-Agent` is sent at all.
//!
//! The value is the spider attribute `user_agent` when the spider has one (`null` or an
//! empty string: send none), else the `USER_AGENT` setting (`Arachne/<version>`; empty:
//! send none). A value that is not a valid header value fails the crawl at start.
//!
//! Settings: `USER_AGENT`. Spider attribute: `user_agent`. Meta keys: none. Stats: none.

use serde_json::Value;

use crate::error::{ConfigError, DownloadError};
use crate::extension::CrawlerHandle;
use crate::http::{HeaderValue, Request};
use crate::middleware::downloader::{DownloaderMiddleware, RequestFlow};

/// Sets `User-Agent`.
#[derive(Debug)]
pub struct UserAgentMiddleware {
    user_agent: Option<HeaderValue>,
}

impl UserAgentMiddleware {
    /// Reads `USER_AGENT` and the spider's `user_agent` attribute.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        let ua = user_agent(
            &crawler.settings.get_str("USER_AGENT"),
            crawler.spider.attr("user_agent"),
        );
        let user_agent = match ua {
            None => None,
            Some(ua) => {
                Some(
                    HeaderValue::from_str(&ua).map_err(|_| ConfigError::InvalidValue {
                        key: "USER_AGENT".into(),
                        value: ua.clone(),
                        expected: "a valid HTTP header value",
                    })?,
                )
            }
        };
        Ok(Some(Box::new(UserAgentMiddleware { user_agent })))
    }
}

/// The user agent to send: the spider attribute if set, else the setting; empty or
/// `null` is none.
fn user_agent(setting: &str, attr: Option<Value>) -> Option<String> {
    let ua = match attr {
        None => setting.to_string(),
        Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    };
    (!ua.is_empty()).then_some(ua)
}

#[async_trait::async_trait(?Send)]
impl DownloaderMiddleware for UserAgentMiddleware {
    async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
        if let Some(ua) = &self.user_agent {
            if !request.headers.contains_key("user-agent") {
                request
                    .headers
                    .insert(awc::http::header::USER_AGENT, ua.clone());
            }
        }
        Ok(RequestFlow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The spider attribute wins; empty or null sends none.
    #[test]
    fn choice() {
        assert_eq!(user_agent("Arachne/1", None).as_deref(), Some("Arachne/1"));
        assert_eq!(
            user_agent("Arachne/1", Some(json!("Mine/2"))).as_deref(),
            Some("Mine/2")
        );
        assert_eq!(user_agent("Arachne/1", Some(Value::Null)), None);
        assert_eq!(user_agent("", None), None);
    }
}

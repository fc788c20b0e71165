//! DefaultHeadersMiddleware (order 400): adds `DEFAULT_REQUEST_HEADERS` to every request
//! that lacks them, as Scrapy's
//! `scrapy.downloadermiddlewares.defaultheaders.DefaultHeadersMiddleware` does. A header
//! the request already has (any case) is left alone.
//!
//! Settings: `DEFAULT_REQUEST_HEADERS` (default `Accept:
//! text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8` and
//! `Accept-Language: en`): a JSON object of name → value, where a value may be a list
//! (several values) or `null` (not sent). A name or value that is not valid HTTP fails the
//! crawl at start, naming it.
//!
//! Meta keys: none. Stats: none.

use serde_json::Value;

use crate::error::{ConfigError, DownloadError};
use crate::extension::CrawlerHandle;
use crate::http::{HeaderMap, HeaderName, HeaderValue, Request};
use crate::middleware::downloader::{DownloaderMiddleware, RequestFlow};
use crate::settings::Settings;

/// Adds the default request headers.
#[derive(Debug)]
pub struct DefaultHeadersMiddleware {
    headers: Vec<(HeaderName, Vec<HeaderValue>)>,
}

impl DefaultHeadersMiddleware {
    /// Reads `DEFAULT_REQUEST_HEADERS`.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        Ok(Some(Box::new(DefaultHeadersMiddleware {
            headers: default_headers(&crawler.settings)?,
        })))
    }
}

/// `DEFAULT_REQUEST_HEADERS` as header names and values; `null` values dropped (Scrapy's
/// `without_none_values`).
fn default_headers(
    settings: &Settings,
) -> Result<Vec<(HeaderName, Vec<HeaderValue>)>, ConfigError> {
    let bad = |what: String| ConfigError::InvalidValue {
        key: "DEFAULT_REQUEST_HEADERS".into(),
        value: what,
        expected: "HTTP header names and values",
    };
    let mut out = Vec::new();
    for (name, value) in settings.get_dict("DEFAULT_REQUEST_HEADERS")? {
        let texts: Vec<String> = match value {
            Value::Null => continue,
            Value::String(s) => vec![s],
            Value::Array(items) => items.into_iter().filter_map(text).collect(),
            other => vec![other.to_string()],
        };
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad(name.clone()))?;
        let values = texts
            .iter()
            .map(|t| HeaderValue::from_str(t).map_err(|_| bad(format!("{name}: {t}"))))
            .collect::<Result<Vec<_>, _>>()?;
        out.push((header, values));
    }
    Ok(out)
}

/// A JSON value as header text (`null` is none).
fn text(v: Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// Scrapy's `headers.setdefault(name, value)` for each default.
fn set_defaults(headers: &mut HeaderMap, defaults: &[(HeaderName, Vec<HeaderValue>)]) {
    for (name, values) in defaults {
        if headers.contains_key(name) {
            continue;
        }
        for v in values {
            headers.append(name.clone(), v.clone());
        }
    }
}

#[async_trait::async_trait(?Send)]
impl DownloaderMiddleware for DefaultHeadersMiddleware {
    async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
        set_defaults(&mut request.headers, &self.headers);
        Ok(RequestFlow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The defaults are Scrapy's; a request's own header wins.
    #[test]
    fn defaults_fill_gaps_only() {
        let defaults = default_headers(&Settings::new()).unwrap();
        let mut r = Request::get("http://a.test/")
            .unwrap()
            .header("accept", "application/json");
        set_defaults(&mut r.headers, &defaults);
        assert_eq!(r.headers.get("accept").unwrap(), "application/json");
        assert_eq!(r.headers.get("accept-language").unwrap(), "en");
    }

    /// `null` drops a header, lists give several values, junk is an error naming the key.
    #[test]
    fn values() {
        let s = Settings::new().with(
            "DEFAULT_REQUEST_HEADERS",
            json!({"Accept": null, "X-Multi": ["a", "b"], "X-Num": 3}),
        );
        let defaults = default_headers(&s).unwrap();
        let mut h = HeaderMap::new();
        set_defaults(&mut h, &defaults);
        assert!(!h.contains_key("accept"));
        assert_eq!(h.get_all("x-multi").count(), 2);
        assert_eq!(h.get("x-num").unwrap(), "3");
        let s = Settings::new().with("DEFAULT_REQUEST_HEADERS", json!({"Bad Name": "x"}));
        let err = default_headers(&s).unwrap_err().to_string();
        assert!(err.contains("DEFAULT_REQUEST_HEADERS"), "{err}");
    }
}

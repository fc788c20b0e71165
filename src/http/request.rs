//! [`Request`]: a URL to fetch and what to do with its response. Callbacks and
//! errbacks are named, not closures, so a request is plain data that can be queued,
//! persisted (JOBDIR) or sent to another process (Redis) and still mean the same.

use bytes::Bytes;
use serde_json::{Map, Value};
use url::Url;

use super::fingerprint::{self, Fingerprint};
use super::{HeaderMap, HeaderName, HeaderValue, Method};
use crate::error::InvalidUrl;

/// Free-form per-request data, Scrapy's `request.meta` (`depth`, `download_slot`,
/// `download_timeout`, `dont_redirect`, ... and anything a spider wants to carry).
pub type Meta = Map<String, Value>;

/// A request a spider wants made.
///
/// ```
/// use arachne::http::Request;
///
/// let req = Request::get("http://127.0.0.1:8080/page/1")?
///     .callback("parse_page")
///     .priority(10)
///     .meta("page", 1);
/// assert_eq!(req.callback.as_deref(), Some("parse_page"));
/// # Ok::<(), arachne::error::InvalidUrl>(())
/// ```
#[derive(Debug, Clone)]
pub struct Request {
    /// Absolute URL.
    pub url: Url,
    /// HTTP method (`GET` unless set).
    pub method: Method,
    /// Headers sent as given, before middlewares add theirs.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
    /// Scrapy's `meta`.
    pub meta: Meta,
    /// Keyword arguments for the callback, Scrapy's `cb_kwargs`.
    pub cb_kwargs: Map<String, Value>,
    /// Higher runs sooner.
    pub priority: i32,
    /// Skip the duplicate filter.
    pub dont_filter: bool,
    /// Name of the spider callback for the response; `None` means `parse`.
    pub callback: Option<String>,
    /// Name of the spider errback for failures.
    pub errback: Option<String>,
    /// Free labels shown in logs.
    pub flags: Vec<String>,
}

impl Request {
    /// A `GET` request. Fails on a URL that does not parse or has no host.
    pub fn get(url: impl AsRef<str>) -> Result<Request, InvalidUrl> {
        Request::new(Method::GET, url)
    }

    /// A request with any method.
    pub fn new(method: Method, url: impl AsRef<str>) -> Result<Request, InvalidUrl> {
        Ok(Request::from_url(method, parse_url(url.as_ref())?))
    }

    /// A request for an already parsed URL.
    pub fn from_url(method: Method, url: Url) -> Request {
        Request {
            url,
            method,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            meta: Meta::new(),
            cb_kwargs: Map::new(),
            priority: 0,
            dont_filter: false,
            callback: None,
            errback: None,
            flags: Vec::new(),
        }
    }

    /// Names the callback that parses the response.
    pub fn callback(mut self, name: impl Into<String>) -> Self {
        self.callback = Some(name.into());
        self
    }

    /// Names the errback for download and HTTP errors.
    pub fn errback(mut self, name: impl Into<String>) -> Self {
        self.errback = Some(name.into());
        self
    }

    /// Sets the priority (higher first).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Lets the request through the duplicate filter.
    pub fn dont_filter(mut self, yes: bool) -> Self {
        self.dont_filter = yes;
        self
    }

    /// Sets one `meta` key.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.meta.insert(key.into(), value.into());
        self
    }

    /// Sets one callback keyword argument.
    pub fn cb_kwarg(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.cb_kwargs.insert(key.into(), value.into());
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a header; a name or value that is not valid HTTP is ignored with a warning
    /// rather than failing the crawl.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                self.headers.insert(n, v);
            }
            _ => log::warn!("ignoring invalid header {name:?}: {value:?}"),
        }
        self
    }

    /// Scrapy's request fingerprint (SHA-1 over method, canonical URL and body).
    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint::fingerprint(self.method.as_str(), &self.url, &self.body)
    }

    /// The crawl depth recorded in `meta["depth"]` (0 for start requests).
    pub fn depth(&self) -> u64 {
        self.meta.get("depth").and_then(Value::as_u64).unwrap_or(0)
    }

    /// A `meta` value as a string, if it is one.
    pub fn meta_str(&self, key: &str) -> Option<&str> {
        self.meta.get(key).and_then(Value::as_str)
    }

    /// A `meta` value as a number of seconds, if it is a number.
    pub fn meta_f64(&self, key: &str) -> Option<f64> {
        self.meta.get(key).and_then(Value::as_f64)
    }

    /// A `meta` flag (`true`, or a non-zero number).
    pub fn meta_bool(&self, key: &str) -> bool {
        match self.meta.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
            _ => false,
        }
    }
}

/// Parses an absolute URL the way Scrapy's `Request` accepts one: a scheme and, for
/// network schemes, a host. Leading and trailing whitespace is stripped.
pub(crate) fn parse_url(raw: &str) -> Result<Url, InvalidUrl> {
    let trimmed = raw.trim();
    let url = Url::parse(trimmed).map_err(|e| InvalidUrl {
        url: raw.to_string(),
        reason: if e == url::ParseError::RelativeUrlWithoutBase {
            "missing scheme".to_string()
        } else {
            e.to_string()
        },
    })?;
    if matches!(url.scheme(), "http" | "https") && url.host().is_none() {
        return Err(InvalidUrl {
            url: raw.to_string(),
            reason: "missing host".to_string(),
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relative URL is refused with "missing scheme", as Scrapy does.
    #[test]
    fn relative_url_is_invalid() {
        let err = Request::get("/just/a/path").unwrap_err();
        assert!(err.reason.contains("missing scheme"), "{err}");
    }

    /// Garbage never panics and says why.
    #[test]
    fn garbage_is_invalid() {
        for raw in ["", "http://", "http://[::1", "ht tp://x", "http:// /"] {
            assert!(Request::get(raw).is_err(), "{raw:?} should be invalid");
        }
    }

    /// An unsupported scheme still parses: the downloader refuses it later, so that it
    /// is counted and reaches the errback.
    #[test]
    fn other_schemes_parse() {
        assert!(Request::get("ftp://127.0.0.1/file").is_ok());
    }

    /// The builder sets what it says.
    #[test]
    fn builder() {
        let r = Request::get("http://127.0.0.1/")
            .unwrap()
            .meta("depth", 3)
            .header("X-Test", "1")
            .dont_filter(true);
        assert_eq!(r.depth(), 3);
        assert!(r.dont_filter);
        assert_eq!(r.headers.get("x-test").unwrap(), "1");
    }
}

//! [`Request`]: a URL to fetch and what to do with its response. Callbacks and
//! errbacks are data (the spider's own serde type, see [`CallbackData`]), not
//! closures, so a request is plain data that can be queued, persisted (JOBDIR) or
//! sent to another process (Redis) and still mean the same: `Request` implements
//! `Serialize` and `Deserialize`, losslessly.

use bytes::Bytes;
use serde_json::{Map, Value};
use url::Url;

use super::fingerprint::{self, Fingerprint};
use super::{HeaderMap, HeaderName, HeaderValue, Method};
use crate::error::InvalidUrl;
use crate::spider::{Callback, CallbackData};

/// Free-form per-request data, Scrapy's `request.meta` (`depth`, `download_slot`,
/// `download_timeout`, `dont_redirect`, ... and anything a spider wants to carry).
pub type Meta = Map<String, Value>;

/// A request a spider wants made.
///
/// ```
/// use arachne::http::Request;
///
/// #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
/// #[serde(rename_all = "snake_case")]
/// enum Cb { Parse, ParsePage { page: u32 } }
///
/// let req = Request::get("http://127.0.0.1:8080/page/1")?
///     .callback(Cb::ParsePage { page: 1 })
///     .priority(10)
///     .meta("seen_on", "index");
/// assert_eq!(req.callback.as_ref().unwrap().resolve::<Cb>().unwrap(), Cb::ParsePage { page: 1 });
///
/// // A request round-trips through serde (what JOBDIR and Redis store).
/// let json = serde_json::to_string(&req).unwrap();
/// let back: Request = serde_json::from_str(&json).unwrap();
/// assert_eq!(back.url, req.url);
/// assert_eq!(back.callback.unwrap().resolve::<Cb>().unwrap(), Cb::ParsePage { page: 1 });
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
    /// Higher runs sooner.
    pub priority: i32,
    /// Skip the duplicate filter.
    pub dont_filter: bool,
    /// The spider callback for the response (its data replaces Scrapy's
    /// `cb_kwargs`); `None` means `parse`.
    pub callback: Option<CallbackData>,
    /// The spider errback for failures.
    pub errback: Option<CallbackData>,
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
            priority: 0,
            dont_filter: false,
            callback: None,
            errback: None,
            flags: Vec::new(),
        }
    }

    /// Sets the callback that parses the response: a value of the spider's
    /// [`Spider::Callback`](crate::spider::Spider::Callback) type.
    pub fn callback<C: Callback>(mut self, callback: C) -> Self {
        self.callback = Some(CallbackData::new(callback));
        self
    }

    /// Sets the errback for download and HTTP errors (a value of the same type).
    pub fn errback<C: Callback>(mut self, errback: C) -> Self {
        self.errback = Some(CallbackData::new(errback));
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

/// The serde form of a request: every field, the body base64-encoded, header values
/// as strings when they are UTF-8 (else `{"base64": ...}`), callbacks in their own
/// serde form.
#[derive(serde::Serialize, serde::Deserialize)]
struct RequestRepr {
    url: String,
    #[serde(default = "get_method")]
    method: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    headers: Vec<(String, HeaderRepr)>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    body: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    meta: Meta,
    #[serde(default, skip_serializing_if = "is_zero")]
    priority: i32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    dont_filter: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    callback: Option<CallbackData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    errback: Option<CallbackData>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    flags: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum HeaderRepr {
    Text(String),
    Binary { base64: String },
}

fn get_method() -> String {
    "GET".to_string()
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl serde::Serialize for Request {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        let b64 = &base64::engine::general_purpose::STANDARD;
        let headers = self
            .headers
            .iter()
            .map(|(k, v)| {
                let value = match v.to_str() {
                    Ok(s) => HeaderRepr::Text(s.to_string()),
                    Err(_) => HeaderRepr::Binary {
                        base64: b64.encode(v.as_bytes()),
                    },
                };
                (k.as_str().to_string(), value)
            })
            .collect();
        RequestRepr {
            url: self.url.to_string(),
            method: self.method.to_string(),
            headers,
            body: if self.body.is_empty() {
                String::new()
            } else {
                b64.encode(&self.body)
            },
            meta: self.meta.clone(),
            priority: self.priority,
            dont_filter: self.dont_filter,
            callback: self.callback.clone(),
            errback: self.errback.clone(),
            flags: self.flags.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Request {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        use serde::de::Error;
        let b64 = &base64::engine::general_purpose::STANDARD;
        let repr = RequestRepr::deserialize(deserializer)?;
        let url = parse_url(&repr.url).map_err(D::Error::custom)?;
        let method = Method::from_bytes(repr.method.as_bytes())
            .map_err(|e| D::Error::custom(format!("invalid method {:?}: {e}", repr.method)))?;
        let mut headers = HeaderMap::new();
        for (name, value) in repr.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| D::Error::custom(format!("invalid header name {name:?}: {e}")))?;
            let bytes = match value {
                HeaderRepr::Text(s) => s.into_bytes(),
                HeaderRepr::Binary { base64 } => b64
                    .decode(base64)
                    .map_err(|e| D::Error::custom(format!("invalid header value: {e}")))?,
            };
            let value = HeaderValue::from_bytes(&bytes)
                .map_err(|e| D::Error::custom(format!("invalid header value: {e}")))?;
            headers.append(name, value);
        }
        let body = if repr.body.is_empty() {
            Bytes::new()
        } else {
            Bytes::from(
                b64.decode(repr.body)
                    .map_err(|e| D::Error::custom(format!("invalid body: {e}")))?,
            )
        };
        Ok(Request {
            url,
            method,
            headers,
            body,
            meta: repr.meta,
            priority: repr.priority,
            dont_filter: repr.dont_filter,
            callback: repr.callback,
            errback: repr.errback,
            flags: repr.flags,
        })
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

    /// Every field survives a serde round trip, binary bodies and headers included.
    #[test]
    fn serde_round_trip() {
        let mut r = Request::new(Method::POST, "http://127.0.0.1:9/a?b=1#frag")
            .unwrap()
            .header("X-Text", "v")
            .body(vec![0u8, 159, 146, 150])
            .meta("depth", 2)
            .priority(-3)
            .dont_filter(true)
            .callback(crate::spider::DefaultCallback::Parse);
        r.errback = Some(crate::spider::CallbackData::with_data(
            "on_error",
            serde_json::json!({"page": 2}),
        ));
        r.headers.append(
            HeaderName::from_static("x-bin"),
            HeaderValue::from_bytes(&[0xfe, b'a']).unwrap(),
        );
        r.flags.push("retried".into());
        let back: Request = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.url, r.url);
        assert_eq!(back.method, r.method);
        // HeaderMap iterates in hash order; compare as sorted lists.
        let sorted = |h: &HeaderMap| {
            let mut v: Vec<_> = h.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            v.sort_by(|a, b| (a.0.as_str(), a.1.as_bytes()).cmp(&(b.0.as_str(), b.1.as_bytes())));
            v
        };
        assert_eq!(sorted(&back.headers), sorted(&r.headers));
        assert_eq!(back.body, r.body);
        assert_eq!(back.meta, r.meta);
        assert_eq!(back.priority, -3);
        assert!(back.dont_filter);
        assert_eq!(back.callback, r.callback);
        assert_eq!(back.errback, r.errback);
        assert_eq!(back.flags, r.flags);
        assert_eq!(back.fingerprint(), r.fingerprint());
        let bad = serde_json::from_str::<Request>(r#"{"url": "not a url"}"#);
        assert!(bad.unwrap_err().to_string().contains("not a url"));
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

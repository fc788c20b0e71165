//! [`Response`]: what came back for a [`Request`], with Scrapy's conveniences —
//! `text()`, `urljoin`, `follow` and CSS selection.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use encoding_rs::Encoding;
use url::Url;

use super::tls::CertificateInfo;
use super::{encoding, HeaderMap, Meta, Request};
use crate::error::InvalidUrl;
use crate::selector::{Html, SelectorError};

/// A downloaded response.
///
/// ```
/// use arachne::http::{Request, Response};
///
/// let req = Request::get("http://127.0.0.1/a/b")?;
/// let resp = Response::new(req, 200, "<a href='../c'>C</a>".into());
/// assert_eq!(resp.css("a::attr(href)").unwrap(), vec!["../c"]);
/// assert_eq!(resp.follow("../c")?.url.as_str(), "http://127.0.0.1/c");
/// # Ok::<(), arachne::error::InvalidUrl>(())
/// ```
#[derive(Debug, Clone)]
pub struct Response {
    /// Final URL (the request's URL; redirects produce new requests).
    pub url: Url,
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body, as received (after transfer decoding and decompression).
    pub body: Bytes,
    /// The request that produced this response.
    pub request: Request,
    /// The server's address, when known.
    pub ip: Option<IpAddr>,
    /// Time from sending the request to receiving the response headers — Scrapy's
    /// `download_latency`, what AutoThrottle adapts to.
    pub latency: Duration,
    /// The HTTP protocol, as Scrapy names it: `HTTP/1.1` (or `HTTP/1.0`) and `h2`.
    pub protocol: Option<String>,
    /// The server's TLS certificate for `https` responses (Scrapy's
    /// `response.certificate`): the one last seen in a handshake with this host, see
    /// [`crate::http::tls`] for the caveat. `None` for plain HTTP.
    pub certificate: Option<Arc<CertificateInfo>>,
    /// Free labels shown in logs (`cached`, ...).
    pub flags: Vec<String>,
}

impl Response {
    /// A response for `request` (used by the downloader, middlewares and tests).
    pub fn new(request: Request, status: u16, body: Bytes) -> Response {
        Response {
            url: request.url.clone(),
            status,
            headers: HeaderMap::new(),
            body,
            request,
            ip: None,
            latency: Duration::ZERO,
            protocol: None,
            certificate: None,
            flags: Vec::new(),
        }
    }

    /// The request's `meta`, Scrapy's `response.meta`.
    pub fn meta(&self) -> &Meta {
        &self.request.meta
    }

    /// The `Content-Type` header, if it is readable.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(awc::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    /// The encoding `text()` decodes with: BOM, then header charset, then `<meta>`,
    /// then UTF-8.
    pub fn encoding(&self) -> &'static Encoding {
        encoding::detect(self.content_type(), &self.body)
    }

    /// The body as text; borrowed when it is valid UTF-8 already. Bytes that do not
    /// decode become U+FFFD.
    pub fn text(&self) -> Cow<'_, str> {
        encoding::decode(self.content_type(), &self.body)
    }

    /// Resolves a possibly relative link against this response's URL.
    pub fn urljoin(&self, href: &str) -> Result<Url, InvalidUrl> {
        self.url.join(href.trim()).map_err(|e| InvalidUrl {
            url: href.to_string(),
            reason: e.to_string(),
        })
    }

    /// A `GET` request for a link found on this page, parsed by `parse` unless a
    /// callback is set on the result. Fragments are kept (the fingerprint ignores them).
    pub fn follow(&self, href: &str) -> Result<Request, InvalidUrl> {
        let url = self.urljoin(href)?;
        Request::get(url.as_str())
    }

    /// Parses the body as HTML. Build it once per callback when you run several
    /// queries; the document is not `Send`, so it stays where the callback runs.
    pub fn html(&self) -> Html {
        Html::parse(&self.text())
    }

    /// Runs one CSS query (`a::attr(href)`, `h1::text`, `div.quote`) over the body and
    /// returns every match as a string.
    pub fn css(&self, query: &str) -> Result<Vec<String>, SelectorError> {
        Ok(self.html().css(query)?.getall())
    }
}

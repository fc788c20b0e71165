//! [`Response`]: what came back for a [`Request`], with Scrapy's conveniences —
//! `text()`, `urljoin`, `follow` and CSS selection.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::OnceLock;
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
    /// `<base href>` resolved against `url`, looked for once (Scrapy's `get_base_url`).
    base: OnceLock<Option<Url>>,
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
            base: OnceLock::new(),
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

    /// The URL relative links resolve against: the page's `<base href>` when it has
    /// one in its first 4 KB (as w3lib's `get_base_url` looks), else its own URL.
    pub fn base_url(&self) -> &Url {
        self.base
            .get_or_init(|| find_base_href(&self.body).and_then(|h| self.url.join(&h).ok()))
            .as_ref()
            .unwrap_or(&self.url)
    }

    /// Resolves a possibly relative link against this response's base URL.
    pub fn urljoin(&self, href: &str) -> Result<Url, InvalidUrl> {
        self.base_url().join(href.trim()).map_err(|e| InvalidUrl {
            url: href.to_string(),
            reason: e.to_string(),
        })
    }

    /// A `GET` request for a link found on this page, parsed by `parse` unless a
    /// callback is set on the result. Fragments are kept (the fingerprint ignores them).
    pub fn follow(&self, href: &str) -> Result<Request, InvalidUrl> {
        let url = self.urljoin(href)?;
        if matches!(url.scheme(), "http" | "https") && url.host().is_none() {
            return Err(InvalidUrl {
                url: href.to_string(),
                reason: "missing host".to_string(),
            });
        }
        // Joined against an absolute base, the URL is already parsed and absolute.
        Ok(Request::from_url(crate::http::Method::GET, url))
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

/// The `href` of the first `<base>` tag in the first 4 KB, if any — a byte scan, so
/// pages without one (nearly all) cost no parse.
fn find_base_href(body: &[u8]) -> Option<String> {
    let head = &body[..body.len().min(4096)];
    let start = head
        .windows(5)
        .position(|w| w.eq_ignore_ascii_case(b"<base"))?;
    let tag = &head[start + 5..];
    let tag = &tag[..tag.iter().position(|&b| b == b'>').unwrap_or(tag.len())];
    let at = tag
        .windows(4)
        .position(|w| w.eq_ignore_ascii_case(b"href"))?;
    let rest = tag[at + 4..].trim_ascii_start();
    let rest = rest.strip_prefix(b"=")?.trim_ascii_start();
    let value = match rest.first()? {
        q @ (b'"' | b'\'') => {
            let inner = &rest[1..];
            &inner[..inner.iter().position(|b| b == q).unwrap_or(inner.len())]
        }
        _ => {
            &rest[..rest
                .iter()
                .position(|b| b.is_ascii_whitespace())
                .unwrap_or(rest.len())]
        }
    };
    let value = String::from_utf8_lossy(value).replace("&amp;", "&");
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &str) -> Response {
        Response::new(
            Request::get("http://127.0.0.1/dir/page.html").unwrap(),
            200,
            body.to_string().into(),
        )
    }

    /// Links resolve against `<base href>` when present, the page URL otherwise.
    #[test]
    fn base_href() {
        let r = page("<html><head><BASE HREF='/other/'></head><a href='x'>x</a>");
        assert_eq!(r.urljoin("x").unwrap().as_str(), "http://127.0.0.1/other/x");
        let r = page("<base target=_blank href=\"http://127.0.0.2/b/?a=1&amp;b=2\">");
        assert_eq!(r.base_url().as_str(), "http://127.0.0.2/b/?a=1&b=2");
        let r = page("<a href='x'>no base</a>");
        assert_eq!(r.urljoin("x").unwrap().as_str(), "http://127.0.0.1/dir/x");
        let r = page("<base href=>");
        assert_eq!(r.urljoin("x").unwrap().as_str(), "http://127.0.0.1/dir/x");
    }
}

//! [`Response`]: what came back for a [`Request`], with Scrapy's conveniences —
//! `text()`, `json()`, `urljoin`, `follow`, `follow_all`, and CSS / XPath selection.
//!
//! The HTML document is parsed lazily and at most once per callback: inside a
//! callback (which the spider workers run in a [`document_scope`]) every `css`,
//! `xpath` and `html()` call on one response shares one parsed tree. The tree is not
//! `Send`, so it lives in the worker task's scope, not in the (shared, `Send`)
//! response; outside a callback each call parses afresh.

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use encoding_rs::Encoding;
use url::Url;

use super::tls::CertificateInfo;
use super::{encoding, HeaderMap, Meta, Request};
use crate::error::InvalidUrl;
use crate::selector::tree::HtmlLimits;
use crate::selector::{Css, Html, SelectorError, SelectorList};

/// A downloaded response.
///
/// ```
/// use arachne::http::{Request, Response};
///
/// let req = Request::get("http://127.0.0.1/a/b#top")?;
/// let resp = Response::new(req, 200, "<a href='../c'>C</a>".into());
/// assert_eq!(resp.url.as_str(), "http://127.0.0.1/a/b"); // no fragment, as in Scrapy
/// assert_eq!(resp.css("a::attr(href)").unwrap().getall(), ["../c"]);
/// assert_eq!(resp.xpath("//a/text()").unwrap().get().as_deref(), Some("C"));
/// assert_eq!(resp.follow("../c")?.url.as_str(), "http://127.0.0.1/c");
/// # Ok::<(), arachne::error::InvalidUrl>(())
/// ```
#[derive(Debug, Clone)]
pub struct Response {
    /// The URL that was downloaded: the request's, without its fragment (a fragment
    /// is never sent; redirects produce new requests).
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
    /// Identifies this response's parsed document in a [`document_scope`].
    id: u64,
}

impl Response {
    /// A response for `request` (used by the downloader, middlewares and tests).
    pub fn new(request: Request, status: u16, body: Bytes) -> Response {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let mut url = request.url.clone();
        url.set_fragment(None);
        Response {
            url,
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
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
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

    /// The body parsed as JSON (Scrapy's `response.json()`), into any
    /// `Deserialize` type (`serde_json::Value` for a dynamic one).
    ///
    /// ```
    /// # use arachne::http::{Request, Response};
    /// let resp = Response::new(Request::get("http://127.0.0.1/api")?, 200, r#"{"n": [1, 2]}"#.into());
    /// let v: serde_json::Value = resp.json().unwrap();
    /// assert_eq!(v["n"][1], 2);
    /// # Ok::<(), arachne::error::InvalidUrl>(())
    /// ```
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// A request for every link in `hrefs` (Scrapy's `follow_all(urls)`), parsed by
    /// `parse` unless a callback is set on the results. A link that does not resolve
    /// to a URL is skipped with a warning, so one broken `href` does not cost the
    /// page's other links.
    ///
    /// ```
    /// # use arachne::http::{Request, Response};
    /// let resp = Response::new(Request::get("http://127.0.0.1/a/")?, 200, "".into());
    /// let reqs = resp.follow_all(["x", "/y", "http://[::1"]);
    /// assert_eq!(reqs.len(), 2);
    /// # Ok::<(), arachne::error::InvalidUrl>(())
    /// ```
    pub fn follow_all<I, S>(&self, hrefs: I) -> Vec<Request>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        hrefs
            .into_iter()
            .filter_map(|h| match self.follow(h.as_ref()) {
                Ok(r) => Some(r),
                Err(e) => {
                    log::warn!("skipping link on <{}>: {e}", self.url);
                    None
                }
            })
            .collect()
    }

    /// [`follow_all`](Response::follow_all) over what a CSS query selects
    /// (Scrapy's `follow_all(css=...)`): strings (`a::attr(href)`) are links as
    /// they are; elements give their `href` (`<a>`, `<link>`, `<area>`) or `src`.
    ///
    /// ```
    /// # use arachne::http::{Request, Response};
    /// let body = r#"<nav><a href="/1">1</a><a href="/2">2</a></nav>"#;
    /// let resp = Response::new(Request::get("http://127.0.0.1/")?, 200, body.into());
    /// let urls: Vec<String> = resp.follow_all_css("nav a").unwrap()
    ///     .into_iter().map(|r| r.url.to_string()).collect();
    /// assert_eq!(urls, ["http://127.0.0.1/1", "http://127.0.0.1/2"]);
    /// # Ok::<(), arachne::error::InvalidUrl>(())
    /// ```
    pub fn follow_all_css(&self, query: &str) -> Result<Vec<Request>, SelectorError> {
        let found = self.css(query)?;
        let hrefs = found.iter().filter_map(|sel| {
            if sel.node().is_some() {
                sel.attr("href").or_else(|| sel.attr("src"))
            } else {
                Some(sel.get())
            }
        });
        Ok(self.follow_all(hrefs))
    }

    /// The body as an HTML document: parsed on first use and shared by every later
    /// call inside the same callback.
    pub fn html(&self) -> Html {
        let key = (self.id, self.body.as_ptr() as usize, self.body.len());
        let cached = DOCUMENTS.try_with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some((_, html)) = cache.docs.iter().find(|(k, _)| *k == key) {
                return html.clone();
            }
            let (html, _errors, truncated) =
                Html::parse_with_limits(&self.text(), &HtmlLimits::default());
            if let Some(limit) = truncated {
                // Parsed up to the limit, so the callback still gets what came before;
                // the worker counts it in `html/truncated/<kind>`.
                log::warn!(
                    "Truncated the HTML of <{} {}>: {limit}",
                    self.status,
                    self.url
                );
                cache.limits_hit.push(limit.kind());
            }
            // A callback with inline downloads may hold a few responses at once;
            // beyond that, forget the oldest rather than grow.
            if cache.docs.len() >= MAX_SCOPED_DOCUMENTS {
                cache.docs.remove(0);
            }
            cache.docs.push((key, html.clone()));
            html
        });
        cached.unwrap_or_else(|_| Html::parse(&self.text()))
    }

    /// Runs a CSS query (`a::attr(href)`, `h1::text`, `div.quote`) over the body.
    pub fn css(&self, query: &str) -> Result<SelectorList, SelectorError> {
        Ok(Css::parse(query)?.select(&self.html()))
    }

    /// Runs an XPath 1.0 query over the body.
    pub fn xpath(&self, query: &str) -> Result<SelectorList, SelectorError> {
        self.html().xpath(query)
    }
}

/// How many parsed documents one callback scope keeps.
const MAX_SCOPED_DOCUMENTS: usize = 8;

/// Parsed documents of the responses one callback touched: (response key, tree), and
/// the HTML limits those documents hit.
#[derive(Default)]
struct Scope {
    docs: Vec<((u64, usize, usize), Html)>,
    limits_hit: Vec<&'static str>,
}

type DocumentCache = RefCell<Scope>;

tokio::task_local! {
    static DOCUMENTS: DocumentCache;
}

/// Runs `fut` (a callback) with its own parsed-document cache, so every query it
/// makes on one response shares one parse, and the trees are dropped with it.
#[doc(hidden)]
pub fn document_scope<F: Future>(fut: F) -> impl Future<Output = (F::Output, Vec<&'static str>)> {
    DOCUMENTS.scope(RefCell::new(Scope::default()), async move {
        let out = fut.await;
        let hits = DOCUMENTS
            .try_with(|s| std::mem::take(&mut s.borrow_mut().limits_hit))
            .unwrap_or_default();
        (out, hits)
    })
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

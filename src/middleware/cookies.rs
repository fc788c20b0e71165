//! CookiesMiddleware: Scrapy's `scrapy.downloadermiddlewares.cookies.CookiesMiddleware`
//! (order 700). It keeps RFC 6265 cookie jars ([`cookie_store::CookieStore`]): one per
//! spider by default, and one more per distinct `cookiejar` meta value, so several
//! sessions can run side by side in one crawl.
//!
//! - Requests: the `Cookie` header is rebuilt from the request's jar — every unexpired
//!   cookie whose domain, path and `Secure` flag match the URL, longest path first.
//!   A `Cookie` header the user set on the request stands for Scrapy's
//!   `Request.cookies`: its `name=value` pairs are stored in the jar first (as cookies
//!   of the request's host and default path) and so are sent now and on later
//!   requests to that site. The header this middleware writes is remembered in meta
//!   `_cookies_sent`, so when the same request comes back (a retry, a redirect) it is
//!   not mistaken for user cookies.
//! - Responses: every `Set-Cookie` header is stored in the jar, against the request's
//!   URL (expired cookies delete, bad ones are ignored).
//! - `COOKIES_DEBUG` logs each exchange at debug level, as Scrapy does:
//!   `Sending cookies to: <GET url>\nCookie: a=1; b=2\n` and
//!   `Received cookies from: <200 url>\nSet-Cookie: a=1; Path=/\n`.
//!
//! Settings: `COOKIES_ENABLED` (default `true`), `COOKIES_DEBUG` (default `false`).
//!
//! Meta keys: `cookiejar` (any JSON value; absent or `null` is the default jar),
//! `dont_merge_cookies` (the request's headers are left alone and its response's
//! cookies are not stored), `_cookies_sent` (private, see above).
//!
//! Stats keys: none.

use std::cell::RefCell;
use std::collections::HashMap;

use awc::http::header::{HeaderValue, COOKIE, SET_COOKIE};
use cookie_store::CookieStore;
use serde_json::Value;

use crate::error::{ConfigError, DownloadError};
use crate::extension::CrawlerHandle;
use crate::http::{Request, Response};
use crate::middleware::downloader::{DownloaderMiddleware, RequestFlow, ResponseFlow};

/// The private meta key holding the `Cookie` header this middleware last wrote.
const SENT_KEY: &str = "_cookies_sent";

/// Keeps cookies per spider and per `cookiejar`.
pub struct CookiesMiddleware {
    jars: RefCell<HashMap<String, CookieStore>>,
    debug: bool,
}

impl std::fmt::Debug for CookiesMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookiesMiddleware")
            .field("jars", &self.jars.borrow().len())
            .field("debug", &self.debug)
            .finish()
    }
}

impl CookiesMiddleware {
    /// A middleware with empty jars.
    pub fn new(debug: bool) -> Self {
        CookiesMiddleware {
            jars: RefCell::new(HashMap::new()),
            debug,
        }
    }

    /// `None` when `COOKIES_ENABLED` is off.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        let s = &crawler.settings;
        if !s.get_bool("COOKIES_ENABLED")? {
            return Ok(None);
        }
        Ok(Some(Box::new(CookiesMiddleware::new(
            s.get_bool("COOKIES_DEBUG")?,
        ))))
    }

    /// The jar key for a request: the JSON text of its `cookiejar` meta value, or "" for
    /// the default jar (no JSON text is empty).
    fn jar_key(request: &Request) -> String {
        match request.meta.get("cookiejar") {
            None | Some(Value::Null) => String::new(),
            Some(v) => v.to_string(),
        }
    }

    /// The request's `Cookie` headers joined as one value, if any.
    fn cookie_header(request: &Request) -> Option<String> {
        let parts: Vec<String> = request
            .headers
            .get_all(COOKIE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// The `Cookie` value the jar has for `request`'s URL, if any cookie matches.
    fn header_for(jar: &CookieStore, request: &Request) -> Option<String> {
        let mut cookies = jar.matches(&request.url);
        if cookies.is_empty() {
            return None;
        }
        // RFC 6265 §5.4: longer paths first; the jar has no order, so break ties by name
        // to keep the header stable.
        cookies.sort_by(|a, b| {
            b.path
                .len()
                .cmp(&a.path.len())
                .then_with(|| a.name().cmp(b.name()))
        });
        Some(
            cookies
                .iter()
                .map(|c| {
                    let (name, value) = c.name_value();
                    format!("{name}={value}")
                })
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

#[async_trait::async_trait(?Send)]
impl DownloaderMiddleware for CookiesMiddleware {
    async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
        if request.meta_bool("dont_merge_cookies") {
            return Ok(RequestFlow::Continue);
        }
        let mut jars = self.jars.borrow_mut();
        let jar = jars.entry(Self::jar_key(request)).or_default();

        // A Cookie header we did not write is the user's: Scrapy's `Request.cookies`.
        let current = Self::cookie_header(request);
        let ours = request.meta_str(SENT_KEY);
        if let Some(user) = current.as_deref().filter(|c| Some(*c) != ours) {
            for pair in user.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                if let Err(e) = jar.parse(pair, &request.url) {
                    log::debug!("Ignoring request cookie {pair:?} for {}: {e}", request.url);
                }
            }
        }

        request.headers.remove(COOKIE);
        match Self::header_for(jar, request)
            .and_then(|h| HeaderValue::from_str(&h).ok().map(|v| (h, v)))
        {
            Some((text, value)) => {
                request.headers.insert(COOKIE, value);
                if self.debug {
                    log::debug!(
                        "Sending cookies to: <{} {}>\nCookie: {text}\n",
                        request.method,
                        request.url
                    );
                }
                request.meta.insert(SENT_KEY.into(), Value::String(text));
            }
            None => {
                request.meta.remove(SENT_KEY);
            }
        }
        Ok(RequestFlow::Continue)
    }

    async fn process_response(
        &self,
        request: &Request,
        response: Response,
    ) -> Result<ResponseFlow, DownloadError> {
        if request.meta_bool("dont_merge_cookies") {
            return Ok(ResponseFlow::Continue(response));
        }
        let set_cookies: Vec<String> = response
            .headers
            .get_all(SET_COOKIE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if set_cookies.is_empty() {
            return Ok(ResponseFlow::Continue(response));
        }
        {
            let mut jars = self.jars.borrow_mut();
            let jar = jars.entry(Self::jar_key(request)).or_default();
            for sc in &set_cookies {
                if let Err(e) = jar.parse(sc, &request.url) {
                    log::debug!("Ignoring Set-Cookie {sc:?} from {}: {e}", response.url);
                }
            }
        }
        if self.debug {
            let lines: String = set_cookies
                .iter()
                .map(|c| format!("Set-Cookie: {c}\n"))
                .collect::<Vec<_>>()
                .join("\n");
            log::debug!(
                "Received cookies from: <{} {}>\n{lines}",
                response.status,
                response.url
            );
        }
        Ok(ResponseFlow::Continue(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(url: &str, set_cookies: &[&str]) -> Response {
        let mut r = Response::new(Request::get(url).unwrap(), 200, "".into());
        for c in set_cookies {
            r.headers.append(SET_COOKIE, c.parse().unwrap());
        }
        r
    }

    async fn send(mw: &CookiesMiddleware, mut req: Request) -> Request {
        mw.process_request(&mut req).await.unwrap();
        req
    }

    fn cookie(req: &Request) -> Option<&str> {
        req.headers.get(COOKIE).map(|v| v.to_str().unwrap())
    }

    /// Set-Cookie is stored and sent back to the same host only, by path.
    #[actix_rt::test]
    async fn round_trip_by_host_and_path() {
        let mw = CookiesMiddleware::new(false);
        let first = Request::get("http://a.example/login").unwrap();
        mw.process_response(
            &first,
            response(
                "http://a.example/login",
                &["sid=1; Path=/", "deep=2; Path=/x"],
            ),
        )
        .await
        .unwrap();
        let req = send(&mw, Request::get("http://a.example/x/y").unwrap()).await;
        assert_eq!(cookie(&req), Some("deep=2; sid=1"));
        let req = send(&mw, Request::get("http://a.example/").unwrap()).await;
        assert_eq!(cookie(&req), Some("sid=1"));
        let req = send(&mw, Request::get("http://b.example/").unwrap()).await;
        assert_eq!(cookie(&req), None);
        // An expired Set-Cookie deletes.
        mw.process_response(
            &first,
            response("http://a.example/", &["sid=; Path=/; Max-Age=0"]),
        )
        .await
        .unwrap();
        let req = send(&mw, Request::get("http://a.example/").unwrap()).await;
        assert_eq!(cookie(&req), None);
    }

    /// A user's Cookie header is kept and remembered; our own header on a retried request
    /// is not re-read as user cookies; `dont_merge_cookies` leaves the header alone.
    #[actix_rt::test]
    async fn user_cookies_and_retries() {
        let mw = CookiesMiddleware::new(false);
        let req = send(
            &mw,
            Request::get("http://a.example/")
                .unwrap()
                .header("Cookie", "u=1"),
        )
        .await;
        assert_eq!(cookie(&req), Some("u=1"));
        // Retried: the header is ours, nothing changes.
        let again = send(&mw, req.clone()).await;
        assert_eq!(cookie(&again), Some("u=1"));
        // Later requests to the site carry it.
        let req = send(&mw, Request::get("http://a.example/other").unwrap()).await;
        assert_eq!(cookie(&req), Some("u=1"));
        let req = Request::get("http://a.example/")
            .unwrap()
            .header("Cookie", "mine=only")
            .meta("dont_merge_cookies", true);
        let req = send(&mw, req).await;
        assert_eq!(cookie(&req), Some("mine=only"));
    }

    /// Jars are separate per `cookiejar` value.
    #[actix_rt::test]
    async fn separate_jars() {
        let mw = CookiesMiddleware::new(true);
        let one = Request::get("http://a.example/")
            .unwrap()
            .meta("cookiejar", 1);
        mw.process_response(&one, response("http://a.example/", &["s=one"]))
            .await
            .unwrap();
        assert_eq!(cookie(&send(&mw, one.clone()).await), Some("s=one"));
        let two = Request::get("http://a.example/")
            .unwrap()
            .meta("cookiejar", 2);
        assert_eq!(cookie(&send(&mw, two).await), None);
        let default = Request::get("http://a.example/").unwrap();
        assert_eq!(cookie(&send(&mw, default).await), None);
    }
}

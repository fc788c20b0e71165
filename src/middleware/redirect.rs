//! RedirectMiddleware (order 600): follows HTTP redirects the way Scrapy's
//! `scrapy.downloadermiddlewares.redirect.RedirectMiddleware` does, plus
//! [`RedirectPolicy`], the bookkeeping it shares with the MetaRefresh middleware
//! (Scrapy's `BaseRedirectMiddleware`).
//!
//! A 301, 302, 303, 307 or 308 response with a `Location` header becomes a new request
//! for the (resolved) location, which goes back to the scheduler; the response itself is
//! dropped. A location that is not `http`/`https` is not followed (the response passes on).
//! Method and body follow Scrapy (2.14.2, the fetch standard): 302 and 303 become a
//! bodiless `GET` (any `Content-*` header removed) unless the request is a `HEAD`; a 301
//! turns a `POST` into such a `GET`; 307 and 308 keep method and body. The new request
//! keeps the original's `dont_filter`, callbacks, headers and meta, with its priority
//! raised by `REDIRECT_PRIORITY_ADJUST`. Its `Cookie` header is dropped when the host
//! changes or the scheme changes to anything but `https`; its `Authorization` header
//! when scheme, host or port change; a scheme change also drops the proxy meta keys
//! (`_scheme_proxy`, `proxy`, `_auth_proxy`) and `Proxy-Authorization` of a proxy set
//! per scheme.
//!
//! Settings: `REDIRECT_ENABLED` (true; false: not configured), `REDIRECT_MAX_TIMES` (20),
//! `REDIRECT_PRIORITY_ADJUST` (+2). Spider attribute: `handle_httpstatus_list`.
//!
//! Meta keys read: `dont_redirect`, `handle_httpstatus_list`, `handle_httpstatus_all`
//! (a status listed there, or any status with `_all`, is left to the spider);
//! `redirect_ttl` (redirections left, `REDIRECT_MAX_TIMES` by default). Written on the new
//! request: `redirect_times`, `redirect_ttl`, `redirect_urls` (every URL redirected from,
//! oldest first), `redirect_reasons` (the status of each redirection as a number, or
//! `"meta refresh"`).
//!
//! Past `REDIRECT_MAX_TIMES` (or when `redirect_ttl` runs out) the request is dropped
//! with `DownloadError::Ignored("max redirections reached")` — Scrapy's `IgnoreRequest`,
//! which reaches the request's errback — logged at debug (`Discarding <GET url>: max
//! redirections reached`). Each redirection is logged at debug (`Redirecting (302) to
//! <GET new> from <GET old>`).
//!
//! Stats: `redirect/max_reached` (an Arachne key; Scrapy counts nothing here). As in
//! Scrapy, the `IgnoreRequest` raised from `process_response` does not pass through
//! `process_exception`, so it is not in `downloader/exception_type_count/...`.

use std::collections::HashSet;
use std::fmt;

use serde_json::Value;
use url::Url;

use crate::error::{ConfigError, DownloadError};
use crate::extension::CrawlerHandle;
use crate::handle::StatsHandle;
use crate::http::{HeaderName, Method, Request, Response};
use crate::middleware::downloader::{DownloaderMiddleware, ResponseFlow};
use crate::settings::Settings;

/// The statuses that redirect.
const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// Why a request was redirected: what `redirect_reasons` records and the log shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectReason {
    /// An HTTP redirect with this status.
    Status(u16),
    /// A `<meta http-equiv="refresh">` tag.
    MetaRefresh,
}

impl RedirectReason {
    /// The value stored in `redirect_reasons`: the status as a number, or
    /// `"meta refresh"`.
    pub fn to_value(self) -> Value {
        match self {
            RedirectReason::Status(s) => Value::from(s),
            RedirectReason::MetaRefresh => Value::from("meta refresh"),
        }
    }
}

impl fmt::Display for RedirectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedirectReason::Status(s) => write!(f, "{s}"),
            RedirectReason::MetaRefresh => f.write_str("meta refresh"),
        }
    }
}

/// The limits and bookkeeping every redirecting middleware shares (Scrapy's
/// `BaseRedirectMiddleware._redirect`): counts redirections in meta, enforces
/// `REDIRECT_MAX_TIMES` / `redirect_ttl`, adjusts priority, logs and counts.
#[derive(Debug, Clone)]
pub struct RedirectPolicy {
    max_times: i64,
    priority_adjust: i64,
    stats: StatsHandle,
    referer: Option<crate::middleware::referer::Policy>,
}

impl RedirectPolicy {
    /// Reads `REDIRECT_MAX_TIMES` and `REDIRECT_PRIORITY_ADJUST`.
    pub fn from_crawler(crawler: &CrawlerHandle) -> Result<Self, ConfigError> {
        let (max_times, priority_adjust) = limits(&crawler.settings)?;
        Ok(RedirectPolicy {
            max_times,
            priority_adjust,
            stats: crawler.stats().clone(),
            referer: crate::middleware::referer::redirect_referer_policy(&crawler.settings)?,
        })
    }

    /// Finishes `redirected` (built from `source`) as a redirection for `reason`, or
    /// refuses it with `Ignored("max redirections reached")` when the limit is reached.
    pub fn redirect(
        &self,
        mut redirected: Request,
        source: &Request,
        response: &Response,
        reason: RedirectReason,
    ) -> Result<Request, DownloadError> {
        crate::middleware::referer::set_redirect_referer(self.referer, &mut redirected, response);
        match follow(
            redirected,
            source,
            reason,
            self.max_times,
            self.priority_adjust,
        ) {
            Some(r) => {
                log::debug!(
                    "Redirecting ({reason}) to <{} {}> from <{} {}>",
                    r.method,
                    r.url,
                    source.method,
                    source.url
                );
                Ok(r)
            }
            None => {
                log::debug!(
                    "Discarding <{} {}>: max redirections reached",
                    source.method,
                    source.url
                );
                self.stats.inc("redirect/max_reached");
                Err(DownloadError::Ignored("max redirections reached".into()))
            }
        }
    }
}

/// `REDIRECT_MAX_TIMES` and `REDIRECT_PRIORITY_ADJUST`.
fn limits(settings: &Settings) -> Result<(i64, i64), ConfigError> {
    Ok((
        settings.get_i64("REDIRECT_MAX_TIMES")?,
        settings.get_i64("REDIRECT_PRIORITY_ADJUST")?,
    ))
}

/// Scrapy's `_redirect` without the logging: `None` when the redirection limit is
/// reached, else `redirected` with `redirect_times`, `redirect_ttl`, `redirect_urls`,
/// `redirect_reasons`, `dont_filter` and `priority` set from `source`.
pub fn follow(
    mut redirected: Request,
    source: &Request,
    reason: RedirectReason,
    max_times: i64,
    priority_adjust: i64,
) -> Option<Request> {
    let ttl = source
        .meta
        .get("redirect_ttl")
        .and_then(Value::as_i64)
        .unwrap_or(max_times);
    let redirects = source
        .meta
        .get("redirect_times")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .saturating_add(1);
    if ttl == 0 || redirects > max_times {
        return None;
    }
    let meta = &mut redirected.meta;
    meta.insert("redirect_times".into(), redirects.into());
    meta.insert("redirect_ttl".into(), ttl.saturating_sub(1).into());
    let mut urls = list(source, "redirect_urls");
    urls.push(Value::from(source.url.as_str()));
    meta.insert("redirect_urls".into(), Value::Array(urls));
    let mut reasons = list(source, "redirect_reasons");
    reasons.push(reason.to_value());
    meta.insert("redirect_reasons".into(), Value::Array(reasons));
    redirected.dont_filter = source.dont_filter;
    redirected.priority = clamp_priority(i64::from(source.priority) + priority_adjust);
    Some(redirected)
}

/// A meta list (empty when absent or not a list).
fn list(request: &Request, key: &str) -> Vec<Value> {
    match request.meta.get(key) {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    }
}

/// An `i64` priority squeezed into the request's `i32`.
pub(crate) fn clamp_priority(p: i64) -> i32 {
    i32::try_from(p).unwrap_or(if p < 0 { i32::MIN } else { i32::MAX })
}

/// Scrapy's `_build_redirect_request`: a copy of `source` for `url`, without the
/// credentials that must not follow it to another origin.
pub fn build_redirect_request(source: &Request, url: Url) -> Request {
    let mut r = source.clone();
    r.url = url;
    let scheme_changed = source.url.scheme() != r.url.scheme();
    if scheme_changed && r.meta.contains_key("_scheme_proxy") {
        for key in ["_scheme_proxy", "proxy", "_auth_proxy"] {
            r.meta.remove(key);
        }
        r.headers.remove("proxy-authorization");
    }
    let has_cookie = r.headers.contains_key("cookie");
    let has_auth = r.headers.contains_key("authorization");
    if has_cookie || has_auth {
        let (src, dst) = (&source.url, &r.url);
        let host_changed = src.host_str() != dst.host_str();
        if has_cookie && ((dst.scheme() != src.scheme() && dst.scheme() != "https") || host_changed)
        {
            r.headers.remove("cookie");
        }
        // https://fetch.spec.whatwg.org/#ref-for-cors-non-wildcard-request-header-name
        if has_auth
            && (scheme_changed
                || host_changed
                || src.port_or_known_default() != dst.port_or_known_default())
        {
            r.headers.remove("authorization");
        }
    }
    r
}

/// Scrapy's `_redirect_request_using_get`: [`build_redirect_request`] as a `GET`
/// without body or `Content-*` headers.
pub fn redirect_request_using_get(source: &Request, url: Url) -> Request {
    let mut r = build_redirect_request(source, url);
    r.method = Method::GET;
    r.body = bytes::Bytes::new();
    let content: Vec<HeaderName> = r
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with("content-"))
        .cloned()
        .collect();
    for name in content {
        r.headers.remove(name);
    }
    r
}

/// Whether a redirect with `status` turns a `method` request into a bodiless `GET`.
pub fn redirects_with_get(status: u16, method: &Method) -> bool {
    match status {
        302 | 303 => *method != Method::HEAD,
        301 => *method == Method::POST,
        _ => false,
    }
}

/// The URL a `Location` header value points to, resolved against `base` as Scrapy does
/// (`safe_url_string` then `urljoin`; a location starting with `//` takes the request's
/// scheme). Bytes that are not UTF-8 are percent-encoded.
pub fn location_url(base: &Url, location: &[u8]) -> Option<Url> {
    let mut text = String::with_capacity(location.len());
    for chunk in location.utf8_chunks() {
        text.push_str(chunk.valid());
        for b in chunk.invalid() {
            text.push_str(&format!("%{b:02X}"));
        }
    }
    let joined = if location.starts_with(b"//") {
        format!("{}://{}", base.scheme(), text.trim_start_matches('/'))
    } else {
        text
    };
    base.join(&joined).ok()
}

/// Whether a meta value lists `status` (numbers, or numeric strings).
pub(crate) fn status_listed(list: Option<&Value>, status: u16) -> bool {
    match list {
        Some(Value::Array(items)) => items.iter().any(|v| match v {
            Value::Number(n) => n.as_u64() == Some(u64::from(status)),
            Value::String(s) => s.trim().parse::<u16>().ok() == Some(status),
            _ => false,
        }),
        _ => false,
    }
}

/// Follows HTTP redirects.
#[derive(Debug)]
pub struct RedirectMiddleware {
    policy: RedirectPolicy,
    /// The spider's `handle_httpstatus_list`.
    spider_statuses: HashSet<u16>,
}

impl RedirectMiddleware {
    /// `None` when `REDIRECT_ENABLED` is off.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        if !crawler.settings.get_bool("REDIRECT_ENABLED")? {
            return Ok(None);
        }
        let attr = crawler.spider.attr("handle_httpstatus_list");
        let spider_statuses = REDIRECT_STATUSES
            .into_iter()
            .filter(|s| status_listed(attr.as_ref(), *s))
            .collect();
        Ok(Some(Box::new(RedirectMiddleware {
            policy: RedirectPolicy::from_crawler(crawler)?,
            spider_statuses,
        })))
    }

    /// Whether the spider or the request takes care of this status itself.
    fn handled_elsewhere(&self, request: &Request, status: u16) -> bool {
        request.meta_bool("dont_redirect")
            || self.spider_statuses.contains(&status)
            || status_listed(request.meta.get("handle_httpstatus_list"), status)
            || request.meta_bool("handle_httpstatus_all")
    }
}

#[async_trait::async_trait(?Send)]
impl DownloaderMiddleware for RedirectMiddleware {
    async fn process_response(
        &self,
        request: &Request,
        response: Response,
    ) -> Result<ResponseFlow, DownloadError> {
        let status = response.status;
        if self.handled_elsewhere(request, status) || !REDIRECT_STATUSES.contains(&status) {
            return Ok(ResponseFlow::Continue(response));
        }
        // Scrapy's `headers["Location"]` is the last value.
        let Some(location) = response.headers.get_all("location").last() else {
            return Ok(ResponseFlow::Continue(response));
        };
        let Some(url) = location_url(&request.url, location.as_bytes()) else {
            log::debug!(
                "Not following redirect ({status}) of <{} {}>: bad Location {:?}",
                request.method,
                request.url,
                String::from_utf8_lossy(location.as_bytes())
            );
            return Ok(ResponseFlow::Continue(response));
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Ok(ResponseFlow::Continue(response));
        }
        let redirected = if redirects_with_get(status, &request.method) {
            redirect_request_using_get(request, url)
        } else {
            build_redirect_request(request, url)
        };
        self.policy
            .redirect(
                redirected,
                request,
                &response,
                RedirectReason::Status(status),
            )
            .map(ResponseFlow::Reschedule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, url: &str) -> Request {
        Request::new(method, url).unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// Redirections are counted in meta and recorded, oldest first.
    #[test]
    fn follow_records_the_chain() {
        let a = req(Method::GET, "http://a.test/1").priority(5);
        let b = follow(
            build_redirect_request(&a, url("http://a.test/2")),
            &a,
            RedirectReason::Status(301),
            20,
            2,
        )
        .unwrap();
        let c = follow(
            build_redirect_request(&b, url("http://a.test/3")),
            &b,
            RedirectReason::MetaRefresh,
            20,
            2,
        )
        .unwrap();
        assert_eq!(c.meta["redirect_times"], 2);
        assert_eq!(c.meta["redirect_ttl"], 18);
        assert_eq!(
            c.meta["redirect_urls"],
            serde_json::json!(["http://a.test/1", "http://a.test/2"])
        );
        assert_eq!(
            c.meta["redirect_reasons"],
            serde_json::json!([301, "meta refresh"])
        );
        assert_eq!(c.priority, 9);
        assert!(!c.dont_filter);
    }

    /// `REDIRECT_MAX_TIMES` redirections are followed, the next one is refused.
    #[test]
    fn follow_stops_at_max_times() {
        let mut r = req(Method::GET, "http://a.test/").dont_filter(true);
        for _ in 0..3 {
            let next = build_redirect_request(&r, r.url.clone());
            r = follow(next, &r, RedirectReason::Status(302), 3, 0).unwrap();
            assert!(r.dont_filter);
        }
        let next = build_redirect_request(&r, r.url.clone());
        assert!(follow(next, &r, RedirectReason::Status(302), 3, 0).is_none());
    }

    /// A `redirect_ttl` of 0 in meta stops redirection at once.
    #[test]
    fn ttl_zero_stops() {
        let r = req(Method::GET, "http://a.test/").meta("redirect_ttl", 0);
        let next = build_redirect_request(&r, url("http://a.test/x"));
        assert!(follow(next, &r, RedirectReason::Status(302), 20, 2).is_none());
    }

    /// Scrapy's method rules.
    #[test]
    fn method_rules() {
        assert!(redirects_with_get(302, &Method::POST));
        assert!(redirects_with_get(303, &Method::POST));
        assert!(redirects_with_get(302, &Method::GET));
        assert!(!redirects_with_get(302, &Method::HEAD));
        assert!(!redirects_with_get(303, &Method::HEAD));
        assert!(redirects_with_get(301, &Method::POST));
        assert!(!redirects_with_get(301, &Method::PUT));
        assert!(!redirects_with_get(307, &Method::POST));
        assert!(!redirects_with_get(308, &Method::POST));
    }

    /// A redirect as GET drops body and every `Content-*` header, keeps the rest.
    #[test]
    fn using_get_drops_body_and_content_headers() {
        let r = req(Method::POST, "http://a.test/form")
            .body("a=1")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Content-Language", "en")
            .header("X-Keep", "1");
        let g = redirect_request_using_get(&r, url("http://a.test/done"));
        assert_eq!(g.method, Method::GET);
        assert!(g.body.is_empty());
        assert!(!g.headers.contains_key("content-type"));
        assert!(!g.headers.contains_key("content-language"));
        assert_eq!(g.headers.get("x-keep").unwrap(), "1");
        assert_eq!(g.url.as_str(), "http://a.test/done");
    }

    /// Cookie and Authorization headers stay on the same origin only, as in Scrapy.
    #[test]
    fn credentials_do_not_cross_origins() {
        let r = req(Method::GET, "http://a.test/")
            .header("Cookie", "a=1")
            .header("Authorization", "Basic eA==");
        let same = build_redirect_request(&r, url("http://a.test/x"));
        assert!(same.headers.contains_key("cookie"));
        assert!(same.headers.contains_key("authorization"));
        let other = build_redirect_request(&r, url("http://b.test/x"));
        assert!(!other.headers.contains_key("cookie"));
        assert!(!other.headers.contains_key("authorization"));
        // Upgrading to https keeps the cookie, not the authorization.
        let upgraded = build_redirect_request(&r, url("https://a.test/x"));
        assert!(upgraded.headers.contains_key("cookie"));
        assert!(!upgraded.headers.contains_key("authorization"));
        // Another port: the cookie stays (cookies ignore ports), authorization goes.
        let port = build_redirect_request(&r, url("http://a.test:8080/x"));
        assert!(port.headers.contains_key("cookie"));
        assert!(!port.headers.contains_key("authorization"));
        // Downgrading from https drops both.
        let s = req(Method::GET, "https://a.test/").header("Cookie", "a=1");
        let down = build_redirect_request(&s, url("http://a.test/x"));
        assert!(!down.headers.contains_key("cookie"));
    }

    /// A scheme change drops a per-scheme proxy.
    #[test]
    fn scheme_change_drops_scheme_proxy() {
        let r = req(Method::GET, "http://a.test/")
            .meta("_scheme_proxy", true)
            .meta("proxy", "http://proxy.test:3128")
            .header("Proxy-Authorization", "Basic eA==");
        let same = build_redirect_request(&r, url("http://a.test/x"));
        assert!(same.meta.contains_key("proxy"));
        let other = build_redirect_request(&r, url("https://a.test/x"));
        assert!(!other.meta.contains_key("proxy"));
        assert!(!other.meta.contains_key("_scheme_proxy"));
        assert!(!other.headers.contains_key("proxy-authorization"));
    }

    /// Locations resolve like Scrapy's: relative, scheme-relative, non-UTF-8 bytes.
    #[test]
    fn locations() {
        let base = url("https://a.test/dir/page?q=1");
        assert_eq!(
            location_url(&base, b"other").unwrap().as_str(),
            "https://a.test/dir/other"
        );
        assert_eq!(
            location_url(&base, b"//b.test/x").unwrap().as_str(),
            "https://b.test/x"
        );
        assert_eq!(
            location_url(&base, b"///b.test/x").unwrap().as_str(),
            "https://b.test/x"
        );
        assert_eq!(
            location_url(&base, b"/caf\xe9 x").unwrap().as_str(),
            "https://a.test/caf%E9%20x"
        );
        assert_eq!(
            location_url(&base, "/café".as_bytes()).unwrap().as_str(),
            "https://a.test/caf%C3%A9"
        );
    }

    /// Status lists in meta take numbers or numeric strings.
    #[test]
    fn status_lists() {
        let list = serde_json::json!([301, "302"]);
        assert!(status_listed(Some(&list), 301));
        assert!(status_listed(Some(&list), 302));
        assert!(!status_listed(Some(&list), 303));
        assert!(!status_listed(None, 301));
    }
}

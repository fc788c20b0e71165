//! RefererMiddleware (order 700): sets the `Referer` header of requests a callback
//! yields, from the response they were found on, following a W3C referrer policy as
//! Scrapy's does. The policy is, by precedence: meta `referrer_policy`, the response's
//! `Referrer-Policy` header, `REFERRER_POLICY` (default Scrapy's `DefaultReferrerPolicy`:
//! `no-referrer-when-downgrade`, and nothing from `file:`/`s3:`/local schemes).
//! `REFERER_ENABLED = false` disables it. A request that already has a `Referer` keeps it.
//!
//! Accepted policy names: `no-referrer`, `no-referrer-when-downgrade`, `same-origin`,
//! `origin`, `strict-origin`, `origin-when-cross-origin`,
//! `strict-origin-when-cross-origin`, `unsafe-url`, `scrapy-default`, or Scrapy's class
//! paths (`scrapy.spidermiddlewares.referer.SameOriginPolicy`, ...).

use url::Url;

use crate::error::ConfigError;
use crate::extension::CrawlerHandle;
use crate::http::{HeaderValue, Request, Response};
use crate::middleware::spider::SpiderMiddleware;
use crate::spider::OutputEntry;

/// The meta key holding a computed `Referer` until the request is downloaded.
pub const PENDING_REFERER: &str = "_referer";

/// Moves a pending `Referer` from meta to the headers (unless one was set meanwhile).
pub fn apply_pending_referer(request: &mut Request) {
    if let Some(serde_json::Value::String(v)) = request.meta.remove(PENDING_REFERER) {
        if !request.headers.contains_key(awc::http::header::REFERER) {
            if let Ok(v) = HeaderValue::from_str(&v) {
                request.headers.insert(awc::http::header::REFERER, v);
            }
        }
    }
}

/// A referrer policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Never send.
    NoReferrer,
    /// Full URL, except from HTTPS to HTTP.
    NoReferrerWhenDowngrade,
    /// Full URL to the same origin only.
    SameOrigin,
    /// The origin, always.
    Origin,
    /// The origin, except from HTTPS to HTTP.
    StrictOrigin,
    /// Full URL to the same origin, the origin elsewhere.
    OriginWhenCrossOrigin,
    /// Like `OriginWhenCrossOrigin`, nothing from HTTPS to HTTP.
    StrictOriginWhenCrossOrigin,
    /// Full URL, always.
    UnsafeUrl,
    /// Scrapy's default: `NoReferrerWhenDowngrade`, nothing from `file:`/`s3:`.
    ScrapyDefault,
}

impl Policy {
    /// Parses a policy name or Scrapy class path.
    pub fn from_name(name: &str) -> Option<Policy> {
        let n = name.trim().to_ascii_lowercase();
        let last = n.rsplit('.').next().unwrap_or(&n);
        Some(match last {
            "no-referrer" | "noreferrerpolicy" => Policy::NoReferrer,
            "no-referrer-when-downgrade" | "noreferrerwhendowngradepolicy" => {
                Policy::NoReferrerWhenDowngrade
            }
            "same-origin" | "sameoriginpolicy" => Policy::SameOrigin,
            "origin" | "originpolicy" => Policy::Origin,
            "strict-origin" | "strictoriginpolicy" => Policy::StrictOrigin,
            "origin-when-cross-origin" | "originwhencrossoriginpolicy" => {
                Policy::OriginWhenCrossOrigin
            }
            "strict-origin-when-cross-origin" | "strictoriginwhencrossoriginpolicy" => {
                Policy::StrictOriginWhenCrossOrigin
            }
            "unsafe-url" | "unsafeurlpolicy" => Policy::UnsafeUrl,
            "scrapy-default" | "defaultreferrerpolicy" => Policy::ScrapyDefault,
            _ => return None,
        })
    }

    /// The `Referer` value for a request to `target` found on `source`, if any.
    pub fn referrer(self, source: &Url, target: &Url) -> Option<String> {
        const LOCAL: [&str; 4] = ["about", "blob", "data", "filesystem"];
        if LOCAL.contains(&source.scheme()) {
            return None;
        }
        let downgrade = is_tls(source) && !is_tls(target);
        let same_origin = source.origin() == target.origin();
        let full = || strip(source, false);
        let origin = || strip(source, true);
        match self {
            Policy::NoReferrer => None,
            Policy::NoReferrerWhenDowngrade => (!downgrade).then(full).flatten(),
            Policy::ScrapyDefault => {
                if matches!(source.scheme(), "file" | "s3") {
                    None
                } else {
                    (!downgrade).then(full).flatten()
                }
            }
            Policy::SameOrigin => same_origin.then(full).flatten(),
            Policy::Origin => origin(),
            Policy::StrictOrigin => (!downgrade).then(origin).flatten(),
            Policy::OriginWhenCrossOrigin => {
                if same_origin {
                    full()
                } else {
                    origin()
                }
            }
            Policy::StrictOriginWhenCrossOrigin => {
                if same_origin {
                    full()
                } else if downgrade {
                    None
                } else {
                    origin()
                }
            }
            Policy::UnsafeUrl => full(),
        }
    }
}

fn is_tls(u: &Url) -> bool {
    matches!(u.scheme(), "https" | "ftps")
}

/// The URL without credentials and fragment, or just its origin with a `/` path.
fn strip(u: &Url, origin_only: bool) -> Option<String> {
    if !matches!(u.scheme(), "http" | "https" | "ftp" | "ftps") {
        return None;
    }
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    if origin_only {
        u.set_path("/");
        u.set_query(None);
    }
    Some(u.to_string())
}

/// The middleware.
#[derive(Debug)]
pub struct RefererMiddleware {
    default: Policy,
}

impl RefererMiddleware {
    /// Not configured when `REFERER_ENABLED` is false; an unknown `REFERRER_POLICY`
    /// is an error naming it.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn SpiderMiddleware>>, ConfigError> {
        let s = &crawler.settings;
        if !s.get_bool("REFERER_ENABLED")? {
            return Ok(None);
        }
        let name = s.get_str("REFERRER_POLICY");
        let default = Policy::from_name(&name).ok_or_else(|| ConfigError::InvalidValue {
            key: "REFERRER_POLICY".into(),
            value: name.clone(),
            expected: "a referrer policy name (no-referrer, same-origin, ...)",
        })?;
        Ok(Some(Box::new(RefererMiddleware { default })))
    }

    fn policy(&self, response: Option<&Response>, request: &Request) -> Policy {
        choose_policy(self.default, response, request)
    }
}

/// Scrapy's `RefererMiddleware.policy`: the request's `referrer_policy` meta, else the
/// parent response's `Referrer-Policy` header, else `default`.
fn choose_policy(default: Policy, response: Option<&Response>, request: &Request) -> Policy {
    if let Some(p) = request
        .meta_str("referrer_policy")
        .and_then(Policy::from_name)
    {
        return p;
    }
    let header = response
        .and_then(|r| r.headers.get("referrer-policy"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').rev().find_map(Policy::from_name));
    header.unwrap_or(default)
}

/// The Referer rule redirects apply (Scrapy 2.14's `handle_referer`): `None` when
/// `REFERER_ENABLED` is false, so redirected requests carry no `Referer` at all.
pub fn redirect_referer_policy(
    settings: &crate::settings::Settings,
) -> Result<Option<Policy>, ConfigError> {
    if !settings.get_bool("REFERER_ENABLED")? {
        return Ok(None);
    }
    let name = settings.get_str("REFERRER_POLICY");
    Policy::from_name(&name)
        .map(Some)
        .ok_or_else(|| ConfigError::InvalidValue {
            key: "REFERRER_POLICY".into(),
            value: name.clone(),
            expected: "a referrer policy name (no-referrer, same-origin, ...)",
        })
}

/// Scrapy 2.14's `BaseRedirectMiddleware.handle_referer`: the redirected request's
/// `Referer` is dropped, then set again from the redirecting response (its URL and its
/// `Referrer-Policy` header) as if the new request had been found on it. A downgrade
/// to `http:` therefore loses the Referer, and the target sees the URL that
/// redirected to it, not the page the chain started from.
pub fn set_redirect_referer(policy: Option<Policy>, redirected: &mut Request, response: &Response) {
    redirected.headers.remove(awc::http::header::REFERER);
    redirected.meta.remove(PENDING_REFERER);
    let Some(default) = policy else { return };
    let policy = choose_policy(default, Some(response), redirected);
    if let Some(v) = policy.referrer(&response.url, &redirected.url) {
        redirected.meta.insert(PENDING_REFERER.into(), v.into());
    }
}

#[async_trait::async_trait(?Send)]
impl SpiderMiddleware for RefererMiddleware {
    async fn process_spider_output(
        &self,
        response: Option<&Response>,
        parent: &Request,
        mut output: Vec<OutputEntry>,
    ) -> Vec<OutputEntry> {
        let source = response.map_or(&parent.url, |r| &r.url);
        for entry in &mut output {
            if let OutputEntry::Request(r) = entry {
                if r.headers.contains_key("referer") {
                    continue;
                }
                let policy = self.policy(response, r);
                if let Some(v) = policy.referrer(source, &r.url) {
                    // Kept in meta while the request waits in the scheduler: a header
                    // map per queued request cost ~1 KB each on broad crawls. The
                    // Downloader turns it into the header before any downloader
                    // middleware sees the request.
                    r.meta.insert(PENDING_REFERER.into(), v.into());
                }
            }
        }
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::HeaderName;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// Scrapy 2.14: a redirected request's Referer is recomputed from the redirecting
    /// response (its URL, its Referrer-Policy), or removed when the middleware is off.
    #[test]
    fn redirect_referer() {
        let referer = |r: &Request| r.meta_str(PENDING_REFERER).map(str::to_string);
        let with_old_referer = |url: &str| {
            let mut r = Request::get(url).unwrap();
            r.headers.insert(
                awc::http::header::REFERER,
                HeaderValue::from_static("https://start.test/page"),
            );
            r
        };
        let hop = Response::new(Request::get("https://a.test/old").unwrap(), 302, "".into());

        let mut r = with_old_referer("https://b.test/new");
        set_redirect_referer(Some(Policy::ScrapyDefault), &mut r, &hop);
        assert!(!r.headers.contains_key("referer"));
        assert_eq!(referer(&r).as_deref(), Some("https://a.test/old"));

        // https → http is a downgrade: no Referer at all.
        let mut r = with_old_referer("http://b.test/new");
        set_redirect_referer(Some(Policy::ScrapyDefault), &mut r, &hop);
        assert_eq!(referer(&r), None);
        assert!(!r.headers.contains_key("referer"));

        // The 3xx response's own Referrer-Policy counts.
        let mut strict = hop.clone();
        strict.headers.insert(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("origin"),
        );
        let mut r = with_old_referer("https://b.test/new");
        set_redirect_referer(Some(Policy::ScrapyDefault), &mut r, &strict);
        assert_eq!(referer(&r).as_deref(), Some("https://a.test/"));

        // REFERER_ENABLED = false: the old Referer does not follow the redirect.
        let mut r = with_old_referer("https://b.test/new");
        set_redirect_referer(None, &mut r, &hop);
        assert_eq!(referer(&r), None);
        assert!(!r.headers.contains_key("referer"));
    }

    /// Each policy gives what the W3C table says.
    #[test]
    fn policies() {
        let https = u("https://user:pw@a.com/p?q=1#frag");
        let same = u("https://a.com/other");
        let cross = u("https://b.com/");
        let http = u("http://a.com/");
        assert_eq!(Policy::NoReferrer.referrer(&https, &same), None);
        assert_eq!(
            Policy::ScrapyDefault.referrer(&https, &same).as_deref(),
            Some("https://a.com/p?q=1")
        );
        assert_eq!(Policy::ScrapyDefault.referrer(&https, &http), None);
        assert_eq!(Policy::SameOrigin.referrer(&https, &cross), None);
        assert_eq!(
            Policy::Origin.referrer(&https, &cross).as_deref(),
            Some("https://a.com/")
        );
        assert_eq!(Policy::StrictOrigin.referrer(&https, &http), None);
        assert_eq!(
            Policy::OriginWhenCrossOrigin
                .referrer(&https, &same)
                .as_deref(),
            Some("https://a.com/p?q=1")
        );
        assert_eq!(
            Policy::OriginWhenCrossOrigin
                .referrer(&https, &cross)
                .as_deref(),
            Some("https://a.com/")
        );
        assert_eq!(
            Policy::StrictOriginWhenCrossOrigin.referrer(&https, &http),
            None
        );
        assert_eq!(
            Policy::UnsafeUrl.referrer(&https, &http).as_deref(),
            Some("https://a.com/p?q=1")
        );
        assert_eq!(
            Policy::ScrapyDefault.referrer(&u("file:///tmp/x"), &http),
            None
        );
    }

    /// Scrapy's class paths and the W3C names both parse.
    #[test]
    fn names() {
        assert_eq!(
            Policy::from_name("scrapy.spidermiddlewares.referer.DefaultReferrerPolicy"),
            Some(Policy::ScrapyDefault)
        );
        assert_eq!(Policy::from_name("same-origin"), Some(Policy::SameOrigin));
        assert_eq!(Policy::from_name("bogus"), None);
    }
}

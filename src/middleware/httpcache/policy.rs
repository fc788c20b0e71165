//! HTTP cache policies, as Scrapy's `scrapy.extensions.httpcache`: `DummyPolicy`
//! (cache everything, never expire, never revalidate) and `RFC2616Policy` (obey
//! `Cache-Control`, `Expires`, `Age`, `Date` and `Last-Modified`, revalidate with
//! `If-Modified-Since` / `If-None-Match`).
//!
//! Every decision is a plain function of the request, the responses and "now" (seconds
//! since the epoch), so it is unit-tested here without a crawl.

use std::collections::HashMap;

use crate::error::ConfigError;
use crate::http::{HeaderMap, Request, Response};
use crate::settings::Settings;

/// Which policy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Scrapy's `DummyPolicy`.
    Dummy,
    /// Scrapy's `RFC2616Policy`.
    Rfc2616,
}

impl PolicyKind {
    /// Reads `HTTPCACHE_POLICY`: Scrapy's dotted class path, the class name, or
    /// `dummy` / `rfc2616` (case-insensitive).
    pub fn parse(name: &str) -> Result<PolicyKind, ConfigError> {
        let last = name.trim().rsplit('.').next().unwrap_or("");
        match last.to_ascii_lowercase().as_str() {
            "dummypolicy" | "dummy" => Ok(PolicyKind::Dummy),
            "rfc2616policy" | "rfc2616" => Ok(PolicyKind::Rfc2616),
            _ => Err(ConfigError::InvalidValue {
                key: "HTTPCACHE_POLICY".into(),
                value: name.into(),
                expected: "DummyPolicy or RFC2616Policy",
            }),
        }
    }
}

/// RFC2616Policy's freshness for 300/301/308 without any other hint: one year.
pub const MAXAGE: f64 = 3600.0 * 24.0 * 365.0;

/// A cache policy with its settings.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Dummy or RFC 2616.
    pub kind: PolicyKind,
    /// `HTTPCACHE_IGNORE_SCHEMES`.
    pub ignore_schemes: Vec<String>,
    /// `HTTPCACHE_IGNORE_HTTP_CODES` (DummyPolicy only, as in Scrapy).
    pub ignore_http_codes: Vec<u16>,
    /// `HTTPCACHE_ALWAYS_STORE` (RFC2616Policy only).
    pub always_store: bool,
    /// `HTTPCACHE_IGNORE_RESPONSE_CACHE_CONTROLS` (RFC2616Policy only), lower-cased.
    pub ignore_response_cache_controls: Vec<String>,
}

impl Policy {
    /// Reads `HTTPCACHE_POLICY` and the settings the policy uses.
    pub fn from_settings(s: &Settings) -> Result<Policy, ConfigError> {
        let mut ignore_http_codes = Vec::new();
        for code in s.get_list("HTTPCACHE_IGNORE_HTTP_CODES")? {
            ignore_http_codes.push(code.trim().parse().map_err(|_| ConfigError::InvalidValue {
                key: "HTTPCACHE_IGNORE_HTTP_CODES".into(),
                value: code.clone(),
                expected: "a list of HTTP status codes",
            })?);
        }
        Ok(Policy {
            kind: PolicyKind::parse(&s.get_str("HTTPCACHE_POLICY"))?,
            ignore_schemes: s.get_list("HTTPCACHE_IGNORE_SCHEMES")?,
            ignore_http_codes,
            always_store: s.get_bool("HTTPCACHE_ALWAYS_STORE")?,
            ignore_response_cache_controls: s
                .get_list("HTTPCACHE_IGNORE_RESPONSE_CACHE_CONTROLS")?
                .into_iter()
                .map(|d| d.trim().to_ascii_lowercase())
                .collect(),
        })
    }

    /// A policy of `kind` with Scrapy's default settings.
    pub fn new(kind: PolicyKind) -> Policy {
        Policy {
            kind,
            ignore_schemes: vec!["file".into()],
            ignore_http_codes: Vec::new(),
            always_store: false,
            ignore_response_cache_controls: Vec::new(),
        }
    }

    fn response_cc(&self, response: &Response) -> CacheControl {
        let mut cc = parse_cache_control(&response.headers);
        for key in &self.ignore_response_cache_controls {
            cc.remove(key);
        }
        cc
    }

    /// Whether `request` may be answered from, and stored in, the cache.
    pub fn should_cache_request(&self, request: &Request) -> bool {
        if self
            .ignore_schemes
            .iter()
            .any(|s| s == request.url.scheme())
        {
            return false;
        }
        match self.kind {
            PolicyKind::Dummy => true,
            // Obey the user agent's "Cache-Control: no-store".
            PolicyKind::Rfc2616 => !parse_cache_control(&request.headers).contains_key("no-store"),
        }
    }

    /// Whether a freshly downloaded `response` is stored.
    pub fn should_cache_response(&self, response: &Response, request: &Request) -> bool {
        let _ = request;
        match self.kind {
            PolicyKind::Dummy => !self.ignore_http_codes.contains(&response.status),
            PolicyKind::Rfc2616 => {
                let cc = self.response_cc(response);
                if cc.contains_key("no-store") || response.status == 304 {
                    false
                } else if self.always_store {
                    true
                } else if cc.contains_key("max-age") || response.headers.contains_key("expires") {
                    // Any hint on expiration is good.
                    true
                } else if matches!(response.status, 300 | 301 | 308) {
                    // Firefox falls back to one year for these.
                    true
                } else if matches!(response.status, 200 | 203 | 401) {
                    // Without an expiration, at least one validator is needed.
                    response.headers.contains_key("last-modified")
                        || response.headers.contains_key("etag")
                } else {
                    false
                }
            }
        }
    }

    /// Whether `cached` may answer `request` at `now` without asking the server. When
    /// it may not, RFC2616Policy adds the validators (`If-Modified-Since`,
    /// `If-None-Match`) the cached response allows to `request`.
    pub fn is_cached_response_fresh(
        &self,
        cached: &Response,
        request: &mut Request,
        now: f64,
    ) -> bool {
        if self.kind == PolicyKind::Dummy {
            return true;
        }
        let cc = self.response_cc(cached);
        let ccreq = parse_cache_control(&request.headers);
        if cc.contains_key("no-cache") || ccreq.contains_key("no-cache") {
            return false;
        }
        let mut lifetime = freshness_lifetime(cached, &cc, now);
        let age = current_age(cached, now);
        if let Some(reqmaxage) = max_age(&ccreq) {
            lifetime = lifetime.min(reqmaxage);
        }
        if age < lifetime {
            return true;
        }
        if let Some(stale) = ccreq.get("max-stale") {
            if !cc.contains_key("must-revalidate") {
                // The client accepts a stale response: of any age without a value,
                // else stale by at most that many seconds.
                match stale {
                    None => return true,
                    Some(v) => {
                        if let Ok(n) = v.trim().parse::<i64>() {
                            if age < lifetime + n.max(0) as f64 {
                                return true;
                            }
                        }
                    }
                }
            }
        }
        set_conditional_validators(request, cached);
        false
    }

    /// Whether `cached` stays good after the server answered `response` to a
    /// revalidation.
    pub fn is_cached_response_valid(
        &self,
        cached: &Response,
        response: &Response,
        request: &Request,
    ) -> bool {
        let _ = request;
        if self.kind == PolicyKind::Dummy {
            return true;
        }
        // A server error keeps the cached response, unless it must be revalidated.
        if response.status >= 500 && !self.response_cc(cached).contains_key("must-revalidate") {
            return true;
        }
        response.status == 304
    }
}

/// Parsed `Cache-Control` directives: lower-cased name → value (`None` without `=`).
pub type CacheControl = HashMap<String, Option<String>>;

/// Parses every `Cache-Control` header of `headers` (Scrapy's `parse_cachecontrol`).
///
/// ```
/// use arachne::http::{HeaderMap, HeaderValue};
/// use arachne::middleware::httpcache::policy::parse_cache_control;
///
/// let mut h = HeaderMap::new();
/// h.insert("cache-control".parse().unwrap(), HeaderValue::from_static("public, Max-Age=3600"));
/// let cc = parse_cache_control(&h);
/// assert_eq!(cc["public"], None);
/// assert_eq!(cc["max-age"].as_deref(), Some("3600"));
/// ```
pub fn parse_cache_control(headers: &HeaderMap) -> CacheControl {
    let mut directives = CacheControl::new();
    for value in headers.get_all("cache-control") {
        let value = String::from_utf8_lossy(value.as_bytes());
        for directive in value.split(',') {
            let directive = directive.trim();
            let (key, val) = match directive.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().to_string())),
                None => (directive, None),
            };
            if !key.is_empty() {
                directives.insert(key.to_ascii_lowercase(), val);
            }
        }
    }
    directives
}

/// `max-age` as a non-negative number of seconds, if present and a number.
fn max_age(cc: &CacheControl) -> Option<f64> {
    let v = cc.get("max-age")?.as_deref()?;
    v.trim().parse::<i64>().ok().map(|n| n.max(0) as f64)
}

/// A header as text, if present.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A date header as seconds since the epoch.
fn header_date(headers: &HeaderMap, name: &str) -> Option<f64> {
    header(headers, name)
        .and_then(parse_http_date)
        .map(|t| t as f64)
}

/// How long `response` stays fresh (Firefox's `ComputeFreshnessLifetime`, as Scrapy).
fn freshness_lifetime(response: &Response, cc: &CacheControl, now: f64) -> f64 {
    if let Some(maxage) = max_age(cc) {
        return maxage;
    }
    let date = header_date(&response.headers, "date").unwrap_or(now);
    if response.headers.contains_key("expires") {
        // An Expires that does not parse is a time in the past (RFC 2616 14.21).
        return match header_date(&response.headers, "expires") {
            Some(expires) => (expires - date).max(0.0),
            None => 0.0,
        };
    }
    // The heuristic of browsers: a tenth of the time since the last modification.
    if let Some(lastmodified) = header_date(&response.headers, "last-modified") {
        if lastmodified <= date {
            return (date - lastmodified) / 10.0;
        }
    }
    if matches!(response.status, 300 | 301 | 308) {
        return MAXAGE;
    }
    0.0
}

/// How old `response` is (Firefox's `ComputeCurrentAge`, as Scrapy).
fn current_age(response: &Response, now: f64) -> f64 {
    // Without a Date header, assume a fast connection and clocks in sync.
    let date = header_date(&response.headers, "date").unwrap_or(now);
    let mut age = if now > date { now - date } else { 0.0 };
    if let Some(v) = header(&response.headers, "age").and_then(|v| v.trim().parse::<i64>().ok()) {
        age = age.max(v as f64);
    }
    age
}

/// Adds the validators `cached` allows to `request`.
fn set_conditional_validators(request: &mut Request, cached: &Response) {
    if let Some(v) = cached.headers.get("last-modified") {
        request
            .headers
            .insert(awc::http::header::IF_MODIFIED_SINCE, v.clone());
    }
    if let Some(v) = cached.headers.get("etag") {
        request
            .headers
            .insert(awc::http::header::IF_NONE_MATCH, v.clone());
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parses an HTTP date as leniently as Python's `email.utils.parsedate_tz`, which
/// Scrapy uses: RFC 1123 (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
/// (`Sunday, 06-Nov-94 08:49:37 GMT`), asctime (`Sun Nov  6 08:49:37 1994`), with
/// `GMT`/`UTC`/`UT`/`Z` or a `+hhmm` offset (none: UTC). Seconds since the epoch.
///
/// ```
/// use arachne::middleware::httpcache::policy::parse_http_date;
///
/// assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
/// assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784111777));
/// assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(784111777));
/// assert_eq!(parse_http_date("0"), None);
/// ```
pub fn parse_http_date(s: &str) -> Option<i64> {
    let mut month = None;
    let mut time = None;
    let mut offset = 0i64;
    let mut numbers = Vec::new();
    let tokens = s
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty());
    for token in tokens {
        // RFC 850's `06-Nov-94`.
        let parts: Vec<&str> = if token.matches('-').count() == 2 && !token.starts_with('-') {
            token.split('-').collect()
        } else {
            vec![token]
        };
        for part in parts {
            let lower = part.to_ascii_lowercase();
            if part.contains(':') {
                time = Some(part);
            } else if part.bytes().all(|b| b.is_ascii_digit()) {
                numbers.push(part.parse::<i64>().ok()?);
            } else if (part.starts_with('+') || part.starts_with('-'))
                && part.len() == 5
                && part[1..].bytes().all(|b| b.is_ascii_digit())
            {
                let hh: i64 = part[1..3].parse().ok()?;
                let mm: i64 = part[3..5].parse().ok()?;
                let sign = if part.starts_with('-') { -1 } else { 1 };
                offset = sign * (hh * 3600 + mm * 60);
            } else if let Some(m) = MONTHS.iter().position(|m| lower.starts_with(m)) {
                if month.is_none() && lower.len() >= 3 && !is_weekday(&lower) {
                    month = Some(m as i64 + 1);
                }
            } else if matches!(lower.as_str(), "gmt" | "utc" | "ut" | "z") || is_weekday(&lower) {
            } else {
                return None;
            }
        }
    }
    let (day, year) = match numbers.as_slice() {
        [day, year] => (*day, *year),
        _ => return None,
    };
    let year = match year {
        0..=68 => year + 2000,
        69..=99 => year + 1900,
        _ => year,
    };
    let month = month?;
    let mut hms = time?.split(':');
    let h: i64 = hms.next()?.parse().ok()?;
    let m: i64 = hms.next()?.parse().ok()?;
    let sec: i64 = match hms.next() {
        Some(v) => v.parse().ok()?,
        None => 0,
    };
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec - offset)
}

fn is_weekday(lower: &str) -> bool {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .any(|d| lower.starts_with(d))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HeaderName, HeaderValue};

    const NOW: f64 = 1_700_000_000.0;

    type Headers<'a> = &'a [(&'a str, &'a str)];

    fn date(secs: f64) -> String {
        awc::http::header::HttpDate::from(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs),
        )
        .to_string()
    }

    fn response(status: u16, headers: &[(&str, &str)]) -> Response {
        let mut r = Response::new(Request::get("http://h/x").unwrap(), status, "body".into());
        for (k, v) in headers {
            r.headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        r
    }

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut r = Request::get("http://h/x").unwrap();
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r
    }

    /// Dotted Scrapy names, class names and short names are accepted.
    #[test]
    fn policy_names() {
        for (name, kind) in [
            ("scrapy.extensions.httpcache.DummyPolicy", PolicyKind::Dummy),
            ("RFC2616Policy", PolicyKind::Rfc2616),
            ("rfc2616", PolicyKind::Rfc2616),
            ("dummy", PolicyKind::Dummy),
        ] {
            assert_eq!(PolicyKind::parse(name).unwrap(), kind);
        }
        let err = PolicyKind::parse("my.Policy").unwrap_err().to_string();
        assert!(
            err.contains("HTTPCACHE_POLICY") && err.contains("my.Policy"),
            "{err}"
        );
    }

    /// The defaults read from settings; a bad status code is an error naming the key.
    #[test]
    fn from_settings() {
        let p = Policy::from_settings(&Settings::new()).unwrap();
        assert_eq!(p.kind, PolicyKind::Dummy);
        assert_eq!(p.ignore_schemes, vec!["file"]);
        let bad = Settings::new().with("HTTPCACHE_IGNORE_HTTP_CODES", "404, x");
        let err = Policy::from_settings(&bad).unwrap_err().to_string();
        assert!(err.contains("HTTPCACHE_IGNORE_HTTP_CODES"), "{err}");
        let ok = Settings::new().with(
            "HTTPCACHE_IGNORE_HTTP_CODES",
            serde_json::json!([404, "500"]),
        );
        assert_eq!(
            Policy::from_settings(&ok).unwrap().ignore_http_codes,
            vec![404, 500]
        );
    }

    /// DummyPolicy caches everything but ignored codes and schemes, forever.
    #[test]
    fn dummy() {
        let mut p = Policy::new(PolicyKind::Dummy);
        p.ignore_http_codes = vec![404];
        let mut req = request(&[("Cache-Control", "no-store")]);
        assert!(p.should_cache_request(&req));
        assert!(!p.should_cache_request(&Request::get("file:///tmp/x").unwrap()));
        assert!(p.should_cache_response(&response(200, &[("Cache-Control", "no-store")]), &req));
        assert!(!p.should_cache_response(&response(404, &[]), &req));
        let old = response(200, &[("Date", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert!(p.is_cached_response_fresh(&old, &mut req, NOW));
        assert!(p.is_cached_response_valid(&old, &response(500, &[]), &req));
    }

    /// RFC2616Policy's storage rules.
    #[test]
    fn rfc2616_should_cache() {
        let p = Policy::new(PolicyKind::Rfc2616);
        let req = request(&[]);
        assert!(!p.should_cache_request(&request(&[("Cache-Control", "no-store")])));
        let cases: &[(u16, Headers<'_>, bool)] = &[
            (200, &[("Cache-Control", "no-store, max-age=60")], false),
            (304, &[("Cache-Control", "max-age=60")], false),
            (200, &[("Cache-Control", "max-age=60")], true),
            (404, &[("Expires", "Sun, 06 Nov 1994 08:49:37 GMT")], true),
            (301, &[], true),
            (200, &[], false),
            (200, &[("ETag", "\"x\"")], true),
            (
                200,
                &[("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT")],
                true,
            ),
            (500, &[("ETag", "\"x\"")], false),
        ];
        for (status, headers, want) in cases {
            assert_eq!(
                p.should_cache_response(&response(*status, headers), &req),
                *want,
                "{status} {headers:?}"
            );
        }
        let mut always = Policy::new(PolicyKind::Rfc2616);
        always.always_store = true;
        assert!(always.should_cache_response(&response(200, &[]), &req));
        assert!(
            !always.should_cache_response(&response(200, &[("Cache-Control", "no-store")]), &req)
        );
        let mut ignoring = Policy::new(PolicyKind::Rfc2616);
        ignoring.ignore_response_cache_controls = vec!["no-store".into()];
        assert!(ignoring.should_cache_response(
            &response(200, &[("Cache-Control", "no-store, max-age=5")]),
            &req
        ));
    }

    /// Freshness from max-age, Expires, Last-Modified and Age; validators when stale.
    #[test]
    fn rfc2616_freshness() {
        let p = Policy::new(PolicyKind::Rfc2616);
        let fresh = |headers: &[(&str, &str)], req_headers: &[(&str, &str)]| {
            let mut req = request(req_headers);
            let ok = p.is_cached_response_fresh(&response(200, headers), &mut req, NOW);
            (ok, req)
        };
        let d = date(NOW - 10.0);
        assert!(fresh(&[("Date", &d), ("Cache-Control", "max-age=60")], &[]).0);
        assert!(!fresh(&[("Date", &d), ("Cache-Control", "max-age=5")], &[]).0);
        // Age counts when larger than the Date difference.
        assert!(
            !fresh(
                &[
                    ("Date", &d),
                    ("Age", "100"),
                    ("Cache-Control", "max-age=60")
                ],
                &[]
            )
            .0
        );
        // no-cache on either side.
        assert!(
            !fresh(
                &[("Date", &d), ("Cache-Control", "max-age=60, no-cache")],
                &[]
            )
            .0
        );
        assert!(
            !fresh(
                &[("Date", &d), ("Cache-Control", "max-age=60")],
                &[("Cache-Control", "no-cache")]
            )
            .0
        );
        // The request's max-age lowers the lifetime.
        assert!(
            !fresh(
                &[("Date", &d), ("Cache-Control", "max-age=60")],
                &[("Cache-Control", "max-age=5")]
            )
            .0
        );
        // Expires relative to Date; a bad Expires is in the past.
        assert!(fresh(&[("Date", &d), ("Expires", &date(NOW + 50.0))], &[]).0);
        assert!(!fresh(&[("Date", &d), ("Expires", "0")], &[]).0);
        // Last-Modified heuristic: a tenth of (Date - Last-Modified).
        assert!(fresh(&[("Date", &d), ("Last-Modified", &date(NOW - 1000.0))], &[]).0);
        assert!(!fresh(&[("Date", &d), ("Last-Modified", &date(NOW - 50.0))], &[]).0);
        // max-stale.
        let stale = [("Date", d.as_str()), ("Cache-Control", "max-age=5")];
        assert!(fresh(&stale, &[("Cache-Control", "max-stale")]).0);
        assert!(fresh(&stale, &[("Cache-Control", "max-stale=10")]).0);
        assert!(!fresh(&stale, &[("Cache-Control", "max-stale=2")]).0);
        assert!(
            !fresh(
                &[
                    ("Date", &d),
                    ("Cache-Control", "max-age=5, must-revalidate")
                ],
                &[("Cache-Control", "max-stale")]
            )
            .0
        );
        // Stale: validators are set.
        let (ok, req) = fresh(
            &[
                ("Date", &d),
                ("Last-Modified", &date(NOW - 20.0)),
                ("ETag", "\"v1\""),
            ],
            &[],
        );
        assert!(!ok);
        assert_eq!(req.headers.get("if-none-match").unwrap(), "\"v1\"");
        assert_eq!(
            req.headers
                .get("if-modified-since")
                .unwrap()
                .to_str()
                .unwrap(),
            date(NOW - 20.0)
        );
        // 301 without hints: one year.
        let mut req = request(&[]);
        assert!(p.is_cached_response_fresh(&response(301, &[("Date", &d)]), &mut req, NOW));
    }

    /// Revalidation keeps the cached response on 304, and on 5xx unless must-revalidate.
    #[test]
    fn rfc2616_validity() {
        let p = Policy::new(PolicyKind::Rfc2616);
        let req = request(&[]);
        let cached = response(200, &[]);
        assert!(p.is_cached_response_valid(&cached, &response(304, &[]), &req));
        assert!(p.is_cached_response_valid(&cached, &response(503, &[]), &req));
        assert!(!p.is_cached_response_valid(&cached, &response(200, &[]), &req));
        let strict = response(200, &[("Cache-Control", "must-revalidate")]);
        assert!(!p.is_cached_response_valid(&strict, &response(503, &[]), &req));
    }

    /// Dates in every format parsedate_tz reads; garbage is None.
    #[test]
    fn dates() {
        let t = 784_111_777;
        for s in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 09:49:37 +0100",
            "Sun, 06 Nov 1994 03:49:37 -0500",
        ] {
            assert_eq!(parse_http_date(s), Some(t), "{s}");
        }
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(951_825_600)
        );
        for s in [
            "",
            "0",
            "-1",
            "yesterday",
            "Sun, 06 Nov 1994",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(s), None, "{s}");
        }
        assert_eq!(parse_http_date(&date(NOW)), Some(NOW as i64));
    }
}

//! HttpProxyMiddleware: Scrapy's `scrapy.downloadermiddlewares.httpproxy.HttpProxyMiddleware`
//! (order 750). It decides which proxy, if any, each request goes through, and the
//! downloader's transfer (`actors/slot.rs`) then sends it there.
//!
//! - A request's meta `proxy` wins: `"http://user:pass@proxy:3128"`, `"proxy:3128"`
//!   (scheme `http` assumed) or `null` (no proxy, even if the environment names one).
//! - Otherwise the environment, read once when the crawl starts (Python's
//!   `getproxies()`): `<scheme>_proxy` / `<SCHEME>_PROXY` (lower case wins) for the
//!   request's scheme — `http_proxy` for `http://` URLs, `https_proxy` for `https://` —
//!   unless the host matches `no_proxy` (`*` for every host, or a comma-separated list
//!   of host names and domain suffixes: `example.com` and `.example.com` both cover
//!   `example.com` and `www.example.com`; compared without the port, case-insensitive).
//! - Credentials in the proxy URL are percent-decoded, encoded with
//!   `HTTPPROXY_AUTH_ENCODING` and sent as `Proxy-Authorization: Basic ...`; meta `proxy`
//!   is rewritten to `scheme://host:port` without them, and meta `_auth_proxy` records
//!   which proxy the header belongs to. When a request's proxy changes (a retry, a
//!   redirect, another middleware) a `Proxy-Authorization` meant for the previous proxy
//!   is removed, and one is never kept on a request that goes to no proxy — it would
//!   reach the target site. Meta `_scheme_proxy` marks a proxy chosen from the
//!   environment by URL scheme (a redirect to another scheme must choose again).
//!
//! What the transport does with it (see `transfer` in `actors/slot.rs` and
//! `crate::http::tunnel`): `http://` URLs go to an `http://` proxy in absolute form with
//! `Proxy-Authorization`; `https://` URLs go through a `CONNECT` tunnel that carries the
//! header, and the request inside the tunnel does not. A proxy that is not `http://`
//! fails with `NotSupported`; a `407` from the proxy is `ProxyAuthenticationRequired`,
//! an unreachable proxy or a refused tunnel `ProxyError`.
//!
//! Settings: `HTTPPROXY_ENABLED` (default `true`), `HTTPPROXY_AUTH_ENCODING` (default
//! `latin-1`; any WHATWG encoding label, `latin-1` meaning ISO-8859-1 exactly).
//!
//! Meta keys: `proxy`, `_auth_proxy`, `_scheme_proxy`.
//!
//! Stats keys: none.

use std::collections::HashMap;

use awc::http::header::{HeaderName, HeaderValue};
use base64::Engine as _;
use serde_json::Value;

use crate::error::{ConfigError, DownloadError};
use crate::extension::CrawlerHandle;
use crate::http::Request;
use crate::middleware::downloader::{DownloaderMiddleware, RequestFlow};

/// `Proxy-Authorization`.
pub const PROXY_AUTHORIZATION: HeaderName = awc::http::header::PROXY_AUTHORIZATION;

/// How `user:password` is turned into bytes before base64.
#[derive(Debug, Clone, Copy)]
enum AuthEncoding {
    /// ISO-8859-1 exactly (Python's `latin-1`); characters above U+00FF fall back to UTF-8.
    Latin1,
    /// Any other encoding, by WHATWG label.
    Other(&'static encoding_rs::Encoding),
}

impl AuthEncoding {
    fn from_label(label: &str) -> Option<AuthEncoding> {
        let l = label.trim().to_ascii_lowercase().replace('_', "-");
        if matches!(
            l.as_str(),
            "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1" | "iso-latin-1"
        ) {
            return Some(AuthEncoding::Latin1);
        }
        encoding_rs::Encoding::for_label(l.as_bytes()).map(AuthEncoding::Other)
    }

    fn encode(self, text: &str) -> Vec<u8> {
        match self {
            AuthEncoding::Latin1 => match text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).ok())
                .collect()
            {
                Some(bytes) => bytes,
                None => {
                    log::warn!("Proxy credentials are not Latin-1; sending them as UTF-8");
                    text.as_bytes().to_vec()
                }
            },
            AuthEncoding::Other(enc) => enc.encode(text).0.into_owned(),
        }
    }
}

/// A proxy, ready to use: its URL without credentials, and the `Basic` credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `scheme://host:port`, what meta `proxy` is set to.
    pub url: String,
    /// The base64 of `user:password`, if the URL had a user.
    pub credentials: Option<String>,
}

/// A proxy string split up: Python's `_parse_proxy` result.
struct ParsedProxy {
    scheme: Option<String>,
    user: Option<String>,
    password: Option<String>,
    hostport: String,
}

/// Splits a proxy given as a URL or a bare authority, like Python's
/// `urllib.request._parse_proxy`: scheme, user, password and `host:port`.
fn parse_proxy(proxy: &str) -> Result<ParsedProxy, String> {
    let (scheme, rest) = match proxy.split_once(':') {
        Some((s, r)) if !s.is_empty() && !s.contains('/') => (Some(s.to_ascii_lowercase()), r),
        _ => (None, proxy),
    };
    let (scheme, authority) = match scheme {
        Some(s) if rest.starts_with('/') => {
            let Some(r) = rest.strip_prefix("//") else {
                return Err(format!("proxy URL with no authority: {proxy:?}"));
            };
            let end = match r.find('@') {
                Some(at) => r[at..].find('/').map(|i| at + i),
                None => r.find('/'),
            };
            (Some(s), &r[..end.unwrap_or(r.len())])
        }
        // `host:port` or `user:pass@host:port`: no scheme.
        _ => (None, proxy),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (Some(user.to_string()), Some(pass.to_string())),
            None => (Some(u.to_string()), None),
        },
        None => (None, None),
    };
    Ok(ParsedProxy {
        scheme,
        user,
        password,
        hostport: hostport.to_string(),
    })
}

/// Python's `proxy_bypass_environment(host)` for a `no_proxy` value.
pub fn bypass(no_proxy: &str, host: &str) -> bool {
    let no_proxy = no_proxy.trim();
    if no_proxy == "*" {
        return true;
    }
    let host = host
        .trim_matches(|c| c == '[' || c == ']')
        .to_ascii_lowercase();
    no_proxy
        .split(',')
        .map(|n| n.trim().trim_start_matches('.').to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .any(|name| host == name || host.ends_with(&format!(".{name}")))
}

/// Chooses each request's proxy.
#[derive(Debug)]
pub struct HttpProxyMiddleware {
    encoding: AuthEncoding,
    /// Scheme → proxy, from `<scheme>_proxy`.
    proxies: HashMap<String, Proxy>,
    /// `no_proxy`, if set.
    no_proxy: Option<String>,
}

impl HttpProxyMiddleware {
    /// `None` when `HTTPPROXY_ENABLED` is off; the environment is read now.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        let s = &crawler.settings;
        if !s.get_bool("HTTPPROXY_ENABLED")? {
            return Ok(None);
        }
        let label = s.get_str("HTTPPROXY_AUTH_ENCODING");
        // `vars_os`: a variable that is not Unicode is skipped rather than a panic.
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Ok(Some(Box::new(Self::from_env(&label, vars)?)))
    }

    /// A middleware with `auth_encoding` and the proxies named by these environment
    /// variables (`http_proxy`, `HTTPS_PROXY`, `no_proxy`, ...), like Python's
    /// `getproxies()`: any `<scheme>_proxy`, lower-case names winning, empty values
    /// ignored, values that do not parse skipped.
    pub fn from_env(
        auth_encoding: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let label = if auth_encoding.is_empty() {
            "latin-1"
        } else {
            auth_encoding
        };
        let encoding =
            AuthEncoding::from_label(label).ok_or_else(|| ConfigError::InvalidValue {
                key: "HTTPPROXY_AUTH_ENCODING".into(),
                value: auth_encoding.into(),
                expected: "an encoding name (latin-1, utf-8, ...)",
            })?;
        let mut mw = HttpProxyMiddleware {
            encoding,
            proxies: HashMap::new(),
            no_proxy: None,
        };
        let mut raw: HashMap<String, String> = HashMap::new();
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, _)| {
                name.len() > 6
                    && name.is_char_boundary(name.len() - 6)
                    && name[name.len() - 6..].eq_ignore_ascii_case("_proxy")
            })
            .collect();
        // Two passes, as Python's `getproxies_environment`: any case, then lower case.
        for (name, value) in &vars {
            if !value.is_empty() {
                raw.insert(name[..name.len() - 6].to_ascii_lowercase(), value.clone());
            }
        }
        for (name, value) in &vars {
            if name.ends_with("_proxy") {
                let scheme = name[..name.len() - 6].to_ascii_lowercase();
                if value.is_empty() {
                    raw.remove(&scheme);
                } else {
                    raw.insert(scheme, value.clone());
                }
            }
        }
        for (scheme, value) in raw {
            if scheme == "no" {
                mw.no_proxy = Some(value);
                continue;
            }
            match mw.get_proxy(&value, &scheme) {
                Ok(p) => {
                    mw.proxies.insert(scheme, p);
                }
                Err(e) => log::debug!("Ignoring {scheme}_proxy: {e}"),
            }
        }
        Ok(mw)
    }

    /// Scrapy's `_get_proxy`: the proxy URL without credentials (scheme `default_scheme`
    /// when it has none, `http` when that is empty too) and the credentials.
    pub fn get_proxy(&self, url: &str, default_scheme: &str) -> Result<Proxy, String> {
        let ParsedProxy {
            scheme,
            user,
            password,
            hostport,
        } = parse_proxy(url.trim())?;
        let scheme = scheme
            .or_else(|| (!default_scheme.is_empty()).then(|| default_scheme.to_string()))
            .unwrap_or_else(|| "http".to_string());
        let credentials = user.filter(|u| !u.is_empty()).map(|user| {
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let pair = format!("{}:{}", dec(&user), dec(password.as_deref().unwrap_or("")));
            base64::engine::general_purpose::STANDARD.encode(self.encoding.encode(&pair))
        });
        Ok(Proxy {
            url: format!("{scheme}://{hostport}"),
            credentials,
        })
    }

    /// The proxy the environment gives `request`, if any (and whether it was chosen by
    /// scheme).
    fn env_proxy(&self, request: &Request) -> Option<&Proxy> {
        let scheme = request.url.scheme();
        let bypassed = matches!(scheme, "http" | "https")
            && match (&self.no_proxy, request.url.host_str()) {
                (Some(no), Some(host)) => bypass(no, host),
                _ => false,
            };
        if bypassed {
            return None;
        }
        self.proxies.get(scheme)
    }
}

#[async_trait::async_trait(?Send)]
impl DownloaderMiddleware for HttpProxyMiddleware {
    async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
        let (proxy, by_scheme) = match request.meta.get("proxy") {
            Some(Value::Null) => (None, false),
            Some(Value::String(p)) if p.trim().is_empty() => (None, false),
            Some(Value::String(p)) => {
                let p = self
                    .get_proxy(p, "")
                    .map_err(|e| DownloadError::Other(format!("invalid meta proxy: {e}")))?;
                (Some(p), false)
            }
            Some(other) => {
                return Err(DownloadError::Other(format!(
                    "invalid meta proxy {other}: not a string"
                )))
            }
            None => (self.env_proxy(request).cloned(), true),
        };
        let by_scheme = by_scheme && proxy.is_some();

        // Scrapy's `_set_proxy_and_creds`.
        if by_scheme {
            request
                .meta
                .insert("_scheme_proxy".into(), Value::Bool(true));
        }
        let proxy_url = proxy.as_ref().map(|p| p.url.clone());
        match &proxy_url {
            Some(url) => {
                request
                    .meta
                    .insert("proxy".into(), Value::String(url.clone()));
            }
            None => {
                if request.meta.get("proxy").is_some_and(|v| !v.is_null()) {
                    request.meta.insert("proxy".into(), Value::Null);
                }
            }
        }
        let auth_proxy = request.meta.get("_auth_proxy").cloned();
        match proxy.as_ref().and_then(|p| p.credentials.as_ref()) {
            Some(creds) => {
                let value = HeaderValue::from_str(&format!("Basic {creds}"))
                    .map_err(|e| DownloadError::Other(format!("bad proxy credentials: {e}")))?;
                request.headers.insert(PROXY_AUTHORIZATION, value);
                request.meta.insert(
                    "_auth_proxy".into(),
                    proxy_url.clone().map_or(Value::Null, Value::String),
                );
            }
            None if auth_proxy.is_some() => {
                let same = match (&auth_proxy, &proxy_url) {
                    (Some(Value::String(a)), Some(p)) => a == p,
                    _ => false,
                };
                if !same {
                    request.headers.remove(PROXY_AUTHORIZATION);
                    request.meta.remove("_auth_proxy");
                }
            }
            None if request.headers.contains_key(PROXY_AUTHORIZATION) => match proxy_url {
                // A header the user set for this proxy: remember which proxy it is for.
                Some(url) => {
                    request
                        .meta
                        .insert("_auth_proxy".into(), Value::String(url));
                }
                // No proxy: the header must not reach the target.
                None => {
                    request.headers.remove(PROXY_AUTHORIZATION);
                }
            },
            None => {}
        }
        Ok(RequestFlow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mw(env: &[(&str, &str)]) -> HttpProxyMiddleware {
        HttpProxyMiddleware::from_env(
            "latin-1",
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap()
    }

    async fn run(mw: &HttpProxyMiddleware, mut r: Request) -> Request {
        mw.process_request(&mut r).await.unwrap();
        r
    }

    fn auth(r: &Request) -> Option<&str> {
        r.headers
            .get(PROXY_AUTHORIZATION)
            .map(|v| v.to_str().unwrap())
    }

    /// Proxy strings parse like Python's `_parse_proxy`.
    #[test]
    fn parse() {
        let m = mw(&[]);
        let p = m
            .get_proxy("http://us%40r:p%3Ass@proxy:3128/ignored", "")
            .unwrap();
        assert_eq!(p.url, "http://proxy:3128");
        // base64("us@r:p:ss")
        assert_eq!(p.credentials.as_deref(), Some("dXNAcjpwOnNz"));
        assert_eq!(
            m.get_proxy("proxy:3128", "https").unwrap().url,
            "https://proxy:3128"
        );
        assert_eq!(
            m.get_proxy("u:p@proxy:3128", "").unwrap().url,
            "http://proxy:3128"
        );
        assert_eq!(
            m.get_proxy("u@proxy:3128", "")
                .unwrap()
                .credentials
                .as_deref(),
            Some("dTo=")
        );
        assert!(m.get_proxy("http:/proxy", "").is_err());
        // Latin-1: "é" is one byte.
        assert_eq!(
            m.get_proxy("http://%C3%A9:x@p:1", "")
                .unwrap()
                .credentials
                .as_deref(),
            Some("6Tp4")
        );
    }

    /// `no_proxy` matches hosts and domain suffixes, `*` everything.
    #[test]
    fn no_proxy() {
        assert!(bypass("*", "anything"));
        assert!(bypass("example.com, .other.org", "www.example.com"));
        assert!(bypass("example.com", "EXAMPLE.com"));
        assert!(bypass(".other.org", "other.org"));
        assert!(!bypass("example.com", "badexample.com"));
        assert!(bypass("::1", "[::1]"));
        assert!(!bypass("", "example.com"));
    }

    /// The environment: lower case wins, scheme picks, no_proxy bypasses; meta wins.
    #[actix_rt::test]
    async fn environment_and_meta() {
        let m = mw(&[
            ("HTTP_PROXY", "http://upper:1"),
            ("http_proxy", "http://a:b@lower:2"),
            ("no_proxy", "skip.example"),
        ]);
        let r = run(&m, Request::get("http://x.example/").unwrap()).await;
        assert_eq!(r.meta_str("proxy"), Some("http://lower:2"));
        assert_eq!(auth(&r), Some("Basic YTpi"));
        assert_eq!(r.meta_str("_auth_proxy"), Some("http://lower:2"));
        assert!(r.meta_bool("_scheme_proxy"));
        let r = run(&m, Request::get("https://x.example/").unwrap()).await;
        assert!(r.meta.get("proxy").is_none());
        let r = run(&m, Request::get("http://www.skip.example/").unwrap()).await;
        assert!(r.meta.get("proxy").is_none() && auth(&r).is_none());
        let r = run(
            &m,
            Request::get("http://x.example/")
                .unwrap()
                .meta("proxy", Value::Null),
        )
        .await;
        assert!(r.meta["proxy"].is_null());
    }

    /// A stale Proxy-Authorization goes when the proxy changes or goes away.
    #[actix_rt::test]
    async fn stale_credentials_are_removed() {
        let m = mw(&[]);
        let r = run(
            &m,
            Request::get("http://t/")
                .unwrap()
                .meta("proxy", "http://u:p@one:1"),
        )
        .await;
        assert_eq!(auth(&r), Some("Basic dTpw"));
        // Same proxy, credentials now stripped from the URL: kept.
        let r = run(&m, r).await;
        assert_eq!(auth(&r), Some("Basic dTpw"));
        // Another proxy without credentials: removed.
        let mut r2 = r.clone();
        r2.meta.insert("proxy".into(), "http://two:2".into());
        let r2 = run(&m, r2).await;
        assert_eq!(auth(&r2), None);
        assert!(r2.meta.get("_auth_proxy").is_none());
        // No proxy at all: removed.
        let mut r3 = r.clone();
        r3.meta.insert("proxy".into(), Value::Null);
        let r3 = run(&m, r3).await;
        assert_eq!(auth(&r3), None);
        // A user header with no proxy never stays.
        let r4 = run(
            &m,
            Request::get("http://t/")
                .unwrap()
                .header("Proxy-Authorization", "Basic x"),
        )
        .await;
        assert_eq!(auth(&r4), None);
        // A user header with a proxy stays and is bound to it.
        let r5 = Request::get("http://t/")
            .unwrap()
            .header("Proxy-Authorization", "Basic x")
            .meta("proxy", "http://one:1");
        let r5 = run(&m, r5).await;
        assert_eq!(auth(&r5), Some("Basic x"));
        assert_eq!(r5.meta_str("_auth_proxy"), Some("http://one:1"));
    }
}

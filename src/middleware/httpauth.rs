//! HttpAuthMiddleware (order 300): HTTP Basic authentication from spider attributes, as
//! Scrapy's `scrapy.downloadermiddlewares.httpauth.HttpAuthMiddleware` does (the 2.5
//! semantics, with `http_auth_domain`).
//!
//! When the spider sets `http_user` and/or `http_pass`, requests without an
//! `Authorization` header get `Authorization: Basic base64(user:pass)` — but only for
//! the domain `http_auth_domain` and its subdomains. `http_auth_domain` set to `null` (or
//! `""`) sends the credentials everywhere; left unset, it becomes the host of the first
//! request that passes (with a warning, as in Scrapy). Credentials are encoded as
//! ISO-8859-1 (w3lib's `basic_auth_header`); text that Latin-1 cannot hold is sent as
//! UTF-8. A domain matches a URL's host, or its `host:port` (Scrapy compares the
//! network location, port included, so there a bare domain never matches a URL with an
//! explicit port; here it does).
//!
//! Spider attributes: `http_user`, `http_pass`, `http_auth_domain`. Settings: none (the
//! middleware is not configured when the spider has no credentials). Meta keys: none.
//! Stats: none.

use std::cell::RefCell;

use serde_json::Value;
use url::Url;

use crate::error::{ConfigError, DownloadError};
use crate::extension::CrawlerHandle;
use crate::http::{HeaderValue, Request};
use crate::middleware::downloader::{DownloaderMiddleware, RequestFlow};

/// Where the credentials may go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AuthDomain {
    /// `http_auth_domain` not set: the first request's host decides.
    Unset,
    /// `http_auth_domain = null`: everywhere.
    Any,
    /// This domain and its subdomains.
    Domain(String),
}

/// Adds Basic `Authorization`.
#[derive(Debug)]
pub struct HttpAuthMiddleware {
    auth: HeaderValue,
    domain: RefCell<AuthDomain>,
}

impl HttpAuthMiddleware {
    /// Not configured when the spider has neither `http_user` nor `http_pass`.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        let spider = &crawler.spider;
        let user = attr_text(spider.attr("http_user"));
        let pass = attr_text(spider.attr("http_pass"));
        if user.is_empty() && pass.is_empty() {
            return Ok(None);
        }
        let domain = match spider.attr("http_auth_domain") {
            None => {
                log::warn!(
                    "Using HttpAuthMiddleware without http_auth_domain has been deprecated and \
                     can cause security problems if the spider makes requests to several \
                     different domains. http_auth_domain will be set to the domain of the \
                     first request, please set it to the correct value explicitly."
                );
                AuthDomain::Unset
            }
            Some(v) => match attr_text(Some(v)) {
                d if d.is_empty() => AuthDomain::Any,
                d => AuthDomain::Domain(d.to_ascii_lowercase()),
            },
        };
        let auth = HeaderValue::from_str(&basic_auth_header(&user, &pass))
            .expect("base64 is a valid header value");
        Ok(Some(Box::new(HttpAuthMiddleware {
            auth,
            domain: RefCell::new(domain),
        })))
    }
}

/// A spider attribute as text: strings as they are, `null` or absent as `""`.
fn attr_text(v: Option<Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    }
}

/// w3lib's `basic_auth_header`: `Basic ` + base64 of `user:pass` in ISO-8859-1 (UTF-8
/// when Latin-1 cannot encode it).
pub fn basic_auth_header(user: &str, pass: &str) -> String {
    let plain = format!("{user}:{pass}");
    let bytes: Vec<u8> = if plain.chars().all(|c| u32::from(c) <= 0xFF) {
        // Every char fits one Latin-1 byte, checked just above.
        plain.chars().map(|c| u32::from(c) as u8).collect()
    } else {
        plain.into_bytes()
    };
    format!("Basic {}", base64(&bytes))
}

/// Standard base64 with padding (RFC 4648 §4), from the `base64` crate.
fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Scrapy's `url_is_from_any_domain` for one domain, matching the host or `host:port`.
fn url_in_domain(url: &Url, domain: &str) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let netloc = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let suffix = format!(".{domain}");
    [host, netloc]
        .iter()
        .any(|h| h == domain || h.ends_with(&suffix))
}

impl HttpAuthMiddleware {
    /// Whether `url` may receive the credentials; the first request fixes an unset
    /// domain.
    fn allowed(&self, url: &Url) -> bool {
        let mut domain = self.domain.borrow_mut();
        if *domain == AuthDomain::Unset {
            match url.host_str() {
                Some(h) => *domain = AuthDomain::Domain(h.to_ascii_lowercase()),
                None => return false,
            }
        }
        match &*domain {
            AuthDomain::Any => true,
            AuthDomain::Domain(d) => url_in_domain(url, d),
            AuthDomain::Unset => false,
        }
    }
}

#[async_trait::async_trait(?Send)]
impl DownloaderMiddleware for HttpAuthMiddleware {
    async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
        if !request.headers.contains_key("authorization") && self.allowed(&request.url) {
            request
                .headers
                .insert(awc::http::header::AUTHORIZATION, self.auth.clone());
        }
        Ok(RequestFlow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mw(domain: AuthDomain) -> HttpAuthMiddleware {
        HttpAuthMiddleware {
            auth: HeaderValue::from_static("Basic x"),
            domain: RefCell::new(domain),
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// Base64 matches RFC 4648's test vectors, and the header w3lib makes.
    #[test]
    fn encoding() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
        assert_eq!(basic_auth_header("foo", "bar"), "Basic Zm9vOmJhcg==");
        assert_eq!(basic_auth_header("su", ""), "Basic c3U6");
        assert_eq!(basic_auth_header("", "sp"), "Basic OnNw");
        // Latin-1, not UTF-8: "é" is one byte 0xE9.
        assert_eq!(basic_auth_header("é", ""), "Basic 6To=");
    }

    /// A domain covers itself and its subdomains, with or without a port.
    #[test]
    fn domains() {
        let m = mw(AuthDomain::Domain("example.com".into()));
        assert!(m.allowed(&url("http://example.com/")));
        assert!(m.allowed(&url("https://sub.example.com/")));
        assert!(m.allowed(&url("http://example.com:8080/")));
        assert!(!m.allowed(&url("http://example.com.evil.test/")));
        assert!(!m.allowed(&url("http://notexample.com/")));
        let m = mw(AuthDomain::Domain("127.0.0.1:8080".into()));
        assert!(m.allowed(&url("http://127.0.0.1:8080/")));
        assert!(!m.allowed(&url("http://127.0.0.1:9090/")));
        assert!(mw(AuthDomain::Any).allowed(&url("http://anything.test/")));
    }

    /// Unset, the first request's host becomes the domain.
    #[test]
    fn first_request_sets_domain() {
        let m = mw(AuthDomain::Unset);
        assert!(m.allowed(&url("http://first.test/a")));
        assert!(m.allowed(&url("http://first.test/b")));
        assert!(!m.allowed(&url("http://second.test/")));
    }
}

//! `HttpCacheMiddleware`: answers requests from a cache on disk and stores what is
//! downloaded, as Scrapy's `scrapy.downloadermiddlewares.httpcache.HttpCacheMiddleware`
//! (order 900, the nearest to the network), with Scrapy's `DummyPolicy` or
//! `RFC2616Policy` ([`policy`]) and its `FilesystemCacheStorage` layout ([`storage`]).
//!
//! | setting | default | meaning |
//! | --- | --- | --- |
//! | `HTTPCACHE_ENABLED` | `false` | `false`: the middleware is not configured |
//! | `HTTPCACHE_DIR` | `httpcache` | the cache root; a relative path is put under `.scrapy/` of the current directory (Scrapy's data directory outside a project), an absolute one is used as is |
//! | `HTTPCACHE_EXPIRATION_SECS` | `0` | entries older than this many seconds are misses; `0` never expires |
//! | `HTTPCACHE_IGNORE_HTTP_CODES` | `[]` | statuses never stored (DummyPolicy) |
//! | `HTTPCACHE_IGNORE_SCHEMES` | `["file"]` | URL schemes never cached |
//! | `HTTPCACHE_IGNORE_MISSING` | `false` | a request not in the cache fails with `Ignored` instead of being downloaded |
//! | `HTTPCACHE_ALWAYS_STORE` | `false` | RFC2616Policy stores responses even without expiration or validators |
//! | `HTTPCACHE_IGNORE_RESPONSE_CACHE_CONTROLS` | `[]` | `Cache-Control` directives of responses RFC2616Policy disregards |
//! | `HTTPCACHE_POLICY` | `scrapy.extensions.httpcache.DummyPolicy` | `DummyPolicy` or `RFC2616Policy`, as Scrapy's dotted path, the class name, or `dummy` / `rfc2616` |
//! | `HTTPCACHE_STORAGE` | `scrapy.extensions.httpcache.FilesystemCacheStorage` | only the filesystem storage exists (`FilesystemCacheStorage` or `filesystem`) |
//! | `HTTPCACHE_GZIP` | `false` | gzip every cache file |
//!
//! Entries live in `<dir>/<spider name>/<fp[0:2]>/<fp>/` (`fp`: the request
//! fingerprint in hex), written atomically.
//!
//! Meta: `dont_cache` (a true value bypasses the cache both ways). The middleware
//! marks a request whose cached response is stale with `_httpcache_stale` (Scrapy
//! keeps the response itself in `meta["cached_response"]`; ours re-reads it).
//!
//! Responses from the cache carry the flag `cached`.
//!
//! Stats: `httpcache/hit`, `httpcache/miss`, `httpcache/ignore`,
//! `httpcache/firsthand`, `httpcache/revalidate`, `httpcache/invalidate`,
//! `httpcache/errorrecovery`, `httpcache/store`, `httpcache/uncacheable`.
//!
//! File reads and writes run on the blocking thread pool. A cache entry that cannot
//! be read is logged and treated as a miss; one that cannot be written is logged and
//! the response goes on (Scrapy would fail the request).

pub mod policy;
pub mod storage;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use url::Url;

use crate::error::{ConfigError, DownloadError};
use crate::extension::CrawlerHandle;
use crate::handle::StatsHandle;
use crate::http::fingerprint::to_hex;
use crate::http::{HeaderValue, Request, Response};
use crate::middleware::downloader::{
    DownloaderMiddleware, ExceptionFlow, RequestFlow, ResponseFlow,
};
use policy::Policy;
use storage::{CachedResponse, Entry, EntryMeta, FilesystemStorage};

/// The meta key marking a request whose cached response is stale (to revalidate).
pub const STALE_KEY: &str = "_httpcache_stale";

/// Caches responses on disk. See the module docs.
pub struct HttpCacheMiddleware {
    policy: Policy,
    storage: Arc<FilesystemStorage>,
    ignore_missing: bool,
    spider: Arc<str>,
    stats: StatsHandle,
}

impl std::fmt::Debug for HttpCacheMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCacheMiddleware")
            .field("policy", &self.policy.kind)
            .field("dir", &self.storage.dir)
            .finish_non_exhaustive()
    }
}

/// Reads `HTTPCACHE_STORAGE`: only the filesystem storage exists.
fn check_storage(name: &str) -> Result<(), ConfigError> {
    let last = name.trim().rsplit('.').next().unwrap_or("");
    match last.to_ascii_lowercase().as_str() {
        "filesystemcachestorage" | "filesystem" => Ok(()),
        _ => Err(ConfigError::InvalidValue {
            key: "HTTPCACHE_STORAGE".into(),
            value: name.into(),
            expected: "FilesystemCacheStorage (the only cache storage)",
        }),
    }
}

impl HttpCacheMiddleware {
    /// Built when `HTTPCACHE_ENABLED` is true; not configured otherwise.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        let s = &crawler.settings;
        if !s.get_bool("HTTPCACHE_ENABLED")? {
            return Ok(None);
        }
        check_storage(&s.get_str("HTTPCACHE_STORAGE"))?;
        let storage = FilesystemStorage {
            dir: storage::resolve_dir(&s.get_str("HTTPCACHE_DIR")),
            expiration: s.get_duration("HTTPCACHE_EXPIRATION_SECS")?,
            gzip: s.get_bool("HTTPCACHE_GZIP")?,
        };
        log::debug!(
            "Using filesystem cache storage in {}",
            storage.dir.display()
        );
        Ok(Some(Box::new(HttpCacheMiddleware {
            policy: Policy::from_settings(s)?,
            storage: Arc::new(storage),
            ignore_missing: s.get_bool("HTTPCACHE_IGNORE_MISSING")?,
            spider: crawler.spider_name.clone(),
            stats: crawler.stats().clone(),
        })))
    }

    fn inc(&self, key: &'static str) {
        self.stats.inc(key);
    }

    fn entry_path(&self, request: &Request) -> PathBuf {
        self.storage
            .entry_path(&self.spider, &to_hex(&request.fingerprint()))
    }

    /// The cached response for `request`, flagged `cached`, if there is one.
    async fn retrieve(&self, request: &Request) -> Option<Response> {
        let path = self.entry_path(request);
        let storage = self.storage.clone();
        let found = actix_rt::task::spawn_blocking(move || {
            let found = storage.retrieve(&path, SystemTime::now());
            (path, found)
        })
        .await;
        let found = match found {
            Ok((_, Ok(found))) => found?,
            Ok((path, Err(e))) => {
                log::warn!("Cannot read HTTP cache entry {}: {e}", path.display());
                return None;
            }
            Err(e) => {
                log::warn!("HTTP cache read did not complete: {e}");
                return None;
            }
        };
        Some(cached_response(request, found))
    }

    /// Stores `response` if the policy allows.
    async fn cache_response(&self, response: &Response, request: &Request) {
        if !self.policy.should_cache_response(response, request) {
            self.inc("httpcache/uncacheable");
            return;
        }
        self.inc("httpcache/store");
        let entry = Entry {
            meta: EntryMeta {
                url: request.url.to_string(),
                method: request.method.to_string(),
                status: response.status,
                response_url: Some(response.url.to_string()),
                timestamp: now_secs(),
            },
            response_headers: storage::headers_to_raw(&response.headers),
            response_body: response.body.to_vec(),
            request_headers: storage::headers_to_raw(&request.headers),
            request_body: request.body.to_vec(),
        };
        let path = self.entry_path(request);
        let storage = self.storage.clone();
        let shown = path.display().to_string();
        match actix_rt::task::spawn_blocking(move || storage.store(&path, &entry)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::error!("Cannot write HTTP cache entry {shown}: {e}"),
            Err(e) => log::error!("HTTP cache write of {shown} did not complete: {e}"),
        }
    }
}

/// A response rebuilt from a cache entry, for `request`.
fn cached_response(request: &Request, found: CachedResponse) -> Response {
    let mut response = Response::new(request.clone(), found.meta.status, found.body.into());
    if let Some(url) = found
        .meta
        .response_url
        .as_deref()
        .and_then(|u| Url::parse(u).ok())
    {
        response.url = url;
    }
    response.headers = storage::raw_to_headers(&found.headers);
    response.flags.push("cached".into());
    response
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The errors a stale cached response may stand in for (Scrapy's
/// `HttpCacheMiddleware.DOWNLOAD_EXCEPTIONS`: network failures).
fn is_download_exception(error: &DownloadError) -> bool {
    matches!(
        error,
        DownloadError::Timeout(_)
            | DownloadError::DnsLookup(_)
            | DownloadError::ConnectionRefused(_)
            | DownloadError::ConnectionLost(_)
            | DownloadError::Other(_)
    )
}

#[async_trait::async_trait(?Send)]
impl DownloaderMiddleware for HttpCacheMiddleware {
    async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
        request.meta.remove(STALE_KEY);
        if request.meta_bool("dont_cache") || !self.policy.should_cache_request(request) {
            return Ok(RequestFlow::Continue);
        }
        let Some(cached) = self.retrieve(request).await else {
            self.inc("httpcache/miss");
            if self.ignore_missing {
                self.inc("httpcache/ignore");
                return Err(DownloadError::Ignored(format!(
                    "Ignored request not in cache: <{} {}>",
                    request.method, request.url
                )));
            }
            return Ok(RequestFlow::Continue);
        };
        if self
            .policy
            .is_cached_response_fresh(&cached, request, now_secs())
        {
            self.inc("httpcache/hit");
            return Ok(RequestFlow::Respond(cached));
        }
        // Stale: download (with the validators the policy added), then decide in
        // process_response.
        request.meta.insert(STALE_KEY.into(), true.into());
        Ok(RequestFlow::Continue)
    }

    async fn process_response(
        &self,
        request: &Request,
        response: Response,
    ) -> Result<ResponseFlow, DownloadError> {
        if request.meta_bool("dont_cache")
            || response.flags.iter().any(|f| f == "cached")
            || !self.policy.should_cache_request(request)
        {
            return Ok(ResponseFlow::Continue(response));
        }
        let mut response = response;
        // RFC 2616 requires origin servers to send Date.
        if !response.headers.contains_key("date") {
            let date = awc::http::header::HttpDate::from(SystemTime::now()).to_string();
            if let Ok(v) = HeaderValue::from_str(&date) {
                response.headers.insert(awc::http::header::DATE, v);
            }
        }
        let cached = if request.meta_bool(STALE_KEY) {
            self.retrieve(request).await
        } else {
            None
        };
        let Some(cached) = cached else {
            self.inc("httpcache/firsthand");
            self.cache_response(&response, request).await;
            return Ok(ResponseFlow::Continue(response));
        };
        if self
            .policy
            .is_cached_response_valid(&cached, &response, request)
        {
            self.inc("httpcache/revalidate");
            return Ok(ResponseFlow::Continue(cached));
        }
        self.inc("httpcache/invalidate");
        self.cache_response(&response, request).await;
        Ok(ResponseFlow::Continue(response))
    }

    async fn process_exception(&self, request: &Request, error: &DownloadError) -> ExceptionFlow {
        if !request.meta_bool(STALE_KEY) || !is_download_exception(error) {
            return ExceptionFlow::Continue;
        }
        match self.retrieve(request).await {
            Some(cached) => {
                self.inc("httpcache/errorrecovery");
                ExceptionFlow::Respond(cached)
            }
            None => ExceptionFlow::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the filesystem storage is accepted, under any of its names.
    #[test]
    fn storage_names() {
        for ok in [
            "scrapy.extensions.httpcache.FilesystemCacheStorage",
            "FilesystemCacheStorage",
            "filesystem",
        ] {
            assert!(check_storage(ok).is_ok(), "{ok}");
        }
        let err = check_storage("scrapy.extensions.httpcache.DbmCacheStorage")
            .unwrap_err()
            .to_string();
        assert!(err.contains("HTTPCACHE_STORAGE"), "{err}");
    }

    /// A cached response keeps status, URL, headers and body, and is flagged.
    #[test]
    fn rebuilt_response() {
        let request = Request::get("http://h/a").unwrap();
        let r = cached_response(
            &request,
            CachedResponse {
                meta: EntryMeta {
                    url: "http://h/a".into(),
                    method: "GET".into(),
                    status: 203,
                    response_url: Some("http://h/b".into()),
                    timestamp: 0.0,
                },
                headers: b"Content-Type: text/plain".to_vec(),
                body: b"hi".to_vec(),
            },
        );
        assert_eq!(r.status, 203);
        assert_eq!(r.url.as_str(), "http://h/b");
        assert_eq!(r.content_type(), Some("text/plain"));
        assert_eq!(&r.body[..], b"hi");
        assert_eq!(r.flags, vec!["cached"]);
        assert_eq!(r.request.url.as_str(), "http://h/a");
    }
}

//! RetryMiddleware (order 550): retries requests that failed for reasons that are
//! probably temporary — a response with one of `RETRY_HTTP_CODES`, or a network error —
//! as Scrapy's `scrapy.downloadermiddlewares.retry.RetryMiddleware` (and its
//! `get_retry_request`) does.
//!
//! A retry is a copy of the request (headers, meta, callbacks and all) with meta
//! `retry_times` one higher, `dont_filter` set and its priority changed by
//! `RETRY_PRIORITY_ADJUST`; it goes back to the scheduler. Network errors retried:
//! `ConnectionRefusedError`, `ConnectionLost`, `TimeoutError`, `DNSLookupError` and
//! other client errors (`DownloadError`); never `NotSupported`, `MaxSizeExceeded`,
//! `IgnoreRequest` or a cancellation. Once a request has been retried its maximum number
//! of times, a response passes on unchanged (the HttpError spider middleware then
//! decides) and an error goes on to the errback.
//!
//! Settings: `RETRY_ENABLED` (true; false: not configured), `RETRY_TIMES` (2),
//! `RETRY_HTTP_CODES` (500, 502, 503, 504, 522, 524, 408, 429), `RETRY_PRIORITY_ADJUST`
//! (-1).
//!
//! Meta keys: `dont_retry` (no retries), `max_retry_times` (overrides `RETRY_TIMES`),
//! `priority_adjust` (overrides `RETRY_PRIORITY_ADJUST`), `retry_times` (how often this
//! request was retried so far; written on each retry).
//!
//! Stats: `retry/count`, `retry/reason_count/<reason>` per retry, `retry/max_reached`
//! when giving up. The reason of an HTTP retry is Scrapy's `response_status_message`
//! (`503 Service Unavailable`, `429 Unknown Status` — Twisted's reason phrases); of a
//! network error, its [`DownloadError::kind`] (`TimeoutError`, ...).
//!
//! Logs: `Retrying <GET url> (failed N times): reason` at debug, `Gave up retrying <GET
//! url> (failed N times): reason` at error.

use std::collections::HashSet;

use serde_json::Value;

use crate::error::{ConfigError, DownloadError};
use crate::extension::CrawlerHandle;
use crate::handle::StatsHandle;
use crate::http::{Request, Response};
use crate::middleware::downloader::{DownloaderMiddleware, ExceptionFlow, ResponseFlow};
use crate::middleware::redirect::clamp_priority;
use crate::settings::Settings;

/// Retries failed requests.
#[derive(Debug)]
pub struct RetryMiddleware {
    max_retry_times: i64,
    http_codes: HashSet<u16>,
    priority_adjust: i64,
    stats: StatsHandle,
}

/// The retry settings, read once.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Config {
    max_retry_times: i64,
    http_codes: HashSet<u16>,
    priority_adjust: i64,
}

/// Reads `RETRY_TIMES`, `RETRY_HTTP_CODES` and `RETRY_PRIORITY_ADJUST`.
fn config(settings: &Settings) -> Result<Config, ConfigError> {
    let mut http_codes = HashSet::new();
    for code in settings.get_list("RETRY_HTTP_CODES")? {
        let parsed = code
            .trim()
            .parse::<u16>()
            .map_err(|_| ConfigError::InvalidValue {
                key: "RETRY_HTTP_CODES".into(),
                value: code.clone(),
                expected: "a list of HTTP status codes",
            })?;
        http_codes.insert(parsed);
    }
    Ok(Config {
        max_retry_times: settings.get_i64("RETRY_TIMES")?,
        http_codes,
        priority_adjust: settings.get_i64("RETRY_PRIORITY_ADJUST")?,
    })
}

impl RetryMiddleware {
    /// `None` when `RETRY_ENABLED` is off.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        if !crawler.settings.get_bool("RETRY_ENABLED")? {
            return Ok(None);
        }
        let c = config(&crawler.settings)?;
        Ok(Some(Box::new(RetryMiddleware {
            max_retry_times: c.max_retry_times,
            http_codes: c.http_codes,
            priority_adjust: c.priority_adjust,
            stats: crawler.stats().clone(),
        })))
    }

    /// Scrapy's `_retry` + `get_retry_request`: the retry request, or `None` once
    /// retries are exhausted. `log_reason` is what the log shows, `stats_reason` what
    /// `retry/reason_count/` counts.
    fn retry(&self, request: &Request, log_reason: &str, stats_reason: &str) -> Option<Request> {
        let max = meta_i64(request, "max_retry_times").unwrap_or(self.max_retry_times);
        let adjust = meta_i64(request, "priority_adjust").unwrap_or(self.priority_adjust);
        match retry_request(request, max, adjust) {
            Ok(new) => {
                log::debug!(
                    "Retrying <{} {}> (failed {} times): {log_reason}",
                    request.method,
                    request.url,
                    retry_times(&new)
                );
                self.stats.inc("retry/count");
                self.stats.inc(format!("retry/reason_count/{stats_reason}"));
                Some(new)
            }
            Err(failed) => {
                self.stats.inc("retry/max_reached");
                log::error!(
                    "Gave up retrying <{} {}> (failed {failed} times): {log_reason}",
                    request.method,
                    request.url
                );
                None
            }
        }
    }
}

/// A meta integer, if set to a number.
fn meta_i64(request: &Request, key: &str) -> Option<i64> {
    request.meta.get(key).and_then(Value::as_i64)
}

/// The `retry_times` a request carries.
fn retry_times(request: &Request) -> i64 {
    meta_i64(request, "retry_times").unwrap_or(0)
}

/// Scrapy's `get_retry_request` without logging and stats: the copy to retry, or
/// `Err(times failed)` when `max_retry_times` retries were made already.
pub fn retry_request(
    request: &Request,
    max_retry_times: i64,
    priority_adjust: i64,
) -> Result<Request, i64> {
    let times = retry_times(request).saturating_add(1);
    if times > max_retry_times {
        return Err(times);
    }
    let mut new = request.clone();
    new.meta.insert("retry_times".into(), times.into());
    new.dont_filter = true;
    new.priority = clamp_priority(i64::from(request.priority) + priority_adjust);
    Ok(new)
}

/// Whether a download error is worth retrying (Scrapy's `RETRY_EXCEPTIONS`: timeouts,
/// DNS failures, refused or lost connections and other client errors).
pub fn is_retryable(error: &DownloadError) -> bool {
    match error {
        DownloadError::ConnectionRefused(_)
        | DownloadError::ConnectionLost(_)
        | DownloadError::Timeout(_)
        | DownloadError::DnsLookup(_)
        | DownloadError::TlsHandshake { .. }
        | DownloadError::Proxy { .. }
        | DownloadError::DataLoss { .. }
        | DownloadError::Other(_) => true,
        // A bad certificate or bad proxy credentials will not change on a retry.
        DownloadError::TlsCertificate { .. }
        | DownloadError::ProxyAuthRequired { .. }
        | DownloadError::NotSupported(_)
        | DownloadError::MaxSizeExceeded { .. }
        | DownloadError::Ignored(_)
        | DownloadError::Cancelled => false,
    }
}

/// Scrapy's `response_status_message`: the status and Twisted's reason phrase, or
/// `Unknown Status`.
pub fn response_status_message(status: u16) -> String {
    format!(
        "{status} {}",
        twisted_reason(status).unwrap_or("Unknown Status")
    )
}

/// Twisted's `twisted.web.http.RESPONSES`, which Scrapy's status messages use.
fn twisted_reason(status: u16) -> Option<&'static str> {
    Some(match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content.",
        206 => "Partial Content",
        207 => "Multi-Status",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Requested Range not satisfiable",
        417 => "Expectation Failed",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version not supported",
        507 => "Insufficient Storage Space",
        510 => "Not Extended",
        _ => return None,
    })
}

#[async_trait::async_trait(?Send)]
impl DownloaderMiddleware for RetryMiddleware {
    async fn process_response(
        &self,
        request: &Request,
        response: Response,
    ) -> Result<ResponseFlow, DownloadError> {
        if request.meta_bool("dont_retry") || !self.http_codes.contains(&response.status) {
            return Ok(ResponseFlow::Continue(response));
        }
        let reason = response_status_message(response.status);
        Ok(match self.retry(request, &reason, &reason) {
            Some(r) => ResponseFlow::Reschedule(r),
            None => ResponseFlow::Continue(response),
        })
    }

    async fn process_exception(&self, request: &Request, error: &DownloadError) -> ExceptionFlow {
        if !is_retryable(error) || request.meta_bool("dont_retry") {
            return ExceptionFlow::Continue;
        }
        match self.retry(request, &error.to_string(), error.kind()) {
            Some(r) => ExceptionFlow::Reschedule(r),
            None => ExceptionFlow::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Status messages are Scrapy's, Twisted's phrases included.
    #[test]
    fn status_messages() {
        assert_eq!(response_status_message(503), "503 Service Unavailable");
        assert_eq!(response_status_message(504), "504 Gateway Time-out");
        assert_eq!(response_status_message(408), "408 Request Time-out");
        assert_eq!(response_status_message(429), "429 Unknown Status");
        assert_eq!(response_status_message(522), "522 Unknown Status");
    }

    /// Each retry counts up `retry_times`, sets `dont_filter` and adjusts priority, until
    /// the maximum.
    #[test]
    fn retries_until_max() {
        let r0 = Request::get("http://a.test/").unwrap().priority(3);
        let r1 = retry_request(&r0, 2, -1).unwrap();
        assert_eq!(r1.meta["retry_times"], 1);
        assert!(r1.dont_filter);
        assert_eq!(r1.priority, 2);
        let r2 = retry_request(&r1, 2, -1).unwrap();
        assert_eq!(r2.meta["retry_times"], 2);
        assert_eq!(r2.priority, 1);
        assert_eq!(retry_request(&r2, 2, -1).unwrap_err(), 3);
        assert_eq!(retry_request(&r0, 0, -1).unwrap_err(), 1);
    }

    /// Only transient network errors are retried.
    #[test]
    fn retryable_errors() {
        assert!(is_retryable(&DownloadError::Timeout(Duration::from_secs(
            1
        ))));
        assert!(is_retryable(&DownloadError::ConnectionRefused("x".into())));
        assert!(is_retryable(&DownloadError::ConnectionLost("x".into())));
        assert!(is_retryable(&DownloadError::DnsLookup("x".into())));
        assert!(is_retryable(&DownloadError::Other("x".into())));
        assert!(!is_retryable(&DownloadError::NotSupported("ftp".into())));
        assert!(!is_retryable(&DownloadError::Ignored("x".into())));
        assert!(!is_retryable(&DownloadError::Cancelled));
        assert!(!is_retryable(&DownloadError::MaxSizeExceeded {
            size: 2,
            max: 1
        }));
    }

    /// The settings parse, and a bad code names the setting.
    #[test]
    fn settings() {
        let c = config(&Settings::new()).unwrap();
        assert_eq!(c.max_retry_times, 2);
        assert_eq!(c.priority_adjust, -1);
        for code in [500, 502, 503, 504, 522, 524, 408, 429] {
            assert!(c.http_codes.contains(&code));
        }
        let s = Settings::new().with("RETRY_HTTP_CODES", "503, oops");
        assert!(config(&s)
            .unwrap_err()
            .to_string()
            .contains("RETRY_HTTP_CODES"));
    }
}

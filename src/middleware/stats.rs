//! DownloaderStats: Scrapy's `scrapy.downloadermiddlewares.stats.DownloaderStats`
//! (order 850). It counts every request that reaches it, every response that comes back
//! through it and every download failure.
//!
//! Settings: `DOWNLOADER_STATS` (default `true`; `false` disables the middleware).
//!
//! Meta keys: none.
//!
//! Stats keys:
//! - `downloader/request_count`, `downloader/request_method_count/<METHOD>`;
//! - `downloader/request_bytes`: the length of the request's HTTP/1.1 representation as
//!   Scrapy's `request_httprepr` writes it (request line with the path, `Host` with the
//!   host name, the headers set when the request passed order 850, a blank line, the
//!   body) — see [`request_httprepr_len`];
//! - `downloader/response_count`, `downloader/response_status_count/<STATUS>`;
//! - `downloader/response_protocol_count/<PROTOCOL>`, with the response's protocol as
//!   Scrapy names it (`HTTP/1.1`, `h2`), when the downloader recorded one;
//! - `downloader/response_bytes`: body + headers + status line, Scrapy's formula (see
//!   [`response_bytes`]). The response is counted as it came off the network: at order
//!   850 it is still compressed (HttpCompression is at 590);
//! - `downloader/exception_count`, `downloader/exception_type_count/<kind>` with
//!   `kind` = [`DownloadError::kind`] (`TimeoutError`, `IgnoreRequest`, ...). A failure
//!   raised in `process_request` by a middleware nearer the engine (robots.txt's
//!   `IgnoreRequest`) is counted too, as in Scrapy. Failures raised by a later
//!   `process_response` never pass through `process_exception` (Scrapy's chain works
//!   the same way); HttpCompression counts its own decoding failures under these keys.

use crate::error::{ConfigError, DownloadError};
use crate::extension::CrawlerHandle;
use crate::handle::StatsHandle;
use crate::http::{HeaderMap, Request, Response};
use crate::middleware::downloader::{
    DownloaderMiddleware, ExceptionFlow, RequestFlow, ResponseFlow,
};

/// Counts requests, responses, bytes and failures in the stats.
#[derive(Debug)]
pub struct DownloaderStats {
    stats: StatsHandle,
}

impl DownloaderStats {
    /// `None` when `DOWNLOADER_STATS` is off.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        if !crawler.settings.get_bool("DOWNLOADER_STATS")? {
            return Ok(None);
        }
        Ok(Some(Box::new(DownloaderStats {
            stats: crawler.stats().clone(),
        })))
    }

    fn inc(&self, key: impl Into<crate::stats::Key>, by: usize) {
        self.stats
            .inc_by(key, i64::try_from(by).unwrap_or(i64::MAX));
    }
}

/// Sum over header values of `name: value`, joined by CRLF — the length of Scrapy's
/// `Headers.to_string()`. 0 for no headers.
fn headers_raw_len(headers: &HeaderMap) -> usize {
    let values = headers.len();
    let sum: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len())
        .sum();
    sum + 2 * values.saturating_sub(1)
}

/// The length of Scrapy's `request_httprepr(request)`:
///
/// ```text
/// METHOD /path?query HTTP/1.1\r\n
/// Host: hostname\r\n
/// Name: value\r\n ... (only when there are headers)
/// \r\n
/// body
/// ```
pub fn request_httprepr_len(request: &Request) -> usize {
    let url = &request.url;
    let path = if url.path().is_empty() {
        "/"
    } else {
        url.path()
    };
    let query = url.query().map_or(0, |q| q.len() + 1);
    let host = url
        .host_str()
        .map_or(0, |h| h.trim_matches(|c| c == '[' || c == ']').len());
    let mut n = request.method.as_str().len() + 1 + path.len() + query + " HTTP/1.1\r\n".len();
    n += "Host: ".len() + host + 2;
    if !request.headers.is_empty() {
        n += headers_raw_len(&request.headers) + 2;
    }
    n + 2 + request.body.len()
}

/// Scrapy's `downloader/response_bytes` for one response: `len(body)` +
/// `get_header_size(headers)` + `get_status_size(status)` + 4, where the header size is
/// `len(name) + 2 + len(value)` per value plus 2 per distinct header name but one
/// (clamped at 0 for no headers), and the status size is `len(reason phrase) + 15`.
pub fn response_bytes(response: &Response) -> usize {
    let values: usize = response
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len())
        .sum();
    let headers = (values + 2 * response.headers.len_keys()).saturating_sub(2);
    let phrase = awc::http::StatusCode::from_u16(response.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    response.body.len() + headers + phrase.len() + 15 + 4
}

#[async_trait::async_trait(?Send)]
impl DownloaderMiddleware for DownloaderStats {
    async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
        self.inc("downloader/request_count", 1);
        self.inc(
            format!("downloader/request_method_count/{}", request.method),
            1,
        );
        self.inc("downloader/request_bytes", request_httprepr_len(request));
        Ok(RequestFlow::Continue)
    }

    async fn process_response(
        &self,
        _request: &Request,
        response: Response,
    ) -> Result<ResponseFlow, DownloadError> {
        self.inc("downloader/response_count", 1);
        self.inc(
            format!("downloader/response_status_count/{}", response.status),
            1,
        );
        if let Some(protocol) = &response.protocol {
            self.inc(format!("downloader/response_protocol_count/{protocol}"), 1);
        }
        self.inc("downloader/response_bytes", response_bytes(&response));
        Ok(ResponseFlow::Continue(response))
    }

    async fn process_exception(&self, _request: &Request, error: &DownloadError) -> ExceptionFlow {
        self.inc("downloader/exception_count", 1);
        self.inc(
            format!("downloader/exception_type_count/{}", error.kind()),
            1,
        );
        ExceptionFlow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    /// The request size is Scrapy's `len(request_httprepr(request))`.
    #[test]
    fn request_size_matches_scrapy() {
        // b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\n\r\n" = 42 bytes
        let r = Request::get("http://example.com:8080/a?b=1").unwrap();
        assert_eq!(request_httprepr_len(&r), 42);
        // + b"Accept: x\r\nUser-Agent: yy\r\n" and a 3-byte body
        let mut r = r
            .header("Accept", "x")
            .header("User-Agent", "yy")
            .body("abc");
        assert_eq!(
            request_httprepr_len(&r),
            42 + "Accept: x\r\nUser-Agent: yy\r\n".len() + 3
        );
        r.method = Method::POST;
        assert_eq!(request_httprepr_len(&r), 43 + 27 + 3);
        // The path of a bare host is "/".
        let r = Request::get("http://example.com").unwrap();
        assert_eq!(
            request_httprepr_len(&r),
            "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n".len()
        );
    }

    /// The response size is Scrapy's body + header size + status size + 4.
    #[test]
    fn response_size_matches_scrapy() {
        let req = Request::get("http://example.com/").unwrap();
        let mut resp = Response::new(req, 200, "hello".into());
        // No headers: 5 + 0 + len("OK") + 15 + 4.
        assert_eq!(response_bytes(&resp), 5 + 2 + 15 + 4);
        resp.headers.insert(
            awc::http::header::CONTENT_TYPE,
            "text/html".parse().unwrap(),
        );
        resp.headers
            .append(awc::http::header::SET_COOKIE, "a=1".parse().unwrap());
        resp.headers
            .append(awc::http::header::SET_COOKIE, "b=2".parse().unwrap());
        // content-type: 12+2+9; set-cookie: 2 × (10+2+3); + 2 × (2 names − 1).
        assert_eq!(response_bytes(&resp), 5 + (23 + 30 + 2) + 2 + 15 + 4);
    }
}

//! HttpErrorMiddleware (order 50): keeps responses whose status is not 2xx away from
//! callbacks, as Scrapy's does. A response passes when its status is 2xx, or listed in
//! meta `handle_httpstatus_list` (which replaces the other lists), or meta
//! `handle_httpstatus_all` is set, or `HTTPERROR_ALLOW_ALL`, or listed in the spider
//! attribute `handle_httpstatus_list`, else in `HTTPERROR_ALLOWED_CODES`. A refused
//! response goes to the request's errback as an `HttpError` failure.
//!
//! Stats: `httperror/response_ignored_count`,
//! `httperror/response_ignored_status_count/<status>` — counted for every refused
//! response, with or without an errback (Scrapy counts only those no errback handled;
//! a 404 that an errback saw is still a page the crawl did not parse).

use std::sync::Arc;

use serde_json::Value;

use crate::error::ConfigError;
use crate::extension::CrawlerHandle;
use crate::http::Response;
use crate::middleware::spider::SpiderMiddleware;
use crate::spider::{FailureKind, Output, SpiderError};

/// The middleware.
#[derive(Debug)]
pub struct HttpErrorMiddleware {
    crawler: CrawlerHandle,
    allowed: Vec<u16>,
    allow_all: bool,
}

fn codes(v: &Value) -> Vec<u16> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_u64())
                .filter_map(|c| u16::try_from(c).ok())
                .collect()
        })
        .unwrap_or_default()
}

impl HttpErrorMiddleware {
    /// Reads `HTTPERROR_ALLOWED_CODES`, `HTTPERROR_ALLOW_ALL` and the spider's
    /// `handle_httpstatus_list` attribute.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn SpiderMiddleware>>, ConfigError> {
        let s = &crawler.settings;
        let allowed = match crawler.spider.attr("handle_httpstatus_list") {
            Some(v) => codes(&v),
            None => s
                .get_list("HTTPERROR_ALLOWED_CODES")?
                .iter()
                .map(|c| {
                    c.trim()
                        .parse::<u16>()
                        .map_err(|_| ConfigError::InvalidValue {
                            key: "HTTPERROR_ALLOWED_CODES".into(),
                            value: c.clone(),
                            expected: "a list of HTTP status codes",
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Some(Box::new(HttpErrorMiddleware {
            crawler: crawler.clone(),
            allowed,
            allow_all: s.get_bool("HTTPERROR_ALLOW_ALL")?,
        })))
    }

    /// Scrapy's decision, as a plain function.
    pub fn allowed(&self, response: &Response) -> bool {
        let status = response.status;
        if (200..300).contains(&status) || response.request.meta_bool("handle_httpstatus_all") {
            return true;
        }
        if let Some(list) = response.request.meta.get("handle_httpstatus_list") {
            return codes(list).contains(&status);
        }
        self.allow_all || self.allowed.contains(&status)
    }
}

#[async_trait::async_trait(?Send)]
impl SpiderMiddleware for HttpErrorMiddleware {
    async fn process_spider_input(&self, response: &Arc<Response>) -> Result<(), FailureKind> {
        if self.allowed(response) {
            return Ok(());
        }
        Err(FailureKind::HttpError(response.clone()))
    }

    /// Scrapy's `HttpErrorMiddleware.process_spider_exception`: an HttpError nobody's
    /// errback handled is logged, counted and ignored here — not when it is raised,
    /// so `httperror/*` counts only responses that really went unhandled.
    async fn process_spider_exception(
        &self,
        response: Option<&Response>,
        error: &SpiderError,
    ) -> Option<Output> {
        let response = response?;
        if error.kind != "HttpError" {
            return None;
        }
        log::info!(
            "Ignoring response <{} {}>: HTTP status code is not handled or not allowed",
            response.status,
            response.url
        );
        self.crawler.stats().inc("httperror/response_ignored_count");
        self.crawler.stats().inc(format!(
            "httperror/response_ignored_status_count/{}",
            response.status
        ));
        Some(Output::new())
    }
}

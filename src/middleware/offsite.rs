//! OffsiteMiddleware, in both chains: drops requests for hosts outside the spider's
//! `allowed_domains` (subdomains included), unless the request has `dont_filter` or
//! meta `allow_offsite`. An empty list allows every host.
//!
//! The spider middleware (order 500) drops offsite requests a callback yields before
//! they are scheduled; the downloader middleware (order 50, Scrapy's
//! `scrapy.downloadermiddlewares.offsite.OffsiteMiddleware` since 2.11.2) refuses every
//! request that reaches the downloader — redirects, meta refreshes, retries, start
//! requests, inline downloads — so a crawler told to stay on some domains is never
//! steered to another host. A refused request fails with `IgnoreRequest` (its errback
//! is called).
//!
//! Stats: `offsite/domains` (distinct hosts filtered), `offsite/filtered` (requests).
//! Logs each new filtered host once: "Filtered offsite request to 'host': <GET url>".

use std::cell::RefCell;
use std::collections::HashSet;

use crate::error::{ConfigError, DownloadError};
use crate::extension::CrawlerHandle;
use crate::http::{Request, Response};
use crate::middleware::downloader::{DownloaderMiddleware, RequestFlow};
use crate::middleware::spider::SpiderMiddleware;
use crate::spider::OutputEntry;

/// The allowed domains and what was filtered so far; shared logic of both middlewares.
#[derive(Debug)]
struct Policy {
    crawler: CrawlerHandle,
    domains: Vec<String>,
    seen: RefCell<HashSet<String>>,
}

impl Policy {
    /// Reads the spider's `allowed_domains`. An entry that is a URL or has a port is
    /// reduced to its host, with a warning (Scrapy warns and ignores it).
    fn from_crawler(crawler: &CrawlerHandle) -> Policy {
        let mut domains = Vec::new();
        for d in crawler.spider.allowed_domains() {
            let raw = d.trim().to_ascii_lowercase();
            let host = if raw.contains("://") {
                url::Url::parse(&raw)
                    .ok()
                    .and_then(|u| u.host_str().map(String::from))
            } else {
                Some(raw.split(':').next().unwrap_or("").to_string())
            };
            match host {
                Some(h) if !h.is_empty() => {
                    if h != raw {
                        log::warn!("allowed_domains accepts only domains, not URLs or ports; using {h:?} for {d:?}");
                    }
                    domains.push(h.trim_start_matches('.').to_string());
                }
                _ => log::warn!("ignoring invalid allowed_domains entry {d:?}"),
            }
        }
        Policy {
            crawler: crawler.clone(),
            domains,
            seen: RefCell::new(HashSet::new()),
        }
    }

    fn should_follow(&self, request: &Request) -> bool {
        if self.domains.is_empty() || request.dont_filter || request.meta_bool("allow_offsite") {
            return true;
        }
        let host = request.url.host_str().unwrap_or("").to_ascii_lowercase();
        url_is_from_any_domain(&host, &self.domains)
    }

    /// `Some(host)` when `request` must be filtered (logged and counted here).
    fn filter(&self, request: &Request) -> Option<String> {
        if self.should_follow(request) {
            return None;
        }
        let host = request.url.host_str().unwrap_or("").to_ascii_lowercase();
        if self.seen.borrow_mut().insert(host.clone()) {
            log::debug!(
                "Filtered offsite request to '{host}': <{} {}>",
                request.method,
                request.url
            );
            self.crawler.stats().inc("offsite/domains");
        }
        self.crawler.stats().inc("offsite/filtered");
        Some(host)
    }
}

/// The spider middleware: offsite requests a callback yields are dropped.
#[derive(Debug)]
pub struct OffsiteMiddleware {
    policy: Policy,
}

impl OffsiteMiddleware {
    /// Always configured (an empty `allowed_domains` allows everything).
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn SpiderMiddleware>>, ConfigError> {
        Ok(Some(Box::new(OffsiteMiddleware {
            policy: Policy::from_crawler(crawler),
        })))
    }
}

/// The downloader middleware: an offsite request that reaches the downloader by any
/// path fails with `IgnoreRequest` and is never sent.
#[derive(Debug)]
pub struct OffsiteDownloaderMiddleware {
    policy: Policy,
}

impl OffsiteDownloaderMiddleware {
    /// Always configured (an empty `allowed_domains` allows everything).
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        Ok(Some(Box::new(OffsiteDownloaderMiddleware {
            policy: Policy::from_crawler(crawler),
        })))
    }
}

#[async_trait::async_trait(?Send)]
impl DownloaderMiddleware for OffsiteDownloaderMiddleware {
    async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
        match self.policy.filter(request) {
            None => Ok(RequestFlow::Continue),
            Some(host) => Err(DownloadError::Ignored(format!(
                "Filtered offsite request to '{host}'"
            ))),
        }
    }
}

/// Whether `host` is one of `domains` or a subdomain of one (Scrapy's
/// `url_is_from_any_domain`).
pub fn url_is_from_any_domain(host: &str, domains: &[String]) -> bool {
    let host = host.trim_end_matches('.');
    domains.iter().any(|d| {
        host == d
            || (host.len() > d.len()
                && host.ends_with(d.as_str())
                && host.as_bytes()[host.len() - d.len() - 1] == b'.')
    })
}

#[async_trait::async_trait(?Send)]
impl SpiderMiddleware for OffsiteMiddleware {
    async fn process_spider_output(
        &self,
        _response: Option<&Response>,
        _parent: &Request,
        output: Vec<OutputEntry>,
    ) -> Vec<OutputEntry> {
        output
            .into_iter()
            .filter(|entry| match entry {
                OutputEntry::Request(r) => self.policy.filter(r).is_none(),
                OutputEntry::Item(_) => true,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Subdomains match, look-alike suffixes do not.
    #[test]
    fn domain_matching() {
        let d = vec!["example.com".to_string()];
        assert!(url_is_from_any_domain("example.com", &d));
        assert!(url_is_from_any_domain("www.example.com", &d));
        assert!(!url_is_from_any_domain("badexample.com", &d));
        assert!(!url_is_from_any_domain("example.com.evil", &d));
    }
}

//! OffsiteMiddleware (order 500): drops requests for hosts outside the spider's
//! `allowed_domains` (subdomains included), unless the request has `dont_filter` or
//! meta `allow_offsite`. An empty list allows every host.
//!
//! Stats: `offsite/domains` (distinct hosts filtered), `offsite/filtered` (requests).
//! Logs each new filtered host once: "Filtered offsite request to 'host': <GET url>".

use std::cell::RefCell;
use std::collections::HashSet;

use crate::error::ConfigError;
use crate::extension::CrawlerHandle;
use crate::http::{Request, Response};
use crate::middleware::spider::SpiderMiddleware;
use crate::spider::OutputEntry;

/// The middleware.
#[derive(Debug)]
pub struct OffsiteMiddleware {
    crawler: CrawlerHandle,
    domains: Vec<String>,
    seen: RefCell<HashSet<String>>,
}

impl OffsiteMiddleware {
    /// Reads the spider's `allowed_domains`. An entry that is a URL or has a port is
    /// reduced to its host, with a warning (Scrapy warns and ignores it).
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn SpiderMiddleware>>, ConfigError> {
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
        Ok(Some(Box::new(OffsiteMiddleware {
            crawler: crawler.clone(),
            domains,
            seen: RefCell::new(HashSet::new()),
        })))
    }

    fn should_follow(&self, request: &Request) -> bool {
        if self.domains.is_empty() || request.dont_filter || request.meta_bool("allow_offsite") {
            return true;
        }
        let host = request.url.host_str().unwrap_or("").to_ascii_lowercase();
        url_is_from_any_domain(&host, &self.domains)
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
            .filter(|entry| {
                let OutputEntry::Request(r) = entry else {
                    return true;
                };
                if self.should_follow(r) {
                    return true;
                }
                let host = r.url.host_str().unwrap_or("").to_ascii_lowercase();
                if self.seen.borrow_mut().insert(host.clone()) {
                    log::debug!(
                        "Filtered offsite request to '{host}': <{} {}>",
                        r.method,
                        r.url
                    );
                    self.crawler.stats().inc("offsite/domains");
                }
                self.crawler.stats().inc("offsite/filtered");
                false
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

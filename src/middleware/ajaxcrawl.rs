//! AjaxCrawlMiddleware (order 560): fetches the "AJAX crawlable" variant of pages that
//! declare one, as Scrapy's `scrapy.downloadermiddlewares.ajaxcrawl.AjaxCrawlMiddleware`
//! does (Google's retired AJAX crawling scheme).
//!
//! A `200` HTML response to a `GET` whose first `AJAXCRAWL_MAXSIZE` characters hold
//! `<meta name="fragment" content="!">` (outside comments, `<script>` and `<noscript>`;
//! matched as Scrapy matches it, case-sensitively) is dropped and the request is
//! rescheduled for `url?_escaped_fragment_=` (`&_escaped_fragment_=` when the URL has a
//! query; Scrapy's `escape_ajax(url + "#!")`) with meta `ajax_crawlable` set, so the
//! variant's own response is never rewritten again.
//!
//! Settings: `AJAXCRAWL_ENABLED` (false; false: not configured), `AJAXCRAWL_MAXSIZE`
//! (32768 when unset). Meta keys: `ajax_crawlable` (written; a request carrying it is
//! left alone). Stats: none.

use url::Url;

use crate::error::{ConfigError, DownloadError};
use crate::extension::CrawlerHandle;
use crate::http::{Method, Request, Response};
use crate::middleware::downloader::{DownloaderMiddleware, ResponseFlow};
use crate::middleware::metarefresh::{
    is_html, prefix_chars, remove_comments, remove_tags_with_content, replace_entities,
};

/// Scrapy's default `AJAXCRAWL_MAXSIZE`.
const DEFAULT_MAXSIZE: usize = 32768;

/// Reschedules AJAX-crawlable pages as their `_escaped_fragment_` variant.
#[derive(Debug)]
pub struct AjaxCrawlMiddleware {
    lookup_chars: usize,
}

impl AjaxCrawlMiddleware {
    /// `None` unless `AJAXCRAWL_ENABLED`.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        let s = &crawler.settings;
        if !s.get_bool("AJAXCRAWL_ENABLED")? {
            return Ok(None);
        }
        let lookup_chars = match s.get("AJAXCRAWL_MAXSIZE") {
            None => DEFAULT_MAXSIZE,
            Some(_) => s.get_usize("AJAXCRAWL_MAXSIZE")?,
        };
        Ok(Some(Box::new(AjaxCrawlMiddleware { lookup_chars })))
    }
}

#[async_trait::async_trait(?Send)]
impl DownloaderMiddleware for AjaxCrawlMiddleware {
    async fn process_response(
        &self,
        request: &Request,
        response: Response,
    ) -> Result<ResponseFlow, DownloadError> {
        if response.status != 200
            || request.method != Method::GET
            || request.meta.contains_key("ajax_crawlable")
            || !is_html(&response)
        {
            return Ok(ResponseFlow::Continue(response));
        }
        let text = response.text();
        if !has_ajax_crawlable_meta(prefix_chars(&text, self.lookup_chars)) {
            return Ok(ResponseFlow::Continue(response));
        }
        let mut ajax = request.clone();
        ajax.url = escaped_fragment_url(&request.url);
        ajax.meta.insert("ajax_crawlable".into(), true.into());
        log::debug!(
            "Downloading AJAX crawlable <{} {}> instead of <{} {}>",
            ajax.method,
            ajax.url,
            request.method,
            request.url
        );
        Ok(ResponseFlow::Reschedule(ajax))
    }
}

/// Scrapy's `_has_ajaxcrawlable_meta`: `<meta\s+name=["']fragment["']\s+content=["']!["']/?>`
/// after dropping scripts, entities and comments.
pub fn has_ajax_crawlable_meta(text: &str) -> bool {
    if !text.contains("fragment") || !text.contains("content") {
        return false;
    }
    let tags = ["script".to_string(), "noscript".to_string()];
    let text = remove_tags_with_content(text, &tags);
    let text = replace_entities(&text);
    let text = remove_comments(&text);
    text.match_indices("<meta")
        .any(|(at, _)| fragment_meta_at(&text[at + 5..]))
}

/// The rest of the pattern after `<meta`.
fn fragment_meta_at(s: &str) -> bool {
    let quote = |c: char| c == '"' || c == '\'';
    let spaces = |s: &str| s.len() - s.trim_start().len();
    let n = spaces(s);
    if n == 0 {
        return false;
    }
    let Some(s) = s[n..].strip_prefix("name=") else {
        return false;
    };
    let Some(s) = s
        .strip_prefix(quote)
        .and_then(|s| s.strip_prefix("fragment"))
    else {
        return false;
    };
    let Some(s) = s.strip_prefix(quote) else {
        return false;
    };
    let n = spaces(s);
    if n == 0 {
        return false;
    }
    let Some(s) = s[n..]
        .strip_prefix("content=")
        .and_then(|s| s.strip_prefix(quote))
        .and_then(|s| s.strip_prefix('!'))
        .and_then(|s| s.strip_prefix(quote))
    else {
        return false;
    };
    s.starts_with('>') || s.starts_with("/>")
}

/// Scrapy's `escape_ajax(url + "#!")`: `_escaped_fragment_=` added to (or replacing it
/// in) the query, the query re-encoded as `urlencode` does. A URL that already has a
/// fragment keeps it, with `#!` appended, as Scrapy's does.
pub fn escaped_fragment_url(url: &Url) -> Url {
    let mut out = url.clone();
    if let Some(frag) = url.fragment() {
        out.set_fragment(Some(&format!("{frag}#!")));
        return out;
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut replaced = false;
    for (k, v) in url.query_pairs() {
        if k == "_escaped_fragment_" {
            if !replaced {
                pairs.push((k.into_owned(), String::new()));
                replaced = true;
            }
        } else {
            pairs.push((k.into_owned(), v.into_owned()));
        }
    }
    if !replaced {
        pairs.push(("_escaped_fragment_".into(), String::new()));
    }
    out.query_pairs_mut().clear().extend_pairs(pairs);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scrapy's doctests for `_has_ajaxcrawlable_meta`.
    #[test]
    fn detects_the_meta_tag() {
        assert!(has_ajax_crawlable_meta(
            r#"<html><head><meta name="fragment"  content="!"/></head><body></body></html>"#
        ));
        assert!(has_ajax_crawlable_meta(
            "<html><head><meta name='fragment' content='!'></head></html>"
        ));
        assert!(!has_ajax_crawlable_meta(
            r#"<html><head><!--<meta name="fragment"  content="!"/>--></head><body></body></html>"#
        ));
        assert!(!has_ajax_crawlable_meta("<html></html>"));
        assert!(!has_ajax_crawlable_meta(
            r#"<script><meta name="fragment" content="!"></script>"#
        ));
    }

    /// Scrapy's doctests for `escape_ajax`, applied to `url + "#!"`.
    #[test]
    fn escaped_urls() {
        let esc = |u: &str| escaped_fragment_url(&Url::parse(u).unwrap()).to_string();
        assert_eq!(
            esc("http://www.example.com/ajax.html"),
            "http://www.example.com/ajax.html?_escaped_fragment_="
        );
        assert_eq!(
            esc("http://www.example.com/ajax.html?k1=v1&k2=v2"),
            "http://www.example.com/ajax.html?k1=v1&k2=v2&_escaped_fragment_="
        );
        assert_eq!(
            esc("http://www.example.com/ajax.html?"),
            "http://www.example.com/ajax.html?_escaped_fragment_="
        );
        assert_eq!(
            esc("http://www.example.com/a?_escaped_fragment_=x&b=1"),
            "http://www.example.com/a?_escaped_fragment_=&b=1"
        );
    }
}

//! Downloader and spider middlewares: the traits, the chains that run them, and the
//! built-in stack with Scrapy's names and orders (`DOWNLOADER_MIDDLEWARES_BASE`,
//! `SPIDER_MIDDLEWARES_BASE`). A user middleware is registered by name, like an
//! extension, and enabled with an order in `DOWNLOADER_MIDDLEWARES` / `SPIDER_MIDDLEWARES`.
//! See `docs/middlewares.md` for the table of built-ins, their settings and defaults.

pub mod downloader;
pub mod spider;

pub mod ajaxcrawl;
pub mod cookies;
pub mod defaultheaders;
pub mod depth;
pub mod downloadtimeout;
pub mod httpauth;
pub mod httpcache;
pub mod httpcompression;
pub mod httperror;
pub mod httpproxy;
pub mod metarefresh;
pub mod offsite;
pub mod redirect;
pub mod referer;
pub mod retry;
pub mod robotstxt;
pub mod stats;
pub mod urllength;
pub mod useragent;

use downloader::DownloaderMiddlewareRegistry;
use spider::SpiderMiddlewareRegistry;

/// Every built-in downloader middleware under its Scrapy class name.
pub fn builtin_downloader() -> DownloaderMiddlewareRegistry {
    let mut r = DownloaderMiddlewareRegistry::default();
    r.register(
        "AjaxCrawlMiddleware",
        ajaxcrawl::AjaxCrawlMiddleware::from_crawler,
    );
    r.register(
        "CookiesMiddleware",
        cookies::CookiesMiddleware::from_crawler,
    );
    r.register(
        "DefaultHeadersMiddleware",
        defaultheaders::DefaultHeadersMiddleware::from_crawler,
    );
    r.register(
        "DownloadTimeoutMiddleware",
        downloadtimeout::DownloadTimeoutMiddleware::from_crawler,
    );
    r.register(
        "HttpAuthMiddleware",
        httpauth::HttpAuthMiddleware::from_crawler,
    );
    r.register(
        "HttpCacheMiddleware",
        httpcache::HttpCacheMiddleware::from_crawler,
    );
    r.register(
        "HttpCompressionMiddleware",
        httpcompression::HttpCompressionMiddleware::from_crawler,
    );
    r.register(
        "HttpProxyMiddleware",
        httpproxy::HttpProxyMiddleware::from_crawler,
    );
    r.register(
        "MetaRefreshMiddleware",
        metarefresh::MetaRefreshMiddleware::from_crawler,
    );
    r.register(
        "RedirectMiddleware",
        redirect::RedirectMiddleware::from_crawler,
    );
    r.register("RetryMiddleware", retry::RetryMiddleware::from_crawler);
    r.register(
        "OffsiteMiddleware",
        offsite::OffsiteDownloaderMiddleware::from_crawler,
    );
    r.register(
        "RobotsTxtMiddleware",
        robotstxt::RobotsTxtMiddleware::from_crawler,
    );
    r.register("DownloaderStats", stats::DownloaderStats::from_crawler);
    r.register(
        "UserAgentMiddleware",
        useragent::UserAgentMiddleware::from_crawler,
    );
    r
}

/// Every built-in spider middleware under its Scrapy class name.
pub fn builtin_spider() -> SpiderMiddlewareRegistry {
    let mut r = SpiderMiddlewareRegistry::default();
    r.register("DepthMiddleware", depth::DepthMiddleware::from_crawler);
    r.register(
        "HttpErrorMiddleware",
        httperror::HttpErrorMiddleware::from_crawler,
    );
    r.register(
        "OffsiteMiddleware",
        offsite::OffsiteMiddleware::from_crawler,
    );
    r.register(
        "RefererMiddleware",
        referer::RefererMiddleware::from_crawler,
    );
    r.register(
        "UrlLengthMiddleware",
        urllength::UrlLengthMiddleware::from_crawler,
    );
    r
}

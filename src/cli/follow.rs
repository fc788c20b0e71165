//! The built-in `follow` spider: from `-a start_url=URL` it follows every link within
//! the start URL's domain (or `-a allowed_domains=a,b`), yielding one item per page:
//! `url`, `status`, `title`, `depth`.

use std::sync::OnceLock;

use std::sync::Arc;

use crate::http::{Request, Response};
use crate::selector::Css;
use crate::spider::{
    start_from_iter, CallbackResult, DefaultCallback, Output, Spider, SpiderArgs, SpiderError,
    Start,
};

/// The spider.
#[derive(Debug, Clone)]
pub struct FollowSpider {
    start_url: String,
    allowed: Vec<String>,
}

impl FollowSpider {
    /// Builds it from `-a` arguments: `start_url` (required), `allowed_domains`
    /// (comma-separated; default: the start URL's host).
    pub fn from_args(args: &SpiderArgs) -> Result<Self, String> {
        let start_url = args
            .get("start_url")
            .cloned()
            .ok_or("the follow spider needs -a start_url=URL")?;
        let allowed = match args.get("allowed_domains") {
            Some(list) => list
                .split(',')
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty())
                .collect(),
            None => url::Url::parse(start_url.trim())
                .ok()
                .and_then(|u| u.host_str().map(|h| vec![h.to_string()]))
                .unwrap_or_default(),
        };
        Ok(FollowSpider { start_url, allowed })
    }
}

fn selectors() -> &'static (Css, Css) {
    static S: OnceLock<(Css, Css)> = OnceLock::new();
    S.get_or_init(|| {
        (
            Css::parse("title::text").expect("static selector parses"),
            Css::parse("a::attr(href)").expect("static selector parses"),
        )
    })
}

#[async_trait::async_trait(?Send)]
impl Spider for FollowSpider {
    type Callback = DefaultCallback;

    fn name(&self) -> &str {
        "follow"
    }

    fn allowed_domains(&self) -> Vec<String> {
        self.allowed.clone()
    }

    /// The start request goes through the duplicate filter (unlike Scrapy's default
    /// start requests), so a page linking back to it does not fetch it twice.
    fn start(self: Arc<Self>) -> Start {
        start_from_iter(std::iter::once(
            Request::get(&self.start_url).map_err(SpiderError::from),
        ))
    }

    async fn parse(&self, response: &Response) -> CallbackResult {
        let (title_sel, href_sel) = selectors();
        let html = response.html();
        let mut out = Output::new();
        let title = title_sel.select(&html).get().map(|t| t.trim().to_string());
        out.item(serde_json::json!({
            "url": response.url.as_str(),
            "status": response.status,
            "title": title,
            "depth": response.request.depth(),
        }));
        // `follow` resolves against `<base href>` when the page has one, as browsers
        // and Scrapy's `response.follow` do.
        for href in href_sel.select(&html).getall() {
            match response.follow(&href) {
                Ok(r) if matches!(r.url.scheme(), "http" | "https") => {
                    out.request(r);
                }
                Ok(_) => {}
                Err(e) => log::debug!("skipping link {href:?} on {}: {e}", response.url),
            }
        }
        Ok(out)
    }
}

//! A spider for the bundled demo quotes site (served in-process on 127.0.0.1, so it
//! runs offline): it walks the listing pages through their "Next" links, yields one
//! item per quote, follows each author's "(about)" link once and yields one item per
//! author. It runs through the same CLI as `arachne crawl`, so every flag works:
//!
//! ```sh
//! cargo run --release --example quotes -- -o quotes.jsonl
//! cargo run --release --example quotes -- -O quotes.jsonl -s CONCURRENT_REQUESTS=4 --stats-json stats.json
//! ```

#[path = "support/quotes_site.rs"]
mod quotes_site;

use std::process::ExitCode;

use arachne::cli::{run_from, SpiderRegistry};
use arachne::prelude::*;
use arachne::selector::Selector;

/// The spider: `start_url` comes from `-a start_url=...` (the example fills it in).
struct QuotesSpider {
    start_url: String,
}

#[async_trait(?Send)]
impl Spider for QuotesSpider {
    fn name(&self) -> &str {
        "quotes"
    }

    fn start_urls(&self) -> Vec<String> {
        vec![self.start_url.clone()]
    }

    /// A listing page: quotes, author links, the next page.
    async fn parse(&self, response: &Response) -> CallbackResult {
        let html = response.html();
        let text = Selector::parse("span.text::text")?;
        let author = Selector::parse("small.author::text")?;
        let tags = Selector::parse("div.tags a.tag::text")?;
        let mut out = Output::new();
        for quote in html.css("div.quote")?.nodes() {
            out.item(serde_json::json!({
                "text": text.select_from(quote).get(),
                "author": author.select_from(quote).get(),
                "tags": tags.select_from(quote).getall(),
            }));
        }
        // Author pages are shared by many quotes; the duplicate filter keeps one each.
        for href in html
            .css("div.quote a[href^='/author/']::attr(href)")?
            .getall()
        {
            out.request(response.follow(&href)?.callback("parse_author"));
        }
        if let Some(next) = html.css("li.next a::attr(href)")?.get() {
            out.request(response.follow(&next)?);
        }
        Ok(out)
    }

    async fn callback(&self, name: &str, response: &Response) -> CallbackResult {
        match name {
            "parse" => self.parse(response).await,
            "parse_author" => {
                let html = response.html();
                let name = html
                    .css("h3.author-title::text")?
                    .get()
                    .map(|s| s.trim().to_string());
                Ok(Output::new().with_item(serde_json::json!({
                    "author_name": name,
                    "born": html.css("span.author-born-date::text")?.get(),
                    "url": response.url.as_str(),
                })))
            }
            other => Err(SpiderError::unknown_callback(other)),
        }
    }
}

fn main() -> ExitCode {
    let site = match quotes_site::QuotesSite::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start the demo site: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start_url = site.url("/");
    let mut spiders = SpiderRegistry::new();
    spiders.add("quotes", move |_args| {
        Ok(QuotesSpider {
            start_url: start_url.clone(),
        })
    });

    // `crawl quotes` followed by whatever the user passed (`-o`, `-s`, ...).
    let mut argv: Vec<String> = vec!["quotes".into(), "crawl".into(), "quotes".into()];
    argv.extend(std::env::args().skip(1));
    if !argv
        .iter()
        .any(|a| a == "-L" || a.starts_with("LOG_LEVEL="))
    {
        argv.extend(["-s".into(), "LOG_LEVEL=INFO".into()]);
    }
    let settings = Settings::new().with("CONCURRENT_REQUESTS", 8);
    let code = run_from(argv, spiders, settings);
    println!(
        "the demo site has {} quotes by {} authors",
        quotes_site::QuotesSite::expected_quotes(),
        quotes_site::QuotesSite::expected_authors()
    );
    code
}

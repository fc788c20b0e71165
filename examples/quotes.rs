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

use arachne::cli::run_from;
use arachne::prelude::*;
/// The spider's callbacks: the compiler checks every `match` on them, and a request
/// carrying one still serializes (`"parse"`, `{"author":{"listed_on":"/page/2/"}}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Cb {
    /// A listing page.
    Parse,
    /// An author page, with the listing page it was first linked from.
    Author { listed_on: String },
}

/// One quote; exported with its fields in this order.
#[derive(Serialize)]
struct Quote {
    text: Option<String>,
    author: Option<String>,
    tags: Vec<String>,
}

/// The spider: `start_url` comes from `-a start_url=...` (the example fills it in).
struct QuotesSpider {
    start_url: String,
}

#[async_trait(?Send)]
impl Spider for QuotesSpider {
    type Callback = Cb;

    fn name(&self) -> &str {
        "quotes"
    }

    fn start_urls(&self) -> Vec<String> {
        vec![self.start_url.clone()]
    }

    /// A listing page: quotes, author links, the next page.
    async fn parse(&self, response: &Response) -> CallbackResult {
        let mut out = Output::new();
        // The document is parsed once, on the first `css`; the rest reuse it.
        for quote in response.css("div.quote")?.iter() {
            out.item(Quote {
                text: quote.css("span.text::text")?.get(),
                author: quote.css("small.author::text")?.get(),
                tags: quote.css("div.tags a.tag::text")?.getall(),
            });
        }
        // Author pages are shared by many quotes; the duplicate filter keeps one each.
        let listed_on = response.url.path().to_string();
        for request in response.follow_all_css("div.quote a[href^='/author/']::attr(href)")? {
            out.request(request.callback(Cb::Author {
                listed_on: listed_on.clone(),
            }));
        }
        if let Some(next) = response.css("li.next a::attr(href)")?.get() {
            out.request(response.follow(&next)?);
        }
        Ok(out)
    }

    async fn callback(&self, cb: Cb, response: &Response) -> CallbackResult {
        match cb {
            Cb::Parse => self.parse(response).await,
            Cb::Author { listed_on } => {
                let name = response
                    .css("h3.author-title::text")?
                    .get()
                    .map(|s| s.trim().to_string());
                log::debug!("author {name:?} first listed on {listed_on}");
                Ok(Output::new().with_item(json!({
                    "author_name": name,
                    "born": response.css("span.author-born-date::text")?.get(),
                    "url": response.url.as_str(),
                })))
            }
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

    // `crawl quotes` followed by whatever the user passed (`-o`, `-s`, ...).
    let mut argv: Vec<String> = vec!["quotes".into(), "crawl".into(), "quotes".into()];
    argv.extend(std::env::args().skip(1));
    if !argv
        .iter()
        .any(|a| a == "-L" || a.starts_with("LOG_LEVEL="))
    {
        argv.extend(["-s".into(), "LOG_LEVEL=INFO".into()]);
    }
    let project = Project::new(Settings::new().with("CONCURRENT_REQUESTS", 8)).spider(
        "quotes",
        move |_args| {
            Ok(QuotesSpider {
                start_url: start_url.clone(),
            })
        },
    );
    let code = run_from(argv, project);
    println!(
        "the demo site has {} quotes by {} authors",
        quotes_site::QuotesSite::expected_quotes(),
        quotes_site::QuotesSite::expected_authors()
    );
    code
}

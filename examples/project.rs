//! A project's own binary, the way a Scrapy project is laid out: its spider, an item
//! pipeline stage written against its own item type, an extension, and project
//! settings enabling both — all in one [`Project`], run by `arachne::cli::run`, so
//! every `arachne` command and flag works on it:
//!
//! ```sh
//! cargo run --example project -- list
//! cargo run --example project -- crawl quotes -o quotes.jsonl
//! ```
//!
//! The demo quotes site is started in-process on 127.0.0.1 (offline); `-a
//! start_url=...` points the spider elsewhere.

#[path = "support/quotes_site.rs"]
mod quotes_site;

use std::process::ExitCode;

use actix::{Actor, AsyncContext, Context, Handler};
use arachne::prelude::*;
use arachne::signals::{ItemScraped, SpiderClosed};

/// The project's item: exported with its fields in this order.
#[derive(Debug, Serialize, Deserialize)]
struct Quote {
    text: String,
    author: String,
    #[serde(default)]
    words: usize,
}

struct QuotesSpider {
    start_url: String,
}

#[async_trait(?Send)]
impl Spider for QuotesSpider {
    type Callback = DefaultCallback;

    fn name(&self) -> &str {
        "quotes"
    }

    fn start_urls(&self) -> Vec<String> {
        vec![self.start_url.clone()]
    }

    async fn parse(&self, response: &Response) -> CallbackResult {
        let mut out = Output::new();
        for quote in response.css("div.quote")?.iter() {
            out.item(Quote {
                text: quote.css("span.text::text")?.get().unwrap_or_default(),
                author: quote.css("small.author::text")?.get().unwrap_or_default(),
                words: 0,
            });
        }
        if let Some(next) = response.css("li.next a::attr(href)")?.get() {
            out.request(response.follow(&next)?);
        }
        Ok(out)
    }
}

/// A typed stage: counts the words of each quote; drops empty ones.
struct WordCount;

#[async_trait(?Send)]
impl TypedPipeline for WordCount {
    type Item = Quote;
    async fn process(&self, mut quote: Quote) -> Result<Quote, PipelineError> {
        if quote.text.is_empty() {
            return Err(DropItem::new("empty quote").into());
        }
        quote.words = quote.text.split_whitespace().count();
        Ok(quote)
    }
}

/// An extension: the longest quote seen, in the stats at close.
struct LongestQuote {
    crawler: CrawlerHandle,
    longest: u64,
}

impl Actor for LongestQuote {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.crawler
            .subscribe::<ItemScraped>(ctx.address().recipient());
        self.crawler
            .subscribe::<SpiderClosed>(ctx.address().recipient());
    }
}

impl Handler<ItemScraped> for LongestQuote {
    type Result = ();
    fn handle(&mut self, msg: ItemScraped, _: &mut Context<Self>) {
        let words = msg.item.get("words").and_then(|v| v.as_u64()).unwrap_or(0);
        self.longest = self.longest.max(words);
    }
}

impl Handler<SpiderClosed> for LongestQuote {
    type Result = ();
    fn handle(&mut self, _: SpiderClosed, _: &mut Context<Self>) {
        self.crawler
            .stats()
            .set("longest_quote/words", self.longest);
    }
}

/// The whole project; a test builds this binary and runs `crawl quotes -o ...` on it.
fn project(default_start: String) -> Project {
    let settings = Settings::new()
        .with("BOT_NAME", "quotesbot")
        .with("ITEM_PIPELINES", json!({ "WordCount": 300 }))
        .with("EXTENSIONS", json!({ "LongestQuote": 500 }))
        .with("CONCURRENT_REQUESTS", 8);
    Project::new(settings)
        .spider("quotes", move |args| {
            Ok(QuotesSpider {
                start_url: args
                    .get("start_url")
                    .cloned()
                    .unwrap_or_else(|| default_start.clone()),
            })
        })
        .pipeline("WordCount", |_| Ok(Some(Box::new(Typed(WordCount)))))
        .extension("LongestQuote", |crawler| {
            Ok(Some(ComponentHandle::new(
                LongestQuote {
                    crawler: crawler.clone(),
                    longest: 0,
                }
                .start(),
            )))
        })
}

fn main() -> ExitCode {
    let site = match quotes_site::QuotesSite::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start the demo site: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = arachne::cli::run(project(site.url("/")));
    drop(site);
    code
}

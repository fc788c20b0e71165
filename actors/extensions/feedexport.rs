//! FeedExporter: writes every scraped item to the files named in `FEEDS`
//! (`{"items.jsonl": {"format": "jsonlines"}}`; `arachne crawl -o FILE` fills it in).
//! Formats: `jsonlines` (`jsonl`, `jl`) and `json` (one array, as Scrapy writes it);
//! CSV and XML come with the feed-export work. Without a `format`, the file's
//! extension decides. It
//! subscribes to `ItemScraped`, which is awaited, so dropped items never reach it and
//! a slow disk slows the crawl rather than buffering items.

use std::fs::File;
use std::io::{BufWriter, Write};

use actix::prelude::*;

use crate::error::ConfigError;
use crate::extension::{ComponentHandle, CrawlerHandle};
use crate::signals::{ItemScraped, SpiderClosed};

/// The extension.
#[derive(Debug)]
pub struct FeedExporter {
    crawler: CrawlerHandle,
    feeds: Vec<Feed>,
}

/// One output file.
#[derive(Debug)]
struct Feed {
    path: String,
    format: Format,
    out: BufWriter<File>,
    items: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    JsonLines,
    /// A JSON array: `[` at open, `,` between items, `]` at close.
    Json,
}

impl Format {
    fn from_name(name: &str) -> Option<Format> {
        match name {
            "jsonlines" | "jsonl" | "jl" => Some(Format::JsonLines),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::JsonLines => "jsonlines",
            Format::Json => "json",
        }
    }
}

impl FeedExporter {
    /// Not configured without `FEEDS`; a feed whose file cannot be created or whose
    /// format is unknown is a configuration error.
    pub fn from_crawler(crawler: &CrawlerHandle) -> Result<Option<ComponentHandle>, ConfigError> {
        let spec = crawler.settings.get_dict("FEEDS")?;
        if spec.is_empty() {
            return Ok(None);
        }
        let mut feeds = Vec::new();
        for (path, opts) in spec {
            let format = opts
                .get("format")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| path.rsplit('.').next().unwrap_or("jsonlines").to_string());
            let Some(format) = Format::from_name(&format) else {
                return Err(ConfigError::Invalid(format!(
                    "FEEDS: format {format:?} of {path} is not supported yet (use jsonlines or json)"
                )));
            };
            let overwrite = opts
                .get("overwrite")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(!overwrite)
                .truncate(overwrite)
                .open(&path)
                .map_err(|e| ConfigError::Invalid(format!("FEEDS: cannot open {path}: {e}")))?;
            let mut out = BufWriter::new(file);
            if format == Format::Json {
                out.write_all(b"[").map_err(|e| {
                    ConfigError::Invalid(format!("FEEDS: cannot write {path}: {e}"))
                })?;
            }
            feeds.push(Feed {
                path,
                format,
                out,
                items: 0,
            });
        }
        Ok(Some(ComponentHandle::new(
            FeedExporter {
                crawler: crawler.clone(),
                feeds,
            }
            .start(),
        )))
    }
}

impl Actor for FeedExporter {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.crawler
            .subscribe::<ItemScraped>(ctx.address().recipient());
        self.crawler
            .subscribe::<SpiderClosed>(ctx.address().recipient());
    }
}

impl Handler<ItemScraped> for FeedExporter {
    type Result = ();
    fn handle(&mut self, msg: ItemScraped, _: &mut Context<Self>) {
        let line = msg.item.to_json();
        for feed in &mut self.feeds {
            let written = match (feed.format, feed.items) {
                (Format::JsonLines, _) => writeln!(feed.out, "{line}"),
                (Format::Json, 0) => write!(feed.out, "\n{line}"),
                (Format::Json, _) => write!(feed.out, ",\n{line}"),
            };
            match written {
                Ok(()) => feed.items += 1,
                Err(e) => log::error!("Error writing item to feed {}: {e}", feed.path),
            }
        }
    }
}

impl Handler<SpiderClosed> for FeedExporter {
    type Result = ();
    fn handle(&mut self, _: SpiderClosed, _: &mut Context<Self>) {
        for feed in &mut self.feeds {
            let closing = if feed.format == Format::Json {
                feed.out.write_all(b"\n]\n")
            } else {
                Ok(())
            };
            match closing.and_then(|()| feed.out.flush()) {
                Ok(()) => log::info!(
                    "Stored {} feed ({} items) in: {}",
                    feed.format.name(),
                    feed.items,
                    feed.path
                ),
                Err(e) => log::error!("Error flushing feed {}: {e}", feed.path),
            }
        }
    }
}

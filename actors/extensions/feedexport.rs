//! FeedExporter: writes every scraped item to the files named in `FEEDS`
//! (`{"items.jsonl": {"format": "jsonlines"}}`; `arachne crawl -o FILE` fills it in).
//! Only JSON lines for now; the other formats come with the feed-export work. It
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
    feeds: Vec<(String, BufWriter<File>)>,
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
            if !matches!(format.as_str(), "jsonlines" | "jsonl" | "jl") {
                return Err(ConfigError::Invalid(format!(
                    "FEEDS: format {format:?} of {path} is not supported yet (use jsonlines)"
                )));
            }
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
            feeds.push((path, BufWriter::new(file)));
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
        for (path, w) in &mut self.feeds {
            if let Err(e) = writeln!(w, "{line}") {
                log::error!("Error writing item to feed {path}: {e}");
            }
        }
    }
}

impl Handler<SpiderClosed> for FeedExporter {
    type Result = ();
    fn handle(&mut self, _: SpiderClosed, _: &mut Context<Self>) {
        for (path, w) in &mut self.feeds {
            match w.flush() {
                Ok(()) => log::info!("Stored jsonlines feed in: {path}"),
                Err(e) => log::error!("Error flushing feed {path}: {e}"),
            }
        }
    }
}

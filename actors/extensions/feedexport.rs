//! FeedExporter: writes every scraped item to the files named in `FEEDS`
//! (`{"items.jsonl": {"format": "jsonlines"}}`; `arachne crawl -o FILE` fills it in).
//! Formats: `jsonlines` (`jsonl`, `jl`) and `json` (one array, as Scrapy writes it);
//! CSV and XML come with the feed-export work. Without a `format`, the file's
//! extension decides. It
//! subscribes to `ItemScraped`, which is awaited, so dropped items never reach it and
//! a slow disk slows the crawl rather than buffering items.
//!
//! Nothing already written is lost on a forced stop: buffers are flushed every
//! [`FLUSH_INTERVAL`], and every open feed is registered process-wide so the forced
//! exit path (a second SIGINT/SIGTERM) flushes them and closes JSON arrays
//! ([`flush_open_feeds`]) before the process ends.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use actix::prelude::*;

use crate::error::ConfigError;
use crate::extension::{ComponentHandle, CrawlerHandle};
use crate::signals::{ItemScraped, SpiderClosed};

/// How often buffered items reach the file while a crawl runs.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);

/// Every feed open in this process, for [`flush_open_feeds`].
static OPEN_FEEDS: Mutex<Vec<Weak<Mutex<Feed>>>> = Mutex::new(Vec::new());

/// Flushes every open feed and closes the JSON arrays, so a file is complete and
/// valid when the process is about to end without a normal close (a forced stop).
/// Safe to call more than once; a feed closed here is not closed again.
pub fn flush_open_feeds() {
    let feeds = OPEN_FEEDS.lock().unwrap_or_else(|e| e.into_inner());
    for feed in feeds.iter().filter_map(Weak::upgrade) {
        let mut feed = feed.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = feed.close() {
            log::error!("Error flushing feed {}: {e}", feed.path);
        }
    }
}

/// The extension.
#[derive(Debug)]
pub struct FeedExporter {
    crawler: CrawlerHandle,
    feeds: Vec<Arc<Mutex<Feed>>>,
}

/// One output file.
#[derive(Debug)]
struct Feed {
    path: String,
    format: Format,
    out: BufWriter<File>,
    items: u64,
    closed: bool,
}

impl Feed {
    fn write_item(&mut self, line: &str) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match (self.format, self.items) {
            (Format::JsonLines, _) => writeln!(self.out, "{line}"),
            (Format::Json, 0) => write!(self.out, "\n{line}"),
            (Format::Json, _) => write!(self.out, ",\n{line}"),
        }?;
        self.items += 1;
        Ok(())
    }

    /// Ends the array (JSON) and flushes; later items are not written.
    fn close(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        if self.format == Format::Json {
            self.out.write_all(b"\n]\n")?;
        }
        self.out.flush()
    }
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
            let feed = Arc::new(Mutex::new(Feed {
                path,
                format,
                out,
                items: 0,
                closed: false,
            }));
            {
                let mut open = OPEN_FEEDS.lock().unwrap_or_else(|e| e.into_inner());
                open.retain(|w| w.strong_count() > 0);
                open.push(Arc::downgrade(&feed));
            }
            feeds.push(feed);
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
        ctx.run_interval(FLUSH_INTERVAL, |act, _| {
            for feed in &act.feeds {
                let mut feed = feed.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = feed.out.flush() {
                    log::error!("Error flushing feed {}: {e}", feed.path);
                }
            }
        });
    }
}

impl Handler<ItemScraped> for FeedExporter {
    type Result = ();
    fn handle(&mut self, msg: ItemScraped, _: &mut Context<Self>) {
        let line = msg.item.to_json();
        for feed in &self.feeds {
            let mut feed = feed.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = feed.write_item(&line) {
                log::error!("Error writing item to feed {}: {e}", feed.path);
            }
        }
    }
}

impl Handler<SpiderClosed> for FeedExporter {
    type Result = ();
    fn handle(&mut self, _: SpiderClosed, _: &mut Context<Self>) {
        for feed in &self.feeds {
            let mut feed = feed.lock().unwrap_or_else(|e| e.into_inner());
            match feed.close() {
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

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
//!
//! With a `JOBDIR`, a resumed job goes on writing the feeds of its earlier runs: the
//! file is opened for appending even when `overwrite` is set (overwriting would lose
//! what the earlier runs exported), a line torn by a kill is cut off, and a JSON
//! array's closing `]` is taken off so items keep going into the same array. The engine
//! calls [`flush_feed_buffers`] before it tells the job's queue that a request is
//! finished, so an item is in the file before its request is marked done.

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

/// Writes every open feed's buffer to its file (without closing anything): what has
/// been exported so far survives a kill from here on.
pub fn flush_feed_buffers() {
    let feeds = OPEN_FEEDS.lock().unwrap_or_else(|e| e.into_inner());
    for feed in feeds.iter().filter_map(Weak::upgrade) {
        let mut feed = feed.lock().unwrap_or_else(|e| e.into_inner());
        if !feed.closed {
            if let Err(e) = feed.out.flush() {
                log::error!("Error flushing feed {}: {e}", feed.path);
            }
        }
    }
}

/// Prepares a feed file of an earlier run of a resumed job for appending: cuts off a
/// last line a kill left incomplete and, for a JSON array, its closing `]`. Returns how
/// many items the file already holds, as far as the writer needs to know (0 or more).
fn repair_for_resume(path: &str, format: Format) -> std::io::Result<u64> {
    let mut bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let original = bytes.len();
    let complete_line = |line: &[u8]| serde_json::from_slice::<serde_json::Value>(line).is_ok();
    match format {
        Format::JsonLines => {
            // Everything up to the last newline is whole lines; what follows is a torn
            // line unless it happens to be a complete item without its newline.
            let cut = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if complete_line(&bytes[cut..]) {
                bytes.push(b'\n');
            } else {
                bytes.truncate(cut);
            }
            let items = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            write_back(path, &bytes, original, original)?;
            Ok(items)
        }
        Format::Json => {
            // Written as `[` then `\n{item}` / `,\n{item}`, `\n]\n` at close: one item per
            // line. Drop the closing bracket, then any torn last item.
            while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
                bytes.pop();
            }
            if bytes.last() == Some(&b']') && bytes.len() > 1 {
                bytes.pop();
                while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
                    bytes.pop();
                }
            }
            // What a clean close wrote is expected; only what follows is damage.
            let closed = bytes.len();
            loop {
                let start = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let line = &bytes[start..];
                if line == b"[" || line.is_empty() && start == 0 {
                    break;
                }
                if complete_line(line) {
                    break;
                }
                // A torn item: drop it and the `,` that led to it.
                bytes.truncate(start.saturating_sub(1));
                if bytes.last() == Some(&b',') {
                    bytes.pop();
                }
                if bytes.is_empty() {
                    break;
                }
            }
            if bytes.is_empty() {
                bytes.push(b'[');
            }
            let items = u64::from(bytes != b"[");
            write_back(path, &bytes, original, closed)?;
            Ok(items)
        }
    }
}

/// Rewrites the feed when it changed; warns about what was cut below `intact` (the
/// length once an expected ending, a JSON array's `]`, is off).
fn write_back(path: &str, bytes: &[u8], original: usize, intact: usize) -> std::io::Result<()> {
    if bytes.len() < intact {
        log::warn!(
            "Feed {path}: cut off {} bytes an interrupted earlier run left incomplete",
            intact - bytes.len()
        );
    }
    if bytes.len() != original {
        std::fs::write(path, bytes)?;
    }
    Ok(())
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
            let mut overwrite = opts
                .get("overwrite")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let resumed = crawler.jobdir().is_some_and(|j| j.resumed());
            let mut items = 0;
            if resumed {
                if overwrite {
                    log::info!("Feed {path}: appending, not overwriting: this run resumes a job");
                    overwrite = false;
                }
                items = repair_for_resume(&path, format).map_err(|e| {
                    ConfigError::Invalid(format!("FEEDS: cannot resume {path}: {e}"))
                })?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(!overwrite)
                .truncate(overwrite)
                .open(&path)
                .map_err(|e| ConfigError::Invalid(format!("FEEDS: cannot open {path}: {e}")))?;
            let has_content = resumed && file.metadata().map(|m| m.len() > 0).unwrap_or(false);
            let mut out = BufWriter::new(file);
            if format == Format::Json && !has_content {
                out.write_all(b"[").map_err(|e| {
                    ConfigError::Invalid(format!("FEEDS: cannot write {path}: {e}"))
                })?;
            }
            let feed = Arc::new(Mutex::new(Feed {
                path,
                format,
                out,
                items,
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

#[cfg(test)]
mod resume_tests {
    use super::*;

    fn repaired(format: Format, content: &str) -> (String, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed");
        std::fs::write(&path, content).unwrap();
        let path = path.to_str().unwrap().to_string();
        let items = repair_for_resume(&path, format).unwrap();
        (std::fs::read_to_string(&path).unwrap(), items)
    }

    #[test]
    fn json_lines_lose_only_a_torn_last_line() {
        assert_eq!(
            repaired(Format::JsonLines, "{\"a\":1}\n{\"a\":2}\n{\"a\""),
            ("{\"a\":1}\n{\"a\":2}\n".to_string(), 2)
        );
        // A whole item that only lacks its newline is kept.
        assert_eq!(
            repaired(Format::JsonLines, "{\"a\":1}\n{\"a\":2}"),
            ("{\"a\":1}\n{\"a\":2}\n".to_string(), 2)
        );
        assert_eq!(repaired(Format::JsonLines, ""), (String::new(), 0));
    }

    #[test]
    fn json_arrays_reopen_for_more_items() {
        // Closed cleanly: only the bracket goes.
        assert_eq!(
            repaired(Format::Json, "[\n{\"a\":1},\n{\"a\":2}\n]\n"),
            ("[\n{\"a\":1},\n{\"a\":2}".to_string(), 1)
        );
        // Killed in the middle of an item: it goes, with its comma.
        assert_eq!(
            repaired(Format::Json, "[\n{\"a\":1},\n{\"a\":2},\n{\"a\":"),
            ("[\n{\"a\":1},\n{\"a\":2}".to_string(), 1)
        );
        // Nothing written but the opening bracket (or nothing at all).
        assert_eq!(repaired(Format::Json, "["), ("[".to_string(), 0));
        assert_eq!(repaired(Format::Json, "[\n]\n"), ("[".to_string(), 0));
        assert_eq!(repaired(Format::Json, "[\n{\"a\""), ("[".to_string(), 0));
        // Each result continues into a valid array.
        let (mut text, items) = repaired(Format::Json, "[\n{\"a\":1},\n{\"a\":");
        text.push_str(if items > 0 {
            ",\n{\"b\":2}\n]\n"
        } else {
            "\n{\"b\":2}\n]\n"
        });
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(2));
    }
}

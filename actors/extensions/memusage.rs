//! MemoryUsage: watches the process's memory as Scrapy's extension does. With
//! `MEMUSAGE_ENABLED` (the default) it records `memusage/startup` when the engine
//! starts and `memusage/max` every `MEMUSAGE_CHECK_INTERVAL_SECONDS`, in bytes. Over
//! `MEMUSAGE_WARNING_MB` it warns once (`memusage/warning_reached`, the
//! `memusage_warning_reached` signal); over `MEMUSAGE_LIMIT_MB` it counts
//! `memusage/limit_reached` and closes the spider with `memusage_exceeded`.
//!
//! The figure is the peak resident set size (`VmHWM`), which is what Scrapy reads
//! (`ru_maxrss`): once over a limit, a crawl stays over it. `MEMUSAGE_NOTIFY_MAIL`
//! (deprecated in Scrapy) needs a mail sender, which Arachne does not have yet: it is
//! logged and ignored.

use std::time::Duration;

use actix::prelude::*;

use crate::error::ConfigError;
use crate::extension::{ComponentHandle, CrawlerHandle};
use crate::signals::{CloseReason, EngineStarted, EngineStopped, MemusageWarningReached};

/// The process's peak resident memory in bytes (`VmHWM`), 0 where /proc is missing.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The extension.
pub struct MemoryUsage {
    crawler: CrawlerHandle,
    limit: u64,
    warning: u64,
    interval: Duration,
    warned: bool,
    closing: bool,
    read: Box<dyn Fn() -> u64>,
    timer: Option<SpawnHandle>,
}

impl std::fmt::Debug for MemoryUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryUsage")
            .field("limit", &self.limit)
            .field("warning", &self.warning)
            .finish_non_exhaustive()
    }
}

const MIB: u64 = 1024 * 1024;

impl MemoryUsage {
    /// Not configured when `MEMUSAGE_ENABLED` is false.
    pub fn from_crawler(crawler: &CrawlerHandle) -> Result<Option<ComponentHandle>, ConfigError> {
        Self::with_reader(crawler, peak_rss_bytes)
    }

    /// The same, reading memory from `read` (bytes) — for tests, which drive the
    /// extension with made-up figures.
    pub fn with_reader(
        crawler: &CrawlerHandle,
        read: impl Fn() -> u64 + 'static,
    ) -> Result<Option<ComponentHandle>, ConfigError> {
        let s = &crawler.settings;
        if !s.get_bool("MEMUSAGE_ENABLED")? {
            return Ok(None);
        }
        if !s.get_list("MEMUSAGE_NOTIFY_MAIL")?.is_empty() {
            log::warn!(
                "MEMUSAGE_NOTIFY_MAIL is set, but Arachne has no mail sender yet: no mail will be sent (use the memusage_warning_reached and spider_closed signals)"
            );
        }
        let interval = s.get_duration("MEMUSAGE_CHECK_INTERVAL_SECONDS")?;
        Ok(Some(ComponentHandle::new(
            MemoryUsage {
                crawler: crawler.clone(),
                limit: s.get_usize("MEMUSAGE_LIMIT_MB")? as u64 * MIB,
                warning: s.get_usize("MEMUSAGE_WARNING_MB")? as u64 * MIB,
                interval: interval.max(Duration::from_millis(1)),
                warned: false,
                closing: false,
                read: Box::new(read),
                timer: None,
            }
            .start(),
        )))
    }

    fn check(&mut self) {
        let now = (self.read)();
        let stats = self.crawler.stats();
        stats.max("memusage/max", now as f64);
        if self.limit > 0 {
            if now > self.limit {
                if !self.closing {
                    self.closing = true;
                    stats.set("memusage/limit_reached", 1);
                    log::error!(
                        "Memory usage exceeded {}MiB. Shutting down Arachne...",
                        self.limit / MIB
                    );
                    self.crawler
                        .engine()
                        .close(CloseReason::Other("memusage_exceeded".into()));
                }
            } else {
                log::info!("Peak memory usage is {}MiB", now / MIB);
            }
        }
        if self.warning > 0 && !self.warned && now > self.warning {
            self.warned = true;
            stats.set("memusage/warning_reached", 1);
            log::warn!("Memory usage reached {}MiB", self.warning / MIB);
            self.crawler
                .signals()
                .emit(MemusageWarningReached { bytes: now });
        }
    }
}

impl Actor for MemoryUsage {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.crawler
            .subscribe::<EngineStarted>(ctx.address().recipient());
        self.crawler
            .subscribe::<EngineStopped>(ctx.address().recipient());
    }
}

impl Handler<EngineStarted> for MemoryUsage {
    type Result = ();
    fn handle(&mut self, _: EngineStarted, ctx: &mut Context<Self>) {
        self.crawler.stats().set("memusage/startup", (self.read)());
        self.check();
        self.timer = Some(ctx.run_interval(self.interval, |act, _| act.check()));
    }
}

impl Handler<EngineStopped> for MemoryUsage {
    type Result = ();
    fn handle(&mut self, _: EngineStopped, ctx: &mut Context<Self>) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
    }
}

//! The built-in extensions. Each is an actor built from a
//! [`CrawlerHandle`](crate::extension::CrawlerHandle) that subscribes only to the
//! signals it needs — nothing a user's extension could not do.
//!
//! | name | what |
//! |---|---|
//! | `CoreStats` | `start_time`, `finish_time`, `finish_reason`, `elapsed_time_seconds`, item and response counts |
//! | `LogStats` | the "Crawled N pages (at N pages/min)" line every `LOGSTATS_INTERVAL` |
//! | `CloseSpider` | the six `CLOSESPIDER_*` conditions |
//! | `AutoThrottle` | adapts slot delays to latency (`AUTOTHROTTLE_*`) |
//! | `FeedExporter` | writes scraped items to the `FEEDS` files (JSON lines for now) |
//! | `MemoryUsage` | `memusage/*` stats; warns at `MEMUSAGE_WARNING_MB`, closes with `memusage_exceeded` past `MEMUSAGE_LIMIT_MB` |
//! | `PeriodicLog` | the delta / stats / time sections as JSON every `LOGSTATS_INTERVAL` (`PERIODIC_LOG_*`) |
//! | `SpiderState` | with a `JOBDIR`, the spider's state map saved at close and loaded at open |

pub mod closespider;
pub mod corestats;
pub mod feedexport;
pub mod logstats;
pub mod memusage;
pub mod periodiclog;
pub mod spiderstate;
pub mod throttle;

use crate::extension::ExtensionRegistry;

/// A registry holding every built-in extension under its Scrapy class name.
pub fn builtin() -> ExtensionRegistry {
    let mut r = ExtensionRegistry::new();
    r.register("CoreStats", corestats::CoreStats::from_crawler);
    r.register("LogStats", logstats::LogStats::from_crawler);
    r.register("CloseSpider", closespider::CloseSpider::from_crawler);
    r.register("AutoThrottle", throttle::AutoThrottle::from_crawler);
    r.register("FeedExporter", feedexport::FeedExporter::from_crawler);
    r.register("SpiderState", spiderstate::SpiderState::from_crawler);
    r.register("MemoryUsage", memusage::MemoryUsage::from_crawler);
    r.register("PeriodicLog", periodiclog::PeriodicLog::from_crawler);
    r
}

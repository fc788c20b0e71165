//! # Arachne
//!
//! A web crawling and scraping framework in the mould of Scrapy, built on actix actors.
//! A user writes a [`Spider`](spider::Spider) — where to start and how to turn a
//! response into items and further requests — and Arachne schedules, downloads,
//! parses on every core, runs the item pipeline and keeps Scrapy-compatible stats.
//!
//! ```no_run
//! use arachne::prelude::*;
//!
//! struct Titles;
//!
//! #[async_trait(?Send)]
//! impl Spider for Titles {
//!     type Callback = DefaultCallback; // or the spider's own enum of callbacks
//!     fn name(&self) -> &str { "titles" }
//!     fn start_urls(&self) -> Vec<String> { vec!["http://127.0.0.1:8080/".into()] }
//!     async fn parse(&self, response: &Response) -> CallbackResult {
//!         let mut out = Output::new();
//!         out.item(json!({ "title": response.css("title::text")?.get() }));
//!         for request in response.follow_all_css("a::attr(href)")? {
//!             out.request(request);
//!         }
//!         Ok(out)
//!     }
//! }
//!
//! let stats = CrawlerProcess::new(Settings::new()).crawl(Titles).start();
//! ```
//!
//! # Layout
//!
//! - [`http`]: `Request`, `Response`, header helpers, fingerprints, URL canonicalisation.
//! - [`item`]: `Item`, the dynamic, serde-based record a spider yields.
//! - [`settings`]: `Settings` — Scrapy's names and defaults, priorities, typed getters.
//! - [`signals`]: every signal message, in one place (Scrapy's `scrapy.signals`), and
//!   the subscriber table the signal bus keeps.
//! - [`stats`]: the stats map, its keys and the messages that change and read it.
//! - [`handle`]: the small cloneable handles components reach the crawl through —
//!   stats, signals, engine, downloader.
//! - [`spider`]: the `Spider` trait, callbacks by name, `Output`.
//! - [`selector`]: CSS selectors (`::text`, `::attr(x)`) on top of the `select` crate.
//! - [`middleware`]: downloader and spider middleware traits, chains and the built-in stack.
//! - [`pipeline`]: the `ItemPipeline` stage trait and `DropItem`.
//! - [`queue`]: request priority queues (DFO / BFO), in memory and on disk.
//! - [`dupefilter`]: duplicate request filters.
//! - [`scheduler`]: the scheduler seams (scheduler, queue and filter traits) and the
//!   default scheduler.
//! - [`jobdir`]: a `JOBDIR`: the lock, manifest and state files of a resumable job.
//! - [`extension`]: the crawler handle extensions are built from, and their registry.
//! - [`crawler`]: `Crawler` and `CrawlerProcess`, which assemble the actors and run them
//!   (the one module of the model that names them).
//! - [`cli`]: the `arachne` command line, reusable from a user's own `main`.
//! - [`actors`]: every actor, one per file (engine, scheduler, downloader, slots, spider
//!   workers, item pipeline, signal bus, stats and the built-in extensions).

#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![forbid(unsafe_code)]

pub mod cli;
pub mod crawler;
pub mod dupefilter;
pub mod error;
pub mod extension;
pub mod handle;
pub mod http;
pub mod item;
pub mod jobdir;
pub mod middleware;
pub mod pipeline;
pub mod project;
pub mod queue;
pub mod scheduler;
pub mod selector;
pub mod settings;
pub mod signals;
pub mod spider;
pub mod stats;

#[path = "../actors/mod.rs"]
pub mod actors;

/// Re-exported so users write `#[async_trait(?Send)]` on their spiders without a
/// dependency of their own.
pub use async_trait::async_trait;

/// What a spider file usually needs.
pub mod prelude {
    pub use crate::async_trait;
    pub use crate::crawler::{Crawler, CrawlerProcess};
    pub use crate::extension::{ComponentHandle, CrawlerHandle};
    pub use crate::handle::{DownloaderHandle, EngineHandle, SignalsHandle, StatsHandle};
    pub use crate::http::{Request, Response};
    pub use crate::item::Item;
    pub use crate::pipeline::{DropItem, ItemPipeline, PipelineError, Typed, TypedPipeline};
    pub use crate::project::Project;
    pub use crate::selector::Html;
    pub use crate::selector::{Selector, SelectorList};
    pub use crate::settings::{Priority, Settings};
    pub use crate::spider::{
        start_from_iter, start_from_urls, CallbackResult, DefaultCallback, Failure, Output, Spider,
        SpiderError, Start,
    };
    // What every spider file needs besides the crate itself: logging, `json!` items,
    // and derives for typed callbacks and items.
    pub use log;
    pub use serde::{Deserialize, Serialize};
    pub use serde_json::json;
    pub use std::sync::Arc;
}

/// The README's code, compiled as doctests so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

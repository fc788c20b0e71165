//! Every actor, one per file. `src/` holds the data they exchange; this module holds
//! everything with a mailbox.
//!
//! - [`engine`]: drives one spider's crawl, decides when it is idle, closes it.
//! - [`scheduler`]: the priority queue and duplicate filter behind `NextRequest`.
//! - [`downloader`]: routes each request to its per-domain (or per-IP) [`slot`].
//! - [`slot`]: one per download slot; concurrency, delay and the HTTP transfer.
//! - [`spider`]: spider workers, running user callbacks off the I/O arbiter.
//! - [`pipeline`]: the item pipeline.
//! - [`signal_bus`]: per-signal subscriber lists; emits, awaits and collects votes.
//! - [`stats`]: the stats collector.
//! - [`extensions`]: the built-in extensions, each a plain subscriber.

pub mod downloader;
pub mod engine;
pub mod extensions;
pub mod pipeline;
pub mod scheduler;
pub mod signal_bus;
pub mod slot;
pub mod spider;
pub mod stats;

//! Handles: how a component reaches the crawl it belongs to. Each is a small,
//! cloneable value around the `Recipient`s of the actor that does the work, so the
//! model and user code never name an actor — and a test can put a probe of its own
//! behind any of them.
//!
//! - [`StatsHandle`]: increment, set, max/min and read the stats.
//! - [`SignalsHandle`]: subscribe to, emit, await and ask signals.
//! - [`EngineHandle`]: close the spider, pause and unpause, read the status, schedule
//!   a request, download one inline (Scrapy's `engine.download`).
//! - [`DownloaderHandle`]: read and set a slot's delay, fetch through the downloader
//!   middlewares.
//!
//! Each handle's module also holds the messages it sends; the actor behind it handles
//! them. Cloning a handle is one reference-count increment.

pub mod downloader;
pub mod engine;
pub mod signals;
pub mod stats;

pub use downloader::DownloaderHandle;
pub use engine::{EngineHandle, EngineStatus};
pub use signals::SignalsHandle;
pub use stats::StatsHandle;

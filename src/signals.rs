//! Every signal, in one place — Scrapy's `scrapy.signals` as typed messages.
//!
//! Signals are past-tense events. The [`SignalBus`](crate::actors::signal_bus::SignalBus)
//! keeps one subscriber list per signal type; an extension subscribes in `started()`.
//! Signals that Scrapy lets handlers defer are *awaited*: the emitter waits until every
//! subscriber has handled them (marked "Awaited" below), so a slow `ItemScraped`
//! handler slows the crawl rather than queueing without bound. [`SpiderIdle`] and
//! [`HeadersReceived`] are *answered*: handlers vote.
//!
//! Payloads are cheap to clone: responses, requests and items travel as `Arc`s.

use std::sync::Arc;
use std::time::Duration;

use actix::Message;

use crate::error::DownloadError;
use crate::http::{Request, Response};
use crate::item::Item;
use crate::spider::SpiderError;

/// Why a spider closed. `Display` prints Scrapy's strings (`finished`,
/// `closespider_itemcount`, ...), which is what `finish_reason` holds in the stats.
///
/// ```
/// use arachne::signals::CloseReason;
/// assert_eq!(CloseReason::ClosespiderItemcount.to_string(), "closespider_itemcount");
/// assert_eq!(CloseReason::from("memusage_exceeded").to_string(), "memusage_exceeded");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// Nothing left to do.
    Finished,
    /// Closed on request without a reason (Scrapy's default for `close_spider`).
    Cancelled,
    /// The process is stopping (SIGINT/SIGTERM or `Crawler::stop`).
    Shutdown,
    /// `CLOSESPIDER_TIMEOUT` elapsed.
    ClosespiderTimeout,
    /// No item for `CLOSESPIDER_TIMEOUT_NO_ITEM` seconds.
    ClosespiderTimeoutNoItem,
    /// `CLOSESPIDER_ITEMCOUNT` items scraped.
    ClosespiderItemcount,
    /// `CLOSESPIDER_PAGECOUNT` responses received.
    ClosespiderPagecount,
    /// `CLOSESPIDER_PAGECOUNT_NO_ITEM` responses in a row without an item.
    ClosespiderPagecountNoItem,
    /// `CLOSESPIDER_ERRORCOUNT` spider errors.
    ClosespiderErrorcount,
    /// Any other reason an extension gives (`memusage_exceeded`, ...).
    Other(String),
}

impl CloseReason {
    /// Scrapy's string for this reason.
    pub fn as_str(&self) -> &str {
        match self {
            CloseReason::Finished => "finished",
            CloseReason::Cancelled => "cancelled",
            CloseReason::Shutdown => "shutdown",
            CloseReason::ClosespiderTimeout => "closespider_timeout",
            CloseReason::ClosespiderTimeoutNoItem => "closespider_timeout_no_item",
            CloseReason::ClosespiderItemcount => "closespider_itemcount",
            CloseReason::ClosespiderPagecount => "closespider_pagecount",
            CloseReason::ClosespiderPagecountNoItem => "closespider_pagecount_no_item",
            CloseReason::ClosespiderErrorcount => "closespider_errorcount",
            CloseReason::Other(s) => s,
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for CloseReason {
    fn from(s: &str) -> Self {
        [
            CloseReason::Finished,
            CloseReason::Cancelled,
            CloseReason::Shutdown,
            CloseReason::ClosespiderTimeout,
            CloseReason::ClosespiderTimeoutNoItem,
            CloseReason::ClosespiderItemcount,
            CloseReason::ClosespiderPagecount,
            CloseReason::ClosespiderPagecountNoItem,
            CloseReason::ClosespiderErrorcount,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .unwrap_or_else(|| CloseReason::Other(s.to_string()))
    }
}

/// Marker for every signal message, so the bus can be generic over them.
pub trait Signal: Message + Clone + Send + Unpin + std::fmt::Debug + 'static
where
    Self::Result: Send,
{
    /// Scrapy's name for the signal (`item_scraped`), used in logs.
    const NAME: &'static str;
}

macro_rules! signal {
    ($(#[$doc:meta])* $name:ident, $scrapy:literal, $result:literal { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Message)]
        #[rtype(result = $result)]
        pub struct $name { $($(#[$fdoc])* pub $field: $ty),* }
        impl Signal for $name { const NAME: &'static str = $scrapy; }
    };
}

signal!(
    /// The engine has started. Sent by the Engine after `SpiderOpened`, as in Scrapy.
    /// Awaited.
    EngineStarted, "engine_started", "()" {}
);
signal!(
    /// The engine has stopped, after `SpiderClosed` and the stats dump. Sent by the
    /// Engine. Awaited.
    EngineStopped, "engine_stopped", "()" {}
);
signal!(
    /// The spider is open; extensions start their timers here. Sent by the Engine
    /// before any request is scheduled. Awaited.
    SpiderOpened, "spider_opened", "()" {
        /// The spider's name.
        spider: Arc<str>,
    }
);
signal!(
    /// The spider has closed: nothing is in flight any more. Sent by the Engine;
    /// CoreStats records `finish_reason` here. Awaited.
    SpiderClosed, "spider_closed", "()" {
        /// The spider's name.
        spider: Arc<str>,
        /// Why it closed.
        reason: CloseReason,
    }
);
signal!(
    /// Nothing is scheduled, downloading, parsing or in the pipeline. Sent by the
    /// Engine. Answered: a handler returns [`IdleVote::DontClose`] (typically after
    /// scheduling more requests through `engine::Crawl`) to keep the spider open.
    SpiderIdle, "spider_idle", "IdleVote" {
        /// The spider's name.
        spider: Arc<str>,
    }
);
signal!(
    /// A callback returned an error or panicked. Sent by the Engine.
    SpiderErrored, "spider_error", "()" {
        /// The error.
        error: SpiderError,
        /// The response being parsed (`None` for an errback of a failed download).
        response: Option<Arc<Response>>,
        /// The request whose callback or errback failed.
        request: Arc<Request>,
    }
);
signal!(
    /// An item passed every pipeline stage. Sent by the ItemPipeline. Awaited.
    ItemScraped, "item_scraped", "()" {
        /// The item as the last stage returned it.
        item: Arc<Item>,
        /// The response it came from, if any.
        response: Option<Arc<Response>>,
    }
);
signal!(
    /// A pipeline stage dropped an item (`DropItem`). Sent by the ItemPipeline. Awaited.
    ItemDropped, "item_dropped", "()" {
        /// The item as the dropping stage saw it.
        item: Arc<Item>,
        /// The response it came from, if any.
        response: Option<Arc<Response>>,
        /// The drop's kind (`DropItem` unless the stage named another).
        kind: String,
        /// The stage's message.
        reason: String,
    }
);
signal!(
    /// A pipeline stage failed with an error other than a drop. Sent by the
    /// ItemPipeline. Awaited.
    ItemError, "item_error", "()" {
        /// The item as the failing stage saw it.
        item: Arc<Item>,
        /// The response it came from, if any.
        response: Option<Arc<Response>>,
        /// The error message.
        error: String,
    }
);
signal!(
    /// The Scheduler accepted a request. Sent by the Scheduler.
    RequestScheduled, "request_scheduled", "()" {
        /// The request.
        request: Arc<Request>,
    }
);
signal!(
    /// The Scheduler refused a request (duplicate filter). Sent by the Scheduler.
    RequestDropped, "request_dropped", "()" {
        /// The request.
        request: Arc<Request>,
    }
);
signal!(
    /// A request reached the Downloader. Sent by the Downloader.
    RequestReachedDownloader, "request_reached_downloader", "()" {
        /// The request.
        request: Arc<Request>,
    }
);
signal!(
    /// A request left the Downloader, downloaded or failed. Sent by the Slot.
    RequestLeftDownloader, "request_left_downloader", "()" {
        /// The request.
        request: Arc<Request>,
    }
);
signal!(
    /// Response headers arrived. Sent by the Slot. Answered: a handler may return
    /// [`DownloadVote::Stop`] to stop the download (the response is then made of what
    /// arrived, flagged `download_stopped`).
    HeadersReceived, "headers_received", "DownloadVote" {
        /// The status code.
        status: u16,
        /// The headers.
        headers: Arc<crate::http::HeaderMap>,
        /// The request.
        request: Arc<Request>,
    }
);
signal!(
    /// A chunk of body arrived. Sent by the Slot only when someone subscribes (it is
    /// per chunk). Answered like [`HeadersReceived`].
    BytesReceived, "bytes_received", "DownloadVote" {
        /// The chunk.
        data: bytes::Bytes,
        /// The request.
        request: Arc<Request>,
    }
);
signal!(
    /// A response was downloaded (before downloader middlewares). Sent by the Slot.
    /// Carries the slot's figures, which is all AutoThrottle needs.
    ResponseDownloaded, "response_downloaded", "()" {
        /// The response.
        response: Arc<Response>,
        /// The download slot's key.
        slot: Arc<str>,
        /// The slot's current delay.
        slot_delay: Duration,
        /// Requests the slot has in transfer, this one included.
        slot_concurrency: usize,
        /// Whether the request asked AutoThrottle not to adjust (`autothrottle_dont_adjust_delay`).
        dont_adjust_delay: bool,
    }
);
signal!(
    /// The Engine received a response from the Downloader (after middlewares).
    /// Sent by the Engine; CloseSpider counts pages here.
    ResponseReceived, "response_received", "()" {
        /// The response.
        response: Arc<Response>,
    }
);
signal!(
    /// A download failed. Sent by the Slot (an Arachne addition: Scrapy only logs it).
    DownloadFailed, "download_failed", "()" {
        /// The request.
        request: Arc<Request>,
        /// The error.
        error: DownloadError,
    }
);

/// A [`SpiderIdle`] handler's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdleVote {
    /// Fine to close.
    #[default]
    Close,
    /// Keep the spider open (Scrapy's `DontCloseSpider`).
    DontClose,
}

/// A [`HeadersReceived`] / [`BytesReceived`] handler's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DownloadVote {
    /// Go on downloading.
    #[default]
    Continue,
    /// Stop the download here (Scrapy's `StopDownload(fail=False)`).
    Stop,
}

impl<A, M> actix::dev::MessageResponse<A, M> for IdleVote
where
    A: actix::Actor,
    M: Message<Result = IdleVote>,
{
    fn handle(self, _: &mut A::Context, tx: Option<actix::dev::OneshotSender<IdleVote>>) {
        if let Some(tx) = tx {
            let _ = tx.send(self);
        }
    }
}

impl<A, M> actix::dev::MessageResponse<A, M> for DownloadVote
where
    A: actix::Actor,
    M: Message<Result = DownloadVote>,
{
    fn handle(self, _: &mut A::Context, tx: Option<actix::dev::OneshotSender<DownloadVote>>) {
        if let Some(tx) = tx {
            let _ = tx.send(self);
        }
    }
}

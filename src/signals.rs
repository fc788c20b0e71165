//! Every signal, in one place — Scrapy's `scrapy.signals` as typed messages.
//!
//! Signals are past-tense events. The SignalBus actor keeps one subscriber list per
//! signal type — the plain [`SignalTable`] here — and an extension subscribes in
//! `started()` through a [`SignalsHandle`](crate::handle::SignalsHandle), which sends the
//! bus one type-erased [`BusOp`] per call.
//! Signals that Scrapy lets handlers defer are *awaited*: the emitter waits until every
//! subscriber has handled them (marked "Awaited" below), so a slow `ItemScraped`
//! handler slows the crawl rather than queueing without bound. [`SpiderIdle`],
//! [`RequestScheduled`], [`HeadersReceived`] and [`BytesReceived`] are *answered*:
//! handlers vote.
//!
//! Payloads are cheap to clone: responses, requests and items travel as `Arc`s.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Message, Recipient};
use futures_util::future::{join_all, LocalBoxFuture};

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
    /// Memory use passed `MEMUSAGE_WARNING_MB` (once per crawl). Sent by the
    /// MemoryUsage extension, as in Scrapy.
    MemusageWarningReached, "memusage_warning_reached", "()" {
        /// The process's peak resident memory, in bytes.
        bytes: u64,
    }
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
    /// scheduling more requests through `EngineHandle::crawl`) to keep the spider open.
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
    /// A request is about to be handed to the Scheduler (a start request, a callback's
    /// request, a redirect or retry, `EngineHandle::crawl`). Sent by the Engine
    /// *before* the duplicate filter decides, as Scrapy's `_schedule_request` does, so
    /// a duplicate gets `RequestScheduled` then `RequestDropped`. Answered: a handler
    /// returning [`ScheduleVote::Ignore`] drops the request silently (Scrapy's
    /// `IgnoreRequest` from a `request_scheduled` handler). Only asked when someone
    /// subscribes.
    RequestScheduled, "request_scheduled", "ScheduleVote" {
        /// The request.
        request: Arc<Request>,
    }
);
signal!(
    /// The Scheduler refused a request (duplicate filter). Sent by the Engine when the
    /// Scheduler reports the refusal; only when someone subscribes.
    RequestDropped, "request_dropped", "()" {
        /// The request.
        request: Arc<Request>,
    }
);
signal!(
    /// A request entered a download slot's queue, past the downloader middlewares.
    /// Sent by the Slot. A request a middleware answered itself (a cached response, an
    /// ignored request) never reaches the downloader, as in Scrapy; every request that
    /// does is followed by one [`RequestLeftDownloader`].
    RequestReachedDownloader, "request_reached_downloader", "()" {
        /// The request.
        request: Arc<Request>,
    }
);
signal!(
    /// A request left its download slot, downloaded or failed. Sent by the Slot, once
    /// per [`RequestReachedDownloader`].
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

/// A [`RequestScheduled`] handler's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScheduleVote {
    /// Let the request go on to the scheduler.
    #[default]
    Accept,
    /// Drop it before the scheduler sees it (Scrapy's `IgnoreRequest` raised by a
    /// `request_scheduled` handler).
    Ignore,
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

impl<A, M> actix::dev::MessageResponse<A, M> for ScheduleVote
where
    A: actix::Actor,
    M: Message<Result = ScheduleVote>,
{
    fn handle(self, _: &mut A::Context, tx: Option<actix::dev::OneshotSender<ScheduleVote>>) {
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

/// How many subscribers each signal has, readable without a message: the Slot asks
/// it before paying for a per-chunk `BytesReceived`, the Engine before asking
/// `RequestScheduled`. It follows the subscriptions the bus has handled: one sent a
/// moment ago may not be counted yet.
#[derive(Debug, Default)]
pub struct SubscriberCounts {
    counts: std::sync::Mutex<HashMap<&'static str, Arc<AtomicUsize>>>,
}

impl SubscriberCounts {
    /// A shared counter for signal `name`.
    pub fn counter(&self, name: &'static str) -> Arc<AtomicUsize> {
        let mut map = match self.counts.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.entry(name).or_default().clone()
    }

    /// Whether `S` has any subscriber now.
    pub fn has<S: Signal>(&self) -> bool
    where
        S::Result: Send,
    {
        self.counter(S::NAME).load(Ordering::Relaxed) > 0
    }
}

/// The subscriber table: one `Vec<Recipient<S>>` per signal type, so nobody receives
/// what they did not ask for. Like Scrapy's `send_catch_log`, a subscriber that has
/// gone away or fails is logged and skipped. Every send is enqueued when the method is
/// called, in subscription order; only the waiting (of [`emit_await`] and [`ask`]) is
/// deferred to the returned future.
///
/// [`emit_await`]: SignalTable::emit_await
/// [`ask`]: SignalTable::ask
///
/// ```
/// use arachne::signals::{SignalTable, SpiderOpened};
///
/// let mut table = SignalTable::new();
/// // Nobody subscribed: nothing is sent, and the counts say so.
/// table.emit(SpiderOpened { spider: "s".into() });
/// assert!(!table.counts().has::<SpiderOpened>());
/// ```
#[derive(Default)]
pub struct SignalTable {
    lists: HashMap<TypeId, Box<dyn Any + Send>>,
    counts: Arc<SubscriberCounts>,
}

impl std::fmt::Debug for SignalTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalTable")
            .field("signal_types", &self.lists.len())
            .finish()
    }
}

impl SignalTable {
    /// A table with no subscribers.
    pub fn new() -> Self {
        SignalTable::default()
    }

    /// The shared subscriber counts (what a [`SignalsHandle`](crate::handle::SignalsHandle)
    /// is built with).
    pub fn counts(&self) -> Arc<SubscriberCounts> {
        self.counts.clone()
    }

    /// `S`'s list, created empty on first use.
    fn list<S: Signal>(&mut self) -> Option<&mut Vec<Recipient<S>>>
    where
        S::Result: Send,
    {
        self.lists
            .entry(TypeId::of::<S>())
            .or_insert_with(|| Box::new(Vec::<Recipient<S>>::new()))
            // Always the right type: the list is stored under its own TypeId.
            .downcast_mut::<Vec<Recipient<S>>>()
    }

    /// Adds a subscriber of `S`.
    pub fn subscribe<S: Signal>(&mut self, recipient: Recipient<S>)
    where
        S::Result: Send,
    {
        let counts = self.counts.clone();
        if let Some(list) = self.list::<S>() {
            list.push(recipient);
            counts.counter(S::NAME).store(list.len(), Ordering::Relaxed);
        }
    }

    /// `S`'s live subscribers; drops those whose actor has stopped.
    fn live<S: Signal>(&mut self) -> &[Recipient<S>]
    where
        S::Result: Send,
    {
        let counts = self.counts.clone();
        let Some(list) = self.list::<S>() else {
            return &[];
        };
        let before = list.len();
        list.retain(|r| r.connected());
        if list.len() != before {
            counts.counter(S::NAME).store(list.len(), Ordering::Relaxed);
        }
        list
    }

    /// Sends `signal` to every subscriber without waiting.
    pub fn emit<S: Signal>(&mut self, signal: S)
    where
        S::Result: Send,
    {
        for r in self.live::<S>() {
            r.do_send(signal.clone());
        }
    }

    /// Sends `signal` to every subscriber now; the future resolves when all have
    /// handled it.
    pub fn emit_await<S: Signal>(&mut self, signal: S) -> LocalBoxFuture<'static, ()>
    where
        S::Result: Send,
    {
        let sends: Vec<_> = self
            .live::<S>()
            .iter()
            .map(|r| r.send(signal.clone()))
            .collect();
        Box::pin(async move {
            for res in join_all(sends).await {
                if let Err(e) = res {
                    log::error!("error delivering signal {}: {e}", S::NAME);
                }
            }
        })
    }

    /// Sends `signal` to every subscriber now; the future resolves with every answer
    /// (a subscriber that went away meanwhile is logged and left out).
    pub fn ask<S: Signal>(&mut self, signal: S) -> LocalBoxFuture<'static, Vec<S::Result>>
    where
        S::Result: Send,
    {
        let sends: Vec<_> = self
            .live::<S>()
            .iter()
            .map(|r| r.send(signal.clone()))
            .collect();
        Box::pin(async move {
            join_all(sends)
                .await
                .into_iter()
                .filter_map(|res| match res {
                    Ok(v) => Some(v),
                    Err(e) => {
                        log::error!("error delivering signal {}: {e}", S::NAME);
                        None
                    }
                })
                .collect()
        })
    }
}

/// The one message the SignalBus handles: a typed operation on its [`SignalTable`],
/// erased behind a closure so that a handle can subscribe, emit or ask for any signal
/// type through a single `Recipient<BusOp>`. The closure runs inside the bus's
/// handler — so sends are enqueued in the order the ops arrive — and may return a
/// future (the waiting part of an awaited emit or an ask), which the bus spawns.
///
/// ```
/// use arachne::signals::{BusOp, SignalTable, SpiderOpened};
///
/// let mut table = SignalTable::new();
/// let op = BusOp::new(|t| {
///     t.emit(SpiderOpened { spider: "s".into() });
///     None
/// });
/// assert!(op.run(&mut table).is_none());
/// ```
#[derive(Message)]
#[rtype(result = "()")]
pub struct BusOp(BusFn);

type BusFn = Box<dyn FnOnce(&mut SignalTable) -> Option<LocalBoxFuture<'static, ()>> + Send>;

impl std::fmt::Debug for BusOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BusOp")
    }
}

impl BusOp {
    /// Wraps an operation.
    pub fn new(
        op: impl FnOnce(&mut SignalTable) -> Option<LocalBoxFuture<'static, ()>> + Send + 'static,
    ) -> Self {
        BusOp(Box::new(op))
    }

    /// Runs the operation on `table`; the caller spawns the future it returns, if any.
    pub fn run(self, table: &mut SignalTable) -> Option<LocalBoxFuture<'static, ()>> {
        (self.0)(table)
    }
}

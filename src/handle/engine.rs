//! [`EngineHandle`]: the engine as a component sees it (Scrapy's `crawler.engine`),
//! and the commands and queries it sends: [`CloseSpider`], [`Crawl`], [`SetPaused`],
//! [`GetEngineStatus`] (answers [`EngineStatus`]) and [`Download`].

use std::future::Future;
use std::sync::Arc;

use actix::{Actor, Addr, Context, Handler, Message, MessageResponse, Recipient};

use crate::error::DownloadError;
use crate::http::{Request, Response};
use crate::signals::CloseReason;

/// Closes the spider (Scrapy's `engine.close_spider`). The first reason wins;
/// requests already downloading still finish.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CloseSpider {
    /// Why.
    pub reason: CloseReason,
}

impl Default for CloseSpider {
    /// Scrapy's default reason, `cancelled`.
    fn default() -> Self {
        CloseSpider {
            reason: CloseReason::Cancelled,
        }
    }
}

/// Schedules a request from outside the spider's callbacks (Scrapy's
/// `engine.crawl`), e.g. from a `SpiderIdle` handler.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Crawl(pub Request);

/// Pauses (`true`) or resumes (`false`) the engine (Scrapy's `engine.pause` /
/// `engine.unpause`). Paused, the engine pulls no request from the scheduler and no
/// start request, and is never idle-closed; requests already downloading finish, and
/// their output is still scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct SetPaused(pub bool);

/// Asks for the [`EngineStatus`].
#[derive(Debug, Clone, Message)]
#[rtype(result = "EngineStatus")]
pub struct GetEngineStatus;

/// Downloads a request inline (Scrapy's `engine.download`): through the downloader
/// middlewares and its download slot (politeness, delay, concurrency), never through
/// the scheduler or a spider callback. A request a middleware reschedules (a
/// redirect, a retry) is downloaded in turn. The engine counts it in flight until it
/// is answered, so the spider neither goes idle nor finishes meanwhile; the response
/// is announced as `ResponseReceived`, as Scrapy does.
#[derive(Debug, Message)]
#[rtype(result = "Result<Response, DownloadError>")]
pub struct Download(pub Request);

/// The engine's counters (Scrapy's `engine status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, MessageResponse)]
pub struct EngineStatus {
    /// Requests in the downloader (inline downloads included).
    pub downloading: usize,
    /// Responses and failures being handled by spider callbacks.
    pub parsing: usize,
    /// Bytes of responses being parsed.
    pub active_bytes: usize,
    /// Items in the pipeline.
    pub items: usize,
    /// Requests waiting in the scheduler, as last reported.
    pub scheduled: usize,
    /// Whether start requests are still being consumed.
    pub start_requests_pending: bool,
    /// Whether the engine is paused.
    pub paused: bool,
    /// The close reason once closing.
    pub closing: Option<String>,
}

/// Where an [`EngineHandle`] sends. Usually all one actor's
/// ([`EngineHandle::from_addr`]).
#[derive(Debug, Clone)]
pub struct EngineRecipients {
    /// Receives [`CloseSpider`].
    pub close: Recipient<CloseSpider>,
    /// Receives [`Crawl`].
    pub crawl: Recipient<Crawl>,
    /// Receives [`SetPaused`].
    pub pause: Recipient<SetPaused>,
    /// Answers [`GetEngineStatus`].
    pub status: Recipient<GetEngineStatus>,
    /// Answers [`Download`].
    pub download: Recipient<Download>,
}

/// Closes, pauses, inspects and feeds the engine.
///
/// ```no_run
/// use arachne::handle::EngineHandle;
/// use arachne::http::Request;
/// use arachne::signals::CloseReason;
///
/// async fn look_around(engine: &EngineHandle) {
///     engine.pause();
///     // Requests already downloading finish; nothing new starts.
///     let status = engine.status().await;
///     assert!(status.paused);
///     // A side download through the middlewares and the slot, for this code alone.
///     if let Ok(response) = engine.download(Request::get("http://127.0.0.1:8080/x").unwrap()).await {
///         println!("{} bytes", response.body.len());
///     }
///     engine.unpause();
///     engine.crawl(Request::get("http://127.0.0.1:8080/next").unwrap());
///     engine.close(CloseReason::from("enough"));
/// }
/// ```
#[derive(Clone)]
pub struct EngineHandle {
    inner: Arc<EngineRecipients>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineHandle")
    }
}

impl EngineHandle {
    /// A handle sending to these recipients.
    pub fn new(recipients: EngineRecipients) -> Self {
        EngineHandle {
            inner: Arc::new(recipients),
        }
    }

    /// A handle sending everything to one actor (the Engine, or a test's probe).
    pub fn from_addr<A>(addr: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<CloseSpider>
            + Handler<Crawl>
            + Handler<SetPaused>
            + Handler<GetEngineStatus>
            + Handler<Download>,
    {
        EngineHandle::new(EngineRecipients {
            close: addr.clone().recipient(),
            crawl: addr.clone().recipient(),
            pause: addr.clone().recipient(),
            status: addr.clone().recipient(),
            download: addr.clone().recipient(),
        })
    }

    /// The recipient of close requests (how `CrawlerProcess` forwards SIGINT).
    pub fn close_recipient(&self) -> Recipient<CloseSpider> {
        self.inner.close.clone()
    }

    /// Closes the spider with `reason` (Scrapy's `engine.close_spider`); the first
    /// reason wins.
    pub fn close(&self, reason: CloseReason) {
        self.inner.close.do_send(CloseSpider { reason });
    }

    /// Stops pulling new requests (Scrapy's `engine.pause`); see [`SetPaused`].
    pub fn pause(&self) {
        self.inner.pause.do_send(SetPaused(true));
    }

    /// Resumes after [`pause`](EngineHandle::pause).
    pub fn unpause(&self) {
        self.inner.pause.do_send(SetPaused(false));
    }

    /// The engine's counters. Once the engine has stopped: a default status whose
    /// `closing` says so.
    pub fn status(&self) -> impl Future<Output = EngineStatus> + 'static {
        let request = self.inner.status.send(GetEngineStatus);
        async move {
            request.await.unwrap_or_else(|_| EngineStatus {
                closing: Some("engine stopped".into()),
                ..EngineStatus::default()
            })
        }
    }

    /// Schedules a request (Scrapy's `engine.crawl`): it goes through
    /// `RequestScheduled`, the duplicate filter and the queue like a callback's.
    pub fn crawl(&self, request: Request) {
        self.inner.crawl.do_send(Crawl(request));
    }

    /// Downloads `request` inline and answers its response (Scrapy's
    /// `engine.download`); see [`Download`].
    ///
    /// # Errors
    ///
    /// The download's failure, an `Ignored` from a middleware, or `Cancelled` once the
    /// engine is shutting down.
    pub fn download(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<Response, DownloadError>> + 'static {
        let request = self.inner.download.send(Download(request));
        async move { request.await.unwrap_or(Err(DownloadError::Cancelled)) }
    }
}

//! The Engine: drives one spider's crawl. It feeds start requests to the Scheduler,
//! pulls requests while the Downloader has room (`CONCURRENT_REQUESTS`) and parsing is
//! not backed up (`SCRAPER_SLOT_MAX_ACTIVE_SIZE` bytes, `CONCURRENT_ITEMS` items),
//! sends responses to the spider workers and their output to the ItemPipeline and
//! Scheduler, and decides when the spider is idle and closes it.
//!
//! Around the spider it runs the spider middlewares (`SPIDER_MIDDLEWARES`): their
//! input check before a callback (a refusal sends the request to its errback), their
//! output and exception chains on what the callback returned, and their start-request
//! hook on every start request.
//!
//! Commands: [`StartEngine`], and those of `crate::handle::engine` (an `EngineHandle`
//! sends them): `Crawl`, `CloseSpider`, `SetPaused`, `Download`; query:
//! `GetEngineStatus`. Emits `SpiderOpened`, `EngineStarted`, `RequestScheduled`
//! (asked before a request reaches the scheduler; a handler may veto),
//! `RequestDropped` (for what the scheduler refused), `ResponseReceived`,
//! `SpiderErrored`, `SpiderIdle`, `SpiderClosed`, `EngineStopped`.
//!
//! Paused (`SetPaused`, Scrapy's `engine.pause`), it pulls nothing from the scheduler
//! or the start requests and never asks `SpiderIdle`; what is in flight finishes.
//!
//! Closing is ordered (never a dropped mailbox): no new downloads; in-flight downloads,
//! their parsing and their items finish; then the pipeline, downloader and scheduler
//! close; `SpiderClosed` is awaited; stats are dumped; `EngineStopped` is awaited.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::downloader::{CloseDownloader, Downloader};
use super::pipeline::{ClosePipeline, ItemPipeline, OpenPipeline, ProcessItem};
use super::scheduler::{Batch, CloseScheduler, Done, Enqueue, NextRequests, Scheduler};
use super::spider::{Parse, RunErrback, WorkerPool};
use crate::error::{catch_panic, ConfigError, DownloadError};
use crate::handle::downloader::Fetch;
use crate::handle::engine::{
    CloseSpider, Crawl, Download, EngineStatus, GetEngineStatus, SetPaused,
};
use crate::handle::{SignalsHandle, StatsHandle};
use crate::http::{Request, Response};
use crate::middleware::downloader::Fetched;
use crate::middleware::spider::SpiderMiddlewares;
use crate::scheduler::Ticket;
use crate::settings::Settings;
use crate::signals::{
    CloseReason, EngineStarted, EngineStopped, IdleVote, RequestDropped, RequestScheduled,
    ResponseReceived, ScheduleVote, SpiderClosed, SpiderErrored, SpiderIdle, SpiderOpened,
};
use crate::spider::{
    CallbackData, CallbackResult, DynSpider, Failure, FailureKind, OutputEntry, SpiderError, Start,
};
use crate::stats::{Key, StatsMap};

use std::collections::HashMap;

/// Opens the spider and starts crawling.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StartEngine;

/// The engine's settings, read once.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `CONCURRENT_REQUESTS`.
    pub concurrent_requests: usize,
    /// `CONCURRENT_ITEMS`.
    pub concurrent_items: usize,
    /// `SCRAPER_SLOT_MAX_ACTIVE_SIZE`.
    pub max_active_size: usize,
    /// `STATS_DUMP`.
    pub stats_dump: bool,
    /// How many entries of the spider's start stream an earlier run of the job
    /// consumed: skipped, not crawled again.
    pub skip_start: u64,
    /// The crawl has a `JOBDIR`: how far the start stream got is recorded.
    pub persistent: bool,
}

impl EngineConfig {
    /// Reads the settings.
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(EngineConfig {
            concurrent_requests: s.get_usize("CONCURRENT_REQUESTS")?.max(1),
            concurrent_items: s.get_usize("CONCURRENT_ITEMS")?.max(1),
            max_active_size: s.get_usize("SCRAPER_SLOT_MAX_ACTIVE_SIZE")?.max(1),
            stats_dump: s.get_bool("STATS_DUMP")?,
            skip_start: 0,
            persistent: !s.get_str("JOBDIR").is_empty(),
        })
    }
}

/// Everything the engine drives, assembled by the crawler.
#[derive(Debug)]
pub struct EngineParts {
    /// The spider.
    pub spider: Arc<dyn DynSpider>,
    /// Settings read once.
    pub config: EngineConfig,
    /// The scheduler.
    pub scheduler: Addr<Scheduler>,
    /// The downloader.
    pub downloader: Addr<Downloader>,
    /// The spider workers.
    pub workers: WorkerPool,
    /// The item pipeline.
    pub pipeline: Addr<ItemPipeline>,
    /// The spider middlewares.
    pub spider_mws: SpiderMiddlewares,
    /// The signal bus.
    pub bus: SignalsHandle,
    /// The stats.
    pub stats: StatsHandle,
    /// Receives the final stats when the engine has stopped.
    pub done: oneshot::Sender<StatsMap>,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Created,
    Opening,
    Running,
    Closing(CloseReason),
    Finishing,
}

/// Requests waiting for the scheduler's answer above which no further callback starts:
/// a fan-out page's callback makes thousands of requests at a time (10,000 links: about
/// 13 MB of `Request`s), and callbacks run on every core while the scheduler takes them
/// in one at a time, so without a bound they pile up in its mailbox.
const MAX_ENQUEUE_BACKLOG: usize = 10_000;

/// How long a spider kept open by a `SpiderIdle` vote waits before asking again.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// The engine actor.
pub struct Engine {
    name: Arc<str>,
    spider: Arc<dyn DynSpider>,
    cfg: EngineConfig,
    scheduler: Addr<Scheduler>,
    downloader: Addr<Downloader>,
    workers: WorkerPool,
    pipeline: Addr<ItemPipeline>,
    bus: SignalsHandle,
    stats: StatsHandle,
    done: Option<oneshot::Sender<StatsMap>>,
    /// The spider's start stream; taken out while a batch is being pulled from it.
    start: Option<Start>,
    /// A batch is being pulled from the start stream.
    start_pulling: bool,
    phase: Phase,
    /// A close asked for while opening, applied once open.
    early_close: Option<CloseReason>,
    downloading: usize,
    parsing: usize,
    active_bytes: usize,
    items: usize,
    pending: usize,
    pending_seq: u64,
    enqueues: usize,
    pulling: bool,
    asking_idle: bool,
    /// Paused by `SetPaused`: nothing new is pulled and the spider is not idle-closed.
    paused: bool,
    spider_mws: Rc<SpiderMiddlewares>,
    /// Tickets of requests from a persistent queue that are not finished yet, with how
    /// many pieces of work (the download and what follows it, each item, each enqueue
    /// of follow-up requests) each still waits for.
    tickets: HashMap<Ticket, u32>,
    /// Finished tickets not yet handed back to the scheduler.
    acks: Vec<Ticket>,
    /// A `Done` is on its way to the scheduler, with this many tickets.
    acking: usize,
    /// Start stream entries consumed, those of earlier runs of the job included.
    start_consumed: u64,
    /// Requests sent to the scheduler and not yet answered.
    enqueue_backlog: usize,
    /// Downloaded responses waiting for the backlog to shrink before their callback
    /// runs (counted in `parsing` already).
    deferred: std::collections::VecDeque<(Arc<Response>, Option<Ticket>)>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("spider", &self.name)
            .field("phase", &self.phase)
            .field("downloading", &self.downloading)
            .field("parsing", &self.parsing)
            .field("items", &self.items)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over assembled parts.
    pub fn new(parts: EngineParts) -> Self {
        Engine {
            name: parts.spider.name().into(),
            spider: parts.spider,
            cfg: parts.config,
            scheduler: parts.scheduler,
            downloader: parts.downloader,
            workers: parts.workers,
            pipeline: parts.pipeline,
            bus: parts.bus,
            stats: parts.stats,
            done: Some(parts.done),
            start: None,
            start_pulling: false,
            phase: Phase::Created,
            early_close: None,
            downloading: 0,
            parsing: 0,
            active_bytes: 0,
            items: 0,
            pending: 0,
            pending_seq: 0,
            enqueues: 0,
            pulling: false,
            asking_idle: false,
            paused: false,
            spider_mws: Rc::new(parts.spider_mws),
            tickets: HashMap::new(),
            acks: Vec::new(),
            acking: 0,
            start_consumed: 0,
            enqueue_backlog: 0,
            deferred: std::collections::VecDeque::new(),
        }
    }

    /// One more piece of work for a ticketed request.
    fn hold(&mut self, ticket: Option<Ticket>) {
        if let Some(t) = ticket {
            *self.tickets.entry(t).or_insert(0) += 1;
        }
    }

    /// A piece of work of a ticketed request is over; the last one makes the request
    /// finished, and its ticket goes back to the scheduler.
    fn release(&mut self, ticket: Option<Ticket>, ctx: &mut Context<Self>) {
        let Some(t) = ticket else { return };
        let finished = match self.tickets.get_mut(&t) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => true,
            None => false,
        };
        if finished {
            self.tickets.remove(&t);
            self.acks.push(t);
            self.send_acks(ctx);
        }
    }

    /// Hands finished tickets to the scheduler, one `Done` at a time (those finished
    /// meanwhile go in the next). The feeds are flushed first: a request is finished
    /// in the job's log only once its items are in the feed files.
    fn send_acks(&mut self, ctx: &mut Context<Self>) {
        if self.acking > 0 || self.acks.is_empty() {
            return;
        }
        let acks = std::mem::take(&mut self.acks);
        self.acking = acks.len();
        crate::actors::extensions::feedexport::flush_feed_buffers();
        ctx.spawn(
            self.scheduler
                .send(Done(acks))
                .into_actor(self)
                .map(|_, act, ctx| {
                    act.acking = 0;
                    act.send_acks(ctx);
                    act.pump(ctx);
                }),
        );
    }

    fn inc(&self, key: impl Into<Key>) {
        self.stats.inc(key);
    }

    fn set_pending(&mut self, batch: &Batch) {
        if batch.seq >= self.pending_seq {
            self.pending_seq = batch.seq;
            self.pending = batch.pending;
        }
    }

    /// Requests of a job taken from its queue and not yet finished for good (their
    /// `Done` written): what a kill would make the next run crawl again.
    fn unfinished(&self) -> usize {
        self.tickets.len() + self.acks.len() + self.acking
    }

    fn can_pull(&self) -> bool {
        // Callbacks are the bottleneck when responses wait for them: downloading more
        // would only grow that queue.
        self.deferred.len() < self.cfg.concurrent_requests
            && self.downloading.max(self.unfinished()) < self.cfg.concurrent_requests
            && self.active_bytes < self.cfg.max_active_size
            && self.items < self.cfg.concurrent_items
    }

    fn busy(&self) -> bool {
        self.acking > 0
            || !self.acks.is_empty()
            || self.downloading > 0
            || self.parsing > 0
            || self.items > 0
            || self.enqueues > 0
            || self.pulling
    }

    /// The heart of the loop: called after every event that may free capacity.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        match self.phase {
            Phase::Running => {}
            Phase::Closing(_) => return self.try_finish(ctx),
            _ => return,
        }
        if self.paused {
            return;
        }
        self.feed_start_requests(ctx);
        if !self.pulling && self.can_pull() && (self.pending > 0 || self.enqueues > 0) {
            self.pulling = true;
            // With a JOBDIR, requests being parsed count too: at most
            // CONCURRENT_REQUESTS are ever taken and unfinished, so at most that many
            // are crawled again after a kill.
            let max = self.cfg.concurrent_requests - self.downloading.max(self.unfinished());
            ctx.spawn(
                self.scheduler
                    .send(NextRequests { max })
                    .into_actor(self)
                    .map(|res, act, ctx| {
                        act.pulling = false;
                        match res {
                            Ok(batch) => {
                                act.set_pending(&batch);
                                for s in batch.requests {
                                    act.fetch(s.request, s.ticket, ctx);
                                }
                            }
                            Err(e) => act.core_failure("scheduler", e, ctx),
                        }
                        act.pump(ctx);
                    }),
            );
        }
        self.check_idle(ctx);
    }

    /// Start requests are consumed lazily, a downloader's worth at a time, so a
    /// spider with millions of them does not fill the queue up front (Scrapy 2.13's
    /// lazy `start()`). The stream is user code: a panic in it ends the start
    /// requests (logged, counted), not the engine.
    fn feed_start_requests(&mut self, ctx: &mut Context<Self>) {
        if self.start_pulling || self.enqueues > 0 || self.pending >= self.cfg.concurrent_requests {
            return;
        }
        let Some(mut stream) = self.start.take() else {
            return;
        };
        self.start_pulling = true;
        let want = self.cfg.concurrent_requests;
        // Bounded so a stream of endless errors cannot hold the engine.
        let budget = want.saturating_mul(10);
        // A resumed job skips what its earlier runs consumed.
        let skip = self.cfg.skip_start.saturating_sub(self.start_consumed);
        let pull = async move {
            use futures_util::StreamExt;
            let mut entries = Vec::new();
            let mut errors = Vec::new();
            let mut exhausted = false;
            let mut pulled = 0u64;
            let mut skipped = 0u64;
            while skipped < skip {
                match catch_panic(stream.next()).await {
                    Ok(Some(_)) => skipped += 1,
                    Ok(None) | Err(_) => {
                        exhausted = true;
                        break;
                    }
                }
            }
            for _ in 0..budget {
                if exhausted {
                    break;
                }
                if entries.len() >= want {
                    break;
                }
                match catch_panic(stream.next()).await {
                    Ok(Some(Ok(entry))) => {
                        pulled += 1;
                        entries.push(entry)
                    }
                    Ok(Some(Err(e))) => {
                        pulled += 1;
                        errors.push(e)
                    }
                    Ok(None) => {
                        exhausted = true;
                        break;
                    }
                    Err(p) => {
                        errors.push(SpiderError::new("Panic", p));
                        exhausted = true;
                        break;
                    }
                }
            }
            (
                stream,
                entries,
                errors,
                exhausted,
                pulled + skipped,
                skipped,
            )
        };
        ctx.spawn(
            pull.into_actor(self)
                .map(|(stream, entries, errors, exhausted, consumed, skipped), act, ctx| {
                    act.start_pulling = false;
                    if skipped > 0 {
                        log::info!(
                            "Resuming the start requests after the {skipped} an earlier run of the job consumed"
                        );
                    }
                    act.start_consumed += consumed;
                    if !exhausted {
                        act.start = Some(stream);
                    }
                    for e in errors {
                        log::error!("Error while obtaining start requests: {e}");
                        act.inc(format!("spider_exceptions/{}", e.kind));
                    }
                    let mut batch = Vec::new();
                    for entry in entries {
                        match entry {
                            OutputEntry::Request(r) => {
                                if let Some(r) = act.start_request(r) {
                                    batch.push(r);
                                }
                            }
                            OutputEntry::Item(item) => act.process_item(item, None, None, ctx),
                        }
                    }
                    // With a JOBDIR the scheduler records how far the stream got.
                    let offset = (act.cfg.persistent && consumed > 0).then_some(act.start_consumed);
                    if !batch.is_empty() || offset.is_some() {
                        act.enqueue_from(batch, None, Some(offset), ctx);
                    }
                    act.pump(ctx);
                }),
        );
    }

    /// A start request through the spider middlewares' start hook; start requests
    /// have depth 0, so their responses carry `meta["depth"] = 0` as in Scrapy.
    fn start_request(&mut self, mut r: Request) -> Option<Request> {
        r.meta.entry("depth").or_insert(0.into());
        let mws = &self.spider_mws;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mws.start_request(r))) {
            Ok(r) => r,
            Err(p) => {
                log::error!(
                    "A spider middleware panicked on a start request: {}",
                    crate::error::panic_message(p)
                );
                self.inc("spider_exceptions/Panic");
                None
            }
        }
    }

    /// Scrapy's `_schedule_request` for a batch: `RequestScheduled` is asked first
    /// (only if someone subscribes) and a request vetoed there is dropped silently;
    /// the rest go to the scheduler, and each it refuses is announced as
    /// `RequestDropped`. Counted in `enqueues` until the scheduler has answered.
    fn enqueue(&mut self, batch: Vec<Request>, ctx: &mut Context<Self>) {
        self.enqueue_from(batch, None, None, ctx)
    }

    /// [`Engine::enqueue`] for the follow-up requests of a ticketed request (the ticket
    /// waits for the scheduler's answer) or for start requests (`start`: `Some`, with
    /// how many start entries were consumed when a `JOBDIR` records it).
    fn enqueue_from(
        &mut self,
        batch: Vec<Request>,
        ticket: Option<Ticket>,
        start: Option<Option<u64>>,
        ctx: &mut Context<Self>,
    ) {
        self.enqueues += 1;
        self.hold(ticket);
        if !self.bus.has_subscribers::<RequestScheduled>() {
            return self.offer(batch, ticket, start, ctx);
        }
        let asks: Vec<_> = batch
            .into_iter()
            .map(|r| {
                let r = Arc::new(r);
                let votes = self.bus.ask(RequestScheduled { request: r.clone() });
                async move { (r, votes.await) }
            })
            .collect();
        let vote = futures_util::future::join_all(asks);
        ctx.spawn(vote.into_actor(self).map(move |answers, act, ctx| {
            let mut kept = Vec::with_capacity(answers.len());
            for (r, votes) in answers {
                if votes.contains(&ScheduleVote::Ignore) {
                    log::debug!(
                        "A request_scheduled handler dropped <{} {}> before it reached the scheduler",
                        r.method,
                        r.url
                    );
                    continue;
                }
                // Handlers have dropped their copies by now; a clone only if one kept it.
                kept.push(Arc::try_unwrap(r).unwrap_or_else(|r| (*r).clone()));
            }
            act.offer(kept, ticket, start, ctx);
        }));
    }

    /// Hands a batch to the scheduler; the caller has counted it in `enqueues`.
    fn offer(
        &mut self,
        batch: Vec<Request>,
        ticket: Option<Ticket>,
        start: Option<Option<u64>>,
        ctx: &mut Context<Self>,
    ) {
        let n = batch.len();
        self.enqueue_backlog += n;
        ctx.spawn(
            self.scheduler
                .send(Enqueue {
                    requests: batch,
                    start: start.is_some(),
                    start_consumed: start.flatten(),
                })
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.enqueues -= 1;
                    act.enqueue_backlog -= n;
                    act.resume_deferred(ctx);
                    act.release(ticket, ctx);
                    match res {
                        Ok(b) => {
                            act.set_pending(&b);
                            if act.bus.has_subscribers::<RequestDropped>() {
                                for r in b.refused {
                                    act.bus.emit(RequestDropped {
                                        request: Arc::new(r),
                                    });
                                }
                            }
                        }
                        Err(e) => act.core_failure("scheduler", e, ctx),
                    }
                    act.pump(ctx);
                }),
        );
    }

    fn fetch(&mut self, request: Request, ticket: Option<Ticket>, ctx: &mut Context<Self>) {
        self.downloading += 1;
        self.hold(ticket);
        let label = format!("<{} {}>", request.method, request.url);
        ctx.spawn(self.downloader.send(Fetch(request)).into_actor(self).map(
            move |res, act, ctx| {
                act.downloading -= 1;
                match res {
                    Ok(fetched) => act.on_fetched(fetched, &label, ticket, ctx),
                    Err(e) => act.core_failure("downloader", e, ctx),
                }
                act.pump(ctx);
            },
        ));
    }

    /// The download's piece of `ticket`'s work ends here or is handed on (to parsing,
    /// an errback, or the enqueue of a rescheduled request).
    fn on_fetched(
        &mut self,
        fetched: Fetched,
        label: &str,
        ticket: Option<Ticket>,
        ctx: &mut Context<Self>,
    ) {
        match fetched {
            Fetched::Response(response) => {
                let response = Arc::new(response);
                log::debug!(
                    "Crawled ({}) {label} (referer: {}){}",
                    response.status,
                    referer(&response.request),
                    if response.flags.is_empty() {
                        String::new()
                    } else {
                        format!(" {:?}", response.flags)
                    }
                );
                self.bus.emit(ResponseReceived {
                    response: response.clone(),
                });
                self.scrape(response, ticket, ctx);
            }
            Fetched::Reschedule(request) => {
                self.enqueue_from(vec![request], ticket, None, ctx);
                self.release(ticket, ctx);
            }
            Fetched::Failed(request, e) => {
                match &e {
                    DownloadError::Ignored(why) => log::debug!("Ignored {label}: {why}"),
                    DownloadError::Cancelled if matches!(self.phase, Phase::Closing(_)) => {
                        log::debug!("Download of {label} cancelled by shutdown")
                    }
                    _ => log::error!("Error downloading {label}: {e}"),
                }
                // Cut short by the shutdown: not finished, so a job crawls it again.
                if matches!(e, DownloadError::Cancelled) {
                    if let Some(t) = ticket {
                        self.tickets.remove(&t);
                    }
                    return;
                }
                if let Some(errback) = request.errback.clone() {
                    let failure = Failure {
                        request,
                        error: FailureKind::Download(e),
                    };
                    self.parsing += 1;
                    self.run_errback(errback, failure, None, 0, ticket, ctx);
                } else {
                    self.release(ticket, ctx);
                }
            }
        }
    }

    /// A response on its way to the spider: spider middlewares' input, then the
    /// callback — or, when the input is refused, the errback.
    fn scrape(&mut self, response: Arc<Response>, ticket: Option<Ticket>, ctx: &mut Context<Self>) {
        let bytes = response.body.len();
        self.parsing += 1;
        self.active_bytes += bytes;
        self.scrape_now(response, ticket, ctx);
    }

    /// Runs the callback now, or — callbacks outrunning the scheduler or the workers —
    /// keeps the response until one may run: it waits as its body rather than as the
    /// thousands of requests its callback might add to the backlog. Only responses the
    /// spider middlewares accepted wait (a refused 100 MB error page is dropped at once).
    fn callback_or_wait(
        &mut self,
        response: Arc<Response>,
        bytes: usize,
        ticket: Option<Ticket>,
        ctx: &mut Context<Self>,
    ) {
        if self.callbacks_full() {
            self.deferred.push_back((response, ticket));
        } else {
            self.run_callback(response, bytes, ticket, ctx);
        }
    }

    /// Whether a callback must wait: the scheduler is behind, or every worker already
    /// has two callbacks running or their output in the middlewares. A callback's
    /// output can be far bigger than its response (a page of 10,000 links makes about
    /// 13 MB of requests), so responses wait rather than outputs.
    fn callbacks_full(&self) -> bool {
        let running = self.parsing.saturating_sub(self.deferred.len());
        self.enqueue_backlog >= MAX_ENQUEUE_BACKLOG || running >= 2 * self.workers.len().max(1)
    }

    /// Resumes deferred responses while the scheduler's backlog allows.
    fn resume_deferred(&mut self, ctx: &mut Context<Self>) {
        while !self.deferred.is_empty() && !self.callbacks_full() {
            let Some((response, ticket)) = self.deferred.pop_front() else {
                break;
            };
            let bytes = response.body.len();
            self.run_callback(response, bytes, ticket, ctx);
        }
    }

    /// [`Engine::scrape`] once counted: the spider middlewares' input check.
    fn scrape_now(
        &mut self,
        response: Arc<Response>,
        ticket: Option<Ticket>,
        ctx: &mut Context<Self>,
    ) {
        let bytes = response.body.len();
        let mws = self.spider_mws.clone();
        let resp = response.clone();
        let input = async move {
            catch_panic(mws.input(&resp)).await.unwrap_or_else(|p| {
                Err(FailureKind::Refused(SpiderError::new(
                    "Panic",
                    format!("spider middleware panicked: {p}"),
                )))
            })
        };
        ctx.spawn(input.into_actor(self).map(move |res, act, ctx| match res {
            Ok(()) => act.callback_or_wait(response, bytes, ticket, ctx),
            Err(kind) => match response.request.errback.clone() {
                Some(errback) => {
                    let failure = Failure {
                        request: response.request.clone(),
                        error: kind,
                    };
                    act.run_errback(errback, failure, Some(response), bytes, ticket, ctx);
                }
                // No errback: the refusal goes down the spider middlewares'
                // exception chain, as Scrapy's does — HttpErrorMiddleware counts and
                // ignores its own HttpError there, so a response an errback handled
                // is not counted as ignored.
                None => {
                    let error = match kind {
                        FailureKind::HttpError(_) => SpiderError::new(
                            "HttpError",
                            format!("Ignoring non-2xx response ({})", response.status),
                        ),
                        FailureKind::Refused(e) => e,
                        FailureKind::Download(e) => SpiderError::new(e.kind(), e.to_string()),
                    };
                    let parent = response.request.clone();
                    act.on_output(parent, Some(response), bytes, Err(error), ticket, ctx);
                }
            },
        }));
    }

    fn run_callback(
        &mut self,
        response: Arc<Response>,
        bytes: usize,
        ticket: Option<Ticket>,
        ctx: &mut Context<Self>,
    ) {
        let worker = self.workers.pick();
        ctx.spawn(
            worker
                .send(Parse {
                    response: response.clone(),
                })
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let res =
                        res.unwrap_or_else(|e| Err(SpiderError::new("WorkerGone", e.to_string())));
                    let parent = response.request.clone();
                    act.on_output(parent, Some(response), bytes, res, ticket, ctx);
                }),
        );
    }

    /// Runs an errback; the caller has counted the job in `parsing` already.
    fn run_errback(
        &mut self,
        errback: CallbackData,
        failure: Failure,
        response: Option<Arc<Response>>,
        bytes: usize,
        ticket: Option<Ticket>,
        ctx: &mut Context<Self>,
    ) {
        let worker = self.workers.pick();
        let request = failure.request.clone();
        ctx.spawn(
            worker
                .send(RunErrback { errback, failure })
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let res =
                        res.unwrap_or_else(|e| Err(SpiderError::new("WorkerGone", e.to_string())));
                    act.on_output(request, response, bytes, res, ticket, ctx);
                }),
        );
    }

    /// A callback's result through the spider middlewares' output (or exception)
    /// chain, then items to the pipeline and requests to the scheduler.
    fn on_output(
        &mut self,
        parent: Request,
        response: Option<Arc<Response>>,
        bytes: usize,
        res: CallbackResult,
        ticket: Option<Ticket>,
        ctx: &mut Context<Self>,
    ) {
        let mws = self.spider_mws.clone();
        let resp = response.clone();
        let fut = async move {
            let resp = resp.as_deref();
            let chain = async {
                match res {
                    Ok(output) => Ok(mws.output(resp, &parent, output.into_entries()).await),
                    Err(e) => match mws.exception(resp, &parent, &e).await {
                        Some(entries) => Ok(entries),
                        None => Err(e),
                    },
                }
            };
            let outcome = catch_panic(chain).await.unwrap_or_else(|p| {
                Err(SpiderError::new(
                    "Panic",
                    format!("spider middleware panicked: {p}"),
                ))
            });
            match outcome {
                Ok(entries) => Ok((entries, parent)),
                Err(e) => Err((e, parent)),
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.parsing -= 1;
            act.active_bytes -= bytes;
            act.resume_deferred(ctx);
            match res {
                Ok((entries, _)) => {
                    let mut requests = Vec::new();
                    for entry in entries {
                        match entry {
                            OutputEntry::Item(item) => {
                                act.process_item(item, response.clone(), ticket, ctx)
                            }
                            OutputEntry::Request(r) => requests.push(r),
                        }
                    }
                    if !requests.is_empty() {
                        act.enqueue_from(requests, ticket, None, ctx);
                    }
                }
                Err((e, parent)) => {
                    log::error!(
                        "Spider error processing <{} {}> (referer: {}): {e}",
                        parent.method,
                        parent.url,
                        referer(&parent),
                    );
                    act.inc(format!("spider_exceptions/{}", e.kind));
                    act.bus.emit(SpiderErrored {
                        error: e,
                        response,
                        request: Arc::new(parent),
                    });
                }
            }
            act.release(ticket, ctx);
            act.pump(ctx);
        }));
    }

    fn process_item(
        &mut self,
        item: crate::item::Item,
        response: Option<Arc<Response>>,
        ticket: Option<Ticket>,
        ctx: &mut Context<Self>,
    ) {
        self.items += 1;
        self.hold(ticket);
        ctx.spawn(
            self.pipeline
                .send(ProcessItem { item, response })
                .into_actor(self)
                .map(move |_, act, ctx| {
                    act.items -= 1;
                    act.release(ticket, ctx);
                    act.pump(ctx);
                }),
        );
    }

    fn check_idle(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::Running
            || self.paused
            || self.asking_idle
            || self.start.is_some()
            || self.pending > 0
            || self.busy()
        {
            return;
        }
        if self.start_pulling {
            return;
        }
        self.asking_idle = true;
        let name = self.name.clone();
        ctx.spawn(
            self.bus
                .ask(SpiderIdle { spider: name })
                .into_actor(self)
                .map(|votes, act, ctx| {
                    act.asking_idle = false;
                    if votes.contains(&IdleVote::DontClose) {
                        log::debug!("Spider idle, kept open by a spider_idle handler");
                        ctx.run_later(IDLE_RECHECK, |act, ctx| act.pump(ctx));
                        act.pump(ctx);
                    } else if act.phase == Phase::Running
                        && !act.paused
                        && act.pending == 0
                        && !act.busy()
                    {
                        act.close(CloseReason::Finished, ctx);
                    } else {
                        act.pump(ctx);
                    }
                }),
        );
    }

    fn close(&mut self, reason: CloseReason, ctx: &mut Context<Self>) {
        match self.phase {
            Phase::Created | Phase::Opening => {
                self.early_close.get_or_insert(reason);
            }
            Phase::Running => {
                log::info!("Closing spider ({reason})");
                self.phase = Phase::Closing(reason);
                self.try_finish(ctx);
            }
            Phase::Closing(_) | Phase::Finishing => {}
        }
    }

    fn try_finish(&mut self, ctx: &mut Context<Self>) {
        let Phase::Closing(reason) = self.phase.clone() else {
            return;
        };
        if self.busy() {
            return;
        }
        self.phase = Phase::Finishing;
        let pipeline = self.pipeline.clone();
        let downloader = self.downloader.clone();
        let scheduler = self.scheduler.clone();
        let bus = self.bus.clone();
        let stats = self.stats.clone();
        let name = self.name.clone();
        let dump = self.cfg.stats_dump;
        let spider = self.spider.clone();
        let fut = async move {
            let _ = pipeline.send(ClosePipeline).await;
            let _ = downloader.send(CloseDownloader).await;
            let _ = scheduler.send(CloseScheduler).await;
            if let Err(p) = catch_panic(spider.closed(&reason)).await {
                log::error!("The spider's closed() hook panicked: {p}");
            }
            bus.emit_await(SpiderClosed {
                spider: name,
                reason: reason.clone(),
            })
            .await;
            let final_stats = stats.get_all().await;
            if dump {
                log::info!(
                    "Dumping Arachne stats:\n{}",
                    serde_json::to_string_pretty(&final_stats).unwrap_or_default()
                );
            }
            log::info!("Spider closed ({reason})");
            bus.emit_await(EngineStopped {}).await;
            final_stats
        };
        ctx.spawn(fut.into_actor(self).map(|final_stats, act, ctx| {
            act.workers.stop();
            if let Some(done) = act.done.take() {
                let _ = done.send(final_stats);
            }
            ctx.stop();
        }));
    }

    /// A core actor has gone: nothing sensible can continue, so close now.
    fn core_failure(&mut self, who: &str, e: MailboxError, ctx: &mut Context<Self>) {
        log::error!("{who} is gone ({e}); closing the spider");
        self.close(CloseReason::Cancelled, ctx);
    }
}

/// The `Referer` header of a request, for logs.
fn referer(request: &Request) -> &str {
    request
        .headers
        .get("referer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("None")
}

impl Actor for Engine {
    type Context = Context<Self>;
}

impl Handler<StartEngine> for Engine {
    type Result = ();
    fn handle(&mut self, _: StartEngine, ctx: &mut Context<Self>) {
        if self.phase != Phase::Created {
            return;
        }
        self.phase = Phase::Opening;
        self.start = Some(self.spider.clone().start());
        let pipeline = self.pipeline.clone();
        let bus = self.bus.clone();
        let name = self.name.clone();
        let fut = async move {
            let _ = pipeline.send(OpenPipeline).await;
            bus.emit_await(SpiderOpened {
                spider: name.clone(),
            })
            .await;
            bus.emit_await(EngineStarted {}).await;
            log::info!("Spider opened: {name}");
        };
        ctx.spawn(fut.into_actor(self).map(|_, act, ctx| {
            act.phase = Phase::Running;
            if let Some(reason) = act.early_close.take() {
                act.close(reason, ctx);
            } else {
                act.pump(ctx);
            }
        }));
    }
}

impl Handler<Crawl> for Engine {
    type Result = ();
    fn handle(&mut self, msg: Crawl, ctx: &mut Context<Self>) {
        let mut r = msg.0;
        r.meta.entry("depth").or_insert(0.into());
        self.enqueue(vec![r], ctx);
    }
}

impl Handler<CloseSpider> for Engine {
    type Result = ();
    fn handle(&mut self, msg: CloseSpider, ctx: &mut Context<Self>) {
        self.close(msg.reason, ctx);
    }
}

impl Handler<GetEngineStatus> for Engine {
    type Result = EngineStatus;
    fn handle(&mut self, _: GetEngineStatus, _: &mut Context<Self>) -> EngineStatus {
        EngineStatus {
            downloading: self.downloading,
            parsing: self.parsing,
            active_bytes: self.active_bytes,
            items: self.items,
            scheduled: self.pending,
            start_requests_pending: self.start.is_some() || self.start_pulling,
            paused: self.paused,
            closing: match &self.phase {
                Phase::Closing(r) => Some(r.to_string()),
                _ => None,
            },
        }
    }
}

impl Handler<SetPaused> for Engine {
    type Result = ();
    fn handle(&mut self, msg: SetPaused, ctx: &mut Context<Self>) {
        if self.paused == msg.0 {
            return;
        }
        self.paused = msg.0;
        if self.paused {
            log::info!("Engine paused");
        } else {
            log::info!("Engine unpaused");
            self.pump(ctx);
        }
    }
}

/// How many rescheduled requests (redirects, retries) an inline download follows.
const MAX_INLINE_HOPS: usize = 32;

impl Handler<Download> for Engine {
    type Result = ResponseActFuture<Self, Result<Response, DownloadError>>;

    /// Scrapy's `engine.download`: counted in flight (so the spider is neither idle nor
    /// finished meanwhile), through the Downloader, rescheduled requests followed, the
    /// response announced as `ResponseReceived` and handed to the caller.
    fn handle(&mut self, msg: Download, _: &mut Context<Self>) -> Self::Result {
        if self.phase == Phase::Finishing {
            return Box::pin(actix::fut::ready(Err(DownloadError::Cancelled)));
        }
        self.downloading += 1;
        let downloader = self.downloader.clone();
        let mut request = msg.0;
        let fut = async move {
            for _ in 0..MAX_INLINE_HOPS {
                let label = format!("<{} {}>", request.method, request.url);
                match downloader.send(Fetch(request)).await {
                    Ok(Fetched::Response(response)) => return Ok((response, label)),
                    Ok(Fetched::Reschedule(next)) => request = next,
                    Ok(Fetched::Failed(_, e)) => return Err(e),
                    Err(_) => return Err(DownloadError::Cancelled),
                }
            }
            Err(DownloadError::Other(format!(
                "inline download still rescheduled after {MAX_INLINE_HOPS} hops"
            )))
        };
        Box::pin(fut.into_actor(self).map(|res, act, ctx| {
            act.downloading -= 1;
            let res = res.map(|(response, label)| {
                log::debug!("Crawled ({}) {label} (inline download)", response.status);
                act.bus.emit(ResponseReceived {
                    response: Arc::new(response.clone()),
                });
                response
            });
            act.pump(ctx);
            res
        }))
    }
}

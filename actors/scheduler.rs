//! The Scheduler actor: a mailbox around a [`RequestScheduler`] (Scrapy's interface —
//! enqueue → accepted?, next request, pending count, close; see
//! [`crate::scheduler`]). It never calls the Engine, so the Engine may await it without
//! deadlock.
//!
//! Commands: [`Enqueue`], [`NextRequests`], [`Done`], [`CloseScheduler`]. It emits no
//! signal: like Scrapy's `enqueue_request → bool` it answers which requests it refused,
//! and the Engine sends `RequestScheduled` (before) and `RequestDropped` (for those).
//! A scheduler error (a disk queue that cannot be written) is logged and counted
//! (`scheduler/errors`); the requests concerned are handed back as refused.

use std::sync::Arc;

use actix::prelude::*;

use crate::handle::StatsHandle;
use crate::http::Request;
use crate::jobdir::Jobdir;
use crate::scheduler::{save_start_offset, RequestScheduler, Scheduled, Ticket};

/// Offers requests; answers with the number still pending afterwards and the
/// requests the duplicate filter refused.
#[derive(Debug, Message)]
#[rtype(result = "Batch")]
pub struct Enqueue {
    /// The requests.
    pub requests: Vec<Request>,
    /// The requests come from the spider's start stream (they go to the start queues).
    pub start: bool,
    /// For requests from the spider's start stream: how many start entries have been
    /// consumed in all, these included (persisted with a `JOBDIR`).
    pub start_consumed: Option<u64>,
}

impl Enqueue {
    /// Requests that are not start requests.
    pub fn new(requests: Vec<Request>) -> Self {
        Enqueue {
            requests,
            start: false,
            start_consumed: None,
        }
    }
}

/// Takes up to `max` requests, highest priority first.
#[derive(Debug, Message)]
#[rtype(result = "Batch")]
pub struct NextRequests {
    /// At most this many.
    pub max: usize,
}

/// Requests handed out with these tickets are finished (see
/// [`RequestScheduler::done`]); made durable before the answer.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Done(pub Vec<Ticket>);

/// What [`NextRequests`] returns.
#[derive(Debug, Default, actix::MessageResponse)]
pub struct Batch {
    /// The requests, in order.
    pub requests: Vec<Scheduled>,
    /// How many are still pending after these.
    pub pending: usize,
    /// The scheduler's operation counter when it answered: replies may be handled
    /// out of order by the caller, and only the newest `pending` is true.
    pub seq: u64,
    /// The offered requests the duplicate filter refused (Scrapy's `enqueue_request`
    /// answering false), handed back so the Engine can emit `RequestDropped`.
    pub refused: Vec<Request>,
}

/// The crawl is over: log what was left.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct CloseScheduler;

/// The scheduler actor.
pub struct Scheduler {
    inner: Box<dyn RequestScheduler>,
    job: Option<Arc<Jobdir>>,
    seq: u64,
    stats: StatsHandle,
    failed: bool,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("pending", &self.inner.pending())
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A mailbox around `inner`; `job` is the open `JOBDIR`, if any.
    pub fn new(
        inner: Box<dyn RequestScheduler>,
        job: Option<Arc<Jobdir>>,
        stats: StatsHandle,
    ) -> Self {
        if let Some(n) = inner.resumed_pending() {
            log::info!("Resuming crawl ({n} requests scheduled)");
        }
        Scheduler {
            inner,
            job,
            seq: 0,
            stats,
            failed: false,
        }
    }

    fn fail(&mut self, what: &str, e: crate::scheduler::SchedulerError) {
        self.stats.inc("scheduler/errors");
        if !self.failed {
            self.failed = true;
            log::error!("Scheduler failed to {what}: {e}");
        } else {
            log::debug!("Scheduler failed to {what}: {e}");
        }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;
}

impl Handler<Enqueue> for Scheduler {
    type Result = Batch;
    fn handle(&mut self, msg: Enqueue, _: &mut Context<Self>) -> Batch {
        self.seq += 1;
        let mut refused = Vec::new();
        for request in msg.requests {
            let offered = if msg.start {
                self.inner.enqueue_start(request)
            } else {
                self.inner.enqueue(request)
            };
            match offered {
                Ok(None) => {}
                Ok(Some(r)) => refused.push(r),
                Err(e) => self.fail("enqueue a request", e),
            }
        }
        if let (Some(job), Some(consumed)) = (&self.job, msg.start_consumed) {
            // The start requests are in the log before the offset says they were taken.
            match self.inner.flush() {
                Ok(()) => {
                    if let Err(e) = save_start_offset(job, consumed) {
                        log::error!(
                            "Cannot save the start offset in {}: {e}",
                            job.path().display()
                        );
                    }
                }
                Err(e) => self.fail("write the queue", e),
            }
        }
        Batch {
            requests: Vec::new(),
            pending: self.inner.pending(),
            seq: self.seq,
            refused,
        }
    }
}

impl Handler<NextRequests> for Scheduler {
    type Result = Batch;
    fn handle(&mut self, msg: NextRequests, _: &mut Context<Self>) -> Batch {
        self.seq += 1;
        let mut requests = Vec::with_capacity(msg.max.min(1024));
        while requests.len() < msg.max {
            match self.inner.next() {
                Ok(Some(s)) => requests.push(s),
                Ok(None) => break,
                Err(e) => {
                    self.fail("read the queue", e);
                    break;
                }
            }
        }
        Batch {
            requests,
            pending: self.inner.pending(),
            seq: self.seq,
            refused: Vec::new(),
        }
    }
}

impl Handler<Done> for Scheduler {
    type Result = ();
    fn handle(&mut self, msg: Done, _: &mut Context<Self>) {
        if let Err(e) = self.inner.done(&msg.0).and_then(|()| self.inner.flush()) {
            self.fail("record finished requests", e);
        }
    }
}

impl Handler<CloseScheduler> for Scheduler {
    type Result = usize;
    fn handle(&mut self, _: CloseScheduler, ctx: &mut Context<Self>) -> usize {
        let left = match self.inner.close() {
            Ok(left) => left,
            Err(e) => {
                self.fail("close", e);
                self.inner.pending()
            }
        };
        if left > 0 {
            match &self.job {
                Some(job) => log::info!(
                    "Scheduler closed with {left} requests still pending, kept in {} for the next run",
                    job.path().display()
                ),
                None => log::info!("Scheduler closed with {left} requests still pending"),
            }
        }
        ctx.stop();
        left
    }
}

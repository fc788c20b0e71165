//! The Scheduler: Scrapy's tiny interface — enqueue (→ accepted?), next request,
//! pending count, close — over the memory priority queue and the duplicate filter.
//! It never calls the Engine, so the Engine may await it without deadlock.
//!
//! Commands: [`Enqueue`], [`NextRequests`], [`CloseScheduler`]. It emits no signal:
//! like Scrapy's `enqueue_request → bool` it answers which requests it refused, and
//! the Engine sends `RequestScheduled` (before) and `RequestDropped` (for those).
//! Stats: `scheduler/enqueued[/memory]`, `scheduler/dequeued[/memory]`,
//! `dupefilter/filtered`.

use actix::prelude::*;

use crate::dupefilter::MemoryDupeFilter;
use crate::error::ConfigError;
use crate::handle::StatsHandle;
use crate::http::Request;
use crate::queue::{MemoryQueue, QueueOrder};
use crate::settings::Settings;

/// Offers requests; answers with the number still pending afterwards and the
/// requests the duplicate filter refused.
#[derive(Debug, Message)]
#[rtype(result = "Batch")]
pub struct Enqueue(pub Vec<Request>);

/// Takes up to `max` requests, highest priority first.
#[derive(Debug, Message)]
#[rtype(result = "Batch")]
pub struct NextRequests {
    /// At most this many.
    pub max: usize,
}

/// What [`NextRequests`] returns.
#[derive(Debug, Default, actix::MessageResponse)]
pub struct Batch {
    /// The requests, in order.
    pub requests: Vec<Request>,
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
#[derive(Debug)]
pub struct Scheduler {
    queue: MemoryQueue,
    dupefilter: MemoryDupeFilter,
    debug: bool,
    logged_dupe: bool,
    seq: u64,
    stats: StatsHandle,
}

impl Scheduler {
    /// Reads `SCHEDULER_MEMORY_QUEUE` and `DUPEFILTER_DEBUG`.
    pub fn from_settings(settings: &Settings, stats: StatsHandle) -> Result<Self, ConfigError> {
        Ok(Scheduler {
            queue: MemoryQueue::new(QueueOrder::from_setting(
                &settings.get_str("SCHEDULER_MEMORY_QUEUE"),
            )?),
            dupefilter: MemoryDupeFilter::default(),
            debug: settings.get_bool("DUPEFILTER_DEBUG")?,
            logged_dupe: false,
            seq: 0,
            stats,
        })
    }
}

impl Scheduler {
    /// Adds `n` to each counter (one message per key per batch, not per request).
    fn count(&self, keys: &[&'static str], n: i64) {
        if n > 0 {
            for key in keys {
                self.stats.inc_by(*key, n);
            }
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
        let mut accepted = 0i64;
        let mut refused = Vec::new();
        for request in msg.0 {
            // As in Scrapy, a `dont_filter` request is neither checked nor remembered.
            if !request.dont_filter && self.dupefilter.request_seen(&request) {
                if self.debug {
                    log::debug!(
                        "Filtered duplicate request: <{} {}>",
                        request.method,
                        request.url
                    );
                } else if !self.logged_dupe {
                    self.logged_dupe = true;
                    log::debug!(
                        "Filtered duplicate request: <{} {}> - no more duplicates will be shown (see DUPEFILTER_DEBUG to show all duplicates)",
                        request.method,
                        request.url
                    );
                }
                refused.push(request);
                continue;
            }
            self.queue.push(request);
            accepted += 1;
        }
        self.count(
            &["scheduler/enqueued/memory", "scheduler/enqueued"],
            accepted,
        );
        self.count(&["dupefilter/filtered"], refused.len() as i64);
        Batch {
            requests: Vec::new(),
            pending: self.queue.len(),
            seq: self.seq,
            refused,
        }
    }
}

impl Handler<NextRequests> for Scheduler {
    type Result = Batch;
    fn handle(&mut self, msg: NextRequests, _: &mut Context<Self>) -> Batch {
        self.seq += 1;
        let requests: Vec<Request> = std::iter::from_fn(|| self.queue.pop())
            .take(msg.max)
            .collect();
        self.count(
            &["scheduler/dequeued/memory", "scheduler/dequeued"],
            requests.len() as i64,
        );
        Batch {
            requests,
            pending: self.queue.len(),
            seq: self.seq,
            refused: Vec::new(),
        }
    }
}

impl Handler<CloseScheduler> for Scheduler {
    type Result = usize;
    fn handle(&mut self, _: CloseScheduler, ctx: &mut Context<Self>) -> usize {
        let left = self.queue.len();
        if left > 0 {
            log::info!("Scheduler closed with {left} requests still pending");
        }
        ctx.stop();
        left
    }
}

//! Spider workers: the user's callbacks run here, on a pool of arbiters separate
//! from the I/O arbiter, so HTML parsing uses every core while the Slots keep sockets
//! busy. Each worker holds the shared spider; a callback's future may hold a parsed
//! (non-`Send`) document across `.await` because it never leaves its worker's thread.
//! A panicking callback is caught and returned as a `Panic` error: the worker lives on.
//!
//! Commands: [`Parse`], [`RunErrback`].

use std::sync::Arc;

use actix::prelude::*;

use crate::error::catch_panic;
use crate::handle::StatsHandle;
use crate::http::response::document_scope;
use crate::http::Response;
use crate::spider::{CallbackData, CallbackResult, DynSpider, Failure, SpiderError};

/// Runs the request's callback on a response.
#[derive(Debug, Message)]
#[rtype(result = "CallbackResult")]
pub struct Parse {
    /// The response.
    pub response: Arc<Response>,
}

/// Runs an errback on a failure.
#[derive(Debug, Message)]
#[rtype(result = "CallbackResult")]
pub struct RunErrback {
    /// The errback.
    pub errback: CallbackData,
    /// What failed.
    pub failure: Failure,
}

/// One worker.
pub struct SpiderWorker {
    spider: Arc<dyn DynSpider>,
    stats: StatsHandle,
}

impl std::fmt::Debug for SpiderWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpiderWorker")
            .field("spider", &self.spider.name())
            .finish()
    }
}

impl SpiderWorker {
    /// A worker for `spider`, counting documents cut at an HTML limit in `stats`.
    pub fn new(spider: Arc<dyn DynSpider>, stats: StatsHandle) -> Self {
        SpiderWorker { spider, stats }
    }
}

/// Counts the HTML limits a callback's documents hit (`html/truncated_count`,
/// `html/truncated/<kind>`).
fn count_limits(stats: &StatsHandle, hits: Vec<&'static str>) {
    for kind in hits {
        stats.inc("html/truncated_count");
        stats.inc(format!("html/truncated/{kind}"));
    }
}

impl Actor for SpiderWorker {
    type Context = Context<Self>;
}

impl Handler<Parse> for SpiderWorker {
    type Result = ResponseFuture<CallbackResult>;
    fn handle(&mut self, msg: Parse, _: &mut Context<Self>) -> Self::Result {
        let spider = self.spider.clone();
        let stats = self.stats.clone();
        Box::pin(async move {
            let (result, hits) = document_scope(async move {
                let callback = msg.response.request.callback.as_ref();
                catch_panic(spider.call(callback, &msg.response))
                    .await
                    .unwrap_or_else(|p| Err(SpiderError::new("Panic", p)))
            })
            .await;
            count_limits(&stats, hits);
            result
        })
    }
}

impl Handler<RunErrback> for SpiderWorker {
    type Result = ResponseFuture<CallbackResult>;
    fn handle(&mut self, msg: RunErrback, _: &mut Context<Self>) -> Self::Result {
        let spider = self.spider.clone();
        let stats = self.stats.clone();
        Box::pin(async move {
            let (result, hits) = document_scope(async move {
                catch_panic(spider.call_errback(&msg.errback, &msg.failure))
                    .await
                    .unwrap_or_else(|p| Err(SpiderError::new("Panic", p)))
            })
            .await;
            count_limits(&stats, hits);
            result
        })
    }
}

/// The pool: one arbiter (thread) per worker.
#[derive(Debug)]
pub struct WorkerPool {
    arbiters: Vec<Arbiter>,
    workers: Vec<Addr<SpiderWorker>>,
    next: usize,
}

impl WorkerPool {
    /// Starts `n` workers (0: one per core).
    pub fn start(spider: Arc<dyn DynSpider>, n: usize, stats: StatsHandle) -> Self {
        let n = if n == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            n
        };
        let mut arbiters = Vec::with_capacity(n);
        let mut workers = Vec::with_capacity(n);
        for _ in 0..n {
            let arbiter = Arbiter::new();
            let s = spider.clone();
            let st = stats.clone();
            workers.push(SpiderWorker::start_in_arbiter(
                &arbiter.handle(),
                move |_| SpiderWorker::new(s, st),
            ));
            arbiters.push(arbiter);
        }
        WorkerPool {
            arbiters,
            workers,
            next: 0,
        }
    }

    /// How many workers there are.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether there are none (stopped).
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// The next worker, round robin.
    pub fn pick(&mut self) -> Addr<SpiderWorker> {
        let w = self.workers[self.next % self.workers.len()].clone();
        self.next = self.next.wrapping_add(1);
        w
    }

    /// Stops the worker threads.
    pub fn stop(&mut self) {
        self.workers.clear();
        for a in self.arbiters.drain(..) {
            a.stop();
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.stop();
    }
}

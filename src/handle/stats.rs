//! [`StatsHandle`]: the stats collector as a component sees it. It sends the
//! [`StatsOp`], [`GetStats`] and [`GetValue`] messages of [`crate::stats`].

use std::future::Future;
use std::sync::Arc;

use actix::{Actor, Addr, Context, Handler, Recipient};
use serde_json::Value;

use crate::stats::{GetStats, GetValue, Key, StatsMap, StatsOp};

/// Where a [`StatsHandle`] sends: changes, and the two queries. Usually all three are
/// one actor's ([`StatsHandle::from_addr`]).
#[derive(Debug, Clone)]
pub struct StatsRecipients {
    /// Receives every change.
    pub ops: Recipient<StatsOp>,
    /// Answers "all stats".
    pub all: Recipient<GetStats>,
    /// Answers "one value".
    pub value: Recipient<GetValue>,
}

/// Increments, sets and reads the crawl's stats (Scrapy's `crawler.stats`).
///
/// Every change is one fire-and-forget message, in order; a read sees every change the
/// same handle sent before it. A test can put its own actor where the stats go:
///
/// ```
/// use actix::prelude::*;
/// use arachne::handle::StatsHandle;
/// use arachne::stats::{GetStats, GetValue, StatsMap, StatsOp, StatsValues};
///
/// /// Keeps the stats like the real collector and counts the changes.
/// #[derive(Default)]
/// struct Probe { values: StatsValues, changes: usize }
/// impl Actor for Probe { type Context = Context<Self>; }
/// impl Handler<StatsOp> for Probe {
///     type Result = ();
///     fn handle(&mut self, op: StatsOp, _: &mut Context<Self>) {
///         self.changes += 1;
///         self.values.apply(op);
///     }
/// }
/// impl Handler<GetStats> for Probe {
///     type Result = MessageResult<GetStats>;
///     fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
///         MessageResult(self.values.all().clone())
///     }
/// }
/// impl Handler<GetValue> for Probe {
///     type Result = Option<serde_json::Value>;
///     fn handle(&mut self, q: GetValue, _: &mut Context<Self>) -> Self::Result {
///         self.values.get(&q.0).cloned()
///     }
/// }
///
/// System::new().block_on(async {
///     let stats = StatsHandle::from_addr(&Probe::default().start());
///     stats.inc("pages");
///     stats.inc_by("pages", 2);
///     stats.max("depth", 4.0);
///     stats.set("finish_reason", "finished");
///     assert_eq!(stats.get("pages").await, Some(3.into()));
///     assert_eq!(stats.get_all().await.len(), 3);
/// });
/// ```
#[derive(Clone)]
pub struct StatsHandle {
    inner: Arc<StatsRecipients>,
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatsHandle")
    }
}

impl StatsHandle {
    /// A handle sending to these recipients.
    pub fn new(recipients: StatsRecipients) -> Self {
        StatsHandle {
            inner: Arc::new(recipients),
        }
    }

    /// A handle sending everything to one actor.
    pub fn from_addr<A>(addr: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>> + Handler<StatsOp> + Handler<GetStats> + Handler<GetValue>,
    {
        StatsHandle::new(StatsRecipients {
            ops: addr.clone().recipient(),
            all: addr.clone().recipient(),
            value: addr.clone().recipient(),
        })
    }

    /// Applies a change (what the other methods send).
    pub fn apply(&self, op: StatsOp) {
        self.inner.ops.do_send(op);
    }

    /// Adds one to a counter (Scrapy's `inc_value(key)`).
    pub fn inc(&self, key: impl Into<Key>) {
        self.inc_by(key, 1);
    }

    /// Adds `by` to a counter (Scrapy's `inc_value(key, count)`).
    pub fn inc_by(&self, key: impl Into<Key>, by: i64) {
        self.apply(StatsOp::Inc {
            key: key.into(),
            by,
        });
    }

    /// Sets a value (Scrapy's `set_value`).
    pub fn set(&self, key: impl Into<Key>, value: impl Into<Value>) {
        self.apply(StatsOp::Set {
            key: key.into(),
            value: value.into(),
        });
    }

    /// Keeps the larger of the current value and `value` (Scrapy's `max_value`).
    pub fn max(&self, key: impl Into<Key>, value: f64) {
        self.apply(StatsOp::Max {
            key: key.into(),
            value,
        });
    }

    /// Keeps the smaller of the current value and `value` (Scrapy's `min_value`).
    pub fn min(&self, key: impl Into<Key>, value: f64) {
        self.apply(StatsOp::Min {
            key: key.into(),
            value,
        });
    }

    /// One value (`None` if unset, or if the collector is gone).
    pub fn get(&self, key: impl Into<Key>) -> impl Future<Output = Option<Value>> + 'static {
        let request = self.inner.value.send(GetValue(key.into()));
        async move { request.await.ok().flatten() }
    }

    /// Every value (empty if the collector is gone).
    pub fn get_all(&self) -> impl Future<Output = StatsMap> + 'static {
        let request = self.inner.all.send(GetStats);
        async move {
            request.await.unwrap_or_else(|e| {
                log::error!("stats collector gone: {e}");
                StatsMap::new()
            })
        }
    }
}

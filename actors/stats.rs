//! The Stats collector: Scrapy's `StatsCollector` as an actor — the mailbox around the
//! plain [`StatsValues`] of `crate::stats`. Components reach it through a
//! [`StatsHandle`] ([`Stats::start_handle`]).
//!
//! Handles: `StatsOp` (changes), `GetStats` and `GetValue` (queries).

use actix::prelude::*;
use serde_json::Value;

use crate::handle::StatsHandle;
use crate::stats::{GetStats, GetValue, StatsOp, StatsValues};

/// The collector.
#[derive(Debug, Default)]
pub struct Stats {
    values: StatsValues,
}

impl Stats {
    /// Empty stats.
    pub fn new() -> Self {
        Stats::default()
    }

    /// Starts a collector and answers the handle to it.
    pub fn start_handle() -> StatsHandle {
        StatsHandle::from_addr(&Stats::new().start())
    }
}

impl StatsHandle {
    /// A handle to a new, empty collector of the kind a crawl uses: for tests and tools
    /// that run a component outside a crawl (needs a running actix System).
    ///
    /// ```
    /// actix::System::new().block_on(async {
    ///     let stats = arachne::handle::StatsHandle::collector();
    ///     stats.inc("pages");
    ///     assert_eq!(stats.get("pages").await, Some(1.into()));
    /// });
    /// ```
    pub fn collector() -> StatsHandle {
        Stats::start_handle()
    }
}

impl Actor for Stats {
    type Context = Context<Self>;
}

impl Handler<StatsOp> for Stats {
    type Result = ();
    fn handle(&mut self, op: StatsOp, _: &mut Context<Self>) {
        self.values.apply(op);
    }
}

impl Handler<GetStats> for Stats {
    type Result = MessageResult<GetStats>;
    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.values.all().clone())
    }
}

impl Handler<GetValue> for Stats {
    type Result = Option<Value>;
    fn handle(&mut self, msg: GetValue, _: &mut Context<Self>) -> Self::Result {
        self.values.get(&msg.0).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Changes sent through a handle are applied in order and read back.
    #[actix::test]
    async fn counters() {
        let stats = Stats::start_handle();
        stats.inc("a");
        stats.inc_by("a", 2);
        stats.max("m", 3.0);
        stats.max("m", 1.0);
        let all = stats.get_all().await;
        assert_eq!(all["a"], 3);
        assert_eq!(all["m"], 3);
        assert_eq!(stats.get("a").await, Some(3.into()));
        assert_eq!(stats.get("missing").await, None);
    }
}

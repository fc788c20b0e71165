//! The ItemPipeline actor: passes each item through the ordered stages of
//! `ITEM_PIPELINES`, at most `CONCURRENT_ITEMS` items at once (the rest wait here and
//! the Engine slows down: it counts items in flight). A stage may drop an item
//! (`ItemDropped`) or fail (`ItemError`); both are logged and the crawl goes on.
//! Surviving items are announced as `ItemScraped`, awaited, so a slow exporter slows
//! the crawl instead of buffering without bound.
//!
//! Commands: [`OpenPipeline`], [`ProcessItem`], [`ClosePipeline`].

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::error::catch_panic;
use crate::handle::SignalsHandle;
use crate::http::Response;
use crate::item::Item;
use crate::pipeline::{ItemPipeline as Stage, PipelineError};
use crate::signals::{ItemDropped, ItemError, ItemScraped};

/// What happened to an item.
#[derive(Debug, Clone, PartialEq, Eq, MessageResponse)]
pub enum ItemOutcome {
    /// Passed every stage.
    Scraped,
    /// A stage dropped it.
    Dropped,
    /// A stage failed.
    Failed,
}

/// Runs `open_spider` on every stage.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct OpenPipeline;

/// Processes one item.
#[derive(Debug, Message)]
#[rtype(result = "ItemOutcome")]
pub struct ProcessItem {
    /// The item.
    pub item: Item,
    /// The response it came from.
    pub response: Option<Arc<Response>>,
}

/// Runs `close_spider` on every stage.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ClosePipeline;

/// The pipeline actor.
pub struct ItemPipeline {
    stages: Rc<Vec<(String, Box<dyn Stage>)>>,
    max_active: usize,
    active: usize,
    waiting: VecDeque<(ProcessItem, oneshot::Sender<ItemOutcome>)>,
    bus: SignalsHandle,
}

impl std::fmt::Debug for ItemPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemPipeline")
            .field(
                "stages",
                &self.stages.iter().map(|s| &s.0).collect::<Vec<_>>(),
            )
            .field("active", &self.active)
            .finish()
    }
}

impl ItemPipeline {
    /// A pipeline over named stages, in order.
    pub fn new(
        stages: Vec<(String, Box<dyn Stage>)>,
        max_active: usize,
        bus: SignalsHandle,
    ) -> Self {
        ItemPipeline {
            stages: Rc::new(stages),
            max_active: max_active.max(1),
            active: 0,
            waiting: VecDeque::new(),
            bus,
        }
    }

    fn run(&mut self, msg: ProcessItem, tx: oneshot::Sender<ItemOutcome>, ctx: &mut Context<Self>) {
        self.active += 1;
        let stages = self.stages.clone();
        let bus = self.bus.clone();
        let fut = async move {
            let ProcessItem { mut item, response } = msg;
            for (name, stage) in stages.iter() {
                let before = item.clone();
                let result = catch_panic(stage.process_item(item))
                    .await
                    .unwrap_or_else(|p| Err(PipelineError::Error(format!("stage panicked: {p}"))));
                match result {
                    Ok(next) => item = next,
                    Err(PipelineError::Drop(d)) => {
                        log::warn!("Dropped: {} ({name})\n{}", d.message, before.to_json());
                        bus.emit_await(ItemDropped {
                            item: Arc::new(before),
                            response,
                            kind: d.kind,
                            reason: d.message,
                        })
                        .await;
                        return ItemOutcome::Dropped;
                    }
                    Err(PipelineError::Error(e)) => {
                        log::error!("Error processing {} in stage {name}: {e}", before.to_json());
                        bus.emit_await(ItemError {
                            item: Arc::new(before),
                            response,
                            error: e,
                        })
                        .await;
                        return ItemOutcome::Failed;
                    }
                }
            }
            if log::log_enabled!(log::Level::Debug) {
                let from = response.as_ref().map(|r| r.url.as_str()).unwrap_or("-");
                log::debug!("Scraped from <{from}>\n{}", item.to_json());
            }
            bus.emit_await(ItemScraped {
                item: Arc::new(item),
                response,
            })
            .await;
            ItemOutcome::Scraped
        };
        ctx.spawn(fut.into_actor(self).map(|outcome, act, ctx| {
            let _ = tx.send(outcome);
            act.active -= 1;
            if let Some((msg, tx)) = act.waiting.pop_front() {
                act.run(msg, tx, ctx);
            }
        }));
    }
}

impl Actor for ItemPipeline {
    type Context = Context<Self>;
}

impl Handler<OpenPipeline> for ItemPipeline {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: OpenPipeline, _: &mut Context<Self>) -> Self::Result {
        let stages = self.stages.clone();
        Box::pin(async move {
            for (_, s) in stages.iter() {
                s.open_spider().await;
            }
        })
    }
}

impl Handler<ProcessItem> for ItemPipeline {
    type Result = ResponseFuture<ItemOutcome>;
    fn handle(&mut self, msg: ProcessItem, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.active < self.max_active {
            self.run(msg, tx, ctx);
        } else {
            self.waiting.push_back((msg, tx));
        }
        Box::pin(async move { rx.await.unwrap_or(ItemOutcome::Failed) })
    }
}

impl Handler<ClosePipeline> for ItemPipeline {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: ClosePipeline, _: &mut Context<Self>) -> Self::Result {
        let stages = self.stages.clone();
        Box::pin(async move {
            for (_, s) in stages.iter() {
                s.close_spider().await;
            }
        })
    }
}

//! The item pipeline's stage trait. Stages are ordered by `ITEM_PIPELINES` (lower
//! first), each may transform, drop ([`DropItem`]) or fail an item. The
//! [`ItemPipeline`](crate::actors::pipeline::ItemPipeline) actor runs up to
//! `CONCURRENT_ITEMS` items at once through the stages.

use crate::item::Item;
use crate::spider::SpiderError;

/// How a stage refuses an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineError {
    /// Drop the item: counted in `item_dropped_count` and
    /// `item_dropped_reasons_count/<kind>`, signalled as `ItemDropped`, not exported.
    Drop(DropItem),
    /// The stage failed: signalled as `ItemError`, logged, counted in
    /// `item_error_count`; the crawl goes on.
    Error(String),
}

/// Scrapy's `DropItem`.
///
/// ```
/// use arachne::pipeline::{DropItem, PipelineError};
/// let e: PipelineError = DropItem::new("missing price").into();
/// assert!(matches!(e, PipelineError::Drop(d) if d.kind == "DropItem"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropItem {
    /// The name counted in `item_dropped_reasons_count/<kind>`; `DropItem` unless a
    /// stage distinguishes its reasons (Scrapy uses the exception class name).
    pub kind: String,
    /// Logged with the item.
    pub message: String,
}

impl DropItem {
    /// A drop with Scrapy's kind, `DropItem`.
    pub fn new(message: impl Into<String>) -> Self {
        DropItem {
            kind: "DropItem".to_string(),
            message: message.into(),
        }
    }

    /// A drop with a kind of its own (e.g. `DuplicateItem`).
    pub fn with_kind(kind: impl Into<String>, message: impl Into<String>) -> Self {
        DropItem {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl From<DropItem> for PipelineError {
    fn from(d: DropItem) -> Self {
        PipelineError::Drop(d)
    }
}

impl From<SpiderError> for PipelineError {
    fn from(e: SpiderError) -> Self {
        PipelineError::Error(e.to_string())
    }
}

/// One stage of the item pipeline.
///
/// Stages run on the I/O arbiter, several items at once, so `process_item` takes
/// `&self`: keep mutable state in a `RefCell`/`Cell` (futures need not be `Send`).
///
/// ```
/// use arachne::prelude::*;
///
/// struct RequirePrice;
///
/// #[async_trait(?Send)]
/// impl ItemPipeline for RequirePrice {
///     async fn process_item(&self, item: Item) -> Result<Item, PipelineError> {
///         if item.get("price").is_none() {
///             return Err(DropItem::new("missing price").into());
///         }
///         Ok(item)
///     }
/// }
/// ```
#[async_trait::async_trait(?Send)]
pub trait ItemPipeline: 'static {
    /// Called when the spider opens.
    async fn open_spider(&self) {}
    /// Processes one item.
    async fn process_item(&self, item: Item) -> Result<Item, PipelineError>;
    /// Called when the spider closes, after the last item.
    async fn close_spider(&self) {}
}

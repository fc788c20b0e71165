//! The item pipeline's stage trait. Stages are ordered by `ITEM_PIPELINES` (lower
//! first), each may transform, drop ([`DropItem`]) or fail an item. The
//! [`ItemPipeline`](crate::actors::pipeline::ItemPipeline) actor runs up to
//! `CONCURRENT_ITEMS` items at once through the stages.

use serde::de::DeserializeOwned;
use serde::Serialize;

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

/// A stage written against the user's own item type: items that deserialize into
/// [`TypedPipeline::Item`] are handed over typed, the result is merged back into the
/// item (fields the type does not declare are kept, in place); items of other shapes
/// pass through untouched, as a Scrapy stage checking `isinstance` would let them.
/// Register it wrapped in [`Typed`].
///
/// ```
/// use arachne::pipeline::{Typed, TypedPipeline};
/// use arachne::prelude::*;
///
/// #[derive(Serialize, Deserialize)]
/// struct Book { title: String, price: f64 }
///
/// struct WithVat;
///
/// #[async_trait(?Send)]
/// impl TypedPipeline for WithVat {
///     type Item = Book;
///     async fn process(&self, mut book: Book) -> Result<Book, PipelineError> {
///         if book.price < 0.0 {
///             return Err(DropItem::new("negative price").into());
///         }
///         book.price *= 1.2;
///         Ok(book)
///     }
/// }
///
/// actix::System::new().block_on(async {
///     let stage = Typed(WithVat);
///     let item = Item::from(json!({"title": "T", "price": 10.0, "url": "/t"}));
///     let out = stage.process_item(item).await.unwrap();
///     assert_eq!(out.to_json(), r#"{"title":"T","price":12.0,"url":"/t"}"#);
///     let other = Item::from(json!({"author": "A"}));
///     assert_eq!(stage.process_item(other.clone()).await.unwrap(), other);
/// });
/// ```
#[async_trait::async_trait(?Send)]
pub trait TypedPipeline: 'static {
    /// The item type this stage works on.
    type Item: Serialize + DeserializeOwned;
    /// Called when the spider opens.
    async fn open_spider(&self) {}
    /// Processes one item of this stage's type.
    async fn process(&self, item: Self::Item) -> Result<Self::Item, PipelineError>;
    /// Called when the spider closes, after the last item.
    async fn close_spider(&self) {}
}

/// Adapts a [`TypedPipeline`] to an [`ItemPipeline`] stage.
#[derive(Debug, Clone, Default)]
pub struct Typed<P>(pub P);

#[async_trait::async_trait(?Send)]
impl<P: TypedPipeline> ItemPipeline for Typed<P> {
    async fn open_spider(&self) {
        self.0.open_spider().await
    }

    async fn process_item(&self, item: Item) -> Result<Item, PipelineError> {
        let Ok(typed) = item.to::<P::Item>() else {
            return Ok(item);
        };
        let processed = self.0.process(typed).await?;
        let mut out = item;
        match serde_json::to_value(&processed) {
            Ok(serde_json::Value::Object(fields)) => {
                for (k, v) in fields {
                    out.set(k, v);
                }
                Ok(out)
            }
            Ok(other) => Err(PipelineError::Error(format!(
                "typed stage returned a non-object item: {other}"
            ))),
            Err(e) => Err(PipelineError::Error(format!(
                "typed stage's item does not serialize: {e}"
            ))),
        }
    }

    async fn close_spider(&self) {
        self.0.close_spider().await
    }
}

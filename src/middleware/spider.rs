//! The spider-middleware trait and its chain, as Scrapy's `SpiderMiddlewareManager`:
//! `process_spider_input` runs from the lowest order (nearest the engine) up before a
//! response reaches its callback — an error there sends the request to its errback
//! instead; `process_spider_output` and `process_spider_exception` run from the highest
//! order (nearest the spider) down on what a callback returned; `process_start_request`
//! sees each start request.
//!
//! The chain runs in the Engine actor on the I/O arbiter, so futures need not be
//! `Send`; the spider callbacks themselves run on the worker pool.

use std::sync::Arc;

use crate::error::ConfigError;
use crate::extension::{CrawlerHandle, Registry};
use crate::http::{Request, Response};
use crate::spider::{FailureKind, Output, OutputEntry, SpiderError};

/// A spider middleware. Every method has a pass-through default.
///
/// ```
/// use arachne::prelude::*;
/// use arachne::middleware::spider::SpiderMiddleware;
/// use arachne::spider::OutputEntry;
///
/// /// Drops items without a title.
/// struct RequireTitle;
///
/// #[async_trait(?Send)]
/// impl SpiderMiddleware for RequireTitle {
///     async fn process_spider_output(
///         &self,
///         _response: Option<&Response>,
///         _parent: &Request,
///         output: Vec<OutputEntry>,
///     ) -> Vec<OutputEntry> {
///         output
///             .into_iter()
///             .filter(|e| !matches!(e, OutputEntry::Item(i) if i.get("title").is_none()))
///             .collect()
///     }
/// }
/// ```
#[async_trait::async_trait(?Send)]
pub trait SpiderMiddleware: 'static {
    /// Called before a response reaches its callback. An `Err` keeps it from the
    /// callback: the request's errback gets the failure.
    async fn process_spider_input(&self, response: &Arc<Response>) -> Result<(), FailureKind> {
        let _ = response;
        Ok(())
    }

    /// Called on what a callback or errback returned (`response` is `None` for an
    /// errback of a failed download; `parent` is the request being handled).
    async fn process_spider_output(
        &self,
        response: Option<&Response>,
        parent: &Request,
        output: Vec<OutputEntry>,
    ) -> Vec<OutputEntry> {
        let _ = (response, parent);
        output
    }

    /// Called when a callback failed; `Some` output replaces the error (and goes
    /// through `process_spider_output` of the middlewares below this one).
    async fn process_spider_exception(
        &self,
        response: Option<&Response>,
        error: &SpiderError,
    ) -> Option<Output> {
        let _ = (response, error);
        None
    }

    /// Called on each start request; `None` drops it.
    fn process_start_request(&self, request: Request) -> Option<Request> {
        Some(request)
    }
}

/// Builds a spider middleware; `Ok(None)` means "not configured".
pub type SpiderMiddlewareFactory =
    dyn Fn(&CrawlerHandle) -> Result<Option<Box<dyn SpiderMiddleware>>, ConfigError> + Send + Sync;

/// Name → factory, for `SPIDER_MIDDLEWARES` / `_BASE`.
pub type SpiderMiddlewareRegistry = Registry<SpiderMiddlewareFactory>;

impl SpiderMiddlewareRegistry {
    /// Registers a factory under `name`.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        factory: impl Fn(&CrawlerHandle) -> Result<Option<Box<dyn SpiderMiddleware>>, ConfigError>
            + Send
            + Sync
            + 'static,
    ) -> &mut Self {
        self.insert(name, Arc::new(factory));
        self
    }
}

/// The ordered chain.
#[derive(Default)]
pub struct SpiderMiddlewares {
    chain: Vec<(String, Box<dyn SpiderMiddleware>)>,
}

impl SpiderMiddlewares {
    /// The enabled middlewares' names, in chain order (what the start-up log lists).
    pub fn names(&self) -> Vec<&str> {
        self.chain.iter().map(|(n, _)| n.as_str()).collect()
    }
}

impl std::fmt::Debug for SpiderMiddlewares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.chain.iter().map(|(n, _)| n))
            .finish()
    }
}

impl SpiderMiddlewares {
    /// Builds every middleware `SPIDER_MIDDLEWARES` / `_BASE` enables, in order.
    pub fn from_crawler(
        registry: &SpiderMiddlewareRegistry,
        crawler: &CrawlerHandle,
    ) -> Result<Self, ConfigError> {
        let mut chain = Vec::new();
        for (name, _) in crawler
            .settings
            .get_component_orders("SPIDER_MIDDLEWARES")?
        {
            let factory = registry.get(&name).ok_or_else(|| {
                ConfigError::Invalid(format!("SPIDER_MIDDLEWARES: no middleware named {name:?}"))
            })?;
            match factory(crawler)? {
                Some(mw) => chain.push((name, mw)),
                None => log::debug!("Spider middleware {name} not configured, skipped"),
            }
        }
        log::debug!(
            "Enabled spider middlewares: {:?}",
            chain.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        Ok(SpiderMiddlewares { chain })
    }

    /// Runs `process_spider_input`, lowest order first; the first error wins.
    pub async fn input(&self, response: &Arc<Response>) -> Result<(), FailureKind> {
        for (_, mw) in &self.chain {
            mw.process_spider_input(response).await?;
        }
        Ok(())
    }

    /// Runs `process_spider_output`, highest order first.
    pub async fn output(
        &self,
        response: Option<&Response>,
        parent: &Request,
        mut output: Vec<OutputEntry>,
    ) -> Vec<OutputEntry> {
        for (_, mw) in self.chain.iter().rev() {
            output = mw.process_spider_output(response, parent, output).await;
        }
        output
    }

    /// Runs `process_spider_exception`, highest order first; a middleware that
    /// recovers hands its output to the `process_spider_output` of those below it.
    pub async fn exception(
        &self,
        response: Option<&Response>,
        parent: &Request,
        error: &SpiderError,
    ) -> Option<Vec<OutputEntry>> {
        for (i, (_, mw)) in self.chain.iter().enumerate().rev() {
            if let Some(out) = mw.process_spider_exception(response, error).await {
                let mut entries = out.into_entries();
                for (_, below) in self.chain[..i].iter().rev() {
                    entries = below.process_spider_output(response, parent, entries).await;
                }
                return Some(entries);
            }
        }
        None
    }

    /// Runs `process_start_request`, highest order first.
    pub fn start_request(&self, mut request: Request) -> Option<Request> {
        for (_, mw) in self.chain.iter().rev() {
            request = mw.process_start_request(request)?;
        }
        Some(request)
    }
}

//! What an extension is built from, and the registry that `EXTENSIONS` /
//! `EXTENSIONS_BASE` (and `ITEM_PIPELINES`) name components in.
//!
//! An extension is an actor built by a factory from a [`CrawlerHandle`]; the factory
//! may answer "not configured" (`Ok(None)`) and is then skipped, exactly like Scrapy's
//! `NotConfigured`. Through the handle an extension reaches the settings, the spider
//! and the crawl's [handles](crate::handle): signals (subscribe, emit), stats (inc,
//! set, max, get), the engine (close the spider, pause, status, schedule, download)
//! and the downloader (read or set a slot's delay). Built-in extensions use nothing
//! else, so a user's extension can do whatever they do.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use actix::Recipient;

use crate::error::ConfigError;
pub use crate::handle::{DownloaderHandle, EngineHandle, SignalsHandle, StatsHandle};
use crate::settings::Settings;
use crate::signals::Signal;
use crate::spider::DynSpider;

/// Everything a component may use of the crawler it belongs to. Cloning it is a few
/// reference-count increments.
///
/// ```no_run
/// use actix::prelude::*;
/// use arachne::extension::{ComponentHandle, CrawlerHandle};
/// use arachne::signals::{CloseReason, ResponseReceived};
///
/// /// Closes the spider after its first response, counting why.
/// struct FirstPageOnly(CrawlerHandle);
///
/// impl Actor for FirstPageOnly {
///     type Context = Context<Self>;
///     fn started(&mut self, ctx: &mut Context<Self>) {
///         self.0.subscribe::<ResponseReceived>(ctx.address().recipient());
///     }
/// }
///
/// impl Handler<ResponseReceived> for FirstPageOnly {
///     type Result = ();
///     fn handle(&mut self, _: ResponseReceived, _: &mut Context<Self>) {
///         self.0.stats().inc("first_page_only/closed");
///         self.0.engine().close(CloseReason::from("first_page_only"));
///     }
/// }
///
/// fn factory(crawler: &CrawlerHandle) -> Result<Option<ComponentHandle>, arachne::error::ConfigError> {
///     Ok(Some(ComponentHandle::new(FirstPageOnly(crawler.clone()).start())))
/// }
/// ```
///
/// Tests build one around probe actors to drive an extension with synthetic signals,
/// no engine and no network (see `tests/extensions.rs`).
#[derive(Clone)]
pub struct CrawlerHandle {
    /// The crawler's final settings.
    pub settings: Arc<Settings>,
    /// The spider (for Scrapy's `getattr(spider, ...)` look-ups: [`Spider::attr`](crate::spider::Spider::attr)).
    pub spider: Arc<dyn DynSpider>,
    /// The spider's name.
    pub spider_name: Arc<str>,
    signals: SignalsHandle,
    stats: StatsHandle,
    engine: EngineHandle,
    downloader: DownloaderHandle,
    jobdir: Option<Arc<crate::jobdir::Jobdir>>,
}

impl std::fmt::Debug for CrawlerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrawlerHandle")
            .field("spider_name", &self.spider_name)
            .finish_non_exhaustive()
    }
}

impl CrawlerHandle {
    /// A handle over a crawl's parts (the crawler assembles it; tests build one
    /// around probes).
    pub fn new(
        settings: Arc<Settings>,
        spider: Arc<dyn DynSpider>,
        signals: SignalsHandle,
        stats: StatsHandle,
        engine: EngineHandle,
        downloader: DownloaderHandle,
    ) -> Self {
        CrawlerHandle {
            settings,
            spider_name: spider.name().into(),
            spider,
            signals,
            stats,
            engine,
            downloader,
            jobdir: None,
        }
    }

    /// The same handle, for a crawl with this open `JOBDIR`.
    pub fn with_jobdir(mut self, jobdir: Arc<crate::jobdir::Jobdir>) -> Self {
        self.jobdir = Some(jobdir);
        self
    }

    /// The crawl's job directory (`JOBDIR`), if it has one: components that keep state
    /// across runs of a job (feeds, spider state) look here.
    pub fn jobdir(&self) -> Option<&crate::jobdir::Jobdir> {
        self.jobdir.as_deref()
    }

    /// The signal bus.
    pub fn signals(&self) -> &SignalsHandle {
        &self.signals
    }

    /// The stats collector.
    pub fn stats(&self) -> &StatsHandle {
        &self.stats
    }

    /// The engine.
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    /// The downloader.
    pub fn downloader(&self) -> &DownloaderHandle {
        &self.downloader
    }

    /// Subscribes `recipient` to signal `S` (call it from `started()`); short for
    /// `signals().subscribe(..)`.
    pub fn subscribe<S: Signal>(&self, recipient: Recipient<S>)
    where
        S::Result: Send,
    {
        self.signals.subscribe(recipient);
    }

    /// Emits a signal of your own (or a built-in one) without waiting; short for
    /// `signals().emit(..)`.
    pub fn emit<S: Signal>(&self, signal: S)
    where
        S::Result: Send,
    {
        self.signals.emit(signal);
    }

    /// Emits a signal and waits until every subscriber has handled it; short for
    /// `signals().emit_await(..)`.
    pub async fn emit_await<S: Signal>(&self, signal: S)
    where
        S::Result: Send,
    {
        self.signals.emit_await(signal).await;
    }
}

/// Keeps a started component alive until the crawl ends (usually its `Addr`).
pub struct ComponentHandle(#[allow(dead_code)] Box<dyn Any>);

impl std::fmt::Debug for ComponentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ComponentHandle")
    }
}

impl ComponentHandle {
    /// Wraps anything that must live as long as the crawl.
    pub fn new<T: 'static>(inner: T) -> Self {
        ComponentHandle(Box::new(inner))
    }
}

/// Builds an extension: `Ok(None)` means "not configured", skip it.
pub type ExtensionFactory =
    Arc<dyn Fn(&CrawlerHandle) -> Result<Option<ComponentHandle>, ConfigError> + Send + Sync>;

/// Name → factory. Names are matched exactly, then by their last dotted segment, so
/// Scrapy's `scrapy.extensions.closespider.CloseSpider` finds `CloseSpider`.
///
/// ```
/// use arachne::extension::{ComponentHandle, Registry};
///
/// let mut reg = Registry::new();
/// reg.register("Mine", |_crawler| Ok(Some(ComponentHandle::new(()))));
/// assert!(reg.get("some.module.Mine").is_some());
/// ```
pub struct Registry<F: ?Sized> {
    factories: HashMap<String, Arc<F>>,
}

impl<F: ?Sized> Clone for Registry<F> {
    fn clone(&self) -> Self {
        Registry {
            factories: self.factories.clone(),
        }
    }
}

impl<F: ?Sized> std::fmt::Debug for Registry<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.factories.keys().collect();
        names.sort();
        f.debug_struct("Registry").field("names", &names).finish()
    }
}

impl<F: ?Sized> Default for Registry<F> {
    fn default() -> Self {
        Registry {
            factories: HashMap::new(),
        }
    }
}

impl<F: ?Sized> Registry<F> {
    /// Looks a name up, exactly then by its last dotted segment.
    pub fn get(&self, name: &str) -> Option<Arc<F>> {
        self.factories
            .get(name)
            .or_else(|| self.factories.get(name.rsplit('.').next().unwrap_or(name)))
            .cloned()
    }

    /// Registers an already shared factory.
    pub fn insert(&mut self, name: impl Into<String>, factory: Arc<F>) {
        self.factories.insert(name.into(), factory);
    }
}

type ExtFn = dyn Fn(&CrawlerHandle) -> Result<Option<ComponentHandle>, ConfigError> + Send + Sync;

impl Registry<ExtFn> {
    /// An empty extension registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers an extension factory under `name`.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        factory: impl Fn(&CrawlerHandle) -> Result<Option<ComponentHandle>, ConfigError>
            + Send
            + Sync
            + 'static,
    ) -> &mut Self {
        self.insert(name, Arc::new(factory));
        self
    }
}

/// The extension registry type.
pub type ExtensionRegistry = Registry<ExtFn>;

/// Starts every extension `EXTENSIONS` / `EXTENSIONS_BASE` enables, in order.
/// An unknown name is a configuration error (as an unimportable path is in Scrapy).
pub fn start_extensions(
    registry: &ExtensionRegistry,
    crawler: &CrawlerHandle,
) -> Result<Vec<(String, ComponentHandle)>, ConfigError> {
    let mut started = Vec::new();
    for (name, _order) in crawler.settings.get_component_orders("EXTENSIONS")? {
        let factory = registry.get(&name).ok_or_else(|| {
            ConfigError::Invalid(format!("EXTENSIONS: no extension named {name:?}"))
        })?;
        match factory(crawler)? {
            Some(h) => {
                started.push((name, h));
            }
            None => log::debug!("Extension {name} not configured, skipped"),
        }
    }
    Ok(started)
}

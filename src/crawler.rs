//! [`Crawler`] assembles one spider's actors — SignalBus, Stats, Scheduler,
//! Downloader, spider workers, ItemPipeline, extensions, Engine — and runs the crawl;
//! [`CrawlerProcess`] runs one spider or several in one process, at once or one after
//! another, handles SIGINT/SIGTERM (first: graceful `shutdown`; second: stop at once)
//! and returns each crawl's final stats.

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::actors::downloader::{Downloader, DownloaderConfig};
use crate::actors::engine::{Engine, EngineConfig, EngineParts, StartEngine};
use crate::actors::extensions;
use crate::actors::pipeline::ItemPipeline;
use crate::actors::scheduler::Scheduler;
use crate::actors::signal_bus::SignalBus;
use crate::actors::spider::WorkerPool;
use crate::actors::stats::Stats;
use crate::error::ConfigError;
use crate::extension::{
    start_extensions, ComponentHandle, CrawlerHandle, ExtensionRegistry, Registry,
};
use crate::handle::engine::CloseSpider;
use crate::handle::{DownloaderHandle, EngineHandle};
use crate::http::client::HttpClients;
use crate::jobdir::Jobdir;
use crate::middleware::downloader::{
    DownloaderMiddleware, DownloaderMiddlewareRegistry, DownloaderMiddlewares,
};
use crate::middleware::spider::{SpiderMiddleware, SpiderMiddlewareRegistry, SpiderMiddlewares};
use crate::pipeline::ItemPipeline as Stage;
use crate::scheduler::{Frontier, RequestScheduler};
use crate::settings::{Priority, Settings};
use crate::signals::CloseReason;
use crate::spider::{DynSpider, Spider};
use crate::stats::StatsMap;

/// Builds an item pipeline stage; `Ok(None)` means "not configured".
pub type PipelineFactory =
    dyn Fn(&CrawlerHandle) -> Result<Option<Box<dyn Stage>>, ConfigError> + Send + Sync;

/// The pipeline stage registry `ITEM_PIPELINES` names stages in.
pub type PipelineRegistry = Registry<PipelineFactory>;

/// Builds the crawl's scheduler (see [`crate::scheduler`]).
pub type SchedulerFactory =
    dyn Fn(&CrawlerHandle) -> Result<Box<dyn RequestScheduler>, ConfigError> + Send + Sync;

/// The scheduler registry `SCHEDULER` names a scheduler in; it holds Scrapy's default
/// (`scrapy.core.scheduler.Scheduler`, or just `Scheduler`).
pub type SchedulerRegistry = Registry<SchedulerFactory>;

fn builtin_schedulers() -> SchedulerRegistry {
    let mut r = SchedulerRegistry::default();
    r.insert(
        "Scheduler",
        Arc::new(|crawler: &CrawlerHandle| {
            let frontier = Frontier::from_settings(&crawler.settings, crawler.jobdir())?
                .with_stats(crawler.stats().clone());
            Ok(Box::new(frontier) as Box<dyn RequestScheduler>)
        }),
    );
    r
}

/// Why a crawl could not run.
#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    /// A setting is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The engine stopped without reporting its stats.
    #[error("the engine stopped unexpectedly")]
    EngineGone,
}

/// Every component registry a crawl builds from: extensions, item pipeline stages,
/// downloader and spider middlewares — the built-ins plus whatever the user
/// registered. Settings (`EXTENSIONS`, `ITEM_PIPELINES`, `DOWNLOADER_MIDDLEWARES`,
/// `SPIDER_MIDDLEWARES`) decide which are enabled and in what order.
#[derive(Debug, Clone)]
pub struct Components {
    /// Extensions by name.
    pub extensions: ExtensionRegistry,
    /// Pipeline stages by name.
    pub pipelines: PipelineRegistry,
    /// Downloader middlewares by name.
    pub downloader_middlewares: DownloaderMiddlewareRegistry,
    /// Spider middlewares by name.
    pub spider_middlewares: SpiderMiddlewareRegistry,
    /// Schedulers by name.
    pub schedulers: SchedulerRegistry,
}

impl Default for Components {
    fn default() -> Self {
        Components {
            extensions: extensions::builtin(),
            pipelines: PipelineRegistry::default(),
            downloader_middlewares: crate::middleware::builtin_downloader(),
            spider_middlewares: crate::middleware::builtin_spider(),
            schedulers: builtin_schedulers(),
        }
    }
}

/// Registration methods shared by [`Crawler`], [`CrawlerProcess`] and
/// [`Project`](crate::project::Project).
macro_rules! component_builders {
    () => {
        /// Registers an extension factory under `name`; enable it with `EXTENSIONS`.
        pub fn extension(
            mut self,
            name: &str,
            factory: impl Fn(&CrawlerHandle) -> Result<Option<ComponentHandle>, ConfigError>
                + Send
                + Sync
                + 'static,
        ) -> Self {
            self.components.extensions.register(name, factory);
            self
        }

        /// Registers a pipeline stage factory under `name`; enable it with `ITEM_PIPELINES`.
        pub fn pipeline(
            mut self,
            name: &str,
            factory: impl Fn(&CrawlerHandle) -> Result<Option<Box<dyn Stage>>, ConfigError>
                + Send
                + Sync
                + 'static,
        ) -> Self {
            self.components.pipelines.insert(name, Arc::new(factory));
            self
        }

        /// Registers a downloader middleware under `name`; enable it with
        /// `DOWNLOADER_MIDDLEWARES`.
        pub fn downloader_middleware(
            mut self,
            name: &str,
            factory: impl Fn(&CrawlerHandle) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError>
                + Send
                + Sync
                + 'static,
        ) -> Self {
            self.components.downloader_middlewares.register(name, factory);
            self
        }

        /// Registers a scheduler under `name`; choose it with `SCHEDULER`.
        pub fn scheduler(
            mut self,
            name: &str,
            factory: impl Fn(&CrawlerHandle) -> Result<Box<dyn crate::scheduler::RequestScheduler>, ConfigError>
                + Send
                + Sync
                + 'static,
        ) -> Self {
            self.components.schedulers.insert(name, Arc::new(factory));
            self
        }

        /// Registers a spider middleware under `name`; enable it with `SPIDER_MIDDLEWARES`.
        pub fn spider_middleware(
            mut self,
            name: &str,
            factory: impl Fn(&CrawlerHandle) -> Result<Option<Box<dyn SpiderMiddleware>>, ConfigError>
                + Send
                + Sync
                + 'static,
        ) -> Self {
            self.components.spider_middlewares.register(name, factory);
            self
        }
    };
}
pub(crate) use component_builders;

/// One spider's crawl.
///
/// ```no_run
/// # use arachne::prelude::*;
/// # struct S;
/// # #[async_trait(?Send)]
/// # impl Spider for S { type Callback = DefaultCallback; fn name(&self) -> &str { "s" }
/// #   async fn parse(&self, _: &Response) -> CallbackResult { Ok(Output::new()) } }
/// # async fn run() -> Result<(), arachne::crawler::CrawlError> {
/// // inside a running actix System:
/// let stats = Crawler::new(S, Settings::new()).run().await?;
/// println!("{}", stats["finish_reason"]);
/// # Ok(()) }
/// ```
pub struct Crawler {
    spider: Arc<dyn DynSpider>,
    settings: Settings,
    components: Components,
    control: Option<oneshot::Sender<Recipient<CloseSpider>>>,
}

impl std::fmt::Debug for Crawler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crawler")
            .field("spider", &self.spider.name())
            .finish()
    }
}

impl Crawler {
    /// A crawler for `spider` with project `settings`; the spider's
    /// `custom_settings` apply on top at spider priority.
    pub fn new(spider: impl Spider, settings: Settings) -> Self {
        Crawler::from_arc(Arc::new(spider), settings)
    }

    /// Same, for a spider already shared.
    pub fn from_arc(spider: Arc<dyn DynSpider>, mut settings: Settings) -> Self {
        settings.update(spider.custom_settings(), Priority::Spider);
        Crawler {
            spider,
            settings,
            components: Components::default(),
            control: None,
        }
    }

    component_builders!();

    /// Replaces every registry (used by [`CrawlerProcess`]).
    pub fn with_components(mut self, components: Components) -> Self {
        self.components = components;
        self
    }

    /// Hands out the engine's close recipient once the crawl starts, so the caller can
    /// stop it (how `CrawlerProcess` forwards SIGINT).
    pub fn control(&mut self) -> oneshot::Receiver<Recipient<CloseSpider>> {
        let (tx, rx) = oneshot::channel();
        self.control = Some(tx);
        rx
    }

    /// The settings as they will apply.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs the crawl to its end inside the current actix System and returns the
    /// final stats.
    pub async fn run(self) -> Result<StatsMap, CrawlError> {
        let settings = Arc::new(self.settings);
        settings.validate()?;
        self.spider.update_settings(&settings);

        let bus = SignalBus::start_handle();
        let stats = Stats::start_handle();
        let job = open_job(&settings, self.spider.name(), &stats).await?;
        let mut downloader_config = DownloaderConfig::from_settings(&settings)?;
        downloader_config.stats = Some(stats.clone());
        let mut engine_config = EngineConfig::from_settings(&settings)?;
        if let Some(job) = &job {
            engine_config.skip_start = crate::scheduler::load_start_offset(job);
        }

        // Engine and Downloader addresses exist before the actors, so that the handle
        // components are built from can reach both.
        let (done_tx, done_rx) = oneshot::channel();
        let engine_ctx = Context::<Engine>::new();
        let engine_addr = engine_ctx.address();
        let downloader_ctx = Context::<Downloader>::new();
        let downloader = downloader_ctx.address();
        let engine_handle = EngineHandle::from_addr(&engine_addr);
        let mut handle = CrawlerHandle::new(
            settings.clone(),
            self.spider.clone(),
            bus.clone(),
            stats.clone(),
            engine_handle.clone(),
            DownloaderHandle::from_addr(&downloader),
        );
        if let Some(job) = &job {
            handle = handle.with_jobdir(job.clone());
        }
        let c = &self.components;
        let scheduler_name = settings.get_str("SCHEDULER");
        let scheduler_factory = c.schedulers.get(&scheduler_name).ok_or_else(|| {
            ConfigError::Invalid(format!("SCHEDULER: no scheduler named {scheduler_name:?}"))
        })?;
        let scheduler =
            Scheduler::new(scheduler_factory(&handle)?, job.clone(), stats.clone()).start();
        let downloader_mws =
            DownloaderMiddlewares::from_crawler(&c.downloader_middlewares, &handle)?;
        let spider_mws = SpiderMiddlewares::from_crawler(&c.spider_middlewares, &handle)?;
        let mut stages = Vec::new();
        for (stage_name, _) in settings.get_component_orders("ITEM_PIPELINES")? {
            let factory = c.pipelines.get(&stage_name).ok_or_else(|| {
                ConfigError::Invalid(format!("ITEM_PIPELINES: no pipeline named {stage_name:?}"))
            })?;
            if let Some(stage) = factory(&handle)? {
                stages.push((stage_name, stage));
            }
        }
        let ext_handles = start_extensions(&c.extensions, &handle)?;
        log_startup(
            &settings,
            &ext_handles,
            &downloader_mws,
            &spider_mws,
            &stages,
        );
        // Scrapy's `from_crawler`: the spider sees the assembled crawl (and may
        // subscribe to signals) before it opens.
        if let Err(p) = crate::error::catch_panic(self.spider.opened(&handle)).await {
            log::error!("The spider's opened() hook panicked: {p}");
        }
        let pipeline =
            ItemPipeline::new(stages, settings.get_usize("CONCURRENT_ITEMS")?, bus.clone()).start();
        let workers = WorkerPool::start(
            self.spider.clone(),
            settings.get_usize("SPIDER_WORKERS")?,
            stats.clone(),
        );
        let clients = HttpClients::from_settings(&settings)?;
        downloader_ctx.run(Downloader::new(
            downloader_config,
            clients,
            bus.clone(),
            downloader_mws,
        ));

        engine_ctx.run(Engine::new(EngineParts {
            spider: self.spider.clone(),
            config: engine_config,
            scheduler,
            downloader,
            workers,
            pipeline,
            spider_mws,
            bus,
            stats: stats.clone(),
            done: done_tx,
        }));
        // Let every extension's `started()` run (and subscribe) before the first signal.
        actix_rt::task::yield_now().await;
        if let Some(tx) = self.control {
            let _ = tx.send(engine_handle.close_recipient());
        }
        engine_addr.do_send(StartEngine);
        // The stats of a job are saved as it runs, so a killed run's counters count too.
        let saver = job.clone().map(|job| {
            let stats = stats.clone();
            actix_rt::spawn(async move {
                loop {
                    actix_rt::time::sleep(STATS_SAVE_INTERVAL).await;
                    save_job_stats(&job, &stats.get_all().await);
                }
            })
        });
        let result = done_rx.await.map_err(|_| CrawlError::EngineGone);
        if let Some(saver) = saver {
            saver.abort();
        }
        if let Some(job) = &job {
            if let Ok(final_stats) = &result {
                save_job_stats(job, final_stats);
            }
            job.release();
        }
        drop(ext_handles);
        result
    }
}

/// How often a job's stats are saved while it runs.
const STATS_SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Stats that describe one run, not the job: not carried into the next run.
const PER_RUN_STATS: &[&str] = &[
    "start_time",
    "finish_time",
    "finish_reason",
    "elapsed_time_seconds",
];

/// Opens and locks the `JOBDIR`, if set, and seeds the stats with the job's earlier
/// runs' counters.
async fn open_job(
    settings: &crate::settings::Settings,
    spider: &str,
    stats: &crate::handle::StatsHandle,
) -> Result<Option<Arc<Jobdir>>, ConfigError> {
    let dir = settings.get_str("JOBDIR");
    if dir.is_empty() {
        return Ok(None);
    }
    let job = Jobdir::open(&dir, spider).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    if job.resumed() {
        log::info!("Resuming job {dir} (run {})", job.run());
        if let Some(saved) = job
            .read_map("stats.json")
            .map_err(|e| ConfigError::Invalid(e.to_string()))?
        {
            for (k, v) in saved {
                if !PER_RUN_STATS.contains(&k.as_str()) {
                    stats.set(k, v);
                }
            }
        }
    }
    Ok(Some(Arc::new(job)))
}

fn save_job_stats(job: &Jobdir, stats: &StatsMap) {
    let map: serde_json::Map<String, serde_json::Value> = stats
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    if let Err(e) = job.write_json("stats.json", &serde_json::Value::Object(map)) {
        log::error!(
            "Cannot save the job's stats in {}: {e}",
            job.path().display()
        );
    }
}

/// Scrapy's start-up block: which settings differ from the defaults and which
/// components are on, in order — what a user checks first when a crawl misbehaves.
fn log_startup(
    settings: &Settings,
    extensions: &[(String, ComponentHandle)],
    downloader_mws: &DownloaderMiddlewares,
    spider_mws: &SpiderMiddlewares,
    stages: &[(String, Box<dyn Stage>)],
) {
    if !log::log_enabled!(log::Level::Info) {
        return;
    }
    let overridden: serde_json::Map<String, serde_json::Value> = settings
        .overridden()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    log::info!(
        "Overridden settings:\n{}",
        serde_json::to_string_pretty(&overridden).unwrap_or_default()
    );
    let list = |names: Vec<&str>| format!("{names:#?}");
    log::info!(
        "Enabled extensions:\n{}",
        list(extensions.iter().map(|(n, _)| n.as_str()).collect())
    );
    log::info!(
        "Enabled downloader middlewares:\n{}",
        list(downloader_mws.names())
    );
    log::info!("Enabled spider middlewares:\n{}", list(spider_mws.names()));
    log::info!(
        "Enabled item pipelines:\n{}",
        list(stages.iter().map(|(n, _)| n.as_str()).collect())
    );
}

/// Runs crawls in one process (Scrapy's `CrawlerProcess`).
///
/// ```no_run
/// # use arachne::prelude::*;
/// # struct A; struct B;
/// # #[async_trait(?Send)] impl Spider for A { type Callback = DefaultCallback; fn name(&self) -> &str { "a" }
/// #   async fn parse(&self, _: &Response) -> CallbackResult { Ok(Output::new()) } }
/// # #[async_trait(?Send)] impl Spider for B { type Callback = DefaultCallback; fn name(&self) -> &str { "b" }
/// #   async fn parse(&self, _: &Response) -> CallbackResult { Ok(Output::new()) } }
/// let results = CrawlerProcess::new(Settings::new()).crawl(A).crawl(B).start();
/// for r in results {
///     println!("{:?}", r.map(|s| s["finish_reason"].clone()));
/// }
/// ```
pub struct CrawlerProcess {
    settings: Settings,
    crawlers: Vec<Crawler>,
    components: Components,
    handle_signals: bool,
}

impl std::fmt::Debug for CrawlerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrawlerProcess")
            .field("crawlers", &self.crawlers)
            .finish()
    }
}

impl CrawlerProcess {
    /// A process with project settings.
    pub fn new(settings: Settings) -> Self {
        CrawlerProcess {
            settings,
            crawlers: Vec::new(),
            components: Components::default(),
            handle_signals: true,
        }
    }

    /// Adds a spider to run.
    pub fn crawl(mut self, spider: impl Spider) -> Self {
        self.crawlers
            .push(Crawler::new(spider, self.settings.clone()));
        self
    }

    /// Adds a spider already shared.
    pub fn crawl_arc(mut self, spider: Arc<dyn DynSpider>) -> Self {
        self.crawlers
            .push(Crawler::from_arc(spider, self.settings.clone()));
        self
    }

    component_builders!();

    /// Replaces every component registry (a [`Project`](crate::project::Project)'s).
    pub fn with_components(mut self, components: Components) -> Self {
        self.components = components;
        self
    }

    /// Whether SIGINT/SIGTERM close the crawls gracefully (the default).
    pub fn handle_signals(mut self, yes: bool) -> Self {
        self.handle_signals = yes;
        self
    }

    /// Runs every crawl at once; returns each one's final stats, in order added.
    pub fn start(self) -> Vec<Result<StatsMap, CrawlError>> {
        self.run(false)
    }

    /// Runs the crawls one after another.
    pub fn start_sequential(self) -> Vec<Result<StatsMap, CrawlError>> {
        self.run(true)
    }

    fn run(self, sequential: bool) -> Vec<Result<StatsMap, CrawlError>> {
        let CrawlerProcess {
            settings,
            crawlers,
            components,
            handle_signals,
        } = self;
        // A script prints what a crawl does without setting up a logger itself; one the
        // program installed first wins (`try_init` leaves it alone).
        crate::cli::init_logging(&settings.get_str("LOG_LEVEL"));
        log::info!(
            "Arachne {} started (bot: {})",
            env!("CARGO_PKG_VERSION"),
            settings.get_str("BOT_NAME")
        );
        let system = System::new();
        system.block_on(async move {
            let (ctl_tx, ctl_rx) = tokio::sync::mpsc::unbounded_channel::<Recipient<CloseSpider>>();
            if handle_signals {
                // Registered here, before any crawl is built, so a signal during start-up
                // is already the graceful kind.
                use tokio::signal::unix::{signal, SignalKind};
                match (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) {
                    (Ok(int), Ok(term)) => {
                        let deadline = settings
                            .get_duration("SHUTDOWN_TIMEOUT")
                            .ok()
                            .filter(|d| !d.is_zero());
                        actix_rt::spawn(shutdown_on_signals(ctl_rx, int, term, deadline));
                    }
                    _ => log::warn!(
                        "cannot install signal handlers; SIGINT will stop the process abruptly"
                    ),
                }
            }
            let mut futures = Vec::new();
            for c in crawlers {
                let mut c = c.with_components(components.clone());
                let rx = c.control();
                let tx = ctl_tx.clone();
                actix_rt::spawn(async move {
                    if let Ok(r) = rx.await {
                        let _ = tx.send(r);
                    }
                });
                futures.push(c.run());
            }
            let mut results = Vec::new();
            if sequential {
                for f in futures {
                    results.push(f.await);
                }
            } else {
                results = futures_util::future::join_all(futures).await;
            }
            results
        })
    }
}

/// First SIGINT/SIGTERM: close every spider with `shutdown`. Second — or the graceful
/// close still running after `deadline` (`SHUTDOWN_TIMEOUT`; Scrapy's #4749: a
/// graceful stop can take hours) — exit at once. With a `JOBDIR` that loses nothing:
/// what was in flight is crawled again on resume.
async fn shutdown_on_signals(
    mut engines: tokio::sync::mpsc::UnboundedReceiver<Recipient<CloseSpider>>,
    mut int: tokio::signal::unix::Signal,
    mut term: tokio::signal::unix::Signal,
    deadline: Option<std::time::Duration>,
) {
    let mut known: Vec<Recipient<CloseSpider>> = Vec::new();
    let mut received = 0;
    let mut expired = false;
    let timer = actix_rt::time::sleep(std::time::Duration::from_secs(u32::MAX as u64));
    tokio::pin!(timer);
    loop {
        let name = tokio::select! {
            () = &mut timer, if received > 0 && deadline.is_some() && !expired => {
                expired = true;
                "the shutdown deadline"
            }
            Some(r) = engines.recv() => {
                // An engine that registers after the first signal closes at once.
                if received > 0 {
                    r.do_send(CloseSpider { reason: CloseReason::Shutdown });
                }
                known.push(r);
                continue;
            }
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        received += 1;
        while let Ok(r) = engines.try_recv() {
            known.push(r);
        }
        if received == 1 {
            if let Some(d) = deadline {
                timer.as_mut().reset(actix_rt::time::Instant::now() + d);
            }
            log::info!("Received {name}, shutting down gracefully. Send again to force");
            for r in &known {
                r.do_send(CloseSpider {
                    reason: CloseReason::Shutdown,
                });
            }
        } else {
            if expired {
                log::warn!(
                    "The graceful shutdown still runs after SHUTDOWN_TIMEOUT ({:.0?}), forcing unclean shutdown",
                    deadline.unwrap_or_default()
                );
            } else {
                log::info!("Received {name} twice, forcing unclean shutdown");
            }
            // What was scraped is on disk and JSON arrays are closed before the end.
            crate::actors::extensions::feedexport::flush_open_feeds();
            std::process::exit(1);
        }
    }
}

//! A project: the spiders, item pipeline stages, extensions, middlewares and settings
//! a program crawls with — what a Scrapy project's `settings.py` and modules are. The
//! same value runs from the command line ([`cli::run`](crate::cli::run), so
//! `crawl NAME -o out.jsonl` in a project's own binary enables its own pipeline stages
//! by `ITEM_PIPELINES`) and from a script ([`CrawlerProcess::from_project`]).
//!
//! ```no_run
//! use arachne::prelude::*;
//! use arachne::project::Project;
//! # struct Mine;
//! # #[async_trait(?Send)] impl Spider for Mine { type Callback = DefaultCallback;
//! #   fn name(&self) -> &str { "mine" }
//! #   async fn parse(&self, _: &Response) -> CallbackResult { Ok(Output::new()) } }
//! # struct Stamp;
//! # #[async_trait(?Send)] impl ItemPipeline for Stamp {
//! #   async fn process_item(&self, item: Item) -> Result<Item, PipelineError> { Ok(item) } }
//!
//! fn project() -> Project {
//!     Project::new(Settings::new().with("ITEM_PIPELINES", json!({ "Stamp": 300 })))
//!         .spider("mine", |_args| Ok(Mine))
//!         .pipeline("Stamp", |_| Ok(Some(Box::new(Stamp))))
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     arachne::cli::run(project()) // `mybot crawl mine -o items.jsonl`
//! }
//! ```

use std::sync::Arc;

use crate::cli::SpiderRegistry;
use crate::crawler::{Components, CrawlerProcess};
use crate::error::ConfigError;
use crate::extension::{ComponentHandle, CrawlerHandle};
use crate::middleware::downloader::DownloaderMiddleware;
use crate::middleware::spider::SpiderMiddleware;
use crate::pipeline::ItemPipeline as Stage;
use crate::settings::Settings;
use crate::spider::{DynSpider, Spider, SpiderArgs};

/// Spiders, components and project settings, registered once and shared by the CLI
/// and by scripts.
#[derive(Debug)]
pub struct Project {
    spiders: SpiderRegistry,
    components: Components,
    settings: Settings,
}

impl Default for Project {
    fn default() -> Self {
        Project::new(Settings::new())
    }
}

impl Project {
    /// A project with these settings (at the project priority), the built-in
    /// components and the built-in `follow` spider.
    pub fn new(settings: Settings) -> Self {
        Project {
            spiders: SpiderRegistry::new(),
            components: Components::default(),
            settings,
        }
    }

    /// Registers a spider under `name`, built from its `-a` arguments.
    pub fn spider<S: Spider>(
        mut self,
        name: &str,
        factory: impl Fn(&SpiderArgs) -> Result<S, String> + 'static,
    ) -> Self {
        self.spiders.add(name, factory);
        self
    }

    crate::crawler::component_builders!();

    /// The project settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The project settings, to change before a run.
    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    /// The registered spiders.
    pub fn spiders(&self) -> &SpiderRegistry {
        &self.spiders
    }

    /// The registered components.
    pub fn components(&self) -> &Components {
        &self.components
    }

    /// Builds the spider registered as `name` from its arguments; an unknown name is
    /// an error listing the known ones.
    pub fn build_spider(
        &self,
        name: &str,
        args: &SpiderArgs,
    ) -> Result<Arc<dyn DynSpider>, String> {
        self.spiders.build(name, args)
    }
}

impl CrawlerProcess {
    /// A process with a project's settings and components; add crawls with
    /// [`crawl`](CrawlerProcess::crawl) or by name with
    /// [`crawl_named`](CrawlerProcess::crawl_named).
    ///
    /// ```no_run
    /// use arachne::prelude::*;
    /// use arachne::project::Project;
    ///
    /// let project = Project::new(Settings::new());
    /// let results = CrawlerProcess::from_project(&project)
    ///     .crawl_named(&project, "follow", &[("start_url".into(), "http://127.0.0.1:8080/".into())].into())
    ///     .expect("known spider")
    ///     .start();
    /// # drop(results);
    /// ```
    pub fn from_project(project: &Project) -> CrawlerProcess {
        CrawlerProcess::new(project.settings.clone()).with_components(project.components.clone())
    }

    /// Adds a crawl of the project's spider `name`.
    pub fn crawl_named(
        self,
        project: &Project,
        name: &str,
        args: &SpiderArgs,
    ) -> Result<CrawlerProcess, String> {
        Ok(self.crawl_arc(project.build_spider(name, args)?))
    }
}

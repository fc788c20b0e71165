//! The `arachne` command line — `crawl`, `list` — as a library function, so a user
//! project gets the same CLI by calling [`run`] from its own `main` with its
//! [`Project`] (spiders, pipeline stages, extensions, middlewares, settings):
//!
//! ```no_run
//! use arachne::prelude::*;
//! # struct MySpider;
//! # #[async_trait(?Send)] impl Spider for MySpider { type Callback = DefaultCallback; fn name(&self) -> &str { "mine" }
//! #   async fn parse(&self, _: &Response) -> CallbackResult { Ok(Output::new()) } }
//!
//! fn main() -> std::process::ExitCode {
//!     arachne::cli::run(Project::new(Settings::new()).spider("mine", |_args| Ok(MySpider)))
//! }
//! ```

mod follow;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

pub use follow::FollowSpider;

use crate::crawler::CrawlerProcess;
use crate::project::Project;
use crate::settings::Priority;
use crate::spider::{DynSpider, Spider, SpiderArgs};

type SpiderFactory = Box<dyn Fn(&SpiderArgs) -> Result<Arc<dyn DynSpider>, String>>;

/// The spiders a CLI knows, by name. The built-in `follow` spider is always there.
pub struct SpiderRegistry {
    factories: BTreeMap<String, SpiderFactory>,
}

impl std::fmt::Debug for SpiderRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.factories.keys()).finish()
    }
}

impl Default for SpiderRegistry {
    fn default() -> Self {
        SpiderRegistry::new()
    }
}

impl SpiderRegistry {
    /// A registry with the built-in `follow` spider.
    pub fn new() -> Self {
        let mut r = SpiderRegistry {
            factories: BTreeMap::new(),
        };
        r.add("follow", FollowSpider::from_args);
        r
    }

    /// Adds a spider built from its `-a` arguments.
    pub fn add<S: Spider>(
        &mut self,
        name: &str,
        factory: impl Fn(&SpiderArgs) -> Result<S, String> + 'static,
    ) -> &mut Self {
        self.factories.insert(
            name.to_string(),
            Box::new(move |args| factory(args).map(|s| Arc::new(s) as Arc<dyn DynSpider>)),
        );
        self
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }

    pub(crate) fn build(
        &self,
        name: &str,
        args: &SpiderArgs,
    ) -> Result<Arc<dyn DynSpider>, String> {
        match self.factories.get(name) {
            Some(f) => f(args),
            None => Err(format!(
                "Spider not found: {name} (known: {})",
                self.names().join(", ")
            )),
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "arachne",
    version,
    about = "A web crawling framework in the mould of Scrapy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a spider.
    Crawl {
        /// The spider's name.
        spider: String,
        /// Spider argument NAME=VALUE (repeatable).
        #[arg(short = 'a', value_name = "NAME=VALUE")]
        args: Vec<String>,
        /// Setting KEY=VALUE (repeatable); overrides everything else.
        #[arg(short = 's', value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// Append scraped items to FILE (JSON lines; a JSON array for `.json`).
        #[arg(short = 'o', value_name = "FILE")]
        output: Vec<String>,
        /// Write scraped items to FILE, overwriting it (format as for -o).
        #[arg(short = 'O', value_name = "FILE")]
        overwrite_output: Vec<String>,
        /// Write the final stats to FILE as one JSON object.
        #[arg(long = "stats-json", value_name = "FILE")]
        stats_json: Option<String>,
        /// Log level (ERROR, WARNING, INFO, DEBUG); same as -s LOG_LEVEL=...
        #[arg(short = 'L', long = "loglevel")]
        loglevel: Option<String>,
    },
    /// List the available spiders.
    List,
}

/// Runs the CLI with these spiders and project settings; returns the exit code.
pub fn run(project: Project) -> ExitCode {
    run_from(std::env::args_os(), project)
}

/// [`run`] with explicit arguments (the first is the program name).
pub fn run_from<I, T>(argv: I, project: Project) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::List => {
            for n in project.spiders().names() {
                println!("{n}");
            }
            ExitCode::SUCCESS
        }
        Command::Crawl {
            spider,
            args,
            settings,
            output,
            overwrite_output,
            stats_json,
            loglevel,
        } => {
            let mut s = project.settings().clone();
            for (files, overwrite) in [(&output, false), (&overwrite_output, true)] {
                for f in files {
                    let mut feeds = s.get_dict("FEEDS").unwrap_or_default();
                    // The extension picks the format, as in Scrapy (`items.json` is an
                    // array, `items.jsonl` / anything else JSON lines).
                    let format = if f.ends_with(".json") {
                        "json"
                    } else {
                        "jsonlines"
                    };
                    feeds.insert(
                        f.clone(),
                        serde_json::json!({ "format": format, "overwrite": overwrite }),
                    );
                    s.set("FEEDS", serde_json::Value::Object(feeds), Priority::Command);
                }
            }
            for pair in &settings {
                if let Err(e) = s.set_cli(pair) {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
            if let Some(l) = loglevel {
                s.set("LOG_LEVEL", l, Priority::Cmdline);
            }
            let level = s.get_str("LOG_LEVEL");
            if log_filter(&level).is_none() {
                eprintln!(
                    "error: invalid LOG_LEVEL {level:?} (use CRITICAL, ERROR, WARNING, INFO, DEBUG or TRACE)"
                );
                return ExitCode::from(2);
            }
            init_logging(&level);
            let mut spider_args = SpiderArgs::new();
            for a in &args {
                match a.split_once('=') {
                    Some((k, v)) => {
                        spider_args.insert(k.to_string(), v.to_string());
                    }
                    None => {
                        eprintln!("error: invalid -a value {a:?}: use NAME=VALUE");
                        return ExitCode::from(2);
                    }
                }
            }
            let spider = match project.build_spider(&spider, &spider_args) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let results = CrawlerProcess::new(s)
                .with_components(project.components().clone())
                .crawl_arc(spider)
                .start();
            let mut code = ExitCode::SUCCESS;
            for r in results {
                match r {
                    Ok(stats) => {
                        // Scrapy exits 0 here; a script deserves to know the crawl
                        // never started: every start request failed to be made.
                        let started = stats.contains_key("scheduler/enqueued")
                            || stats.contains_key("item_scraped_count");
                        let start_errors =
                            stats.keys().any(|k| k.starts_with("spider_exceptions/"));
                        if !started && start_errors {
                            eprintln!(
                                "error: no request could be made from the spider's start \
                                 requests (see the errors above); nothing was crawled"
                            );
                            code = ExitCode::FAILURE;
                        }
                        if let Some(path) = &stats_json {
                            let text = serde_json::to_string_pretty(&stats).unwrap_or_default();
                            if let Err(e) = std::fs::write(path, text) {
                                eprintln!("error: cannot write stats to {path}: {e}");
                                code = ExitCode::FAILURE;
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        code = ExitCode::from(2);
                    }
                }
            }
            code
        }
    }
}

/// The env_logger filter for a Scrapy log level name (case-insensitive); `None` for
/// a name that is not one.
fn log_filter(level: &str) -> Option<&'static str> {
    Some(match level.to_ascii_uppercase().as_str() {
        "CRITICAL" | "ERROR" => "error",
        "WARNING" | "WARN" => "warn",
        "INFO" => "info",
        "DEBUG" => "debug",
        "TRACE" => "trace",
        _ => return None,
    })
}

/// Starts env_logger at `LOG_LEVEL` (Scrapy's names: WARNING means warn) unless
/// `RUST_LOG` says otherwise.
pub fn init_logging(level: &str) {
    let filter = log_filter(level).unwrap_or("debug");
    // LOG_LEVEL governs Arachne and the user's spiders; the libraries underneath (HTML
    // parser, HTTP stack) would drown a DEBUG log in their own tracing.
    let env = env_logger::Env::default().default_filter_or(format!(
        "{filter},html5ever=warn,selectors=warn,actix_server=warn,actix_http=warn,awc=warn,\
         h2=warn,mio=warn,tokio=warn,rustls=warn,trust_dns_resolver=warn,hickory_resolver=warn"
    ));
    let _ = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .try_init();
}

//! The downloader-middleware trait and the chain that runs it, as Scrapy's
//! `DownloaderMiddlewareManager` does: `process_request` from the lowest order (nearest
//! the engine) up, then the download, then `process_response` from the highest order
//! (nearest the network) down; a failure runs `process_exception` from the highest
//! order down. A middleware can answer a request itself (`Respond`: later
//! `process_request`s and the download are skipped, every `process_response` still
//! runs), replace it (`Reschedule`: the new request goes back to the scheduler), or
//! ignore it (`Err(DownloadError::Ignored(..))`).
//!
//! The chain runs inside the Downloader actor, on the I/O arbiter: middleware futures
//! need not be `Send`, so per-middleware state lives in `RefCell`/`Cell`.

use std::future::Future;

use crate::error::{ConfigError, DownloadError};
use crate::extension::{CrawlerHandle, Registry};
use crate::http::{Request, Response};

/// What `process_request` decides (it may also have modified the request in place).
// Moved by value through the chain once per response; boxing would add an
// allocation per response to save stack space for a moment.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RequestFlow {
    /// Go on with the request.
    Continue,
    /// Answer with this response; skip the download.
    Respond(Response),
    /// Drop this request and schedule another instead.
    Reschedule(Request),
}

/// What `process_response` decides.
// Moved by value through the chain once per response; boxing would add an
// allocation per response to save stack space for a moment.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ResponseFlow {
    /// Go on with this (possibly replaced) response.
    Continue(Response),
    /// Drop the response and schedule this request instead (a redirect, a retry).
    Reschedule(Request),
}

/// What `process_exception` decides.
// Moved by value through the chain once per response; boxing would add an
// allocation per response to save stack space for a moment.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ExceptionFlow {
    /// Let the next middleware (and finally the errback) see the error.
    Continue,
    /// Turn the failure into this response (`process_response` still runs on it).
    Respond(Response),
    /// Schedule this request instead (a retry).
    Reschedule(Request),
}

/// A downloader middleware. Every method has a pass-through default.
///
/// ```
/// use arachne::prelude::*;
/// use arachne::middleware::downloader::{DownloaderMiddleware, RequestFlow};
/// use arachne::error::DownloadError;
///
/// /// Answers every request for `/fake` itself.
/// struct Fake;
///
/// #[async_trait(?Send)]
/// impl DownloaderMiddleware for Fake {
///     async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
///         if request.url.path() == "/fake" {
///             return Ok(RequestFlow::Respond(Response::new(request.clone(), 200, "hi".into())));
///         }
///         Ok(RequestFlow::Continue)
///     }
/// }
/// ```
#[async_trait::async_trait(?Send)]
pub trait DownloaderMiddleware: 'static {
    /// Called for each request on its way to the network; may modify it in place.
    async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
        let _ = request;
        Ok(RequestFlow::Continue)
    }

    /// Called for each response on its way back.
    async fn process_response(
        &self,
        request: &Request,
        response: Response,
    ) -> Result<ResponseFlow, DownloadError> {
        let _ = request;
        Ok(ResponseFlow::Continue(response))
    }

    /// Called when the download or a `process_request` failed.
    async fn process_exception(&self, request: &Request, error: &DownloadError) -> ExceptionFlow {
        let _ = (request, error);
        ExceptionFlow::Continue
    }
}

/// What the downloader hands back to the engine.
// Moved by value through the chain once per response; boxing would add an
// allocation per response to save stack space for a moment.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, actix::MessageResponse)]
pub enum Fetched {
    /// A response to parse.
    Response(Response),
    /// A request to schedule instead (redirects, retries, middleware replacements).
    Reschedule(Request),
    /// The request failed; it goes to its errback.
    Failed(Request, DownloadError),
}

/// Builds a downloader middleware; `Ok(None)` means "not configured".
pub type DownloaderMiddlewareFactory = dyn Fn(&CrawlerHandle) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError>
    + Send
    + Sync;

/// Name → factory, for `DOWNLOADER_MIDDLEWARES` / `_BASE`.
pub type DownloaderMiddlewareRegistry = Registry<DownloaderMiddlewareFactory>;

impl DownloaderMiddlewareRegistry {
    /// Registers a factory under `name`.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        factory: impl Fn(&CrawlerHandle) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError>
            + Send
            + Sync
            + 'static,
    ) -> &mut Self {
        self.insert(name, std::sync::Arc::new(factory));
        self
    }
}

/// The ordered chain.
#[derive(Default)]
pub struct DownloaderMiddlewares {
    chain: Vec<(String, Box<dyn DownloaderMiddleware>)>,
}

impl DownloaderMiddlewares {
    /// The enabled middlewares' names, in chain order (what the start-up log lists).
    pub fn names(&self) -> Vec<&str> {
        self.chain.iter().map(|(n, _)| n.as_str()).collect()
    }
}

impl std::fmt::Debug for DownloaderMiddlewares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.chain.iter().map(|(n, _)| n))
            .finish()
    }
}

impl DownloaderMiddlewares {
    /// Builds every middleware `DOWNLOADER_MIDDLEWARES` / `_BASE` enables, in order.
    pub fn from_crawler(
        registry: &DownloaderMiddlewareRegistry,
        crawler: &CrawlerHandle,
    ) -> Result<Self, ConfigError> {
        let mut chain = Vec::new();
        for (name, _) in crawler
            .settings
            .get_component_orders("DOWNLOADER_MIDDLEWARES")?
        {
            let factory = registry.get(&name).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "DOWNLOADER_MIDDLEWARES: no middleware named {name:?}"
                ))
            })?;
            match factory(crawler)? {
                Some(mw) => chain.push((name, mw)),
                None => log::debug!("Downloader middleware {name} not configured, skipped"),
            }
        }
        log::debug!(
            "Enabled downloader middlewares: {:?}",
            chain.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        Ok(DownloaderMiddlewares { chain })
    }

    /// A chain from middlewares already built, lowest order first.
    pub fn from_vec(chain: Vec<(String, Box<dyn DownloaderMiddleware>)>) -> Self {
        DownloaderMiddlewares { chain }
    }

    /// Runs `request` through the chain around `download`.
    pub async fn download<F, Fut>(&self, request: Request, download: F) -> Fetched
    where
        F: FnOnce(Request) -> Fut,
        Fut: Future<Output = Result<Response, DownloadError>>,
    {
        let mut request = request;
        let mut answered = None;
        let mut failure = None;
        for (_, mw) in &self.chain {
            match mw.process_request(&mut request).await {
                Ok(RequestFlow::Continue) => {}
                Ok(RequestFlow::Respond(resp)) => {
                    answered = Some(resp);
                    break;
                }
                Ok(RequestFlow::Reschedule(r)) => return Fetched::Reschedule(r),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let result = match (answered, failure) {
            (Some(resp), _) => Ok(resp),
            (None, Some(e)) => Err(e),
            (None, None) => download(request.clone()).await,
        };
        let response = match result {
            Ok(resp) => resp,
            Err(error) => {
                let mut recovered = None;
                for (_, mw) in self.chain.iter().rev() {
                    match mw.process_exception(&request, &error).await {
                        ExceptionFlow::Continue => {}
                        ExceptionFlow::Respond(resp) => {
                            recovered = Some(resp);
                            break;
                        }
                        ExceptionFlow::Reschedule(r) => return Fetched::Reschedule(r),
                    }
                }
                match recovered {
                    Some(resp) => resp,
                    None => return Fetched::Failed(request, error),
                }
            }
        };
        let mut response = response;
        for (_, mw) in self.chain.iter().rev() {
            match mw.process_response(&request, response).await {
                Ok(ResponseFlow::Continue(r)) => response = r,
                Ok(ResponseFlow::Reschedule(r)) => return Fetched::Reschedule(r),
                Err(e) => return Fetched::Failed(request, e),
            }
        }
        Fetched::Response(response)
    }
}

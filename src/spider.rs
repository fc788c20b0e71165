//! The [`Spider`] trait — what a user writes — and what callbacks return.
//!
//! Callbacks and errbacks are chosen by *name* (`Request::callback("parse_item")`):
//! the spider's [`callback`](Spider::callback) method maps names to methods. That keeps
//! requests plain data (persistable, sendable to Redis) while a typo is a counted
//! `UnknownCallback` error instead of a crash. Callbacks are async; they run on the
//! spider-worker arbiters, off the I/O thread, so their futures need not be `Send`
//! (`#[async_trait(?Send)]`) and may hold a parsed document across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::error::DownloadError;
use crate::http::{Request, Response};
use crate::item::Item;
use crate::settings::Settings;

/// What a callback returns.
pub type CallbackResult = Result<Output, SpiderError>;

/// The start requests: lazy, so a million start URLs are not all built up front.
pub type StartRequests = Box<dyn Iterator<Item = Result<Request, SpiderError>> + Send>;

/// Spider arguments (`arachne crawl NAME -a key=value`).
pub type SpiderArgs = HashMap<String, String>;

/// A spider: where to start and how to turn responses into items and requests.
///
/// ```
/// use arachne::prelude::*;
///
/// struct Quotes;
///
/// #[async_trait(?Send)]
/// impl Spider for Quotes {
///     fn name(&self) -> &str { "quotes" }
///     fn start_urls(&self) -> Vec<String> { vec!["http://127.0.0.1:8000/page/1/".into()] }
///
///     async fn parse(&self, response: &Response) -> CallbackResult {
///         let html = response.html();
///         let mut out = Output::new();
///         for quote in html.css("div.quote")?.nodes() {
///             let text = arachne::selector::Selector::parse("span.text::text")?
///                 .select_from(quote).get();
///             out.item(serde_json::json!({ "text": text }));
///         }
///         if let Some(next) = html.css("li.next a::attr(href)")?.get() {
///             out.request(response.follow(&next)?);
///         }
///         for author in html.css("a.author::attr(href)")?.getall() {
///             out.request(response.follow(&author)?.callback("parse_author"));
///         }
///         Ok(out)
///     }
///
///     async fn callback(&self, name: &str, response: &Response) -> CallbackResult {
///         match name {
///             "parse" => self.parse(response).await,
///             "parse_author" => Ok(Output::new().with_item(
///                 serde_json::json!({ "name": response.css("h3::text")?.first() }))),
///             other => Err(SpiderError::unknown_callback(other)),
///         }
///     }
/// }
/// ```
#[async_trait::async_trait(?Send)]
pub trait Spider: Send + Sync + 'static {
    /// The spider's unique name.
    fn name(&self) -> &str;

    /// Domains the crawl may visit (subdomains included); empty means any.
    fn allowed_domains(&self) -> Vec<String> {
        Vec::new()
    }

    /// URLs the default [`start_requests`](Spider::start_requests) turns into requests.
    fn start_urls(&self) -> Vec<String> {
        Vec::new()
    }

    /// The first requests. Default: a `GET` per start URL, with `dont_filter` set as
    /// in Scrapy. An invalid URL is yielded as an error: it is logged and counted and
    /// the others go on.
    fn start_requests(&self) -> StartRequests {
        let urls = self.start_urls();
        Box::new(urls.into_iter().map(|u| {
            Request::get(&u)
                .map(|r| r.dont_filter(true))
                .map_err(SpiderError::from)
        }))
    }

    /// Settings that override the project's (Scrapy's `custom_settings`).
    fn custom_settings(&self) -> Vec<(String, Value)> {
        Vec::new()
    }

    /// The default callback.
    async fn parse(&self, response: &Response) -> CallbackResult;

    /// Dispatches a callback by name. Override to add callbacks; the default knows
    /// only `parse`.
    async fn callback(&self, name: &str, response: &Response) -> CallbackResult {
        match name {
            "parse" => self.parse(response).await,
            other => Err(SpiderError::unknown_callback(other)),
        }
    }

    /// Dispatches an errback by name: called for download errors and non-2xx
    /// responses of requests that name it. The default knows none.
    async fn errback(&self, name: &str, failure: &Failure) -> CallbackResult {
        let _ = failure;
        Err(SpiderError::unknown_callback(name))
    }

    /// A spider attribute by name — what Scrapy components read with
    /// `getattr(spider, name)`: `http_user`, `http_pass`, `http_auth_domain`,
    /// `user_agent`, `download_timeout`, `handle_httpstatus_list`, ... `None` when the
    /// spider does not set it (the setting applies).
    fn attr(&self, name: &str) -> Option<Value> {
        let _ = name;
        None
    }

    /// Persistent spider state (Scrapy's `spider.state`), if the spider keeps one.
    fn state(&self) -> Option<&State> {
        None
    }

    /// Called once the crawler has its final settings, before the spider opens.
    fn update_settings(&self, settings: &Settings) {
        let _ = settings;
    }
}

/// A spider's persistent state map, shared by every worker.
#[derive(Debug, Default, Clone)]
pub struct State(Arc<Mutex<Map<String, Value>>>);

impl State {
    /// Runs `f` with the map locked.
    pub fn with<R>(&self, f: impl FnOnce(&mut Map<String, Value>) -> R) -> R {
        let mut guard = match self.0.lock() {
            Ok(g) => g,
            // A callback that panicked while holding the lock leaves a usable map.
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

/// Items and requests produced by one callback, in order.
///
/// ```
/// use arachne::spider::Output;
/// use arachne::http::Request;
///
/// let mut out = Output::new();
/// out.item(serde_json::json!({"a": 1}));
/// out.request(Request::get("http://127.0.0.1/next").unwrap());
/// assert_eq!(out.len(), 2);
/// ```
#[derive(Debug, Default)]
pub struct Output {
    entries: Vec<OutputEntry>,
}

/// One thing a callback produced.
// Entries live only from the callback to the engine; boxing requests would add an
// allocation per request to save a few hundred bytes for that moment.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum OutputEntry {
    /// A scraped item.
    Item(Item),
    /// A request to schedule.
    Request(Request),
}

impl Output {
    /// Nothing yet.
    pub fn new() -> Output {
        Output::default()
    }

    /// Adds an item (anything `Serialize`, or an [`Item`]).
    pub fn item(&mut self, item: impl Into<Item>) -> &mut Self {
        self.entries.push(OutputEntry::Item(item.into()));
        self
    }

    /// Adds a request.
    pub fn request(&mut self, request: Request) -> &mut Self {
        self.entries.push(OutputEntry::Request(request));
        self
    }

    /// Builder form of [`item`](Output::item).
    pub fn with_item(mut self, item: impl Into<Item>) -> Self {
        self.item(item);
        self
    }

    /// Builder form of [`request`](Output::request).
    pub fn with_request(mut self, request: Request) -> Self {
        self.request(request);
        self
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, in order.
    pub fn into_entries(self) -> Vec<OutputEntry> {
        self.entries
    }
}

impl From<Request> for Output {
    fn from(r: Request) -> Self {
        Output::new().with_request(r)
    }
}

/// An error from a spider callback. Any `std::error::Error` converts with `?`; its
/// type name becomes the [`kind`](SpiderError::kind) counted in
/// `spider_exceptions/<kind>`.
///
/// It deliberately does not implement `std::error::Error`, so that the blanket `From`
/// does not overlap with `From<SpiderError> for SpiderError` (the `anyhow` pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiderError {
    /// Short type name (`ParseIntError`, `InvalidUrl`, `Panic`, ...).
    pub kind: String,
    /// Human-readable message.
    pub message: String,
}

impl SpiderError {
    /// An error of a named kind.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        SpiderError {
            kind: kind.into(),
            message: message.into(),
        }
    }

    /// A plain message, of kind `Error`.
    pub fn msg(message: impl Into<String>) -> Self {
        SpiderError::new("Error", message)
    }

    /// A callback or errback name the spider does not know.
    pub fn unknown_callback(name: &str) -> Self {
        SpiderError::new(
            "UnknownCallback",
            format!("spider has no callback named {name:?}"),
        )
    }
}

impl std::fmt::Display for SpiderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl<E: std::error::Error + 'static> From<E> for SpiderError {
    fn from(e: E) -> Self {
        let full = std::any::type_name::<E>();
        // `core::num::error::ParseIntError` → `ParseIntError`; generics are cut off
        // first so `Foo<a::B>` gives `Foo`.
        let base = full.split('<').next().unwrap_or(full);
        let kind = base.rsplit("::").next().unwrap_or(base);
        SpiderError::new(kind, e.to_string())
    }
}

/// What an errback receives: the failed request and why.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The request that failed.
    pub request: Request,
    /// Why.
    pub error: FailureKind,
}

/// Why a request failed.
#[derive(Debug, Clone)]
pub enum FailureKind {
    /// The download failed.
    Download(DownloadError),
    /// The response's status is not handled (Scrapy's `HttpError`).
    HttpError(Arc<Response>),
    /// A spider middleware refused the response for another reason.
    Refused(SpiderError),
}

impl Failure {
    /// The name counted in stats and shown in logs.
    pub fn kind(&self) -> &str {
        match &self.error {
            FailureKind::Download(e) => e.kind(),
            FailureKind::HttpError(_) => "HttpError",
            FailureKind::Refused(e) => &e.kind,
        }
    }

    /// The response, for an HTTP error.
    pub fn response(&self) -> Option<&Response> {
        match &self.error {
            FailureKind::HttpError(r) => Some(r),
            FailureKind::Download(_) | FailureKind::Refused(_) => None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            FailureKind::Download(e) => write!(f, "{} ({}): {e}", self.request.url, e.kind()),
            FailureKind::HttpError(r) => write!(
                f,
                "Ignoring response <{} {}>: HTTP status code is not handled or not allowed",
                r.status, r.url
            ),
            FailureKind::Refused(e) => write!(f, "{} refused: {e}", self.request.url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A std error's type name becomes the kind.
    #[test]
    fn kind_from_type_name() {
        let e: SpiderError = "x".parse::<i32>().unwrap_err().into();
        assert_eq!(e.kind, "ParseIntError");
        let e: SpiderError = Request::get("nope").unwrap_err().into();
        assert_eq!(e.kind, "InvalidUrl");
    }
}

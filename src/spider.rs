//! The [`Spider`] trait — what a user writes — and what callbacks return.
//!
//! A spider names its callbacks with a serde type of its own (its
//! [`Spider::Callback`]), usually an enum:
//! `enum Cb { Parse, Author { name: String } }`. Dispatch is an exhaustive `match`
//! the compiler checks, variant fields carry what Scrapy's `cb_kwargs` carried, and a
//! request stays plain data: a [`CallbackData`] holds the typed value in process and
//! its serde form when persisted (JOBDIR, Redis) or given as a string from outside
//! (`parse --callback parse_author`), and maps back onto the type when the response
//! arrives — an unknown name is a clear `UnknownCallback` error, never a crash.
//!
//! Callbacks are async; they run on the spider-worker arbiters, off the I/O thread, so
//! their futures need not be `Send` (`#[async_trait(?Send)]`) and may hold a parsed
//! document across an `.await`. The engine holds the spider type-erased, as an
//! `Arc<dyn DynSpider>`; users implement [`Spider`] and never see the erasure.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_util::stream::Stream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::DownloadError;
use crate::extension::CrawlerHandle;
use crate::http::{Request, Response};
use crate::item::Item;
use crate::settings::Settings;
use crate::signals::CloseReason;

/// What a callback returns.
pub type CallbackResult = Result<Output, SpiderError>;

/// What [`Spider::start`] returns: an async stream of requests and items (Scrapy
/// 2.13's `async def start()`), pulled lazily as the scheduler has room, so a million
/// start URLs are never all built up front. Not `Send`: it is polled on the engine's
/// arbiter only.
pub type Start = Pin<Box<dyn Stream<Item = Result<OutputEntry, SpiderError>>>>;

/// Spider arguments (`arachne crawl NAME -a key=value`).
pub type SpiderArgs = HashMap<String, String>;

/// What a spider's callback type must be: plain serde data, cheap to clone.
///
/// Blanket-implemented; derive `Serialize, Deserialize, Clone, Debug` on an enum and
/// add `#[serde(rename_all = "snake_case")]` so that `Cb::ParseAuthor` is named
/// `parse_author` from outside, as the Scrapy method would be.
pub trait Callback:
    Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static
{
}

impl<T: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static> Callback for T {}

/// The callback type of a spider that has only [`Spider::parse`].
///
/// ```
/// use arachne::prelude::*;
///
/// struct Titles;
///
/// #[async_trait(?Send)]
/// impl Spider for Titles {
///     type Callback = DefaultCallback;
///     fn name(&self) -> &str { "titles" }
///     async fn parse(&self, response: &Response) -> CallbackResult {
///         Ok(Output::new().with_item(json!({ "title": response.css("title::text")?.get() })))
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultCallback {
    /// [`Spider::parse`].
    Parse,
}

/// A request's callback or errback, as data: the spider's own typed value while in
/// this process, its serde form once it has been persisted or came from outside.
///
/// ```
/// use arachne::spider::CallbackData;
///
/// #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
/// #[serde(rename_all = "snake_case")]
/// enum Cb { Parse, ParseAuthor { name: String } }
///
/// let typed = CallbackData::new(Cb::ParseAuthor { name: "Ann".into() });
/// assert_eq!(typed.resolve::<Cb>().unwrap(), Cb::ParseAuthor { name: "Ann".into() });
/// assert_eq!(typed.name(), "parse_author");
/// // From outside (the CLI, a persisted request): by name, through serde.
/// assert_eq!(CallbackData::named("parse").resolve::<Cb>().unwrap(), Cb::Parse);
/// let err = CallbackData::named("parse_autor").resolve::<Cb>().unwrap_err();
/// assert_eq!(err.kind, "UnknownCallback");
/// ```
///
/// A misspelt callback is a compile error, not a failure in the middle of a crawl:
///
/// ```compile_fail
/// # #[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
/// # enum Cb { Parse, ParseAuthor }
/// let request = arachne::http::Request::get("http://127.0.0.1/").unwrap();
/// let request = request.callback(Cb::ParseAutor); // error: no variant `ParseAutor`
/// ```
#[derive(Clone)]
pub struct CallbackData(CallbackRepr);

#[derive(Clone)]
enum CallbackRepr {
    /// Set in this process: resolving is a downcast, no serde on the hot path.
    Typed(Arc<dyn ErasedCallback>),
    /// Came from outside: resolved through serde.
    Value(Arc<Value>),
}

trait ErasedCallback: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn try_to_value(&self) -> Result<Value, serde_json::Error>;
    fn fmt_debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<C: Callback> ErasedCallback for C {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn try_to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }
    fn fmt_debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl CallbackData {
    /// A typed callback value.
    pub fn new<C: Callback>(callback: C) -> Self {
        CallbackData(CallbackRepr::Typed(Arc::new(callback)))
    }

    /// A callback by name, as the command line or a persisted request gives it
    /// (a unit variant's snake_case name).
    pub fn named(name: &str) -> Self {
        CallbackData::from_value(Value::String(name.to_string()))
    }

    /// A callback with data by name (`parse --callback NAME --cbkwargs JSON`): the
    /// serde form `{NAME: data}` of a struct or newtype variant; `null` or `{}` data
    /// names a unit variant.
    pub fn with_data(name: &str, data: Value) -> Self {
        match data {
            Value::Null => CallbackData::named(name),
            Value::Object(m) if m.is_empty() => CallbackData::named(name),
            data => {
                let mut m = Map::new();
                m.insert(name.to_string(), data);
                CallbackData::from_value(Value::Object(m))
            }
        }
    }

    /// A callback from its serde form.
    pub fn from_value(value: Value) -> Self {
        CallbackData(CallbackRepr::Value(Arc::new(value)))
    }

    /// The serde form (what JOBDIR and Redis store).
    pub fn to_value(&self) -> Value {
        // A callback type whose values do not serialise (a map with non-string keys)
        // is a programming error; it shows as `null` in a persisted request.
        self.try_to_value()
            .map_or(Value::Null, std::borrow::Cow::into_owned)
    }

    /// The serde form (borrowed when it is held as such), or why a typed value has
    /// none: the compact request codec refuses such a request rather than store
    /// `null` (the memory queue then keeps it as it is).
    pub(crate) fn try_to_value(&self) -> Result<std::borrow::Cow<'_, Value>, serde_json::Error> {
        match &self.0 {
            CallbackRepr::Typed(c) => c.try_to_value().map(std::borrow::Cow::Owned),
            CallbackRepr::Value(v) => Ok(std::borrow::Cow::Borrowed(&**v)),
        }
    }

    /// The callback's name (the variant), for logs and contracts.
    pub fn name(&self) -> String {
        match self.to_value() {
            Value::String(s) => s,
            Value::Object(m) if m.len() == 1 => m.keys().next().cloned().unwrap_or_default(),
            other => other.to_string(),
        }
    }

    /// The typed value for a spider whose callback type is `C`. A value set in this
    /// process as a `C` is returned as is; anything else goes through serde, and what
    /// does not map onto `C` is an `UnknownCallback` error naming it.
    pub fn resolve<C: Callback>(&self) -> Result<C, SpiderError> {
        if let CallbackRepr::Typed(c) = &self.0 {
            if let Some(c) = c.as_any().downcast_ref::<C>() {
                return Ok(c.clone());
            }
        }
        let value = self.to_value();
        serde_json::from_value(value.clone()).map_err(|e| {
            SpiderError::new(
                "UnknownCallback",
                format!("spider has no callback {value}: {e}"),
            )
        })
    }
}

impl fmt::Debug for CallbackData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            CallbackRepr::Typed(c) => c.fmt_debug(f),
            CallbackRepr::Value(v) => write!(f, "{v}"),
        }
    }
}

impl PartialEq for CallbackData {
    fn eq(&self, other: &Self) -> bool {
        self.to_value() == other.to_value()
    }
}

impl Serialize for CallbackData {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CallbackData {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(CallbackData::from_value)
    }
}

/// The default [`Spider::start`]: a `GET` per URL, with `dont_filter` set as in
/// Scrapy. An invalid URL is yielded as an error: it is logged and counted and the
/// others go on.
///
/// ```
/// let start = arachne::spider::start_from_urls(vec!["http://127.0.0.1/".into()]);
/// # drop(start);
/// ```
pub fn start_from_urls(urls: Vec<String>) -> Start {
    start_from_iter(urls.into_iter().map(|u| {
        Request::get(&u)
            .map(|r| OutputEntry::Request(r.dont_filter(true)))
            .map_err(SpiderError::from)
    }))
}

/// A [`Start`] stream from a plain iterator of requests or items (what a Scrapy
/// `start()` that only yields would be). The iterator is pulled lazily.
///
/// ```
/// use arachne::prelude::*;
/// use arachne::spider::{start_from_iter, Start};
///
/// fn start() -> Start {
///     start_from_iter((1..=3).map(|n| Request::get(format!("http://127.0.0.1/p/{n}"))))
/// }
/// # drop(start());
/// ```
pub fn start_from_iter<I, T, E>(iter: I) -> Start
where
    I: IntoIterator<Item = Result<T, E>> + 'static,
    T: Into<OutputEntry>,
    E: Into<SpiderError>,
{
    Box::pin(futures_util::stream::iter(
        iter.into_iter()
            .map(|r| r.map(Into::into).map_err(Into::into)),
    ))
}

/// A spider: where to start and how to turn responses into items and requests.
///
/// ```
/// use arachne::prelude::*;
///
/// struct Quotes;
///
/// #[derive(Serialize, Deserialize, Clone, Debug)]
/// #[serde(rename_all = "snake_case")]
/// enum Cb { Parse, Author { listed_on: String } }
///
/// #[async_trait(?Send)]
/// impl Spider for Quotes {
///     type Callback = Cb;
///     fn name(&self) -> &str { "quotes" }
///     fn start_urls(&self) -> Vec<String> { vec!["http://127.0.0.1:8000/page/1/".into()] }
///
///     async fn parse(&self, response: &Response) -> CallbackResult {
///         let mut out = Output::new();
///         for quote in response.css("div.quote")? {
///             out.item(json!({ "text": quote.css("span.text::text")?.get() }));
///         }
///         if let Some(next) = response.css("li.next a::attr(href)")?.get() {
///             out.request(response.follow(&next)?);
///         }
///         for author in response.css("a.author::attr(href)")?.getall() {
///             let page = response.url.to_string();
///             out.request(response.follow(&author)?.callback(Cb::Author { listed_on: page }));
///         }
///         Ok(out)
///     }
///
///     async fn callback(&self, cb: Cb, response: &Response) -> CallbackResult {
///         match cb {
///             Cb::Parse => self.parse(response).await,
///             Cb::Author { listed_on } => Ok(Output::new().with_item(json!({
///                 "name": response.css("h3::text")?.get(),
///                 "listed_on": listed_on,
///             }))),
///         }
///     }
/// }
/// ```
#[async_trait::async_trait(?Send)]
pub trait Spider: Send + Sync + 'static {
    /// The spider's callbacks and errbacks, as data (see [`Callback`]);
    /// [`DefaultCallback`] when it has only `parse`.
    type Callback: Callback;

    /// The spider's unique name.
    fn name(&self) -> &str;

    /// Domains the crawl may visit (subdomains included); empty means any.
    fn allowed_domains(&self) -> Vec<String> {
        Vec::new()
    }

    /// URLs the default [`start`](Spider::start) turns into requests.
    fn start_urls(&self) -> Vec<String> {
        Vec::new()
    }

    /// The first requests and items, as an async stream (Scrapy 2.13's `start()`),
    /// consumed lazily as the scheduler has room. Default: [`start_from_urls`] over
    /// [`start_urls`](Spider::start_urls).
    fn start(self: Arc<Self>) -> Start {
        start_from_urls(self.start_urls())
    }

    /// Settings that override the project's (Scrapy's `custom_settings`).
    fn custom_settings(&self) -> Vec<(String, Value)> {
        Vec::new()
    }

    /// The default callback: for requests that name none.
    async fn parse(&self, response: &Response) -> CallbackResult;

    /// Dispatches a named callback. Override it as soon as the spider has more than
    /// `parse`: the default sends everything to [`parse`](Spider::parse).
    async fn callback(&self, callback: Self::Callback, response: &Response) -> CallbackResult {
        let _ = callback;
        self.parse(response).await
    }

    /// Dispatches an errback: called for download errors and non-2xx responses of
    /// requests that name one. The default has none.
    async fn errback(&self, errback: Self::Callback, failure: &Failure) -> CallbackResult {
        let _ = failure;
        Err(SpiderError::new(
            "UnknownCallback",
            format!("spider has no errback {errback:?}"),
        ))
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

    /// Called once when the crawl is assembled, before the spider opens: Scrapy's
    /// `from_crawler`. The handle reaches settings, stats, the engine and the signals
    /// (`crawler.signals().subscribe(..)` to hear any signal).
    async fn opened(&self, crawler: &CrawlerHandle) {
        let _ = crawler;
    }

    /// Called when the spider closes, with the reason, before `spider_closed` is sent
    /// and the stats are dumped (Scrapy's `closed(reason)`).
    async fn closed(&self, reason: &CloseReason) {
        let _ = reason;
    }
}

/// A [`Spider`] with its callback type erased: what the engine, the workers and the
/// components hold (`Arc<dyn DynSpider>`). Implemented for every `Spider`; users have
/// no reason to implement or call it.
#[async_trait::async_trait(?Send)]
pub trait DynSpider: Send + Sync + 'static {
    /// [`Spider::name`].
    fn name(&self) -> &str;
    /// [`Spider::allowed_domains`].
    fn allowed_domains(&self) -> Vec<String>;
    /// [`Spider::start`].
    fn start(self: Arc<Self>) -> Start;
    /// [`Spider::custom_settings`].
    fn custom_settings(&self) -> Vec<(String, Value)>;
    /// Runs the request's callback (`parse` when it names none).
    async fn call(&self, callback: Option<&CallbackData>, response: &Response) -> CallbackResult;
    /// Runs an errback.
    async fn call_errback(&self, errback: &CallbackData, failure: &Failure) -> CallbackResult;
    /// Whether the spider has this callback (a persisted or command-line name).
    fn check_callback(&self, callback: &CallbackData) -> Result<(), SpiderError>;
    /// [`Spider::attr`].
    fn attr(&self, name: &str) -> Option<Value>;
    /// [`Spider::state`].
    fn state(&self) -> Option<&State>;
    /// [`Spider::update_settings`].
    fn update_settings(&self, settings: &Settings);
    /// [`Spider::opened`].
    async fn opened(&self, crawler: &CrawlerHandle);
    /// [`Spider::closed`].
    async fn closed(&self, reason: &CloseReason);
}

#[async_trait::async_trait(?Send)]
impl<S: Spider> DynSpider for S {
    fn name(&self) -> &str {
        Spider::name(self)
    }
    fn allowed_domains(&self) -> Vec<String> {
        Spider::allowed_domains(self)
    }
    fn start(self: Arc<Self>) -> Start {
        Spider::start(self)
    }
    fn custom_settings(&self) -> Vec<(String, Value)> {
        Spider::custom_settings(self)
    }
    async fn call(&self, callback: Option<&CallbackData>, response: &Response) -> CallbackResult {
        match callback {
            None => self.parse(response).await,
            Some(data) => {
                let cb = data.resolve::<S::Callback>()?;
                self.callback(cb, response).await
            }
        }
    }
    async fn call_errback(&self, errback: &CallbackData, failure: &Failure) -> CallbackResult {
        let eb = errback.resolve::<S::Callback>()?;
        self.errback(eb, failure).await
    }
    fn check_callback(&self, callback: &CallbackData) -> Result<(), SpiderError> {
        callback.resolve::<S::Callback>().map(|_| ())
    }
    fn attr(&self, name: &str) -> Option<Value> {
        Spider::attr(self, name)
    }
    fn state(&self) -> Option<&State> {
        Spider::state(self)
    }
    fn update_settings(&self, settings: &Settings) {
        Spider::update_settings(self, settings)
    }
    async fn opened(&self, crawler: &CrawlerHandle) {
        Spider::opened(self, crawler).await
    }
    async fn closed(&self, reason: &CloseReason) {
        Spider::closed(self, reason).await
    }
}

impl fmt::Debug for dyn DynSpider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Spider({})", self.name())
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

impl From<Request> for OutputEntry {
    fn from(r: Request) -> Self {
        OutputEntry::Request(r)
    }
}

impl From<Item> for OutputEntry {
    fn from(i: Item) -> Self {
        OutputEntry::Item(i)
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

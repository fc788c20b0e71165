//! `RobotsTxtMiddleware`: obeys each site's robots.txt, as Scrapy's
//! `scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware` (order 100).
//!
//! The first request to a netloc (scheme, host and port) makes the middleware fetch
//! `<scheme>://<host>:<port>/robots.txt` once, through the whole downloader (its
//! middlewares included, as Scrapy's `engine.download`), with priority 1000 and meta
//! `dont_obey_robotstxt: true`. Every request to that netloc waits for it; later ones
//! are checked against the parsed rules at once. A redirected robots.txt (or a retried
//! one) is followed, at most [`MAX_ROBOTS_HOPS`] times. Parsing is done by the
//! `texting_robots` crate; the group is chosen as Scrapy's Protego parser does: the
//! longest `User-agent` token contained in the user agent (case-insensitive), else `*`.
//!
//! A robots.txt that is missing (4xx), failing (5xx), unparsable, or whose download
//! failed allows everything (Scrapy logs download errors and allows all).
//!
//! | setting | default | meaning |
//! | --- | --- | --- |
//! | `ROBOTSTXT_OBEY` | `false` | `false`: the middleware is not configured |
//! | `ROBOTSTXT_USER_AGENT` | `""` | the agent to match groups with; empty: the request's `User-Agent` header, else `USER_AGENT` |
//! | `USER_AGENT` | `Arachne/<version>` | the last fallback |
//!
//! Meta: `dont_obey_robotstxt` (a true value lets the request pass unchecked).
//!
//! Stats: `robotstxt/request_count` (one per netloc), `robotstxt/response_count`,
//! `robotstxt/response_status_count/<status>`, `robotstxt/exception_count/<kind>`
//! (`DownloadError::kind`, ignored requests not counted), `robotstxt/forbidden`.
//!
//! A forbidden request fails with `DownloadError::Ignored("Forbidden by robots.txt")`
//! (its errback gets it) and is logged at debug level as
//! `Forbidden by robots.txt: <GET url>`.
//!
//! Differences from Scrapy: robots.txt is kept per scheme, host and port (Scrapy keys
//! it by `netloc`, so `http` and `https` share one); a non-2xx robots.txt allows all
//! whatever its body says (Scrapy parses any body); only `http`/`https` requests are
//! checked; a chain of redirects and retries is followed at most [`MAX_ROBOTS_HOPS`]
//! times (Scrapy follows it without a limit of its own).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;
use texting_robots::Robot;
use tokio::sync::oneshot;
use url::Url;

use crate::error::{ConfigError, DownloadError};
use crate::extension::CrawlerHandle;
use crate::handle::DownloaderHandle;
use crate::handle::StatsHandle;
use crate::http::{Method, Request, Response};
use crate::middleware::downloader::{DownloaderMiddleware, Fetched, RequestFlow};

/// Scrapy's `RobotsTxtMiddleware.DOWNLOAD_PRIORITY`.
pub const DOWNLOAD_PRIORITY: i32 = 1000;

/// Most downloads made for one robots.txt (the first one, then each redirect or retry).
pub const MAX_ROBOTS_HOPS: usize = 10;

/// What a netloc's robots.txt says: `None` allows everything.
type Verdict = Option<Rc<RobotsRules>>;

/// Where a netloc's robots.txt stands.
enum NetlocState {
    /// Being fetched; these requests wait for it.
    Pending(Vec<oneshot::Sender<Verdict>>),
    /// Fetched (or failed, which allows all).
    Ready(Verdict),
}

type Netlocs = Rc<RefCell<HashMap<String, NetlocState>>>;

/// Obeys robots.txt. See the module docs.
pub struct RobotsTxtMiddleware {
    fetch: DownloaderHandle,
    stats: StatsHandle,
    /// `ROBOTSTXT_USER_AGENT`, when set.
    robotstxt_useragent: Option<String>,
    /// `USER_AGENT`.
    default_useragent: String,
    netlocs: Netlocs,
}

impl std::fmt::Debug for RobotsTxtMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RobotsTxtMiddleware")
            .field("robotstxt_useragent", &self.robotstxt_useragent)
            .field("default_useragent", &self.default_useragent)
            .field("netlocs", &self.netlocs.borrow().len())
            .finish()
    }
}

impl RobotsTxtMiddleware {
    /// Built when `ROBOTSTXT_OBEY` is true; not configured otherwise.
    pub fn from_crawler(
        crawler: &CrawlerHandle,
    ) -> Result<Option<Box<dyn DownloaderMiddleware>>, ConfigError> {
        if !crawler.settings.get_bool("ROBOTSTXT_OBEY")? {
            return Ok(None);
        }
        Ok(Some(Box::new(RobotsTxtMiddleware::new(
            crawler.downloader().clone(),
            crawler.stats().clone(),
            &crawler.settings.get_str("ROBOTSTXT_USER_AGENT"),
            &crawler.settings.get_str("USER_AGENT"),
        ))))
    }

    /// A middleware that fetches robots.txt through `fetch` and counts in `stats`.
    /// An empty `robotstxt_useragent` means "use the request's `User-Agent`, else
    /// `default_useragent`".
    pub fn new(
        fetch: DownloaderHandle,
        stats: StatsHandle,
        robotstxt_useragent: &str,
        default_useragent: &str,
    ) -> Self {
        let ua = robotstxt_useragent.trim();
        RobotsTxtMiddleware {
            fetch,
            stats,
            robotstxt_useragent: (!ua.is_empty()).then(|| ua.to_string()),
            default_useragent: default_useragent.to_string(),
            netlocs: Rc::default(),
        }
    }

    /// The agent the rules are matched with for `request`.
    fn user_agent(&self, request: &Request) -> String {
        if let Some(ua) = &self.robotstxt_useragent {
            return ua.clone();
        }
        match request.headers.get("user-agent") {
            Some(v) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
            None => self.default_useragent.clone(),
        }
    }

    /// The rules of `key`'s robots.txt, fetching it first if nobody has yet.
    async fn rules(&self, key: &str, url: &Url) -> Verdict {
        let waiting = {
            let mut netlocs = self.netlocs.borrow_mut();
            match netlocs.get_mut(key) {
                Some(NetlocState::Ready(verdict)) => return verdict.clone(),
                Some(NetlocState::Pending(waiters)) => {
                    let (tx, rx) = oneshot::channel();
                    waiters.push(tx);
                    rx
                }
                None => {
                    let (tx, rx) = oneshot::channel();
                    netlocs.insert(key.to_string(), NetlocState::Pending(vec![tx]));
                    drop(netlocs);
                    self.start_fetch(key, url);
                    rx
                }
            }
        };
        // The fetch task always answers (its guard does, even if it is cancelled).
        waiting.await.unwrap_or(None)
    }

    /// Fetches `key`'s robots.txt on a task of its own, so that it completes whichever
    /// waiting request goes away.
    fn start_fetch(&self, key: &str, url: &Url) {
        let request = robots_request(url);
        let mut guard = Resolve {
            key: key.to_string(),
            netlocs: self.netlocs.clone(),
            verdict: None,
        };
        let fetch = self.fetch.clone();
        let stats = self.stats.clone();
        actix_rt::spawn(async move {
            guard.verdict = Some(fetch_robots(fetch, stats, request).await);
            drop(guard);
        });
    }
}

/// Marks a netloc ready and wakes its waiters when dropped: when the fetch is done, or
/// when its task is cancelled (then robots.txt allows all).
struct Resolve {
    key: String,
    netlocs: Netlocs,
    verdict: Option<Verdict>,
}

impl Drop for Resolve {
    fn drop(&mut self) {
        let verdict = self.verdict.take().unwrap_or(None);
        let Ok(mut netlocs) = self.netlocs.try_borrow_mut() else {
            return;
        };
        let previous = netlocs.insert(
            std::mem::take(&mut self.key),
            NetlocState::Ready(verdict.clone()),
        );
        drop(netlocs);
        if let Some(NetlocState::Pending(waiters)) = previous {
            for waiter in waiters {
                let _ = waiter.send(verdict.clone());
            }
        }
    }
}

#[async_trait::async_trait(?Send)]
impl DownloaderMiddleware for RobotsTxtMiddleware {
    async fn process_request(&self, request: &mut Request) -> Result<RequestFlow, DownloadError> {
        if request.meta_bool("dont_obey_robotstxt") {
            return Ok(RequestFlow::Continue);
        }
        let Some(key) = netloc_key(&request.url) else {
            return Ok(RequestFlow::Continue);
        };
        let Some(rules) = self.rules(&key, &request.url).await else {
            return Ok(RequestFlow::Continue);
        };
        if rules.allowed(request.url.as_str(), &self.user_agent(request)) {
            return Ok(RequestFlow::Continue);
        }
        log::debug!(
            "Forbidden by robots.txt: <{} {}>",
            request.method,
            request.url
        );
        self.stats.inc("robotstxt/forbidden");
        Err(DownloadError::Ignored("Forbidden by robots.txt".into()))
    }
}

/// Downloads robots.txt, following rescheduled requests (redirects, retries); `None`
/// allows all.
async fn fetch_robots(fetch: DownloaderHandle, stats: StatsHandle, request: Request) -> Verdict {
    stats.inc("robotstxt/request_count");
    let mut request = request;
    for _ in 0..MAX_ROBOTS_HOPS {
        let shown = format!("<{} {}>", request.method, request.url);
        match fetch.fetch(request).await {
            Fetched::Response(response) => {
                stats.inc("robotstxt/response_count");
                stats.inc(format!(
                    "robotstxt/response_status_count/{}",
                    response.status
                ));
                return parse_response(&response);
            }
            Fetched::Reschedule(next) => {
                request = next.meta("dont_obey_robotstxt", true);
            }
            Fetched::Failed(_, DownloadError::Ignored(reason)) => {
                log::debug!("robots.txt request {shown} ignored: {reason}; allowing all");
                return None;
            }
            Fetched::Failed(_, error) => {
                log::error!("Error downloading {shown}: {error}");
                stats.inc(format!("robotstxt/exception_count/{}", error.kind()));
                return None;
            }
        }
    }
    log::warn!(
        "robots.txt still redirected or retried after {MAX_ROBOTS_HOPS} downloads; allowing all"
    );
    None
}

/// The rules a downloaded robots.txt gives: a non-2xx status allows all.
fn parse_response(response: &Response) -> Verdict {
    if !(200..300).contains(&response.status) {
        log::debug!(
            "robots.txt at {} answered {}: allowing all",
            response.url,
            response.status
        );
        return None;
    }
    Some(Rc::new(RobotsRules::parse(&response.body)))
}

/// The robots.txt request for a page of `url`'s netloc.
fn robots_request(url: &Url) -> Request {
    Request::from_url(Method::GET, robots_url(url))
        .priority(DOWNLOAD_PRIORITY)
        .meta("dont_obey_robotstxt", Value::Bool(true))
}

/// `<scheme>://<host>[:port]/robots.txt` for `url` (credentials, query and fragment
/// dropped).
pub fn robots_url(url: &Url) -> Url {
    let mut robots = url.clone();
    let _ = robots.set_username("");
    let _ = robots.set_password(None);
    robots.set_path("/robots.txt");
    robots.set_query(None);
    robots.set_fragment(None);
    robots
}

/// The key robots.txt is kept under: `scheme://host:port`, for `http` and `https` URLs.
pub fn netloc_key(url: &Url) -> Option<String> {
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    Some(format!(
        "{}://{}:{}",
        url.scheme(),
        host.to_ascii_lowercase(),
        port
    ))
}

/// A parsed robots.txt: its body, its `User-agent` tokens and a parser per token used.
pub struct RobotsRules {
    body: Vec<u8>,
    agents: Vec<String>,
    /// Token → its rules (`None`: the parser refused the file, which allows all).
    robots: RefCell<HashMap<String, Option<Rc<Robot>>>>,
}

impl std::fmt::Debug for RobotsRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RobotsRules")
            .field("agents", &self.agents)
            .field("bytes", &self.body.len())
            .finish()
    }
}

impl RobotsRules {
    /// Reads a robots.txt body.
    pub fn parse(body: &[u8]) -> RobotsRules {
        RobotsRules {
            agents: user_agent_tokens(body),
            body: body.to_vec(),
            robots: RefCell::default(),
        }
    }

    /// Whether `user_agent` may fetch `url`.
    ///
    /// ```
    /// use arachne::middleware::robotstxt::RobotsRules;
    ///
    /// let rules = RobotsRules::parse(b"User-agent: *\nDisallow: /private\n");
    /// assert!(!rules.allowed("http://127.0.0.1/private/x", "Arachne/0.1"));
    /// assert!(rules.allowed("http://127.0.0.1/public", "Arachne/0.1"));
    /// ```
    pub fn allowed(&self, url: &str, user_agent: &str) -> bool {
        let token = best_agent_token(&self.agents, user_agent).to_string();
        let robot = self
            .robots
            .borrow_mut()
            .entry(token)
            .or_insert_with_key(|token| match Robot::new(token, &self.body) {
                Ok(robot) => Some(Rc::new(robot)),
                Err(e) => {
                    log::warn!("Failure while parsing robots.txt ({e}); allowing all");
                    None
                }
            })
            .clone();
        robot.is_none_or(|robot| robot.allowed(url))
    }
}

/// The distinct `User-agent` values of a robots.txt, lower-cased, in file order,
/// read as `texting_robots` reads them (`User-agent`, `User agent` or `Useragent`,
/// then `:` or spaces; `#` starts a comment).
pub fn user_agent_tokens(body: &[u8]) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    for line in body.split(|&b| b == b'\n' || b == 0) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_start_matches([' ', '\t']);
        let lower = line.to_ascii_lowercase();
        let Some(rest) = ["user-agent", "user agent", "useragent"]
            .iter()
            .find_map(|k| lower.strip_prefix(k))
        else {
            continue;
        };
        let value = match rest.trim_start_matches([' ', '\t']).strip_prefix(':') {
            Some(value) => value,
            None if rest.starts_with([' ', '\t']) => rest,
            None => continue,
        };
        let value = value.split('#').next().unwrap_or("").trim();
        if !value.is_empty() && !tokens.iter().any(|t| t == value) {
            tokens.push(value.to_string());
        }
    }
    tokens
}

/// The group `user_agent` belongs to, as Scrapy's Protego parser chooses it: the
/// longest token (other than `*`) found inside the lower-cased agent, the first in the
/// file on a tie; else `*`.
pub fn best_agent_token<'a>(tokens: &'a [String], user_agent: &str) -> &'a str {
    let agent = user_agent.trim().to_lowercase();
    let mut best: Option<&str> = None;
    for token in tokens {
        if token != "*"
            && agent.contains(token.as_str())
            && best.is_none_or(|b| token.len() > b.len())
        {
            best = Some(token);
        }
    }
    best.unwrap_or("*")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::downloader::{Fetch, GetSlotDelay, SetSlotDelay};
    use crate::handle::StatsHandle;
    use actix::{Actor, Context, Handler, ResponseFuture};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Agent tokens are read in every spelling texting_robots accepts, lower-cased.
    #[test]
    fn tokens() {
        let body =
            b"\xef\xbb\xbfUser-agent: FooBot # comment\n  user agent : *\nUSERAGENT BarBot/2\n\
            Disallow: /x\nUser-agentBaz: nope\nuser-agent: foobot\n";
        assert_eq!(user_agent_tokens(body), vec!["foobot", "*", "barbot/2"]);
    }

    /// The longest contained token wins; `*` is the fallback.
    #[test]
    fn best_token() {
        let tokens: Vec<String> = ["*", "bot", "mybot", "otherbot"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            best_agent_token(&tokens, "Mozilla/5.0 (compatible; MyBot/1.0)"),
            "mybot"
        );
        assert_eq!(best_agent_token(&tokens, "SomeBot"), "bot");
        assert_eq!(best_agent_token(&tokens, "Arachne/0.1"), "*");
        assert_eq!(best_agent_token(&[], "x"), "*");
    }

    /// Groups are chosen by agent, rules by longest match.
    #[test]
    fn rules_by_agent() {
        let rules = RobotsRules::parse(
            b"User-agent: *\nDisallow: /\n\nUser-agent: GoodBot\nDisallow: /private\nAllow: /private/ok\n",
        );
        assert!(!rules.allowed("http://h/page", "Arachne/0.1"));
        assert!(rules.allowed("http://h/page", "goodbot/3.1"));
        assert!(!rules.allowed("http://h/private/x", "GoodBot"));
        assert!(rules.allowed("http://h/private/ok", "GoodBot"));
        // robots.txt itself is always allowed.
        assert!(rules.allowed("http://h/robots.txt", "Arachne/0.1"));
    }

    /// An empty or garbage body allows all.
    #[test]
    fn garbage_allows_all() {
        for body in [&b""[..], b"\xff\xfe<html>not robots</html>", b"Disallow"] {
            assert!(RobotsRules::parse(body).allowed("http://h/a", "x"));
        }
    }

    /// Keys include scheme and port; robots.txt URLs drop everything else.
    #[test]
    fn keys_and_urls() {
        let u = Url::parse("http://user:pw@Example.COM/a/b?q=1#f").unwrap();
        assert_eq!(netloc_key(&u).unwrap(), "http://example.com:80");
        assert_eq!(robots_url(&u).as_str(), "http://example.com/robots.txt");
        let s = Url::parse("https://example.com:8443/x").unwrap();
        assert_eq!(netloc_key(&s).unwrap(), "https://example.com:8443");
        assert_eq!(
            robots_url(&s).as_str(),
            "https://example.com:8443/robots.txt"
        );
        assert!(netloc_key(&Url::parse("ftp://example.com/x").unwrap()).is_none());
    }

    /// A stand-in downloader: answers robots.txt after a delay, counting the fetches.
    struct FakeDownloader {
        fetches: Arc<AtomicUsize>,
        body: &'static str,
        status: u16,
    }

    impl Actor for FakeDownloader {
        type Context = Context<Self>;
    }

    impl Handler<SetSlotDelay> for FakeDownloader {
        type Result = ();
        fn handle(&mut self, _: SetSlotDelay, _: &mut Context<Self>) {}
    }

    impl Handler<GetSlotDelay> for FakeDownloader {
        type Result = Option<Duration>;
        fn handle(&mut self, _: GetSlotDelay, _: &mut Context<Self>) -> Option<Duration> {
            None
        }
    }

    impl Handler<Fetch> for FakeDownloader {
        type Result = ResponseFuture<Fetched>;
        fn handle(&mut self, msg: Fetch, _: &mut Context<Self>) -> Self::Result {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let (status, body) = (self.status, self.body);
            Box::pin(async move {
                assert!(msg.0.meta_bool("dont_obey_robotstxt"));
                assert_eq!(msg.0.url.path(), "/robots.txt");
                actix_rt::time::sleep(Duration::from_millis(50)).await;
                Fetched::Response(Response::new(msg.0, status, body.into()))
            })
        }
    }

    fn middleware(status: u16, body: &'static str) -> (RobotsTxtMiddleware, Arc<AtomicUsize>) {
        let fetches = Arc::new(AtomicUsize::new(0));
        let fake = FakeDownloader {
            fetches: fetches.clone(),
            body,
            status,
        }
        .start();
        let mw = RobotsTxtMiddleware::new(
            DownloaderHandle::from_addr(&fake),
            StatsHandle::collector(),
            "",
            "Arachne/0.1",
        );
        (mw, fetches)
    }

    /// Concurrent requests to one netloc share one robots.txt download and all wait
    /// for it; a disallowed one is ignored, `dont_obey_robotstxt` passes.
    #[actix::test]
    async fn one_fetch_many_waiters() {
        let (mw, fetches) = middleware(200, "User-agent: *\nDisallow: /no\n");
        let mw = Rc::new(mw);
        let mut tasks = Vec::new();
        for path in ["/a", "/b", "/no", "/c", "/no/2"] {
            let mw = mw.clone();
            tasks.push(async move {
                let mut r = Request::get(format!("http://127.0.0.1:1{path}")).unwrap();
                mw.process_request(&mut r).await.map(|_| ())
            });
        }
        let results = futures_util::future::join_all(tasks).await;
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        let denied: Vec<bool> = results.iter().map(|r| r.is_err()).collect();
        assert_eq!(denied, vec![false, false, true, false, true]);
        assert!(
            matches!(&results[2], Err(DownloadError::Ignored(m)) if m == "Forbidden by robots.txt")
        );
        let mut pass = Request::get("http://127.0.0.1:1/no")
            .unwrap()
            .meta("dont_obey_robotstxt", true);
        assert!(mw.process_request(&mut pass).await.is_ok());
        // Another port is another netloc.
        let mut other = Request::get("http://127.0.0.1:2/no").unwrap();
        assert!(mw.process_request(&mut other).await.is_err());
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    /// A 5xx robots.txt allows all, whatever its body.
    #[actix::test]
    async fn server_error_allows_all() {
        let (mw, _) = middleware(503, "User-agent: *\nDisallow: /\n");
        let mut r = Request::get("http://127.0.0.1:1/x").unwrap();
        assert!(mw.process_request(&mut r).await.is_ok());
    }
}

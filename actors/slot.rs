//! A download Slot: one per domain (or per IP, or per `download_slot` meta). It holds
//! the requests waiting for that slot and starts them while it has free transfer
//! places (`CONCURRENT_REQUESTS_PER_DOMAIN` / `_PER_IP`) and its delay has passed
//! since the last start (`DOWNLOAD_DELAY`, randomised to 0.5–1.5× unless
//! `RANDOMIZE_DOWNLOAD_DELAY` is off). With a delay, one request starts per delay, as
//! in Scrapy. The accounting is the plain [`SlotState`]; [`Slot`] is the mailbox around
//! it and performs the HTTP transfer with the arbiter's shared `awc::Client`.
//!
//! Commands: [`SlotFetch`], [`SetDelay`]. Emits `RequestReachedDownloader` (when a
//! request enters the queue), `HeadersReceived`, `BytesReceived` (only when someone
//! subscribed), `ResponseDownloaded`, `DownloadFailed`, `RequestLeftDownloader` (when
//! its transfer ends: one per `RequestReachedDownloader`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::BytesMut;
use futures_util::StreamExt;
use std::rc::Rc;
use tokio::sync::oneshot;

use crate::http::client::HttpClients;

use super::downloader::DownloaderConfig;
use crate::error::DownloadError;
use crate::handle::SignalsHandle;
use crate::http::{HeaderMap, Request, Response};
use crate::signals::{
    BytesReceived, DownloadFailed, DownloadVote, HeadersReceived, RequestLeftDownloader,
    RequestReachedDownloader, ResponseDownloaded,
};

/// What a download returns.
pub type FetchResult = Result<Response, DownloadError>;

/// Downloads a request through this slot (queued until the slot allows it).
#[derive(Debug, Message)]
#[rtype(result = "FetchResult")]
pub struct SlotFetch(pub Request);

/// Changes the slot's delay (AutoThrottle, through `downloader::SetSlotDelay`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetDelay(pub Duration);

/// The slot's figures, as signals and `engine status` report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, MessageResponse)]
pub struct SlotStats {
    /// Transfers in progress.
    pub transferring: usize,
    /// Requests waiting.
    pub queued: usize,
    /// The current delay.
    pub delay: Duration,
    /// The concurrency limit.
    pub concurrency: usize,
}

/// What the slot should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<T> {
    /// Start this transfer now.
    Start(T),
    /// Nothing may start before this much time has passed.
    Wait(Duration),
    /// Nothing to start (queue empty or every transfer place busy).
    Idle,
}

/// A slot's accounting: Scrapy's `Slot` (concurrency, delay, randomize_delay, queue,
/// transferring, lastseen), generic over what is queued so it is tested without I/O.
#[derive(Debug)]
pub struct SlotState<T> {
    /// Most transfers at once.
    pub concurrency: usize,
    /// Delay between starts.
    pub delay: Duration,
    /// Randomise each gap to 0.5–1.5 × `delay`.
    pub randomize_delay: bool,
    queue: VecDeque<T>,
    transferring: usize,
    lastseen: Option<Instant>,
    /// The gap required before the next start, drawn once per start so a randomised
    /// delay is uniform rather than re-drawn at every check.
    next_gap: Duration,
}

impl<T> SlotState<T> {
    /// An empty slot.
    pub fn new(concurrency: usize, delay: Duration, randomize_delay: bool) -> Self {
        let mut s = SlotState {
            concurrency: concurrency.max(1),
            delay,
            randomize_delay,
            queue: VecDeque::new(),
            transferring: 0,
            lastseen: None,
            next_gap: Duration::ZERO,
        };
        s.next_gap = s.draw_gap();
        s
    }

    fn draw_gap(&self) -> Duration {
        if self.randomize_delay && !self.delay.is_zero() {
            self.delay.mul_f64(rand::random::<f64>() + 0.5)
        } else {
            self.delay
        }
    }

    /// Changes the delay; the next gap uses it.
    pub fn set_delay(&mut self, delay: Duration) {
        self.delay = delay;
        self.next_gap = self.draw_gap();
    }

    /// Queues a transfer.
    pub fn push(&mut self, item: T) {
        self.queue.push_back(item);
    }

    /// Decides what may start at `now`; a `Start` counts as transferring until
    /// [`finished`](SlotState::finished).
    pub fn next(&mut self, now: Instant) -> Step<T> {
        if self.queue.is_empty() || self.transferring >= self.concurrency {
            return Step::Idle;
        }
        if !self.delay.is_zero() {
            if let Some(last) = self.lastseen {
                let elapsed = now.saturating_duration_since(last);
                if elapsed < self.next_gap {
                    return Step::Wait(self.next_gap - elapsed);
                }
            }
        }
        match self.queue.pop_front() {
            Some(item) => {
                self.lastseen = Some(now);
                self.next_gap = self.draw_gap();
                self.transferring += 1;
                Step::Start(item)
            }
            None => Step::Idle,
        }
    }

    /// A transfer ended.
    pub fn finished(&mut self) {
        self.transferring = self.transferring.saturating_sub(1);
    }

    /// The figures.
    pub fn stats(&self) -> SlotStats {
        SlotStats {
            transferring: self.transferring,
            queued: self.queue.len(),
            delay: self.delay,
            concurrency: self.concurrency,
        }
    }
}

/// A queued request, the copy its signals carry, and where its result goes.
type Pending = (Request, Arc<Request>, oneshot::Sender<FetchResult>);

/// The slot actor.
pub struct Slot {
    key: Arc<str>,
    state: SlotState<Pending>,
    clients: Rc<HttpClients>,
    config: Arc<DownloaderConfig>,
    bus: SignalsHandle,
    timer: Option<SpawnHandle>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("key", &self.key)
            .field("state", &self.state.stats())
            .finish()
    }
}

impl Slot {
    /// A slot for `key`.
    pub fn new(
        key: Arc<str>,
        state: SlotState<Pending>,
        clients: Rc<HttpClients>,
        config: Arc<DownloaderConfig>,
        bus: SignalsHandle,
    ) -> Self {
        Slot {
            key,
            state,
            clients,
            config,
            bus,
            timer: None,
        }
    }

    fn process(&mut self, ctx: &mut Context<Self>) {
        loop {
            match self.state.next(Instant::now()) {
                Step::Idle => return,
                Step::Wait(d) => {
                    if self.timer.is_none() {
                        self.timer = Some(ctx.run_later(d, |act, ctx| {
                            act.timer = None;
                            act.process(ctx);
                        }));
                    }
                    return;
                }
                Step::Start((request, request_arc, tx)) => {
                    self.start(request, request_arc, tx, ctx)
                }
            }
        }
    }

    fn start(
        &mut self,
        request: Request,
        request_arc: Arc<Request>,
        tx: oneshot::Sender<FetchResult>,
        ctx: &mut Context<Self>,
    ) {
        let clients = self.clients.clone();
        let config = self.config.clone();
        let bus = self.bus.clone();
        let signal_request = request_arc.clone();
        let timeout = request
            .meta_f64("download_timeout")
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(config.timeout);
        let fut = async move {
            let transfer = transfer(&clients, request, signal_request, &config, &bus);
            // 0 (setting or meta): no timeout, as with the CLOSESPIDER_* limits.
            if timeout.is_zero() {
                return transfer.await;
            }
            match actix_rt::time::timeout(timeout, transfer).await {
                Ok(res) => res,
                Err(_) => Err(DownloadError::Timeout(timeout)),
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.state.finished();
            let stats = act.state.stats();
            match &res {
                Ok(response) => {
                    let dont_adjust = response.request.meta_bool("autothrottle_dont_adjust_delay")
                        || act
                            .config
                            .slots
                            .get(act.key.as_ref())
                            .and_then(|o| o.throttle)
                            == Some(false);
                    act.bus.emit(ResponseDownloaded {
                        response: Arc::new(response.clone()),
                        slot: act.key.clone(),
                        slot_delay: stats.delay,
                        slot_concurrency: stats.transferring + 1,
                        dont_adjust_delay: dont_adjust,
                    });
                }
                Err(e) => act.bus.emit(DownloadFailed {
                    request: request_arc.clone(),
                    error: e.clone(),
                }),
            }
            act.bus.emit(RequestLeftDownloader {
                request: request_arc,
            });
            // The engine may have stopped waiting (closing); nothing to do then.
            let _ = tx.send(res);
            act.process(ctx);
        }));
    }
}

impl Actor for Slot {
    type Context = Context<Self>;
}

impl Handler<SlotFetch> for Slot {
    type Result = ResponseFuture<FetchResult>;
    fn handle(&mut self, msg: SlotFetch, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        // As in Scrapy, a request reaches the downloader when it enters a slot.
        let request_arc = Arc::new(msg.0.clone());
        self.bus.emit(RequestReachedDownloader {
            request: request_arc.clone(),
        });
        self.state.push((msg.0, request_arc, tx));
        self.process(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(DownloadError::Cancelled)) })
    }
}

impl Handler<SetDelay> for Slot {
    type Result = ();
    fn handle(&mut self, msg: SetDelay, ctx: &mut Context<Self>) {
        self.state.set_delay(msg.0);
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        self.process(ctx);
    }
}

/// Asks a slot for its [`SlotStats`].
#[derive(Debug, Message)]
#[rtype(result = "SlotStats")]
pub struct GetSlotStats;

impl Handler<GetSlotStats> for Slot {
    type Result = SlotStats;
    fn handle(&mut self, _: GetSlotStats, _: &mut Context<Self>) -> SlotStats {
        self.state.stats()
    }
}

/// Scrapy logs the data-loss hint once per process.
static DATALOSS_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// One HTTP transfer: send, read headers, stream the body within `DOWNLOAD_MAXSIZE`.
/// `request_arc` is the shared copy of `request` the signals carry.
///
/// Proxies (meta `proxy`, set and normalised to `scheme://host:port` by
/// HttpProxyMiddleware): awc has no proxy support, and its HTTP/1 encoder always writes
/// the request line from the URI's `path_and_query` (origin form, `GET /path`), which a
/// forward proxy cannot route. So for an `http://` URL through an `http://` proxy the
/// request is given to awc with a URI whose scheme and authority are the *proxy's* (awc
/// connects there, and pools those connections by proxy) and whose `path_and_query` is
/// the *target's absolute URL*: the encoder then writes `GET http://host:port/path?q
/// HTTP/1.1`, the absolute form RFC 9112 §3.2.2 requires, and `Host` is set to the
/// target (see [`proxy_uri`]). Everything else — response parsing, chunked bodies,
/// keep-alive, timeouts — is awc's as for a direct request; a `407` answer is
/// `ProxyAuthRequired`. An `https://` URL through a proxy goes to the client
/// [`HttpClients::tunnel`] keeps for that proxy and `Proxy-Authorization`: its connector
/// opens a `CONNECT` tunnel carrying the credentials, and the request inside (TLS, then
/// origin form) never carries them (see `crate::http::tunnel`). `Proxy-Authorization`
/// is thus sent only to a proxy, never to a target. Proxy failures (unreachable,
/// `CONNECT` refused, `407`) are `Proxy` / `ProxyAuthRequired` errors. Proxies that are
/// not `http://` fail with `NotSupported`.
async fn transfer(
    clients: &HttpClients,
    request: Request,
    request_arc: Arc<Request>,
    config: &DownloaderConfig,
    bus: &SignalsHandle,
) -> FetchResult {
    let scheme = request.url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(DownloadError::NotSupported(scheme.to_string()));
    }
    let mut host = request.url.host_str().unwrap_or_default().to_string();
    // Through a proxy: `http://` in absolute form to the proxy's address, `https://`
    // through a CONNECT tunnel (see above).
    let proxy = request
        .meta_str("proxy")
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let tunnelled = proxy.is_some() && scheme == "https";
    let uri = match proxy {
        Some(proxy) if !tunnelled => {
            let (uri, proxy_host) = proxy_uri(&request.url, proxy)?;
            // Connection errors are about the proxy, and say so.
            host = format!("proxy {proxy_host}");
            uri
        }
        _ => awc::http::Uri::try_from(request.url.as_str())
            .map_err(|e| DownloadError::Other(format!("bad URL {}: {e}", request.url)))?,
    };
    let auth = match request.headers.get(awc::http::header::PROXY_AUTHORIZATION) {
        Some(v) if tunnelled => Some(v.to_str().map_err(|_| {
            DownloadError::Other("Proxy-Authorization is not visible ASCII".into())
        })?),
        _ => None,
    };
    // The request, ready to send through the pooled client or (`fresh`) its twin that
    // never reuses a connection.
    let build = |fresh: bool| -> Result<awc::FrozenClientRequest, DownloadError> {
        let client = match proxy {
            Some(p) if tunnelled => clients.tunnel(p, auth, fresh)?,
            _ => clients.direct(fresh).clone(),
        };
        let mut creq = client.request(request.method.clone(), uri.clone());
        {
            let headers = creq.headers_mut();
            for (k, v) in &request.headers {
                // Proxy credentials never go to a target site: not on a direct request,
                // and not inside a tunnel (the CONNECT carried them).
                if (proxy.is_none() || tunnelled) && k == awc::http::header::PROXY_AUTHORIZATION {
                    continue;
                }
                headers.append(k.clone(), v.clone());
            }
            if proxy.is_some() && !tunnelled && !headers.contains_key(awc::http::header::HOST) {
                headers.insert(awc::http::header::HOST, host_header(&request.url)?);
            }
        }
        // The new connection is closed after its response (`Connection: close`) rather
        // than left idle in the twin's pool, where nothing would ever reuse it.
        if fresh {
            creq = creq.force_close();
        }
        creq.freeze()
            .map_err(|e| DownloadError::Other(format!("cannot build the request: {e}")))
    };
    let maxsize = request
        .meta
        .get("download_maxsize")
        .and_then(|v| v.as_u64())
        .unwrap_or(config.maxsize);
    let warnsize = request
        .meta
        .get("download_warnsize")
        .and_then(|v| v.as_u64())
        .unwrap_or(config.warnsize);

    let started = Instant::now();
    let mut sent = build(false)?.send_body(request.body.clone()).await;
    // A pooled keep-alive connection the server closed meanwhile fails before any
    // response byte. An idempotent request is sent once more on a new connection,
    // transparently (Twisted's pool does the same); not a retry, counted on its own.
    // The new connection comes from the never-reusing twin: the pool may hold other
    // connections the peer is closing, and the resend must not take one of them.
    if let Err(e) = &sent {
        if lost_before_response(e) && is_idempotent(&request.method) {
            log::debug!(
                "Connection lost before any response to <{} {}>: sending it again",
                request.method,
                request.url
            );
            if let Some(stats) = &config.stats {
                stats.inc("downloader/connection_lost_resend_count");
            }
            sent = build(true)?.send_body(request.body.clone()).await;
        }
    }
    let mut resp = sent.map_err(|e| {
        // The proxy's failures first (unreachable, CONNECT refused, 407).
        match proxy.and_then(|p| crate::http::tunnel::proxy_error(&e, p, tunnelled)) {
            Some(proxy_failure) => proxy_failure,
            None => map_send_error(e, &host, config.timeout),
        }
    })?;
    let latency = started.elapsed();
    let status = resp.status().as_u16();
    // Absolute form: the proxy itself refused the request for want of credentials.
    // tinyproxy before 1.11.2 answers wrong credentials with a 401 of its own (its
    // issue #532); a 401 the proxy signs as tinyproxy is that, not the target's.
    let proxy_signed_401 = status == 401
        && resp
            .headers()
            .get(awc::http::header::SERVER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("tinyproxy"));
    if (status == 407 || proxy_signed_401) && !tunnelled {
        if let Some(proxy) = proxy {
            return Err(DownloadError::ProxyAuthRequired {
                proxy: proxy.to_string(),
            });
        }
    }
    let headers: HeaderMap = resp.headers().clone();
    // awc pools the connection of an HTTP/1.0 response that has a Content-Length and
    // no `Connection` header, as if it were keep-alive, although the peer (tinyproxy,
    // many old servers) closes it right after: the next request on it is lost. Such a
    // body is read up to its length and the stream dropped before its end is polled,
    // which closes the connection instead of pooling it.
    let version = resp.version();
    let closes = response_closes(version, &headers);
    let mut flags = Vec::new();
    if bus.has_subscribers::<HeadersReceived>() {
        let votes = bus
            .ask(HeadersReceived {
                status,
                headers: Arc::new(headers.clone()),
                request: request_arc.clone(),
            })
            .await;
        if votes.contains(&DownloadVote::Stop) {
            flags.push("download_stopped".to_string());
        }
    }

    let expected = resp
        .headers()
        .get(awc::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = expected {
        if maxsize > 0 && len > maxsize {
            log::warn!(
                "Cancelling download of {}: expected response size ({len}) larger than download max size ({maxsize}).",
                request.url
            );
            return Err(DownloadError::MaxSizeExceeded {
                size: len,
                max: maxsize,
            });
        }
        if warnsize > 0 && len > warnsize {
            log::warn!(
                "Expected response size ({len}) larger than download warn size ({warnsize}) in request {}.",
                request.url
            );
        }
    }

    // Cap the up-front allocation: a Content-Length is only a claim.
    let mut body = BytesMut::with_capacity(expected.unwrap_or(0).min(1 << 20) as usize);
    let mut warned = expected.is_some_and(|len| warnsize > 0 && len > warnsize);
    let per_chunk = bus.has_subscribers::<BytesReceived>();
    let mut truncated = false;
    if flags.is_empty() {
        while let Some(chunk) = resp.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                // The connection closed inside the body (a chunked body without its
                // last chunk, or a length the decoder was still waiting for): data loss,
                // as Scrapy classes it, not a connection failure.
                Err(awc::error::PayloadError::Incomplete(_)) => {
                    truncated = true;
                    break;
                }
                Err(e) => return Err(DownloadError::ConnectionLost(e.to_string())),
            };
            let size = (body.len() + chunk.len()) as u64;
            if maxsize > 0 && size > maxsize {
                log::warn!(
                    "Received ({size}) bytes larger than download max size ({maxsize}) in request {}.",
                    request.url
                );
                return Err(DownloadError::MaxSizeExceeded { size, max: maxsize });
            }
            if !warned && warnsize > 0 && size > warnsize {
                warned = true;
                log::warn!(
                    "Received more bytes than download warn size ({warnsize}) in request {}.",
                    request.url
                );
            }
            // Once the body outgrows the first allocation, room for the rest of an
            // announced length is reserved at once: growing by doubling copies the body
            // again and again and at the last step holds up to 1.3 times its size plus
            // the old copy (a 100 MB body took a 128 MB buffer while the 64 MB one was
            // still live). Pages never written stay unmapped, so a false
            // `Content-Length` costs address space, not memory.
            if body.capacity() - body.len() < chunk.len() {
                if let Some(len) = expected {
                    let len = if maxsize > 0 { len.min(maxsize) } else { len };
                    let want = (len as usize).saturating_sub(body.len()).max(chunk.len());
                    body.reserve(want);
                }
            }
            body.extend_from_slice(&chunk);
            let complete = expected.is_some_and(|len| body.len() as u64 >= len);
            if per_chunk {
                let votes = bus
                    .ask(BytesReceived {
                        data: chunk,
                        request: request_arc.clone(),
                    })
                    .await;
                if votes.contains(&DownloadVote::Stop) {
                    flags.push("download_stopped".to_string());
                    break;
                }
            }
            if closes && complete {
                break;
            }
        }
    }
    // Unpolled to its end, the connection is closed here rather than pooled.
    drop(resp);

    // A body shorter than its Content-Length followed by a clean close: awc ends the
    // stream without an error, so the check is here (Scrapy's `_DataLoss`). Not for
    // bodies that cannot have one (HEAD, 1xx/204/304) or a download a handler stopped.
    let got = body.len() as u64;
    let short = expected.is_some_and(|len| got < len);
    if truncated || short {
        let len = expected.unwrap_or(got);
        let bodiless = request.method == awc::http::Method::HEAD
            || status < 200
            || status == 204
            || status == 304;
        if !bodiless && flags.is_empty() {
            let fail = request
                .meta
                .get("download_fail_on_dataloss")
                .and_then(|v| v.as_bool())
                .unwrap_or(config.fail_on_dataloss);
            if fail {
                if !DATALOSS_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    log::warn!(
                        "Got data loss in {}. If you want to process broken responses set the \
                         setting DOWNLOAD_FAIL_ON_DATALOSS = False -- This message won't be \
                         shown in further requests",
                        request.url
                    );
                }
                return Err(DownloadError::DataLoss { got, expected: len });
            }
            flags.push("dataloss".to_string());
        }
    }

    let mut request = request;
    request
        .meta
        .insert("download_latency".into(), latency.as_secs_f64().into());
    let ip = request.url.host_str().and_then(|h| {
        h.trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .ok()
    });
    // awc does not expose the connection: the certificate is the one the TLS verifier
    // recorded for this host (see `http::tls`).
    let certificate = if request.url.scheme() == "https" {
        request.url.host_str().and_then(|h| clients.certificate(h))
    } else {
        None
    };
    let mut response = Response::new(request, status, body.freeze());
    response.headers = headers;
    response.ip = ip;
    response.latency = latency;
    response.protocol = protocol_name(version);
    response.certificate = certificate;
    response.flags = flags;
    Ok(response)
}

/// `response.protocol` as Scrapy sets it: `HTTP/1.1` (`HTTP/1.0`) from the HTTP/1.x
/// handler, `h2` from the HTTP/2 one.
fn protocol_name(version: awc::http::Version) -> Option<String> {
    use awc::http::Version;
    Some(
        match version {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_11 => "HTTP/1.1",
            Version::HTTP_2 => "h2",
            Version::HTTP_3 => "h3",
            other => return Some(format!("{other:?}")),
        }
        .to_string(),
    )
}

/// The URI handed to awc for an `http://` `target` through the `http://` `proxy`:
/// `http://proxy:port` + the target's absolute URL (without fragment) as
/// `path_and_query`, so awc connects to the proxy and writes the absolute form in the
/// request line. Returns it with the proxy's `host:port`, for error messages.
fn proxy_uri(target: &url::Url, proxy: &str) -> Result<(awc::http::Uri, String), DownloadError> {
    use awc::http::uri::{Authority, Parts, PathAndQuery, Scheme};
    if target.scheme() != "http" {
        return Err(DownloadError::NotSupported(format!(
            "{} through a proxy in absolute form (https goes through a CONNECT tunnel)",
            target.scheme()
        )));
    }
    let bad = |e: String| DownloadError::Other(format!("invalid proxy {proxy:?}: {e}"));
    let p = url::Url::parse(proxy).map_err(|e| bad(e.to_string()))?;
    if p.scheme() != "http" {
        return Err(DownloadError::NotSupported(format!(
            "proxy scheme {:?} (only http:// proxies are supported)",
            p.scheme()
        )));
    }
    let proxy_host = p.host_str().ok_or_else(|| bad("no host".into()))?;
    let hostport = format!("{proxy_host}:{}", p.port_or_known_default().unwrap_or(80));
    let mut absolute = target.clone();
    absolute.set_fragment(None);
    let mut parts = Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(Authority::try_from(hostport.as_str()).map_err(|e| bad(e.to_string()))?);
    parts.path_and_query = Some(
        PathAndQuery::try_from(absolute.as_str())
            .map_err(|e| DownloadError::Other(format!("bad URL {target}: {e}")))?,
    );
    let uri = awc::http::Uri::from_parts(parts).map_err(|e| bad(e.to_string()))?;
    Ok((uri, hostport))
}

/// The `Host` header for `url`: the host, and the port unless it is the scheme's default.
fn host_header(url: &url::Url) -> Result<awc::http::header::HeaderValue, DownloadError> {
    let host = url.host_str().unwrap_or_default();
    let value = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    awc::http::header::HeaderValue::from_str(&value)
        .map_err(|e| DownloadError::Other(format!("bad host in {url}: {e}")))
}

/// Whether a response says its connection closes after it: `Connection: close`, or
/// HTTP/1.0 without `Connection: keep-alive`.
fn response_closes(version: awc::http::Version, headers: &HeaderMap) -> bool {
    let connection = headers
        .get(awc::http::header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if connection.split(',').any(|t| t.trim() == "close") {
        return true;
    }
    version == awc::http::Version::HTTP_10
        && !connection.split(',').any(|t| t.trim() == "keep-alive")
}

/// A failure that happened after the connection was handed out and before any byte
/// of a response: writing the request, or the peer closing without an answer.
fn lost_before_response(e: &awc::error::SendRequestError) -> bool {
    use awc::error::{ConnectError, SendRequestError as E};
    match e {
        E::Send(_) | E::Connect(ConnectError::Disconnected) => true,
        E::Response(p) => matches!(
            p,
            actix_http::error::ParseError::Incomplete | actix_http::error::ParseError::Io(_)
        ),
        _ => false,
    }
}

/// RFC 9110 idempotent methods: safe to send twice.
fn is_idempotent(method: &awc::http::Method) -> bool {
    use awc::http::Method;
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// awc's error as a [`DownloadError`]. TLS failures come as `ConnectError::Io` wrapping
/// the rustls error (tokio-rustls) or a handshake EOF: a refused certificate becomes
/// `TlsCertificate`, any other handshake failure `TlsHandshake` (see
/// [`crate::http::tls::classify_io_error`]).
fn map_send_error(e: awc::error::SendRequestError, host: &str, timeout: Duration) -> DownloadError {
    use awc::error::{ConnectError, SendRequestError as E};
    match e {
        E::Connect(ConnectError::Io(io)) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            DownloadError::ConnectionRefused(host.to_string())
        }
        E::Connect(ConnectError::H2(e)) | E::H2(e) => {
            DownloadError::ConnectionLost(format!("HTTP/2: {e}"))
        }
        E::Connect(
            ConnectError::Resolver(_) | ConnectError::NoRecords | ConnectError::Unresolved,
        ) => DownloadError::DnsLookup(host.to_string()),
        E::Connect(ConnectError::Timeout) | E::Timeout => DownloadError::Timeout(timeout),
        E::Connect(ConnectError::SslIsNotSupported) => {
            DownloadError::NotSupported("https (the client was built without TLS)".to_string())
        }
        E::Connect(ConnectError::Disconnected) => {
            DownloadError::ConnectionLost("disconnected".into())
        }
        E::Connect(ConnectError::Io(io)) => crate::http::tls::classify_io_error(&io, host)
            .unwrap_or_else(|| DownloadError::ConnectionLost(io.to_string())),
        E::Send(io) => DownloadError::ConnectionLost(io.to_string()),
        E::Response(p) => DownloadError::ConnectionLost(p.to_string()),
        other => DownloadError::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Concurrency caps the transfers; a finished one frees a place.
    #[test]
    fn concurrency_limit() {
        let mut s = SlotState::new(2, Duration::ZERO, false);
        for i in 0..3 {
            s.push(i);
        }
        let now = Instant::now();
        assert_eq!(s.next(now), Step::Start(0));
        assert_eq!(s.next(now), Step::Start(1));
        assert_eq!(s.next(now), Step::Idle);
        s.finished();
        assert_eq!(s.next(now), Step::Start(2));
    }

    /// With a delay, one start per delay regardless of concurrency.
    #[test]
    fn delay_spaces_starts() {
        let mut s = SlotState::new(8, Duration::from_secs(2), false);
        s.push(1);
        s.push(2);
        let t0 = Instant::now();
        assert_eq!(s.next(t0), Step::Start(1));
        assert_eq!(
            s.next(t0 + Duration::from_millis(500)),
            Step::Wait(Duration::from_millis(1500))
        );
        assert_eq!(s.next(t0 + Duration::from_secs(2)), Step::Start(2));
    }

    /// Through a proxy, awc gets the proxy's address and the target in absolute form;
    /// only `http://` targets (`https://` ones are tunnelled) and `http://` proxies.
    #[test]
    fn proxy_uri_is_absolute_form() {
        let target = url::Url::parse("http://127.0.0.1:8080/a/b?x=1&y=%20#frag").unwrap();
        let (uri, hostport) = proxy_uri(&target, "http://10.0.0.1:3128").unwrap();
        assert_eq!(hostport, "10.0.0.1:3128");
        assert_eq!(uri.host(), Some("10.0.0.1"));
        assert_eq!(uri.port_u16(), Some(3128));
        assert_eq!(
            uri.path_and_query().unwrap().as_str(),
            "http://127.0.0.1:8080/a/b?x=1&y=%20"
        );
        let (uri, _) = proxy_uri(&target, "http://proxy").unwrap();
        assert_eq!(uri.port_u16(), Some(80));
        let https = url::Url::parse("https://example.com/").unwrap();
        assert!(matches!(
            proxy_uri(&https, "http://p:1"),
            Err(DownloadError::NotSupported(_))
        ));
        assert!(matches!(
            proxy_uri(&target, "socks5://p:1"),
            Err(DownloadError::NotSupported(_))
        ));
        assert_eq!(host_header(&target).unwrap(), "127.0.0.1:8080");
        let default_port = url::Url::parse("http://example.com:80/").unwrap();
        assert_eq!(host_header(&default_port).unwrap(), "example.com");
    }

    /// A randomised gap stays within 0.5–1.5 × delay.
    #[test]
    fn randomized_gap_bounds() {
        for _ in 0..200 {
            let mut s = SlotState::new(1, Duration::from_secs(1), true);
            s.push(());
            s.push(());
            let t0 = Instant::now();
            assert_eq!(s.next(t0), Step::Start(()));
            s.finished();
            match s.next(t0) {
                Step::Wait(d) => {
                    assert!(d >= Duration::from_millis(500) && d <= Duration::from_millis(1500))
                }
                other => panic!("expected a wait, got {other:?}"),
            }
        }
    }
}

//! The Downloader: runs each request through the downloader middlewares, then routes
//! it to the [`Slot`] of its domain — or of its IP
//! when `CONCURRENT_REQUESTS_PER_IP` > 0, or of its `download_slot` meta — creating
//! slots on demand and collecting idle ones. It owns every slot: AutoThrottle changes a
//! delay through `SetSlotDelay` (a `DownloaderHandle`), never by reaching into a slot.
//! The downloader stats are the `DownloaderStats` middleware's.
//!
//! Commands: `Fetch`, `SetSlotDelay`, query `GetSlotDelay` (all of
//! `crate::handle::downloader`), [`CloseDownloader`]. Emits nothing itself: the Slot
//! sends `RequestReachedDownloader` once a request is past the middlewares and in its
//! queue.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::slot::{FetchResult, GetSlotStats, SetDelay, Slot, SlotFetch, SlotState};
use crate::error::{catch_panic, ConfigError, DownloadError};
use crate::handle::downloader::{Fetch, GetSlotDelay, SetSlotDelay};
use crate::handle::SignalsHandle;
use crate::http::client::HttpClients;
use crate::http::Request;
use crate::middleware::downloader::{DownloaderMiddlewares, Fetched};
use crate::settings::Settings;

/// Downloads a request past the middlewares: only the slot and the transfer.
#[derive(Debug, Message)]
#[rtype(result = "FetchResult")]
struct Transfer(Request);

/// Stops every slot (in-flight transfers are cancelled).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CloseDownloader;

/// Per-slot overrides from `DOWNLOAD_SLOTS` (`{"example.com": {"concurrency": 1,
/// "delay": 2, "randomize_delay": false}}`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlotOverride {
    /// Concurrency for this slot.
    pub concurrency: Option<usize>,
    /// Delay for this slot.
    pub delay: Option<Duration>,
    /// Whether to randomise its delay.
    pub randomize_delay: Option<bool>,
    /// `false` keeps AutoThrottle off this slot (Scrapy's `throttle` slot option).
    pub throttle: Option<bool>,
}

/// The downloader's settings, read once.
#[derive(Debug, Clone)]
pub struct DownloaderConfig {
    /// `CONCURRENT_REQUESTS_PER_DOMAIN`.
    pub per_domain: usize,
    /// `CONCURRENT_REQUESTS_PER_IP` (0: slots are per domain).
    pub per_ip: usize,
    /// `DOWNLOAD_DELAY`.
    pub delay: Duration,
    /// `RANDOMIZE_DOWNLOAD_DELAY`.
    pub randomize_delay: bool,
    /// `DOWNLOAD_TIMEOUT`.
    pub timeout: Duration,
    /// `DOWNLOAD_MAXSIZE` (0: no limit).
    pub maxsize: u64,
    /// `DOWNLOAD_WARNSIZE` (0: no warning).
    pub warnsize: u64,
    /// `DOWNLOAD_FAIL_ON_DATALOSS`.
    pub fail_on_dataloss: bool,
    /// Where slots count what no middleware sees (a transparent resend); set by the
    /// crawler assembly.
    pub stats: Option<crate::handle::StatsHandle>,
    /// `DOWNLOAD_SLOTS`.
    pub slots: HashMap<String, SlotOverride>,
    /// `CONCURRENT_REQUESTS`: the total the HTTP client's pool must allow.
    pub total: usize,
}

impl DownloaderConfig {
    /// Reads the settings; a bad value is an error naming it.
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let mut slots = HashMap::new();
        for (name, spec) in s.get_dict("DOWNLOAD_SLOTS")? {
            let o = SlotOverride {
                concurrency: spec
                    .get("concurrency")
                    .and_then(|v| v.as_u64())
                    .map(|v| v as usize),
                delay: spec
                    .get("delay")
                    .and_then(|v| v.as_f64())
                    .and_then(|d| Duration::try_from_secs_f64(d).ok()),
                randomize_delay: spec.get("randomize_delay").and_then(|v| v.as_bool()),
                throttle: spec.get("throttle").and_then(|v| v.as_bool()),
            };
            slots.insert(name, o);
        }
        Ok(DownloaderConfig {
            per_domain: s.get_usize("CONCURRENT_REQUESTS_PER_DOMAIN")?,
            per_ip: s.get_usize("CONCURRENT_REQUESTS_PER_IP")?,
            delay: s.get_duration("DOWNLOAD_DELAY")?,
            randomize_delay: s.get_bool("RANDOMIZE_DOWNLOAD_DELAY")?,
            timeout: s.get_duration("DOWNLOAD_TIMEOUT")?,
            maxsize: s.get_usize("DOWNLOAD_MAXSIZE")? as u64,
            warnsize: s.get_usize("DOWNLOAD_WARNSIZE")? as u64,
            fail_on_dataloss: s.get_bool("DOWNLOAD_FAIL_ON_DATALOSS")?,
            stats: None,
            slots,
            total: s.get_usize("CONCURRENT_REQUESTS")?,
        })
    }
}

struct SlotEntry {
    addr: Addr<Slot>,
    active: usize,
    last_seen: Instant,
}

/// How long an idle slot is kept (Scrapy collects slots idle for 60 s).
const SLOT_IDLE_TTL: Duration = Duration::from_secs(60);

/// How long a resolved address is trusted for per-IP slots.
const DNS_TTL: Duration = Duration::from_secs(60);
/// Most host names kept in the DNS cache (Scrapy's `DNSCACHE_SIZE` default).
const DNS_CACHE_SIZE: usize = 10_000;

/// The downloader actor.
pub struct Downloader {
    config: Arc<DownloaderConfig>,
    clients: Rc<HttpClients>,
    slots: HashMap<Arc<str>, SlotEntry>,
    default_delay: Duration,
    dns: HashMap<String, (String, Instant)>,
    bus: SignalsHandle,
    middlewares: Rc<DownloaderMiddlewares>,
}

impl std::fmt::Debug for Downloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloader")
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl Downloader {
    /// A downloader; `clients` must have been built on the arbiter it starts on.
    pub fn new(
        config: DownloaderConfig,
        clients: HttpClients,
        bus: SignalsHandle,
        middlewares: DownloaderMiddlewares,
    ) -> Self {
        Downloader {
            default_delay: config.delay,
            config: Arc::new(config),
            clients: Rc::new(clients),
            slots: HashMap::new(),
            dns: HashMap::new(),
            bus,
            middlewares: Rc::new(middlewares),
        }
    }

    fn slot_key(&self, request: &Request) -> Arc<str> {
        if let Some(k) = request.meta_str("download_slot") {
            return k.into();
        }
        request.url.host_str().unwrap_or("").into()
    }

    fn slot(&mut self, key: &Arc<str>) -> &mut SlotEntry {
        if !self.slots.contains_key(key) {
            let o = self
                .config
                .slots
                .get(key.as_ref())
                .cloned()
                .unwrap_or_default();
            let per = if self.config.per_ip > 0 {
                self.config.per_ip
            } else {
                self.config.per_domain
            };
            let state = SlotState::new(
                o.concurrency.unwrap_or(per),
                o.delay.unwrap_or(self.default_delay),
                o.randomize_delay.unwrap_or(self.config.randomize_delay),
            );
            let addr = Slot::new(
                key.clone(),
                state,
                self.clients.clone(),
                self.config.clone(),
                self.bus.clone(),
            )
            .start();
            self.slots.insert(
                key.clone(),
                SlotEntry {
                    addr,
                    active: 0,
                    last_seen: Instant::now(),
                },
            );
        }
        let entry = self.slots.get_mut(key).expect("inserted above");
        entry.last_seen = Instant::now();
        entry
    }
}

impl Actor for Downloader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(SLOT_IDLE_TTL, |act, _| {
            let now = Instant::now();
            act.slots
                .retain(|_, s| s.active > 0 || now.duration_since(s.last_seen) < SLOT_IDLE_TTL);
        });
    }
}

impl Handler<Fetch> for Downloader {
    type Result = ResponseFuture<Fetched>;

    fn handle(&mut self, msg: Fetch, ctx: &mut Context<Self>) -> Self::Result {
        let mut request = msg.0;
        crate::middleware::referer::apply_pending_referer(&mut request);
        // Enough of the request to fail it if a middleware panics.
        let (method, url) = (request.method.clone(), request.url.clone());
        let middlewares = self.middlewares.clone();
        let me = ctx.address();
        Box::pin(async move {
            let chain = middlewares.download(request, |r| async move {
                me.send(Transfer(r))
                    .await
                    .unwrap_or(Err(DownloadError::Cancelled))
            });
            catch_panic(chain).await.unwrap_or_else(|p| {
                log::error!("A downloader middleware panicked on <{method} {url}>: {p}");
                Fetched::Failed(
                    Request::from_url(method, url),
                    DownloadError::Other(format!("downloader middleware panicked: {p}")),
                )
            })
        })
    }
}

impl Handler<Transfer> for Downloader {
    type Result = ResponseActFuture<Self, FetchResult>;

    fn handle(&mut self, msg: Transfer, _: &mut Context<Self>) -> Self::Result {
        let request = msg.0;
        let per_ip = self.config.per_ip > 0 && request.meta_str("download_slot").is_none();
        let host = request.url.host_str().unwrap_or("").to_string();
        let port = request.url.port_or_known_default().unwrap_or(80);
        let cached = if per_ip {
            self.dns
                .get(&host)
                .filter(|(_, at)| at.elapsed() < DNS_TTL)
                .map(|(ip, _)| ip.clone())
        } else {
            None
        };

        // Per-IP slots need the address first; resolving is async, so it happens
        // before the slot is chosen. Answers are cached like Scrapy's DNS cache.
        let lookup_host = host.clone();
        let resolve = async move {
            if !per_ip || cached.is_some() {
                return cached;
            }
            let bare = lookup_host
                .trim_matches(|c| c == '[' || c == ']')
                .to_string();
            let found = tokio::net::lookup_host((bare.as_str(), port)).await;
            match found {
                Ok(mut addrs) => addrs.next().map(|a| a.ip().to_string()),
                Err(_) => None,
            }
        };
        Box::pin(
            resolve
                .into_actor(self)
                .then(move |ip, act, _| {
                    let key: Arc<str> = match ip {
                        Some(ip) => {
                            if act.dns.len() >= DNS_CACHE_SIZE {
                                act.dns.clear();
                            }
                            act.dns.insert(host, (ip.clone(), Instant::now()));
                            ip.into()
                        }
                        None => act.slot_key(&request),
                    };
                    let entry = act.slot(&key);
                    entry.active += 1;
                    let send = entry.addr.send(SlotFetch(request));
                    async move {
                        let res = send.await.unwrap_or(Err(DownloadError::Cancelled));
                        (key, res)
                    }
                    .into_actor(act)
                })
                .map(move |(key, res), act, _| {
                    if let Some(e) = act.slots.get_mut(&key) {
                        e.active = e.active.saturating_sub(1);
                        e.last_seen = Instant::now();
                    }
                    res
                }),
        )
    }
}

impl Handler<SetSlotDelay> for Downloader {
    type Result = ();
    fn handle(&mut self, msg: SetSlotDelay, _: &mut Context<Self>) {
        match msg.slot {
            None => self.default_delay = msg.delay,
            Some(key) => self.slot(&key).addr.do_send(SetDelay(msg.delay)),
        }
    }
}

impl Handler<GetSlotDelay> for Downloader {
    type Result = ResponseFuture<Option<Duration>>;
    fn handle(&mut self, msg: GetSlotDelay, _: &mut Context<Self>) -> Self::Result {
        let Some(key) = msg.slot else {
            let delay = self.default_delay;
            return Box::pin(async move { Some(delay) });
        };
        // The slot owns its delay; a `SetDelay` sent to it before is handled first.
        let ask = self.slots.get(&key).map(|e| e.addr.send(GetSlotStats));
        Box::pin(async move {
            match ask {
                Some(ask) => ask.await.ok().map(|s| s.delay),
                None => None,
            }
        })
    }
}

impl Handler<CloseDownloader> for Downloader {
    type Result = ();
    fn handle(&mut self, _: CloseDownloader, ctx: &mut Context<Self>) {
        self.slots.clear();
        ctx.stop();
    }
}

//! Acceptance: CloseSpider and AutoThrottle are tested with synthetic signals alone —
//! no engine, no network. Each test builds a `CrawlerHandle` around a real SignalBus and
//! Stats actor and a probe actor standing in for the Engine and the Downloader, starts
//! the extension with its `from_crawler`, emits signals through the bus and reads what
//! the probe received: each close reason fires at exactly its threshold, and
//! AutoThrottle's delays for a scripted series of latencies and statuses equal the
//! documented formula.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use arachne::actors::extensions::closespider::CloseSpider;
use arachne::actors::extensions::throttle::AutoThrottle;
use arachne::error::ConfigError;
use arachne::error::DownloadError;
use arachne::extension::{ComponentHandle, CrawlerHandle};
use arachne::handle::downloader::{Fetch, GetSlotDelay, SetSlotDelay};
use arachne::handle::engine::{
    CloseSpider as CloseCommand, Crawl, Download, EngineStatus, GetEngineStatus, SetPaused,
};
use arachne::handle::{DownloaderHandle, EngineHandle, SignalsHandle, StatsHandle};
use arachne::http::{Request, Response};
use arachne::item::Item;
use arachne::middleware::downloader::Fetched;
use arachne::settings::Settings;
use arachne::signals::{
    CloseReason, ItemScraped, ResponseDownloaded, ResponseReceived, Signal, SpiderClosed,
    SpiderErrored, SpiderOpened,
};
use arachne::spider::SpiderError;

// ---------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------

/// Stands in for the Engine and the Downloader: records every command it receives.
#[derive(Debug, Default)]
struct Probe {
    closes: Vec<(CloseReason, Instant)>,
    delays: Vec<SetSlotDelay>,
    crawled: usize,
}

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<CloseCommand> for Probe {
    type Result = ();
    fn handle(&mut self, msg: CloseCommand, _: &mut Context<Self>) {
        self.closes.push((msg.reason, Instant::now()));
    }
}

impl Handler<SetSlotDelay> for Probe {
    type Result = ();
    fn handle(&mut self, msg: SetSlotDelay, _: &mut Context<Self>) {
        self.delays.push(msg);
    }
}

/// Extensions never download; the probe answers that it won't.
impl Handler<Fetch> for Probe {
    type Result = Fetched;
    fn handle(&mut self, msg: Fetch, _: &mut Context<Self>) -> Fetched {
        Fetched::Failed(
            msg.0,
            DownloadError::Ignored("no downloader in this test".into()),
        )
    }
}

impl Handler<GetSlotDelay> for Probe {
    type Result = Option<Duration>;
    fn handle(&mut self, _: GetSlotDelay, _: &mut Context<Self>) -> Option<Duration> {
        None
    }
}

impl Handler<SetPaused> for Probe {
    type Result = ();
    fn handle(&mut self, _: SetPaused, _: &mut Context<Self>) {}
}

impl Handler<GetEngineStatus> for Probe {
    type Result = EngineStatus;
    fn handle(&mut self, _: GetEngineStatus, _: &mut Context<Self>) -> EngineStatus {
        EngineStatus::default()
    }
}

impl Handler<Download> for Probe {
    type Result = Result<Response, DownloadError>;
    fn handle(&mut self, _: Download, _: &mut Context<Self>) -> Self::Result {
        Err(DownloadError::Ignored("no downloader in this test".into()))
    }
}

/// A spider to put in the handle; it is never run.
struct Idle;

#[arachne::async_trait(?Send)]
impl arachne::spider::Spider for Idle {
    type Callback = arachne::spider::DefaultCallback;

    fn name(&self) -> &str {
        "test"
    }
    async fn parse(&self, _: &Response) -> arachne::spider::CallbackResult {
        Ok(arachne::spider::Output::new())
    }
}

impl Handler<Crawl> for Probe {
    type Result = ();
    fn handle(&mut self, _: Crawl, _: &mut Context<Self>) {
        self.crawled += 1;
    }
}

/// What the probe has received so far.
#[derive(Message)]
#[rtype(result = "Recorded")]
struct GetRecorded;

#[derive(Debug, Clone, MessageResponse)]
struct Recorded {
    closes: Vec<(CloseReason, Instant)>,
    delays: Vec<SetSlotDelay>,
}

impl Recorded {
    fn reasons(&self) -> Vec<CloseReason> {
        self.closes.iter().map(|(r, _)| r.clone()).collect()
    }
}

impl Handler<GetRecorded> for Probe {
    type Result = Recorded;
    fn handle(&mut self, _: GetRecorded, _: &mut Context<Self>) -> Recorded {
        Recorded {
            closes: self.closes.clone(),
            delays: self.delays.clone(),
        }
    }
}

/// A crawler handle wired to a probe, plus the started extension (kept alive).
struct Harness {
    crawler: CrawlerHandle,
    probe: Addr<Probe>,
    _extension: Option<ComponentHandle>,
}

impl Harness {
    fn new(settings: Settings) -> Self {
        let probe = Probe::default().start();
        let crawler = CrawlerHandle::new(
            Arc::new(settings),
            Arc::new(Idle),
            SignalsHandle::bus(),
            StatsHandle::collector(),
            EngineHandle::from_addr(&probe),
            DownloaderHandle::from_addr(&probe),
        );
        Harness {
            crawler,
            probe,
            _extension: None,
        }
    }

    /// Starts an extension and waits until it has subscribed to `S`.
    async fn start<S: Signal>(
        mut self,
        factory: fn(&CrawlerHandle) -> Result<Option<ComponentHandle>, ConfigError>,
    ) -> Self
    where
        S::Result: Send,
    {
        let handle = factory(&self.crawler)
            .expect("valid settings")
            .expect("configured");
        self._extension = Some(handle);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.crawler.signals().has_subscribers::<S>() {
            assert!(
                Instant::now() < deadline,
                "extension never subscribed to {}",
                S::NAME
            );
            actix_rt::time::sleep(Duration::from_millis(1)).await;
        }
        self
    }

    /// Emits a signal and waits until every subscriber has handled it.
    async fn emit<S: Signal>(&self, signal: S)
    where
        S::Result: Send,
    {
        self.crawler.signals().emit_await(signal).await;
    }

    /// What the probe has received. Anything an extension sent while handling an
    /// awaited signal is already in the probe's mailbox ahead of this query.
    async fn recorded(&self) -> Recorded {
        self.probe.send(GetRecorded).await.expect("probe alive")
    }

    async fn reasons(&self) -> Vec<CloseReason> {
        self.recorded().await.reasons()
    }

    /// Polls until a close arrives or `limit` passes.
    async fn wait_close(&self, limit: Duration) -> Recorded {
        let deadline = Instant::now() + limit;
        loop {
            let r = self.recorded().await;
            if !r.closes.is_empty() || Instant::now() >= deadline {
                return r;
            }
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn settings(pairs: &[(&str, serde_json::Value)]) -> Settings {
    pairs
        .iter()
        .fold(Settings::new(), |s, (k, v)| s.with(k, v.clone()))
}

fn request() -> Request {
    Request::get("http://example.com/").expect("valid URL")
}

fn opened() -> SpiderOpened {
    SpiderOpened {
        spider: "test".into(),
    }
}

fn closed() -> SpiderClosed {
    SpiderClosed {
        spider: "test".into(),
        reason: CloseReason::Finished,
    }
}

fn item() -> ItemScraped {
    ItemScraped {
        item: Arc::new(Item::new()),
        response: None,
    }
}

fn page() -> ResponseReceived {
    ResponseReceived {
        response: Arc::new(Response::new(request(), 200, "<html></html>".into())),
    }
}

fn error() -> SpiderErrored {
    SpiderErrored {
        error: SpiderError::msg("boom"),
        response: None,
        request: Arc::new(request()),
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// ---------------------------------------------------------------------------------
// CloseSpider: counts
// ---------------------------------------------------------------------------------

/// CLOSESPIDER_ITEMCOUNT=3: two items keep it open, the third closes once, more do not.
#[actix::test]
async fn itemcount_closes_at_threshold() {
    let h = Harness::new(settings(&[("CLOSESPIDER_ITEMCOUNT", 3.into())]))
        .start::<ItemScraped>(CloseSpider::from_crawler)
        .await;
    h.emit(item()).await;
    h.emit(item()).await;
    assert_eq!(h.reasons().await, vec![]);
    h.emit(item()).await;
    assert_eq!(h.reasons().await, vec![CloseReason::ClosespiderItemcount]);
    h.emit(item()).await;
    h.emit(item()).await;
    assert_eq!(h.reasons().await, vec![CloseReason::ClosespiderItemcount]);
}

/// CLOSESPIDER_PAGECOUNT=4: three responses keep it open, the fourth closes once.
#[actix::test]
async fn pagecount_closes_at_threshold() {
    let h = Harness::new(settings(&[("CLOSESPIDER_PAGECOUNT", 4.into())]))
        .start::<ResponseReceived>(CloseSpider::from_crawler)
        .await;
    for _ in 0..3 {
        h.emit(page()).await;
    }
    // Items do not count as pages.
    h.emit(item()).await;
    assert_eq!(h.reasons().await, vec![]);
    h.emit(page()).await;
    assert_eq!(h.reasons().await, vec![CloseReason::ClosespiderPagecount]);
    h.emit(page()).await;
    assert_eq!(h.reasons().await, vec![CloseReason::ClosespiderPagecount]);
}

/// CLOSESPIDER_ERRORCOUNT=2: one error keeps it open, the second closes once.
#[actix::test]
async fn errorcount_closes_at_threshold() {
    let h = Harness::new(settings(&[("CLOSESPIDER_ERRORCOUNT", 2.into())]))
        .start::<SpiderErrored>(CloseSpider::from_crawler)
        .await;
    h.emit(error()).await;
    h.emit(page()).await;
    assert_eq!(h.reasons().await, vec![]);
    h.emit(error()).await;
    assert_eq!(h.reasons().await, vec![CloseReason::ClosespiderErrorcount]);
    h.emit(error()).await;
    assert_eq!(h.reasons().await, vec![CloseReason::ClosespiderErrorcount]);
}

/// CLOSESPIDER_PAGECOUNT_NO_ITEM=3: items interleaved with pages reset the run; three
/// pages in a row without an item close once.
#[actix::test]
async fn pagecount_no_item_resets_on_items() {
    let h = Harness::new(settings(&[("CLOSESPIDER_PAGECOUNT_NO_ITEM", 3.into())]))
        .start::<ResponseReceived>(CloseSpider::from_crawler)
        .await;
    // Wait for the item subscription too: it is what resets the run.
    assert!(h.crawler.signals().has_subscribers::<ItemScraped>());
    for _ in 0..4 {
        h.emit(page()).await;
        h.emit(page()).await;
        h.emit(item()).await;
    }
    assert_eq!(h.reasons().await, vec![], "8 pages, never 3 in a row");
    h.emit(page()).await;
    h.emit(page()).await;
    assert_eq!(h.reasons().await, vec![]);
    h.emit(page()).await;
    assert_eq!(
        h.reasons().await,
        vec![CloseReason::ClosespiderPagecountNoItem]
    );
    h.emit(page()).await;
    h.emit(item()).await;
    for _ in 0..3 {
        h.emit(page()).await;
    }
    assert_eq!(
        h.reasons().await,
        vec![CloseReason::ClosespiderPagecountNoItem]
    );
}

/// With several conditions, the first one met is the only close sent.
#[actix::test]
async fn first_condition_met_wins() {
    let h = Harness::new(settings(&[
        ("CLOSESPIDER_ITEMCOUNT", 2.into()),
        ("CLOSESPIDER_PAGECOUNT", 3.into()),
    ]))
    .start::<ResponseReceived>(CloseSpider::from_crawler)
    .await;
    assert!(h.crawler.signals().has_subscribers::<ItemScraped>());
    h.emit(page()).await;
    h.emit(page()).await;
    h.emit(item()).await;
    h.emit(page()).await;
    h.emit(item()).await;
    assert_eq!(h.reasons().await, vec![CloseReason::ClosespiderPagecount]);
}

// ---------------------------------------------------------------------------------
// CloseSpider: timers (short real durations; actix-rt has no paused clock here)
// ---------------------------------------------------------------------------------

/// CLOSESPIDER_TIMEOUT=0.2: closed no sooner than 0.2 s after SpiderOpened, once.
#[actix::test]
async fn timeout_closes_after_duration() {
    let h = Harness::new(settings(&[("CLOSESPIDER_TIMEOUT", 0.2.into())]))
        .start::<SpiderOpened>(CloseSpider::from_crawler)
        .await;
    // No timer runs before the spider opens.
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.reasons().await, vec![]);
    let t0 = Instant::now();
    h.emit(opened()).await;
    let r = h.wait_close(Duration::from_secs(3)).await;
    assert_eq!(r.reasons(), vec![CloseReason::ClosespiderTimeout]);
    assert!(
        r.closes[0].1 - t0 >= secs(0.2),
        "closed after {:?}",
        r.closes[0].1 - t0
    );
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.reasons().await, vec![CloseReason::ClosespiderTimeout]);
}

/// SpiderClosed cancels the CLOSESPIDER_TIMEOUT timer.
#[actix::test]
async fn timeout_cancelled_on_spider_closed() {
    let h = Harness::new(settings(&[("CLOSESPIDER_TIMEOUT", 0.2.into())]))
        .start::<SpiderClosed>(CloseSpider::from_crawler)
        .await;
    h.emit(opened()).await;
    h.emit(closed()).await;
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.reasons().await, vec![]);
}

/// CLOSESPIDER_TIMEOUT_NO_ITEM=0.3: not closed while items keep coming; closed once
/// they stop, at least 0.3 s after the last one.
#[actix::test]
async fn timeout_no_item_waits_for_items_to_stop() {
    let h = Harness::new(settings(&[("CLOSESPIDER_TIMEOUT_NO_ITEM", 0.3.into())]))
        .start::<ItemScraped>(CloseSpider::from_crawler)
        .await;
    h.emit(opened()).await;
    let t0 = Instant::now();
    let mut last_item = t0;
    // Items every 30 ms for 1 s: more than three periods, each with many items.
    while t0.elapsed() < Duration::from_secs(1) {
        h.emit(item()).await;
        last_item = Instant::now();
        actix_rt::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(h.reasons().await, vec![], "closed while items kept coming");
    let r = h.wait_close(Duration::from_secs(3)).await;
    assert_eq!(r.reasons(), vec![CloseReason::ClosespiderTimeoutNoItem]);
    let quiet = r.closes[0].1 - last_item;
    assert!(quiet >= secs(0.3), "closed {quiet:?} after the last item");
    // The check stops once the close is sent.
    actix_rt::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        h.reasons().await,
        vec![CloseReason::ClosespiderTimeoutNoItem]
    );
}

/// CLOSESPIDER_TIMEOUT_NO_ITEM=0.2 with no item at all: closed after the first period.
#[actix::test]
async fn timeout_no_item_without_items() {
    let h = Harness::new(settings(&[("CLOSESPIDER_TIMEOUT_NO_ITEM", 0.2.into())]))
        .start::<SpiderOpened>(CloseSpider::from_crawler)
        .await;
    let t0 = Instant::now();
    h.emit(opened()).await;
    let r = h.wait_close(Duration::from_secs(3)).await;
    assert_eq!(r.reasons(), vec![CloseReason::ClosespiderTimeoutNoItem]);
    assert!(
        r.closes[0].1 - t0 >= secs(0.2),
        "closed after {:?}",
        r.closes[0].1 - t0
    );
}

// ---------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------

/// All CLOSESPIDER_* at 0 (the defaults) and AUTOTHROTTLE_ENABLED false: not configured.
#[actix::test]
async fn not_configured_by_default() {
    let h = Harness::new(settings(&[
        ("CLOSESPIDER_ITEMCOUNT", 0.into()),
        ("CLOSESPIDER_TIMEOUT", 0.0.into()),
        ("AUTOTHROTTLE_ENABLED", false.into()),
    ]));
    assert!(CloseSpider::from_crawler(&h.crawler)
        .expect("valid")
        .is_none());
    assert!(AutoThrottle::from_crawler(&h.crawler)
        .expect("valid")
        .is_none());
}

/// A bad value is a configuration error naming the setting.
#[actix::test]
async fn bad_values_name_the_key() {
    for (key, value) in [
        ("CLOSESPIDER_ITEMCOUNT", serde_json::json!("ten")),
        ("CLOSESPIDER_ERRORCOUNT", serde_json::json!(-1)),
        ("CLOSESPIDER_TIMEOUT", serde_json::json!("-0.5")),
        ("CLOSESPIDER_TIMEOUT_NO_ITEM", serde_json::json!("later")),
    ] {
        let h = Harness::new(settings(&[(key, value)]));
        let err = CloseSpider::from_crawler(&h.crawler)
            .expect_err(key)
            .to_string();
        assert!(err.contains(key), "{err}");
    }
    for (key, value) in [
        ("AUTOTHROTTLE_TARGET_CONCURRENCY", serde_json::json!(0)),
        ("AUTOTHROTTLE_TARGET_CONCURRENCY", serde_json::json!(-2.0)),
        ("AUTOTHROTTLE_MAX_DELAY", serde_json::json!("slow")),
        ("AUTOTHROTTLE_DEBUG", serde_json::json!("maybe")),
    ] {
        let h = Harness::new(settings(&[
            ("AUTOTHROTTLE_ENABLED", true.into()),
            (key, value),
        ]));
        let err = AutoThrottle::from_crawler(&h.crawler)
            .expect_err(key)
            .to_string();
        assert!(err.contains(key), "{err}");
    }
}

// ---------------------------------------------------------------------------------
// AutoThrottle
// ---------------------------------------------------------------------------------

/// A response from `slot` with the slot's delay as the signal reports it.
fn downloaded(
    slot: &str,
    slot_delay: f64,
    latency: f64,
    status: u16,
    dont_adjust_delay: bool,
) -> ResponseDownloaded {
    let mut response = Response::new(request(), status, "body".into());
    response.latency = secs(latency);
    ResponseDownloaded {
        response: Arc::new(response),
        slot: slot.into(),
        slot_delay: secs(slot_delay),
        slot_concurrency: 1,
        dont_adjust_delay,
    }
}

fn set(slot: Option<&str>, delay: f64) -> SetSlotDelay {
    SetSlotDelay {
        slot: slot.map(Arc::from),
        delay: secs(delay),
    }
}

/// DOWNLOAD_DELAY 0.5 (min), AUTOTHROTTLE_MAX_DELAY 4, START_DELAY 1, target concurrency 2.
fn throttle_settings() -> Settings {
    settings(&[
        ("AUTOTHROTTLE_ENABLED", true.into()),
        ("AUTOTHROTTLE_DEBUG", true.into()),
        ("DOWNLOAD_DELAY", 0.5.into()),
        ("AUTOTHROTTLE_MAX_DELAY", 4.0.into()),
        ("AUTOTHROTTLE_START_DELAY", 1.0.into()),
        ("AUTOTHROTTLE_TARGET_CONCURRENCY", 2.0.into()),
    ])
}

/// A scripted series of latencies and statuses gives the formula's delays:
/// new = clamp(max(target, (delay + target) / 2)), target = latency / 2, within
/// [0.5, 4]; non-200 never lowers; dont_adjust_delay is ignored; unchanged is not sent.
#[actix::test]
async fn autothrottle_follows_the_formula() {
    let h = Harness::new(throttle_settings())
        .start::<ResponseDownloaded>(AutoThrottle::from_crawler)
        .await;
    h.emit(opened()).await;
    assert_eq!(
        h.recorded().await.delays,
        vec![set(None, 1.0)],
        "start delay"
    );

    // (slot delay as reported, latency, status, dont_adjust) → expected SetSlotDelay
    let script: &[(f64, f64, u16, bool, Option<f64>)] = &[
        // target 0.5, mean (1 + 0.5) / 2 = 0.75
        (1.0, 1.0, 200, false, Some(0.75)),
        // 503, target 0.25: mean 0.5 would lower 0.75 → not applied
        (0.75, 0.5, 503, false, None),
        // 500, target 1.5 above mean 1.125: raises to 1.5 → applied
        (0.75, 3.0, 500, false, Some(1.5)),
        // target 10, mean 5.75: max(10, 5.75) clamped to AUTOTHROTTLE_MAX_DELAY 4
        (1.5, 20.0, 200, false, Some(4.0)),
        // dont_adjust_delay: ignored whatever the latency
        (4.0, 0.0, 200, true, None),
        // target 1, mean (4 + 1) / 2 = 2.5
        (4.0, 2.0, 200, false, Some(2.5)),
        // target 0.125, mean (2.5 + 0.125) / 2 = 1.3125
        (2.5, 0.25, 200, false, Some(1.3125)),
        // target 0, mean 0.65625
        (1.3125, 0.0, 200, false, Some(0.65625)),
        // mean 0.328125 clamped to DOWNLOAD_DELAY 0.5
        (0.65625, 0.0, 200, false, Some(0.5)),
        // mean 0.25 clamped to 0.5 = unchanged → nothing sent
        (0.5, 0.0, 200, false, None),
        // 404 at the minimum: 0.5 <= 0.5 → not applied
        (0.5, 0.5, 404, false, None),
        // 301 raising: target 1.5 → applied
        (0.5, 3.0, 301, false, Some(1.5)),
    ];
    let mut expected = vec![set(None, 1.0)];
    for (i, &(slot_delay, latency, status, dont, want)) in script.iter().enumerate() {
        h.emit(downloaded("example.com", slot_delay, latency, status, dont))
            .await;
        if let Some(d) = want {
            expected.push(set(Some("example.com"), d));
        }
        assert_eq!(h.recorded().await.delays, expected, "after step {i}");
    }
}

/// While its SetSlotDelay is in flight the slot still reports its old delay; the delay
/// AutoThrottle set last is used. Other slots are independent.
#[actix::test]
async fn autothrottle_prefers_its_own_last_delay() {
    let h = Harness::new(throttle_settings())
        .start::<ResponseDownloaded>(AutoThrottle::from_crawler)
        .await;
    // Three responses of slot "a" all report the start delay 1.0.
    h.emit(downloaded("a", 1.0, 1.0, 200, false)).await; // (1 + 0.5) / 2 = 0.75
    h.emit(downloaded("a", 1.0, 1.0, 200, false)).await; // (0.75 + 0.5) / 2 = 0.625
    h.emit(downloaded("a", 1.0, 1.0, 200, false)).await; // (0.625 + 0.5) / 2 = 0.5625
                                                         // Slot "b" starts from what it reports.
    h.emit(downloaded("b", 2.0, 1.0, 200, false)).await; // (2 + 0.5) / 2 = 1.25
    assert_eq!(
        h.recorded().await.delays,
        vec![
            set(Some("a"), 0.75),
            set(Some("a"), 0.625),
            set(Some("a"), 0.5625),
            set(Some("b"), 1.25),
        ]
    );
}

// ---------------------------------------------------------------------------------
// MemoryUsage
// ---------------------------------------------------------------------------------

mod memusage {
    use super::*;
    use arachne::actors::extensions::memusage::MemoryUsage;
    use arachne::signals::EngineStarted;
    use std::sync::atomic::{AtomicU64, Ordering};

    const MIB: u64 = 1024 * 1024;

    /// Made-up memory figures: startup and max recorded in bytes, one warning past
    /// MEMUSAGE_WARNING_MB, and a close with `memusage_exceeded` past MEMUSAGE_LIMIT_MB.
    #[actix::test]
    async fn warns_once_then_closes_past_the_limit() {
        let mut h = Harness::new(settings(&[
            ("MEMUSAGE_WARNING_MB", 100.into()),
            ("MEMUSAGE_LIMIT_MB", 200.into()),
            ("MEMUSAGE_CHECK_INTERVAL_SECONDS", 0.01.into()),
        ]));
        let memory = Arc::new(AtomicU64::new(50 * MIB));
        let m = memory.clone();
        h._extension = MemoryUsage::with_reader(&h.crawler, move || m.load(Ordering::SeqCst))
            .expect("valid settings");
        assert!(h._extension.is_some(), "enabled by default");
        let deadline = Instant::now() + Duration::from_secs(2);
        while !h.crawler.signals().has_subscribers::<EngineStarted>() {
            assert!(Instant::now() < deadline);
            actix_rt::time::sleep(Duration::from_millis(1)).await;
        }
        h.emit(EngineStarted {}).await;
        let stats = h.crawler.stats().get_all().await;
        assert_eq!(stats["memusage/startup"], 50 * MIB, "{stats:#?}");
        assert_eq!(stats["memusage/max"].as_f64(), Some((50 * MIB) as f64));

        memory.store(150 * MIB, Ordering::SeqCst);
        actix_rt::time::sleep(Duration::from_millis(60)).await;
        let stats = h.crawler.stats().get_all().await;
        assert_eq!(stats["memusage/warning_reached"], 1, "{stats:#?}");
        assert!(stats.get("memusage/limit_reached").is_none());
        assert_eq!(h.reasons().await, vec![]);

        memory.store(250 * MIB, Ordering::SeqCst);
        let r = h.wait_close(Duration::from_secs(2)).await;
        assert_eq!(
            r.reasons(),
            vec![CloseReason::Other("memusage_exceeded".into())]
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        // Closed once, however many checks see it over the limit.
        assert_eq!(h.reasons().await.len(), 1);
        let stats = h.crawler.stats().get_all().await;
        assert_eq!(stats["memusage/limit_reached"], 1);
        assert_eq!(stats["memusage/max"].as_f64(), Some((250 * MIB) as f64));
    }

    #[actix::test]
    async fn not_configured_when_disabled() {
        let h = Harness::new(settings(&[("MEMUSAGE_ENABLED", false.into())]));
        assert!(MemoryUsage::from_crawler(&h.crawler).unwrap().is_none());
    }
}

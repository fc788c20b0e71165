//! AutoThrottle: adapts each download slot's delay to the server's latency, with
//! Scrapy's algorithm (`scrapy/extensions/throttle.py`), so that about
//! `AUTOTHROTTLE_TARGET_CONCURRENCY` requests are in flight to each server.
//!
//! Settings: `AUTOTHROTTLE_ENABLED` (off: not configured),
//! `AUTOTHROTTLE_TARGET_CONCURRENCY` (must be > 0), `AUTOTHROTTLE_START_DELAY`,
//! `AUTOTHROTTLE_MAX_DELAY`, `AUTOTHROTTLE_DEBUG`, and `DOWNLOAD_DELAY` as the minimum
//! delay.
//!
//! Signals: on `SpiderOpened` it sets the delay new slots start with to
//! max(`DOWNLOAD_DELAY`, `AUTOTHROTTLE_START_DELAY`); on every `ResponseDownloaded`
//! (unless the request set `autothrottle_dont_adjust_delay`) it computes the slot's
//! new delay with [`ThrottleConfig::adjust`] and answers with
//! `DownloaderHandle::set_slot_delay` — it never reaches into a slot. With
//! `AUTOTHROTTLE_DEBUG` it logs Scrapy's per-response line ([`debug_line`]).
//!
//! Unlike Scrapy, which silently disables itself, a `AUTOTHROTTLE_TARGET_CONCURRENCY`
//! of 0 or less is a configuration error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::error::ConfigError;
use crate::extension::{ComponentHandle, CrawlerHandle};
use crate::settings::Settings;
use crate::signals::{ResponseDownloaded, SpiderOpened};

/// How long the delay AutoThrottle last set for a slot is trusted over the delay a
/// `ResponseDownloaded` reports.
///
/// The signal carries the slot's delay when the response finished, but a
/// `SetSlotDelay` sent for an earlier response may still be on its way to the slot
/// (AutoThrottle → Downloader → Slot), so with several responses in flight the
/// reported delay can be stale — Scrapy, being synchronous, always sees the latest. The
/// delay we set last is then the slot's real one. It stops being the truth only when
/// the Downloader collects the slot (after 60 s idle) and re-creates it at the start
/// delay; then no `SetSlotDelay` of ours has been in flight for a long time and the
/// reported delay is right. Any window between the message round trip (well under a
/// second, even loaded) and the 60 s idle TTL gives both cases right.
pub const OWN_DELAY_TRUST: Duration = Duration::from_secs(10);

/// AutoThrottle's settings, read once.
#[derive(Debug, Clone, PartialEq)]
pub struct ThrottleConfig {
    /// `AUTOTHROTTLE_TARGET_CONCURRENCY`: requests in parallel each server should see
    /// on average; always > 0.
    pub target_concurrency: f64,
    /// `DOWNLOAD_DELAY`: the delay never goes below it.
    pub min_delay: Duration,
    /// `AUTOTHROTTLE_MAX_DELAY`: the delay never goes above it (this bound wins if it
    /// is below `DOWNLOAD_DELAY`, as in Scrapy).
    pub max_delay: Duration,
    /// max(`DOWNLOAD_DELAY`, `AUTOTHROTTLE_START_DELAY`): the delay new slots start at.
    pub start_delay: Duration,
    /// `AUTOTHROTTLE_DEBUG`: log every response's adjustment.
    pub debug: bool,
}

impl ThrottleConfig {
    /// Reads the settings; `Ok(None)` when `AUTOTHROTTLE_ENABLED` is false.
    ///
    /// # Errors
    ///
    /// A value that does not parse, a negative delay, or a
    /// `AUTOTHROTTLE_TARGET_CONCURRENCY` that is not above 0: a [`ConfigError`] naming
    /// the setting.
    pub fn from_settings(s: &Settings) -> Result<Option<Self>, ConfigError> {
        if !s.get_bool("AUTOTHROTTLE_ENABLED")? {
            return Ok(None);
        }
        let target_concurrency = s.get_f64("AUTOTHROTTLE_TARGET_CONCURRENCY")?;
        if target_concurrency <= 0.0 {
            return Err(ConfigError::InvalidValue {
                key: "AUTOTHROTTLE_TARGET_CONCURRENCY".into(),
                value: target_concurrency.to_string(),
                expected: "a number higher than 0",
            });
        }
        let min_delay = s.get_duration("DOWNLOAD_DELAY")?;
        Ok(Some(ThrottleConfig {
            target_concurrency,
            min_delay,
            max_delay: s.get_duration("AUTOTHROTTLE_MAX_DELAY")?,
            start_delay: min_delay.max(s.get_duration("AUTOTHROTTLE_START_DELAY")?),
            debug: s.get_bool("AUTOTHROTTLE_DEBUG")?,
        }))
    }

    /// Scrapy's `_adjust_delay`: the slot's new delay after a response that took
    /// `latency`, or `None` to leave `current` as it is.
    ///
    /// 1. target = latency / target concurrency — a server taking `latency` per
    ///    response serves N in parallel if sent one every `latency / N`;
    /// 2. new = mean of `current` and target, but never below target (it works better
    ///    with problematic sites);
    /// 3. new is kept between `DOWNLOAD_DELAY` and `AUTOTHROTTLE_MAX_DELAY`;
    /// 4. a non-200 response never lowers the delay: error pages and redirects are
    ///    small and fast, and lowering on them would feed back.
    ///
    /// ```
    /// use std::time::Duration;
    /// use arachne::actors::extensions::throttle::ThrottleConfig;
    ///
    /// let c = ThrottleConfig {
    ///     target_concurrency: 2.0,
    ///     min_delay: Duration::ZERO,
    ///     max_delay: Duration::from_secs(60),
    ///     start_delay: Duration::from_secs(5),
    ///     debug: false,
    /// };
    /// // target 0.5 s, mean (5 + 0.5) / 2
    /// let d = |s| Duration::from_secs_f64(s);
    /// assert_eq!(c.adjust(d(5.0), d(1.0), 200), Some(d(2.75)));
    /// assert_eq!(c.adjust(d(5.0), d(1.0), 404), None);
    /// ```
    pub fn adjust(&self, current: Duration, latency: Duration, status: u16) -> Option<Duration> {
        let old = current.as_secs_f64();
        let target = latency.as_secs_f64() / self.target_concurrency;
        let new = ((old + target) / 2.0).max(target);
        // max then min, not `f64::clamp`: clamp panics when DOWNLOAD_DELAY is above
        // AUTOTHROTTLE_MAX_DELAY, where Scrapy lets the maximum win.
        let new = new
            .max(self.min_delay.as_secs_f64())
            .min(self.max_delay.as_secs_f64());
        if status != 200 && new <= old {
            return None;
        }
        // `new` is finite and non-negative here (both bounds are); the fallback only
        // keeps this path free of panics.
        Some(Duration::try_from_secs_f64(new).unwrap_or(self.max_delay))
    }
}

/// What one response did to its slot's delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adjustment {
    /// The slot's delay before the response, as AutoThrottle knows it.
    pub previous: Duration,
    /// The slot's delay after it; equal to `previous` when unchanged.
    pub delay: Duration,
}

impl Adjustment {
    /// Whether the delay must be sent to the slot.
    pub fn changed(&self) -> bool {
        self.delay != self.previous
    }
}

/// AutoThrottle without a mailbox: the formula plus the delays it last set per slot
/// (see [`OWN_DELAY_TRUST`] for why it keeps them).
#[derive(Debug, Clone)]
pub struct ThrottleState {
    config: ThrottleConfig,
    /// slot → (delay we last set, when). Entries older than [`OWN_DELAY_TRUST`] are
    /// ignored and pruned, so the map holds only recently active slots.
    set: HashMap<Arc<str>, (Duration, Instant)>,
}

impl ThrottleState {
    /// No slot adjusted yet.
    pub fn new(config: ThrottleConfig) -> Self {
        ThrottleState {
            config,
            set: HashMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// A response from `slot` took `latency`; the signal reported the slot's delay as
    /// `reported`. Adjusts from the delay we set for the slot within
    /// [`OWN_DELAY_TRUST`] if any, else from `reported`, and remembers a change.
    pub fn on_response(
        &mut self,
        slot: &Arc<str>,
        reported: Duration,
        latency: Duration,
        status: u16,
        now: Instant,
    ) -> Adjustment {
        let previous = match self.set.get(slot) {
            Some(&(delay, at)) if now.saturating_duration_since(at) < OWN_DELAY_TRUST => delay,
            _ => reported,
        };
        let delay = self
            .config
            .adjust(previous, latency, status)
            .unwrap_or(previous);
        let adjustment = Adjustment { previous, delay };
        if adjustment.changed() {
            self.set.insert(slot.clone(), (delay, now));
        }
        adjustment
    }

    /// Forgets the delays set longer than [`OWN_DELAY_TRUST`] ago.
    pub fn prune(&mut self, now: Instant) {
        self.set
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < OWN_DELAY_TRUST);
    }

    /// How many slots have a trusted delay of ours (for tests and debugging).
    pub fn tracked_slots(&self) -> usize {
        self.set.len()
    }
}

/// Scrapy's `AUTOTHROTTLE_DEBUG` line. Milliseconds are truncated toward zero, as
/// Python's `%d` does with a float.
///
/// ```
/// use std::time::Duration;
/// use arachne::actors::extensions::throttle::debug_line;
///
/// assert_eq!(
///     debug_line("example.com", 3, Duration::from_millis(1500), Duration::from_millis(1000),
///                Duration::from_millis(250), 1024),
///     "slot: example.com | conc: 3 | delay: 1500 ms (+500) | latency:  250 ms | size:  1024 bytes"
/// );
/// ```
pub fn debug_line(
    slot: &str,
    concurrency: usize,
    delay: Duration,
    previous: Duration,
    latency: Duration,
    size: usize,
) -> String {
    let ms = |secs: f64| (secs * 1000.0) as i64;
    let diff = ms(delay.as_secs_f64() - previous.as_secs_f64());
    format!(
        "slot: {slot} | conc:{concurrency:2} | delay:{:5} ms ({diff:+}) | latency:{:5} ms | size:{size:6} bytes",
        ms(delay.as_secs_f64()),
        ms(latency.as_secs_f64()),
    )
}

/// The extension: the mailbox around [`ThrottleState`].
#[derive(Debug)]
pub struct AutoThrottle {
    crawler: CrawlerHandle,
    state: ThrottleState,
}

impl AutoThrottle {
    /// Not configured unless `AUTOTHROTTLE_ENABLED`.
    ///
    /// # Errors
    ///
    /// See [`ThrottleConfig::from_settings`].
    pub fn from_crawler(crawler: &CrawlerHandle) -> Result<Option<ComponentHandle>, ConfigError> {
        let Some(config) = ThrottleConfig::from_settings(&crawler.settings)? else {
            return Ok(None);
        };
        Ok(Some(ComponentHandle::new(
            AutoThrottle {
                crawler: crawler.clone(),
                state: ThrottleState::new(config),
            }
            .start(),
        )))
    }
}

impl Actor for AutoThrottle {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.crawler
            .subscribe::<SpiderOpened>(ctx.address().recipient());
        self.crawler
            .subscribe::<ResponseDownloaded>(ctx.address().recipient());
        // Keeps the per-slot map to the slots active lately, however broad the crawl.
        ctx.run_interval(OWN_DELAY_TRUST, |act, _| act.state.prune(Instant::now()));
    }
}

impl Handler<SpiderOpened> for AutoThrottle {
    type Result = ();
    fn handle(&mut self, _: SpiderOpened, _: &mut Context<Self>) {
        // Scrapy sets `spider.download_delay`, which is what new slots start with.
        self.crawler
            .downloader()
            .set_default_slot_delay(self.state.config().start_delay);
    }
}

impl Handler<ResponseDownloaded> for AutoThrottle {
    type Result = ();
    fn handle(&mut self, msg: ResponseDownloaded, _: &mut Context<Self>) {
        if msg.dont_adjust_delay {
            return;
        }
        let latency = msg.response.latency;
        let adj = self.state.on_response(
            &msg.slot,
            msg.slot_delay,
            latency,
            msg.response.status,
            Instant::now(),
        );
        if adj.changed() {
            self.crawler
                .downloader()
                .set_slot_delay(msg.slot.clone(), adj.delay);
        }
        if self.state.config().debug {
            log::info!(
                "{}",
                debug_line(
                    &msg.slot,
                    msg.slot_concurrency,
                    adj.delay,
                    adj.previous,
                    latency,
                    msg.response.body.len(),
                )
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            target_concurrency: 2.0,
            min_delay: secs(0.5),
            max_delay: secs(4.0),
            start_delay: secs(1.0),
            debug: false,
        }
    }

    /// Disabled is not configured; the delays come from the settings.
    #[test]
    fn config_from_settings() {
        assert_eq!(ThrottleConfig::from_settings(&Settings::new()), Ok(None));
        let s = Settings::new()
            .with("AUTOTHROTTLE_ENABLED", true)
            .with("DOWNLOAD_DELAY", 2.0)
            .with("AUTOTHROTTLE_START_DELAY", 1.0)
            .with("AUTOTHROTTLE_TARGET_CONCURRENCY", 4.0);
        assert_eq!(
            ThrottleConfig::from_settings(&s),
            Ok(Some(ThrottleConfig {
                target_concurrency: 4.0,
                min_delay: secs(2.0),
                max_delay: secs(60.0),
                // max(DOWNLOAD_DELAY, AUTOTHROTTLE_START_DELAY)
                start_delay: secs(2.0),
                debug: false,
            }))
        );
    }

    /// A target concurrency of 0 or below is an error naming the key.
    #[test]
    fn target_concurrency_must_be_positive() {
        for v in ["0", "-1.5"] {
            let s = Settings::new()
                .with("AUTOTHROTTLE_ENABLED", true)
                .with("AUTOTHROTTLE_TARGET_CONCURRENCY", v);
            let err = ThrottleConfig::from_settings(&s).unwrap_err().to_string();
            assert!(err.contains("AUTOTHROTTLE_TARGET_CONCURRENCY"), "{err}");
        }
    }

    /// Each step of the formula, with hand-computed values.
    #[test]
    fn formula() {
        let c = config();
        // target 0.5; mean (1 + 0.5) / 2 = 0.75
        assert_eq!(c.adjust(secs(1.0), secs(1.0), 200), Some(secs(0.75)));
        // target 1.5 above the mean 1.125: the target wins
        assert_eq!(c.adjust(secs(0.75), secs(3.0), 200), Some(secs(1.5)));
        // mean 0.4375 below DOWNLOAD_DELAY 0.5
        assert_eq!(c.adjust(secs(0.75), secs(0.25), 200), Some(secs(0.5)));
        // target 10 above AUTOTHROTTLE_MAX_DELAY 4
        assert_eq!(c.adjust(secs(1.5), secs(20.0), 200), Some(secs(4.0)));
        // a non-200 that would lower (0.75 → 0.5) is ignored ...
        assert_eq!(c.adjust(secs(0.75), secs(0.5), 503), None);
        // ... and one that would keep it too
        assert_eq!(c.adjust(secs(0.5), secs(0.25), 404), None);
        // ... but one that raises it applies
        assert_eq!(c.adjust(secs(0.75), secs(3.0), 500), Some(secs(1.5)));
    }

    /// With DOWNLOAD_DELAY above AUTOTHROTTLE_MAX_DELAY the maximum wins (no panic).
    #[test]
    fn max_below_min() {
        let c = ThrottleConfig {
            min_delay: secs(5.0),
            max_delay: secs(2.0),
            ..config()
        };
        assert_eq!(c.adjust(secs(1.0), secs(1.0), 200), Some(secs(2.0)));
    }

    /// The delay we set recently wins over a stale reported one; an old one does not.
    #[test]
    fn own_delay_trusted_within_window() {
        let mut s = ThrottleState::new(config());
        let slot: Arc<str> = "a".into();
        let t0 = Instant::now();
        let a = s.on_response(&slot, secs(1.0), secs(1.0), 200, t0);
        assert_eq!(
            a,
            Adjustment {
                previous: secs(1.0),
                delay: secs(0.75)
            }
        );
        // The slot still reports 1.0 (our 0.75 is in flight): adjust from 0.75.
        let a = s.on_response(&slot, secs(1.0), secs(1.0), 200, t0);
        assert_eq!(
            a,
            Adjustment {
                previous: secs(0.75),
                delay: secs(0.625)
            }
        );
        // Much later the slot (re-created) reports 1.0 again: that is the truth.
        let later = t0 + OWN_DELAY_TRUST + Duration::from_secs(1);
        let a = s.on_response(&slot, secs(1.0), secs(1.0), 200, later);
        assert_eq!(
            a,
            Adjustment {
                previous: secs(1.0),
                delay: secs(0.75)
            }
        );
    }

    /// An unchanged delay is not remembered or sent; pruning forgets old entries.
    #[test]
    fn unchanged_and_prune() {
        let mut s = ThrottleState::new(config());
        let slot: Arc<str> = "a".into();
        let t0 = Instant::now();
        let a = s.on_response(&slot, secs(0.5), secs(0.0), 200, t0);
        assert!(!a.changed());
        assert_eq!(s.tracked_slots(), 0);
        s.on_response(&slot, secs(1.0), secs(0.0), 200, t0);
        assert_eq!(s.tracked_slots(), 1);
        s.prune(t0 + OWN_DELAY_TRUST);
        assert_eq!(s.tracked_slots(), 0);
    }

    /// The debug line has Scrapy's widths and signs.
    #[test]
    fn debug_line_format() {
        assert_eq!(
            debug_line("a", 12, secs(0.5), secs(0.75), secs(12.3456), 123_456_789),
            "slot: a | conc:12 | delay:  500 ms (-250) | latency:12345 ms | size:123456789 bytes"
        );
        assert_eq!(
            debug_line("b", 1, secs(0.5), secs(0.5), secs(0.0), 0),
            "slot: b | conc: 1 | delay:  500 ms (+0) | latency:    0 ms | size:     0 bytes"
        );
    }
}

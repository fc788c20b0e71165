//! CloseSpider: closes the spider when one of Scrapy's six `CLOSESPIDER_*` conditions
//! is met, each with its own close reason.
//!
//! | setting | counted on | close reason |
//! |---|---|---|
//! | `CLOSESPIDER_TIMEOUT` (seconds, float) | that long after `SpiderOpened` | `closespider_timeout` |
//! | `CLOSESPIDER_TIMEOUT_NO_ITEM` (seconds, float) | every that-many seconds after `SpiderOpened`, no `ItemScraped` since the previous check | `closespider_timeout_no_item` |
//! | `CLOSESPIDER_ITEMCOUNT` | `ItemScraped` | `closespider_itemcount` |
//! | `CLOSESPIDER_PAGECOUNT` | `ResponseReceived` | `closespider_pagecount` |
//! | `CLOSESPIDER_PAGECOUNT_NO_ITEM` | `ResponseReceived` since the last `ItemScraped` | `closespider_pagecount_no_item` |
//! | `CLOSESPIDER_ERRORCOUNT` | `SpiderErrored` | `closespider_errorcount` |
//!
//! 0 turns a condition off; all six off means "not configured". As in Scrapy
//! (`scrapy/extensions/closespider.py`) a count condition fires when its counter
//! *reaches* the threshold, the page conditions are checked on each response (the total
//! first, then the run without items), and an item resets the run of pages without
//! items. The counting is the plain [`CloseSpiderState`]; [`CloseSpider`] is the
//! mailbox around it, subscribing only to the signals its conditions need and sending
//! `engine::CloseSpider` when one fires. `SpiderClosed` cancels its timers.
//!
//! One difference from Scrapy, invisible in effect: Scrapy calls `close_spider` again
//! for every condition met after the first (and for every page past
//! `CLOSESPIDER_PAGECOUNT_NO_ITEM`), and the engine keeps the first reason. Here the
//! first condition met is the only close request sent.

use std::num::NonZeroU64;
use std::time::Duration;

use actix::prelude::*;

use crate::error::ConfigError;
use crate::extension::{ComponentHandle, CrawlerHandle};
use crate::settings::Settings;
use crate::signals::{
    CloseReason, ItemScraped, ResponseReceived, SpiderClosed, SpiderErrored, SpiderOpened,
};

/// The six conditions, read once from the settings. `None` is Scrapy's 0: off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseSpiderConfig {
    /// `CLOSESPIDER_TIMEOUT`: close this long after the spider opened.
    pub timeout: Option<Duration>,
    /// `CLOSESPIDER_TIMEOUT_NO_ITEM`: the period of the "any item lately?" check.
    pub timeout_no_item: Option<Duration>,
    /// `CLOSESPIDER_ITEMCOUNT`: close when this many items have been scraped.
    pub itemcount: Option<NonZeroU64>,
    /// `CLOSESPIDER_PAGECOUNT`: close when this many responses have been received.
    pub pagecount: Option<NonZeroU64>,
    /// `CLOSESPIDER_PAGECOUNT_NO_ITEM`: close after this many responses in a row
    /// without an item scraped.
    pub pagecount_no_item: Option<NonZeroU64>,
    /// `CLOSESPIDER_ERRORCOUNT`: close when this many spider errors have occurred.
    pub errorcount: Option<NonZeroU64>,
}

impl CloseSpiderConfig {
    /// Reads the `CLOSESPIDER_*` settings; `Ok(None)` when every condition is off.
    ///
    /// # Errors
    ///
    /// A value that is not a non-negative number (seconds) or a non-negative integer
    /// (counts) is a [`ConfigError`] naming the setting.
    pub fn from_settings(s: &Settings) -> Result<Option<Self>, ConfigError> {
        let seconds = |key: &str| -> Result<Option<Duration>, ConfigError> {
            let d = s.get_duration(key)?;
            Ok((!d.is_zero()).then_some(d))
        };
        let count = |key: &str| -> Result<Option<NonZeroU64>, ConfigError> {
            Ok(NonZeroU64::new(s.get_usize(key)? as u64))
        };
        let config = CloseSpiderConfig {
            timeout: seconds("CLOSESPIDER_TIMEOUT")?,
            timeout_no_item: seconds("CLOSESPIDER_TIMEOUT_NO_ITEM")?,
            itemcount: count("CLOSESPIDER_ITEMCOUNT")?,
            pagecount: count("CLOSESPIDER_PAGECOUNT")?,
            pagecount_no_item: count("CLOSESPIDER_PAGECOUNT_NO_ITEM")?,
            errorcount: count("CLOSESPIDER_ERRORCOUNT")?,
        };
        Ok((config != CloseSpiderConfig::default()).then_some(config))
    }

    /// Whether `SpiderOpened` matters (a timer condition is on).
    fn needs_opened(&self) -> bool {
        self.timeout.is_some() || self.timeout_no_item.is_some()
    }

    /// Whether `ItemScraped` matters: counted, resetting the pages-without-item run,
    /// or seen by the no-item timer.
    fn needs_items(&self) -> bool {
        self.itemcount.is_some()
            || self.pagecount_no_item.is_some()
            || self.timeout_no_item.is_some()
    }

    /// Whether `ResponseReceived` matters.
    fn needs_pages(&self) -> bool {
        self.pagecount.is_some() || self.pagecount_no_item.is_some()
    }
}

/// CloseSpider's counters, without a mailbox: each `on_*` method records one event and
/// answers the close reason if that event meets a condition. Only the first condition
/// met is answered; after it every method answers `None`.
///
/// ```
/// use std::num::NonZeroU64;
/// use arachne::actors::extensions::closespider::{CloseSpiderConfig, CloseSpiderState};
/// use arachne::signals::CloseReason;
///
/// let mut state = CloseSpiderState::new(CloseSpiderConfig {
///     itemcount: NonZeroU64::new(2),
///     ..Default::default()
/// });
/// assert_eq!(state.on_item(), None);
/// assert_eq!(state.on_item(), Some(CloseReason::ClosespiderItemcount));
/// assert_eq!(state.on_item(), None);
/// ```
#[derive(Debug, Clone)]
pub struct CloseSpiderState {
    config: CloseSpiderConfig,
    /// Items scraped since the spider opened.
    items: u64,
    /// Responses received since the spider opened.
    pages: u64,
    /// Responses received since the last item (Scrapy's `pagecount_since_last_item`).
    pages_since_item: u64,
    /// Spider errors since the spider opened.
    errors: u64,
    /// Items scraped since the last no-item check (Scrapy's `items_in_period`).
    items_in_period: u64,
    /// The reason already answered, if any: the engine keeps the first reason, so
    /// answering another would only be noise.
    closing: Option<CloseReason>,
}

impl CloseSpiderState {
    /// Fresh counters for these conditions.
    pub fn new(config: CloseSpiderConfig) -> Self {
        CloseSpiderState {
            config,
            items: 0,
            pages: 0,
            pages_since_item: 0,
            errors: 0,
            items_in_period: 0,
            closing: None,
        }
    }

    /// The conditions.
    pub fn config(&self) -> &CloseSpiderConfig {
        &self.config
    }

    /// The close reason already answered, if a condition has been met.
    pub fn closing(&self) -> Option<&CloseReason> {
        self.closing.as_ref()
    }

    /// Answers `reason` unless a close was answered before.
    fn fire(&mut self, reason: CloseReason) -> Option<CloseReason> {
        if self.closing.is_some() {
            return None;
        }
        self.closing = Some(reason.clone());
        Some(reason)
    }

    /// An item was scraped: counts it, ends the run of pages without items and marks
    /// the current no-item period as productive. Closes at `CLOSESPIDER_ITEMCOUNT`.
    pub fn on_item(&mut self) -> Option<CloseReason> {
        self.items += 1;
        self.pages_since_item = 0;
        self.items_in_period += 1;
        match self.config.itemcount {
            Some(n) if self.items == n.get() => self.fire(CloseReason::ClosespiderItemcount),
            _ => None,
        }
    }

    /// A response was received. Closes at `CLOSESPIDER_PAGECOUNT`, or when the run of
    /// responses without an item reaches `CLOSESPIDER_PAGECOUNT_NO_ITEM` (checked in
    /// that order, as Scrapy does).
    pub fn on_page(&mut self) -> Option<CloseReason> {
        self.pages += 1;
        self.pages_since_item += 1;
        if let Some(n) = self.config.pagecount {
            if self.pages == n.get() {
                return self.fire(CloseReason::ClosespiderPagecount);
            }
        }
        match self.config.pagecount_no_item {
            // Scrapy compares with `>=`; with one close answered at most, it is the
            // same as firing when the run reaches the threshold.
            Some(n) if self.pages_since_item >= n.get() => {
                self.fire(CloseReason::ClosespiderPagecountNoItem)
            }
            _ => None,
        }
    }

    /// A spider callback failed. Closes at `CLOSESPIDER_ERRORCOUNT`.
    pub fn on_error(&mut self) -> Option<CloseReason> {
        self.errors += 1;
        match self.config.errorcount {
            Some(n) if self.errors == n.get() => self.fire(CloseReason::ClosespiderErrorcount),
            _ => None,
        }
    }

    /// `CLOSESPIDER_TIMEOUT` has elapsed since the spider opened.
    pub fn on_timeout(&mut self) -> Option<CloseReason> {
        self.config.timeout?;
        self.fire(CloseReason::ClosespiderTimeout)
    }

    /// A `CLOSESPIDER_TIMEOUT_NO_ITEM` period has ended: closes if no item was scraped
    /// during it, otherwise starts a new period.
    pub fn on_no_item_check(&mut self) -> Option<CloseReason> {
        self.config.timeout_no_item?;
        if self.items_in_period >= 1 {
            self.items_in_period = 0;
            return None;
        }
        self.fire(CloseReason::ClosespiderTimeoutNoItem)
    }
}

/// The extension: the mailbox around [`CloseSpiderState`].
#[derive(Debug)]
pub struct CloseSpider {
    crawler: CrawlerHandle,
    state: CloseSpiderState,
    /// The running timers (timeout, no-item check), cancelled on `SpiderClosed` or
    /// once a close has been requested.
    timers: Vec<SpawnHandle>,
}

impl CloseSpider {
    /// Not configured when every `CLOSESPIDER_*` setting is 0.
    ///
    /// # Errors
    ///
    /// A `CLOSESPIDER_*` value that does not parse, or is negative.
    pub fn from_crawler(crawler: &CrawlerHandle) -> Result<Option<ComponentHandle>, ConfigError> {
        let Some(config) = CloseSpiderConfig::from_settings(&crawler.settings)? else {
            return Ok(None);
        };
        Ok(Some(ComponentHandle::new(
            CloseSpider {
                crawler: crawler.clone(),
                state: CloseSpiderState::new(config),
                timers: Vec::new(),
            }
            .start(),
        )))
    }

    /// Sends the close request when an event answered a reason.
    fn close(&mut self, reason: Option<CloseReason>, ctx: &mut Context<Self>) {
        let Some(reason) = reason else { return };
        log::info!("Closing spider ({reason})");
        self.crawler.engine().close(reason);
        // Nothing more can be answered; the timers have nothing left to do.
        self.cancel_timers(ctx);
    }

    fn cancel_timers(&mut self, ctx: &mut Context<Self>) {
        for t in self.timers.drain(..) {
            ctx.cancel_future(t);
        }
    }
}

impl Actor for CloseSpider {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let c = &self.crawler;
        let config = self.state.config();
        // Only what the configured conditions need, as Scrapy connects its handlers.
        if config.needs_opened() {
            c.subscribe::<SpiderOpened>(ctx.address().recipient());
            c.subscribe::<SpiderClosed>(ctx.address().recipient());
        }
        if config.needs_items() {
            c.subscribe::<ItemScraped>(ctx.address().recipient());
        }
        if config.needs_pages() {
            c.subscribe::<ResponseReceived>(ctx.address().recipient());
        }
        if config.errorcount.is_some() {
            c.subscribe::<SpiderErrored>(ctx.address().recipient());
        }
    }
}

impl Handler<SpiderOpened> for CloseSpider {
    type Result = ();
    fn handle(&mut self, _: SpiderOpened, ctx: &mut Context<Self>) {
        // A second `SpiderOpened` would otherwise leave the first timers running.
        self.cancel_timers(ctx);
        if let Some(timeout) = self.state.config().timeout {
            let t = ctx.run_later(timeout, |act, ctx| {
                let reason = act.state.on_timeout();
                act.close(reason, ctx);
            });
            self.timers.push(t);
        }
        if let Some(period) = self.state.config().timeout_no_item {
            log::info!(
                "Spider will stop when no items are produced after {} seconds.",
                period.as_secs_f64()
            );
            let t = ctx.run_interval(period, move |act, ctx| {
                let reason = act.state.on_no_item_check();
                if reason.is_some() {
                    log::info!(
                        "Closing spider since no items were produced in the last {} seconds.",
                        period.as_secs_f64()
                    );
                }
                act.close(reason, ctx);
            });
            self.timers.push(t);
        }
    }
}

impl Handler<SpiderClosed> for CloseSpider {
    type Result = ();
    fn handle(&mut self, _: SpiderClosed, ctx: &mut Context<Self>) {
        self.cancel_timers(ctx);
    }
}

impl Handler<ItemScraped> for CloseSpider {
    type Result = ();
    fn handle(&mut self, _: ItemScraped, ctx: &mut Context<Self>) {
        let reason = self.state.on_item();
        self.close(reason, ctx);
    }
}

impl Handler<ResponseReceived> for CloseSpider {
    type Result = ();
    fn handle(&mut self, _: ResponseReceived, ctx: &mut Context<Self>) {
        let reason = self.state.on_page();
        self.close(reason, ctx);
    }
}

impl Handler<SpiderErrored> for CloseSpider {
    type Result = ();
    fn handle(&mut self, _: SpiderErrored, ctx: &mut Context<Self>) {
        let reason = self.state.on_error();
        self.close(reason, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u64) -> Option<NonZeroU64> {
        NonZeroU64::new(v)
    }

    /// All six conditions are read, in seconds or counts; all zero is not configured.
    #[test]
    fn config_from_settings() {
        assert_eq!(CloseSpiderConfig::from_settings(&Settings::new()), Ok(None));
        let s = Settings::new()
            .with("CLOSESPIDER_TIMEOUT", 1.5)
            .with("CLOSESPIDER_TIMEOUT_NO_ITEM", "2")
            .with("CLOSESPIDER_ITEMCOUNT", 3)
            .with("CLOSESPIDER_PAGECOUNT", "4")
            .with("CLOSESPIDER_PAGECOUNT_NO_ITEM", 5)
            .with("CLOSESPIDER_ERRORCOUNT", 6);
        assert_eq!(
            CloseSpiderConfig::from_settings(&s),
            Ok(Some(CloseSpiderConfig {
                timeout: Some(Duration::from_millis(1500)),
                timeout_no_item: Some(Duration::from_secs(2)),
                itemcount: n(3),
                pagecount: n(4),
                pagecount_no_item: n(5),
                errorcount: n(6),
            }))
        );
    }

    /// A value that does not parse, or a negative one, is an error naming the key.
    #[test]
    fn config_errors_name_the_key() {
        for (key, value) in [
            ("CLOSESPIDER_ITEMCOUNT", "many"),
            ("CLOSESPIDER_PAGECOUNT", "-1"),
            ("CLOSESPIDER_TIMEOUT", "-2.5"),
            ("CLOSESPIDER_TIMEOUT_NO_ITEM", "soon"),
        ] {
            let err = CloseSpiderConfig::from_settings(&Settings::new().with(key, value))
                .expect_err(key)
                .to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    /// Each count condition fires exactly when its counter reaches the threshold, once.
    #[test]
    fn counts_fire_at_threshold_once() {
        let mut s = CloseSpiderState::new(CloseSpiderConfig {
            itemcount: n(3),
            ..Default::default()
        });
        assert_eq!([s.on_item(), s.on_item()], [None, None]);
        assert_eq!(s.on_item(), Some(CloseReason::ClosespiderItemcount));
        assert_eq!(s.on_item(), None);

        let mut s = CloseSpiderState::new(CloseSpiderConfig {
            pagecount: n(2),
            ..Default::default()
        });
        assert_eq!(s.on_page(), None);
        assert_eq!(s.on_page(), Some(CloseReason::ClosespiderPagecount));
        assert_eq!(s.on_page(), None);

        let mut s = CloseSpiderState::new(CloseSpiderConfig {
            errorcount: n(1),
            ..Default::default()
        });
        assert_eq!(s.on_error(), Some(CloseReason::ClosespiderErrorcount));
        assert_eq!(s.on_error(), None);
    }

    /// An item resets the run of pages without items; the run closes at its threshold.
    #[test]
    fn pagecount_no_item_resets_on_item() {
        let mut s = CloseSpiderState::new(CloseSpiderConfig {
            pagecount_no_item: n(3),
            ..Default::default()
        });
        assert_eq!([s.on_page(), s.on_page()], [None, None]);
        assert_eq!(s.on_item(), None);
        assert_eq!([s.on_page(), s.on_page()], [None, None]);
        assert_eq!(s.on_page(), Some(CloseReason::ClosespiderPagecountNoItem));
        assert_eq!(s.on_page(), None);
    }

    /// When one page meets both page conditions, the total wins (Scrapy's order), and
    /// only one reason is ever answered.
    #[test]
    fn first_condition_wins() {
        let mut s = CloseSpiderState::new(CloseSpiderConfig {
            pagecount: n(2),
            pagecount_no_item: n(2),
            itemcount: n(1),
            ..Default::default()
        });
        assert_eq!(s.on_page(), None);
        assert_eq!(s.on_page(), Some(CloseReason::ClosespiderPagecount));
        assert_eq!(s.on_item(), None);
        assert_eq!(s.closing(), Some(&CloseReason::ClosespiderPagecount));
    }

    /// Items count toward no condition that is off.
    #[test]
    fn off_conditions_never_fire() {
        let mut s = CloseSpiderState::new(CloseSpiderConfig {
            errorcount: n(100),
            ..Default::default()
        });
        for _ in 0..10 {
            assert_eq!(s.on_item(), None);
            assert_eq!(s.on_page(), None);
        }
        assert_eq!(s.on_timeout(), None);
        assert_eq!(s.on_no_item_check(), None);
    }

    /// The no-item check passes while the last period had an item, and then closes.
    #[test]
    fn no_item_check() {
        let mut s = CloseSpiderState::new(CloseSpiderConfig {
            timeout_no_item: Some(Duration::from_secs(1)),
            ..Default::default()
        });
        s.on_item();
        s.on_item();
        assert_eq!(s.on_no_item_check(), None);
        s.on_item();
        assert_eq!(s.on_no_item_check(), None);
        assert_eq!(
            s.on_no_item_check(),
            Some(CloseReason::ClosespiderTimeoutNoItem)
        );
        assert_eq!(s.on_no_item_check(), None);
    }

    /// The timeout answers its reason once.
    #[test]
    fn timeout() {
        let mut s = CloseSpiderState::new(CloseSpiderConfig {
            timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        });
        assert_eq!(s.on_timeout(), Some(CloseReason::ClosespiderTimeout));
        assert_eq!(s.on_timeout(), None);
    }
}

//! PeriodicLog: Scrapy's extension that logs, as one JSON object at spider open, every
//! `LOGSTATS_INTERVAL` and at close, any of three sections:
//!
//! - `"delta"` (`PERIODIC_LOG_DELTA`): how much every numeric stat grew since the last
//!   log;
//! - `"stats"` (`PERIODIC_LOG_STATS`): the stats themselves;
//! - `"time"` (`PERIODIC_LOG_TIMING_ENABLED`): `log_interval`, `start_time`, `utcnow`,
//!   `log_interval_real`, `elapsed`.
//!
//! `PERIODIC_LOG_DELTA` and `PERIODIC_LOG_STATS` are `true`, or
//! `{"include": [...], "exclude": [...]}` whose entries match as substrings of stat
//! names (an exclude wins; with only excludes, everything else is in). Not configured
//! when all three are off or `LOGSTATS_INTERVAL` is 0.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::extension::{ComponentHandle, CrawlerHandle};
use crate::signals::{SpiderClosed, SpiderOpened};
use crate::stats::StatsMap;

/// Which stats a section shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatFilter {
    /// Substrings a stat name must contain (one of them); empty: any.
    pub include: Vec<String>,
    /// Substrings that leave a stat out.
    pub exclude: Vec<String>,
}

impl StatFilter {
    /// Scrapy's `param_allowed`.
    ///
    /// ```
    /// use arachne::actors::extensions::periodiclog::StatFilter;
    /// let f = StatFilter { include: vec!["downloader/".into()], exclude: vec!["bytes".into()] };
    /// assert!(f.allows("downloader/request_count"));
    /// assert!(!f.allows("downloader/request_bytes"));
    /// assert!(!f.allows("item_scraped_count"));
    /// ```
    pub fn allows(&self, name: &str) -> bool {
        if self.include.is_empty() && self.exclude.is_empty() {
            return true;
        }
        if self.exclude.iter().any(|p| name.contains(p.as_str())) {
            return false;
        }
        if self.include.is_empty() {
            return true;
        }
        self.include.iter().any(|p| name.contains(p.as_str()))
    }

    /// Reads `PERIODIC_LOG_DELTA` / `PERIODIC_LOG_STATS`: `None` when off.
    fn from_setting(
        settings: &crate::settings::Settings,
        key: &str,
    ) -> Result<Option<StatFilter>, ConfigError> {
        let list = |m: &Map<String, Value>, k: &str| -> Vec<String> {
            match m.get(k) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                Some(Value::String(s)) => s
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect(),
                _ => Vec::new(),
            }
        };
        match settings.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) if !m.is_empty() => Ok(Some(StatFilter {
                include: list(m, "include"),
                exclude: list(m, "exclude"),
            })),
            Some(Value::Object(_)) => Ok(None),
            Some(Value::String(s)) if s.trim_start().starts_with('{') => {
                let m = settings.get_dict(key)?;
                Ok((!m.is_empty()).then(|| StatFilter {
                    include: list(&m, "include"),
                    exclude: list(&m, "exclude"),
                }))
            }
            Some(_) => Ok(settings.get_bool(key)?.then(StatFilter::default)),
        }
    }
}

/// The extension.
#[derive(Debug)]
pub struct PeriodicLog {
    crawler: CrawlerHandle,
    interval: Duration,
    delta: Option<StatFilter>,
    stats: Option<StatFilter>,
    timing: bool,
    delta_prev: Map<String, Value>,
    time_prev: Instant,
    started: Instant,
    timer: Option<SpawnHandle>,
}

/// `utcnow` as Scrapy's JSON encoder writes a datetime: `YYYY-MM-DD HH:MM:SS`.
fn utc_string(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

impl PeriodicLog {
    /// Not configured without any section, or with `LOGSTATS_INTERVAL` = 0.
    pub fn from_crawler(crawler: &CrawlerHandle) -> Result<Option<ComponentHandle>, ConfigError> {
        let s = &crawler.settings;
        let interval = s.get_duration("LOGSTATS_INTERVAL")?;
        if interval.is_zero() {
            return Ok(None);
        }
        let delta = StatFilter::from_setting(s, "PERIODIC_LOG_DELTA")?;
        let stats = StatFilter::from_setting(s, "PERIODIC_LOG_STATS")?;
        let timing = s.get_bool("PERIODIC_LOG_TIMING_ENABLED")?;
        if delta.is_none() && stats.is_none() && !timing {
            return Ok(None);
        }
        Ok(Some(ComponentHandle::new(
            PeriodicLog {
                crawler: crawler.clone(),
                interval,
                delta,
                stats,
                timing,
                delta_prev: Map::new(),
                time_prev: Instant::now(),
                started: Instant::now(),
                timer: None,
            }
            .start(),
        )))
    }

    /// The object logged for `current` stats; updates what the next delta is from.
    pub fn entry(&mut self, current: &StatsMap) -> Value {
        let mut data = Map::new();
        if self.timing {
            let now = Instant::now();
            data.insert(
                "time".into(),
                serde_json::json!({
                    "log_interval": self.interval.as_secs_f64(),
                    "start_time": current.get("start_time").cloned().unwrap_or(Value::Null),
                    "utcnow": utc_string(SystemTime::now()),
                    "log_interval_real": now.duration_since(self.time_prev).as_secs_f64(),
                    "elapsed": now.duration_since(self.started).as_secs_f64(),
                }),
            );
            self.time_prev = now;
        }
        if let Some(filter) = &self.delta {
            let mut delta = Map::new();
            let mut numeric = Map::new();
            for (k, v) in current {
                if !v.is_number() || !filter.allows(k) {
                    continue;
                }
                let before = self.delta_prev.get(k);
                let d = match (v.as_i64(), before.map_or(Some(0), Value::as_i64)) {
                    (Some(a), Some(b)) => Value::from(a - b),
                    _ => Value::from(
                        v.as_f64().unwrap_or(0.0) - before.and_then(Value::as_f64).unwrap_or(0.0),
                    ),
                };
                delta.insert(k.clone(), d);
                numeric.insert(k.clone(), v.clone());
            }
            self.delta_prev = numeric;
            data.insert("delta".into(), Value::Object(delta));
        }
        if let Some(filter) = &self.stats {
            let stats: Map<String, Value> = current
                .iter()
                .filter(|(k, _)| filter.allows(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            data.insert("stats".into(), Value::Object(stats));
        }
        Value::Object(data)
    }

    fn log(&mut self, ctx: &mut Context<Self>) {
        let stats = self.crawler.stats().get_all();
        ctx.spawn(stats.into_actor(self).map(|current, act, _| {
            let entry = act.entry(&current);
            log::info!(
                "{}",
                serde_json::to_string_pretty(&entry).unwrap_or_default()
            );
        }));
    }
}

impl Actor for PeriodicLog {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.crawler
            .subscribe::<SpiderOpened>(ctx.address().recipient());
        self.crawler
            .subscribe::<SpiderClosed>(ctx.address().recipient());
    }
}

impl Handler<SpiderOpened> for PeriodicLog {
    type Result = ();
    fn handle(&mut self, _: SpiderOpened, ctx: &mut Context<Self>) {
        self.started = Instant::now();
        self.time_prev = self.started;
        self.log(ctx);
        self.timer = Some(ctx.run_interval(self.interval, |act, ctx| act.log(ctx)));
    }
}

impl Handler<SpiderClosed> for PeriodicLog {
    type Result = ResponseActFuture<Self, ()>;
    /// The last entry is logged before the close goes on (the signal is awaited).
    fn handle(&mut self, _: SpiderClosed, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        let stats = self.crawler.stats().get_all();
        Box::pin(stats.into_actor(self).map(|current, act, _| {
            let entry = act.entry(&current);
            log::info!(
                "{}",
                serde_json::to_string_pretty(&entry).unwrap_or_default()
            );
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_strings() {
        assert_eq!(utc_string(UNIX_EPOCH), "1970-01-01 00:00:00");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_300_000);
        assert_eq!(utc_string(t), "2026-12-03 12:13:20");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_string(leap), "2000-02-29 00:00:00");
    }
}

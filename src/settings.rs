//! [`Settings`]: Scrapy's setting names and defaults, with Scrapy's priorities
//! (default < command < project < spider's `custom_settings` < command line) and typed
//! getters. Values are kept as JSON values so that `-s KEY=VALUE` strings, Rust values
//! and `custom_settings` tables mix; each getter parses on read and a value that does
//! not parse is a [`ConfigError`] naming the key and the value.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::error::ConfigError;

/// Where a setting came from; a higher priority overrides a lower one, whatever the
/// order of the calls (Scrapy's `SETTINGS_PRIORITIES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// The built-in defaults table.
    Default = 0,
    /// Set by a command for itself (`arachne crawl -o` sets the feed).
    Command = 10,
    /// The project's settings (what a user passes to `CrawlerProcess::new`).
    Project = 20,
    /// The spider's `custom_settings`.
    Spider = 30,
    /// `-s KEY=VALUE` on the command line.
    Cmdline = 40,
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    priority: Priority,
}

/// A settings table.
///
/// ```
/// use arachne::settings::{Priority, Settings};
///
/// let mut s = Settings::new();
/// assert_eq!(s.get_usize("CONCURRENT_REQUESTS")?, 16);
/// s.set("CONCURRENT_REQUESTS", 32, Priority::Project);
/// s.set_cli("CONCURRENT_REQUESTS=64")?;
/// s.set("CONCURRENT_REQUESTS", 8, Priority::Spider); // lower than the command line
/// assert_eq!(s.get_usize("CONCURRENT_REQUESTS")?, 64);
///
/// s.set_cli("DOWNLOAD_DELAY=abc")?; // parsing happens on read
/// assert!(s.get_f64("DOWNLOAD_DELAY").unwrap_err().to_string().contains("DOWNLOAD_DELAY"));
/// # Ok::<(), arachne::error::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<String, Entry>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::new()
    }
}

impl Settings {
    /// The defaults table at [`Priority::Default`].
    pub fn new() -> Settings {
        let values = defaults()
            .into_iter()
            .map(|(k, value)| {
                (
                    k.to_string(),
                    Entry {
                        value,
                        priority: Priority::Default,
                    },
                )
            })
            .collect();
        Settings { values }
    }

    /// An empty table without defaults (for tests of priority rules).
    pub fn empty() -> Settings {
        Settings {
            values: BTreeMap::new(),
        }
    }

    /// Sets `key` unless it already holds a value of higher priority.
    pub fn set(&mut self, key: &str, value: impl Into<Value>, priority: Priority) -> &mut Self {
        let value = value.into();
        match self.values.get_mut(key) {
            Some(e) if e.priority > priority => {}
            Some(e) => {
                e.value = value;
                e.priority = priority;
            }
            None => {
                self.values
                    .insert(key.to_string(), Entry { value, priority });
            }
        }
        self
    }

    /// Builder form of [`set`](Settings::set) at project priority.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.set(key, value, Priority::Project);
        self
    }

    /// Applies every entry of `other` at `priority`.
    pub fn update(&mut self, other: impl IntoIterator<Item = (String, Value)>, priority: Priority) {
        for (k, v) in other {
            self.set(&k, v, priority);
        }
    }

    /// Parses one `KEY=VALUE` from the command line and sets it at
    /// [`Priority::Cmdline`]. The value stays a string until read.
    pub fn set_cli(&mut self, pair: &str) -> Result<&mut Self, ConfigError> {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            ConfigError::Invalid(format!("invalid -s value {pair:?}: use KEY=VALUE"))
        })?;
        Ok(self.set(k.trim(), v, Priority::Cmdline))
    }

    /// The priority a key was set at.
    pub fn priority(&self, key: &str) -> Option<Priority> {
        self.values.get(key).map(|e| e.priority)
    }

    /// The raw value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key).map(|e| &e.value)
    }

    /// Scrapy's `get_overridden_settings`: every setting with a default whose value
    /// differs from it, sorted by key; dictionaries (component orders, `FEEDS`) are
    /// left out, as Scrapy leaves them out of its start-up line.
    ///
    /// ```
    /// use arachne::settings::Settings;
    /// let s = Settings::new().with("DOWNLOAD_DELAY", 0.5).with("BOT_NAME", "arachne");
    /// let over: Vec<_> = s.overridden().map(|(k, _)| k).collect();
    /// assert_eq!(over, ["DOWNLOAD_DELAY"]);
    /// ```
    pub fn overridden(&self) -> impl Iterator<Item = (&str, &Value)> {
        let defaults: BTreeMap<&'static str, Value> = defaults().into_iter().collect();
        self.values.iter().filter_map(move |(k, e)| {
            let default = defaults.get(k.as_str())?;
            (!default.is_object() && *default != e.value).then_some((k.as_str(), &e.value))
        })
    }

    /// Every key and value, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(k, e)| (k.as_str(), &e.value))
    }

    fn bad(&self, key: &str, expected: &'static str) -> ConfigError {
        let value = match self.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        ConfigError::InvalidValue {
            key: key.to_string(),
            value,
            expected,
        }
    }

    /// A boolean: `true`/`false`, `True`/`False`, `1`/`0` (Scrapy's `getbool`).
    /// Unset is `false`.
    pub fn get_bool(&self, key: &str) -> Result<bool, ConfigError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(false),
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(true),
            Some(Value::String(s)) => match s.trim() {
                "1" | "true" | "True" | "TRUE" => Ok(true),
                "0" | "false" | "False" | "FALSE" | "" => Ok(false),
                _ => Err(self.bad(key, "a boolean (true/false/1/0)")),
            },
            _ => Err(self.bad(key, "a boolean (true/false/1/0)")),
        }
    }

    /// An integer. Unset is 0.
    pub fn get_i64(&self, key: &str) -> Result<i64, ConfigError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(0),
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| self.bad(key, "an integer")),
            Some(Value::Bool(b)) => Ok(i64::from(*b)),
            Some(Value::String(s)) => s.trim().parse().map_err(|_| self.bad(key, "an integer")),
            _ => Err(self.bad(key, "an integer")),
        }
    }

    /// A non-negative integer. Unset is 0.
    pub fn get_usize(&self, key: &str) -> Result<usize, ConfigError> {
        let v = self.get_i64(key)?;
        usize::try_from(v).map_err(|_| self.bad(key, "a non-negative integer"))
    }

    /// A float. Unset is 0.0.
    pub fn get_f64(&self, key: &str) -> Result<f64, ConfigError> {
        let v = match self.get(key) {
            None | Some(Value::Null) => Ok(0.0),
            Some(Value::Number(n)) => n.as_f64().ok_or_else(|| self.bad(key, "a number")),
            Some(Value::String(s)) => s.trim().parse().map_err(|_| self.bad(key, "a number")),
            _ => Err(self.bad(key, "a number")),
        }?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.bad(key, "a finite number"))
        }
    }

    /// A number of seconds as a `Duration` (negative is an error). Unset is zero.
    pub fn get_duration(&self, key: &str) -> Result<Duration, ConfigError> {
        let secs = self.get_f64(key)?;
        Duration::try_from_secs_f64(secs)
            .map_err(|_| self.bad(key, "a non-negative number of seconds"))
    }

    /// A string; numbers and booleans are written out. Unset is `""`.
    pub fn get_str(&self, key: &str) -> String {
        match self.get(key) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }
    }

    /// A list: a JSON array, or a comma-separated string (Scrapy's `getlist`).
    pub fn get_list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                })
                .collect()),
            Some(Value::String(s)) if s.trim_start().starts_with('[') => {
                match serde_json::from_str::<Vec<Value>>(s) {
                    Ok(a) => Ok(a
                        .into_iter()
                        .map(|v| match v {
                            Value::String(s) => s,
                            v => v.to_string(),
                        })
                        .collect()),
                    Err(_) => Err(self.bad(key, "a list")),
                }
            }
            Some(Value::String(s)) => Ok(s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()),
            Some(v) => Ok(vec![v.to_string()]),
        }
    }

    /// A dict: a JSON object, or a string holding one (Scrapy's `getdict`).
    pub fn get_dict(&self, key: &str) -> Result<Map<String, Value>, ConfigError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(Map::new()),
            Some(Value::String(s)) => {
                serde_json::from_str(s).map_err(|_| self.bad(key, "a JSON object"))
            }
            _ => Err(self.bad(key, "a JSON object")),
        }
    }

    /// Merges `<key>_BASE` and `<key>` (Scrapy's `getwithbase`): component name →
    /// order, where a `null` order in `<key>` disables a base component. Returns the
    /// enabled names sorted by order (then name, for a stable order).
    pub fn get_component_orders(&self, key: &str) -> Result<Vec<(String, i64)>, ConfigError> {
        let mut merged = self.get_dict(&format!("{key}_BASE"))?;
        for (k, v) in self.get_dict(key)? {
            merged.insert(k, v);
        }
        let mut out = Vec::new();
        for (name, order) in merged {
            match order {
                Value::Null => continue,
                Value::Number(n) => match n.as_i64() {
                    Some(o) => out.push((name, o)),
                    None => {
                        return Err(ConfigError::Invalid(format!(
                            "{key}: order of {name} must be an integer, got {n}"
                        )))
                    }
                },
                Value::String(s) if s == "None" || s == "null" => continue,
                Value::String(s) => match s.parse() {
                    Ok(o) => out.push((name, o)),
                    Err(_) => {
                        return Err(ConfigError::Invalid(format!(
                            "{key}: order of {name} must be an integer or null, got {s:?}"
                        )))
                    }
                },
                other => {
                    return Err(ConfigError::Invalid(format!(
                        "{key}: order of {name} must be an integer or null, got {other}"
                    )))
                }
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Checks every set value against the type of its default, so a bad `-s` value
    /// fails the crawl at start with a message naming key and value, not at first use.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, default) in defaults() {
            if self.priority(key) == Some(Priority::Default) {
                continue;
            }
            match default {
                Value::Bool(_) => self.get_bool(key).map(drop)?,
                Value::Number(n) if n.is_i64() => self.get_i64(key).map(drop)?,
                Value::Number(_) => self.get_f64(key).map(drop)?,
                Value::Object(_) => self.get_dict(key).map(drop)?,
                Value::Array(_) => self.get_list(key).map(drop)?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Scrapy's defaults for every setting Arachne reads so far.
fn defaults() -> Vec<(&'static str, Value)> {
    vec![
        ("BOT_NAME", json!("arachne")),
        (
            "USER_AGENT",
            json!(concat!("Arachne/", env!("CARGO_PKG_VERSION"))),
        ),
        (
            "DEFAULT_REQUEST_HEADERS",
            json!({
                "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                "Accept-Language": "en",
            }),
        ),
        ("CONCURRENT_REQUESTS", json!(16)),
        ("CONCURRENT_REQUESTS_PER_DOMAIN", json!(8)),
        ("CONCURRENT_REQUESTS_PER_IP", json!(0)),
        ("CONCURRENT_ITEMS", json!(100)),
        ("DOWNLOAD_DELAY", json!(0.0)),
        ("RANDOMIZE_DOWNLOAD_DELAY", json!(true)),
        ("DOWNLOAD_TIMEOUT", json!(180.0)),
        ("DOWNLOAD_MAXSIZE", json!(1024 * 1024 * 1024)),
        ("DOWNLOAD_WARNSIZE", json!(32 * 1024 * 1024)),
        ("DOWNLOAD_FAIL_ON_DATALOSS", json!(true)),
        ("DOWNLOAD_SLOTS", json!({})),
        ("DEPTH_LIMIT", json!(0)),
        ("DEPTH_PRIORITY", json!(0)),
        ("DEPTH_STATS_VERBOSE", json!(false)),
        ("DUPEFILTER_DEBUG", json!(false)),
        ("SCHEDULER_DEBUG", json!(false)),
        ("SCHEDULER", json!("scrapy.core.scheduler.Scheduler")),
        (
            "SCHEDULER_PRIORITY_QUEUE",
            json!("scrapy.pqueues.ScrapyPriorityQueue"),
        ),
        (
            "SCHEDULER_MEMORY_QUEUE",
            json!("scrapy.squeues.LifoMemoryQueue"),
        ),
        (
            "SCHEDULER_DISK_QUEUE",
            json!("scrapy.squeues.PickleLifoDiskQueue"),
        ),
        // Scrapy 2.13: start requests have queues of their own, served after other
        // requests of the same priority, in the order they were yielded.
        (
            "SCHEDULER_START_MEMORY_QUEUE",
            json!("scrapy.squeues.FifoMemoryQueue"),
        ),
        (
            "SCHEDULER_START_DISK_QUEUE",
            json!("scrapy.squeues.PickleFifoDiskQueue"),
        ),
        (
            "DUPEFILTER_CLASS",
            json!("scrapy.dupefilters.RFPDupeFilter"),
        ),
        ("JOBDIR", json!("")),
        // Arachne's: how often the job's queue log is fsynced (seconds; 0 = at every
        // write, negative = only at close). A kill -9 loses nothing either way; this
        // bounds what a power loss can.
        ("JOBDIR_FSYNC_INTERVAL", json!(1.0)),
        // Arachne's: seconds a graceful shutdown (first SIGINT/SIGTERM) may take before
        // the process stops as on a second signal; 0 = wait for what is in flight.
        ("SHUTDOWN_TIMEOUT", json!(0.0)),
        ("SCRAPER_SLOT_MAX_ACTIVE_SIZE", json!(5_000_000)),
        ("SPIDER_WORKERS", json!(0)),
        ("HTTPERROR_ALLOWED_CODES", json!([])),
        ("HTTPERROR_ALLOW_ALL", json!(false)),
        ("ITEM_PIPELINES", json!({})),
        ("ITEM_PIPELINES_BASE", json!({})),
        ("EXTENSIONS", json!({})),
        (
            "EXTENSIONS_BASE",
            json!({
                "CoreStats": 0,
                "CloseSpider": 0,
                "FeedExporter": 0,
                "LogStats": 0,
                "AutoThrottle": 0,
                "SpiderState": 0,
                "MemoryUsage": 0,
                "PeriodicLog": 0,
            }),
        ),
        ("PERIODIC_LOG_DELTA", json!(null)),
        ("PERIODIC_LOG_STATS", json!(null)),
        ("PERIODIC_LOG_TIMING_ENABLED", json!(false)),
        ("MEMUSAGE_ENABLED", json!(true)),
        ("MEMUSAGE_LIMIT_MB", json!(0)),
        ("MEMUSAGE_WARNING_MB", json!(0)),
        ("MEMUSAGE_CHECK_INTERVAL_SECONDS", json!(60.0)),
        ("MEMUSAGE_NOTIFY_MAIL", json!([])),
        ("LOG_LEVEL", json!("DEBUG")),
        ("LOGSTATS_INTERVAL", json!(60.0)),
        ("STATS_DUMP", json!(true)),
        ("CLOSESPIDER_TIMEOUT", json!(0.0)),
        ("CLOSESPIDER_TIMEOUT_NO_ITEM", json!(0.0)),
        ("CLOSESPIDER_ITEMCOUNT", json!(0)),
        ("CLOSESPIDER_PAGECOUNT", json!(0)),
        ("CLOSESPIDER_PAGECOUNT_NO_ITEM", json!(0)),
        ("CLOSESPIDER_ERRORCOUNT", json!(0)),
        ("AUTOTHROTTLE_ENABLED", json!(false)),
        ("AUTOTHROTTLE_DEBUG", json!(false)),
        ("AUTOTHROTTLE_START_DELAY", json!(5.0)),
        ("AUTOTHROTTLE_MAX_DELAY", json!(60.0)),
        ("AUTOTHROTTLE_TARGET_CONCURRENCY", json!(1.0)),
        ("FEEDS", json!({})),
        ("DOWNLOADER_MIDDLEWARES", json!({})),
        (
            "DOWNLOADER_MIDDLEWARES_BASE",
            json!({
                "OffsiteMiddleware": 50,
                "RobotsTxtMiddleware": 100,
                "HttpAuthMiddleware": 300,
                "DownloadTimeoutMiddleware": 350,
                "DefaultHeadersMiddleware": 400,
                "UserAgentMiddleware": 500,
                "RetryMiddleware": 550,
                "AjaxCrawlMiddleware": 560,
                "MetaRefreshMiddleware": 580,
                "HttpCompressionMiddleware": 590,
                "RedirectMiddleware": 600,
                "CookiesMiddleware": 700,
                "HttpProxyMiddleware": 750,
                "DownloaderStats": 850,
                "HttpCacheMiddleware": 900,
            }),
        ),
        ("SPIDER_MIDDLEWARES", json!({})),
        (
            "SPIDER_MIDDLEWARES_BASE",
            json!({
                "HttpErrorMiddleware": 50,
                "OffsiteMiddleware": 500,
                "RefererMiddleware": 700,
                "UrlLengthMiddleware": 800,
                "DepthMiddleware": 900,
            }),
        ),
        ("ROBOTSTXT_OBEY", json!(false)),
        ("ROBOTSTXT_USER_AGENT", json!("")),
        ("RETRY_ENABLED", json!(true)),
        ("RETRY_TIMES", json!(2)),
        (
            "RETRY_HTTP_CODES",
            json!([500, 502, 503, 504, 522, 524, 408, 429]),
        ),
        ("RETRY_PRIORITY_ADJUST", json!(-1)),
        ("REDIRECT_ENABLED", json!(true)),
        ("REDIRECT_MAX_TIMES", json!(20)),
        ("REDIRECT_PRIORITY_ADJUST", json!(2)),
        ("METAREFRESH_ENABLED", json!(true)),
        ("METAREFRESH_MAXDELAY", json!(100)),
        ("METAREFRESH_IGNORE_TAGS", json!([])),
        ("COMPRESSION_ENABLED", json!(true)),
        ("COOKIES_ENABLED", json!(true)),
        ("COOKIES_DEBUG", json!(false)),
        ("HTTPPROXY_ENABLED", json!(true)),
        ("HTTPPROXY_AUTH_ENCODING", json!("latin-1")),
        ("DOWNLOADER_STATS", json!(true)),
        ("HTTPCACHE_ENABLED", json!(false)),
        ("HTTPCACHE_DIR", json!("httpcache")),
        ("HTTPCACHE_EXPIRATION_SECS", json!(0)),
        ("HTTPCACHE_IGNORE_HTTP_CODES", json!([])),
        ("HTTPCACHE_IGNORE_SCHEMES", json!(["file"])),
        ("HTTPCACHE_IGNORE_MISSING", json!(false)),
        ("HTTPCACHE_ALWAYS_STORE", json!(false)),
        ("HTTPCACHE_GZIP", json!(false)),
        ("HTTPCACHE_IGNORE_RESPONSE_CACHE_CONTROLS", json!([])),
        (
            "HTTPCACHE_POLICY",
            json!("scrapy.extensions.httpcache.DummyPolicy"),
        ),
        (
            "HTTPCACHE_STORAGE",
            json!("scrapy.extensions.httpcache.FilesystemCacheStorage"),
        ),
        ("AJAXCRAWL_ENABLED", json!(false)),
        ("AJAXCRAWL_MAXSIZE", json!(32768)),
        ("REFERER_ENABLED", json!(true)),
        (
            "REFERRER_POLICY",
            json!("scrapy.spidermiddlewares.referer.DefaultReferrerPolicy"),
        ),
        ("URLLENGTH_LIMIT", json!(2083)),
        ("DOWNLOADER_CLIENT_TLS_VERIFY", json!(false)),
        ("DOWNLOADER_CLIENT_TLS_CA_FILE", json!("")),
        ("DOWNLOADER_CLIENT_TLS_METHOD", json!("TLS")),
        ("DOWNLOADER_CLIENT_TLS_VERBOSE_LOGGING", json!(false)),
        ("DOWNLOADER_HTTP2_ENABLED", json!(true)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lower priority never overrides a higher one, whatever the call order.
    #[test]
    fn priorities() {
        let mut s = Settings::new();
        s.set("DOWNLOAD_DELAY", 3, Priority::Spider);
        s.set("DOWNLOAD_DELAY", 1, Priority::Project);
        assert_eq!(s.get_f64("DOWNLOAD_DELAY").unwrap(), 3.0);
        s.set_cli("DOWNLOAD_DELAY=0.5").unwrap();
        assert_eq!(s.get_f64("DOWNLOAD_DELAY").unwrap(), 0.5);
    }

    /// A bad value is an error naming key and value, at validation.
    #[test]
    fn bad_value_names_key_and_value() {
        let mut s = Settings::new();
        s.set_cli("CONCURRENT_REQUESTS=abc").unwrap();
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("CONCURRENT_REQUESTS") && err.contains("abc"),
            "{err}"
        );
        assert!(Settings::new().set_cli("NOEQUALS").is_err());
    }

    /// Booleans take Scrapy's spellings.
    #[test]
    fn booleans() {
        let mut s = Settings::empty();
        for (v, want) in [("True", true), ("0", false), ("false", false), ("1", true)] {
            s.set("X", v, Priority::Cmdline);
            assert_eq!(s.get_bool("X").unwrap(), want);
        }
        s.set("X", "maybe", Priority::Cmdline);
        assert!(s.get_bool("X").is_err());
    }

    /// `_BASE` merging: null disables, orders sort.
    #[test]
    fn component_orders() {
        let mut s = Settings::new();
        s.set_cli(r#"EXTENSIONS={"LogStats": null, "Mine": -5}"#)
            .unwrap();
        let names: Vec<String> = s
            .get_component_orders("EXTENSIONS")
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names[0], "Mine");
        assert!(!names.contains(&"LogStats".to_string()));
        assert!(names.contains(&"CoreStats".to_string()));
    }

    /// Lists come from arrays or comma strings.
    #[test]
    fn lists() {
        let mut s = Settings::empty();
        s.set("L", "404, 500", Priority::Cmdline);
        assert_eq!(s.get_list("L").unwrap(), vec!["404", "500"]);
        s.set("L", json!([404]), Priority::Cmdline);
        assert_eq!(s.get_list("L").unwrap(), vec!["404"]);
    }
}

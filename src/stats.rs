//! The stats model: Scrapy's `StatsCollector` data and the messages that change or read
//! it. Keys are Scrapy's (`downloader/request_count`, `item_scraped_count`,
//! `finish_reason`, ...); values are JSON so counters, timestamps and reasons share one
//! map, which is what `--stats-json` writes and what `Crawler::run` returns.
//!
//! [`StatsValues`] is the plain map with Scrapy's `inc_value` / `set_value` /
//! `max_value` / `min_value`; the Stats actor is the mailbox around it. Components
//! never send these messages themselves: they call a
//! [`StatsHandle`](crate::handle::StatsHandle), which does. A test that wants to see
//! what a component counts puts its own actor behind a handle — it handles
//! [`StatsOp`], [`GetStats`] and [`GetValue`].

use std::borrow::Cow;

use actix::Message;
use serde_json::{Map, Value};

/// The final (or current) stats, sorted by key.
pub type StatsMap = Map<String, Value>;

/// A stats key: usually a `&'static str` (no allocation), built with `format!` for
/// per-kind keys.
pub type Key = Cow<'static, str>;

/// A change to the stats. One message per change: counters are bumped several times
/// per request, so this is the hot path and it carries no more than the key and the
/// amount.
///
/// ```
/// use arachne::stats::{StatsOp, StatsValues};
///
/// let mut stats = StatsValues::new();
/// stats.apply(StatsOp::Inc { key: "pages".into(), by: 2 });
/// stats.apply(StatsOp::Max { key: "depth".into(), value: 3.0 });
/// stats.apply(StatsOp::Max { key: "depth".into(), value: 1.0 });
/// assert_eq!(stats.get("pages"), Some(&2.into()));
/// assert_eq!(stats.get("depth"), Some(&3.into()));
/// ```
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "()")]
pub enum StatsOp {
    /// Adds `by` to a counter (creating it at 0): Scrapy's `inc_value`.
    Inc {
        /// The key.
        key: Key,
        /// The amount.
        by: i64,
    },
    /// Sets a value: Scrapy's `set_value`.
    Set {
        /// The key.
        key: Key,
        /// The value.
        value: Value,
    },
    /// Keeps the larger of the current value and this one: Scrapy's `max_value`.
    Max {
        /// The key.
        key: Key,
        /// The candidate.
        value: f64,
    },
    /// Keeps the smaller of the current value and this one: Scrapy's `min_value`.
    Min {
        /// The key.
        key: Key,
        /// The candidate.
        value: f64,
    },
}

/// Asks for all stats, as they are now.
#[derive(Debug, Clone, Message)]
#[rtype(result = "StatsMap")]
pub struct GetStats;

/// Asks for one value.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Option<Value>")]
pub struct GetValue(pub Key);

/// The stats map and Scrapy's operations on it, without a mailbox.
#[derive(Debug, Clone, Default)]
pub struct StatsValues {
    values: StatsMap,
}

impl StatsValues {
    /// Empty stats.
    pub fn new() -> Self {
        StatsValues::default()
    }

    /// Applies one change.
    pub fn apply(&mut self, op: StatsOp) {
        match op {
            StatsOp::Inc { key, by } => {
                let cur = self
                    .values
                    .get(key.as_ref())
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                self.values
                    .insert(key.into_owned(), Value::from(cur.saturating_add(by)));
            }
            StatsOp::Set { key, value } => {
                self.values.insert(key.into_owned(), value);
            }
            StatsOp::Max { key, value } => {
                if self.number(&key).is_none_or(|cur| value > cur) {
                    self.values.insert(key.into_owned(), num(value));
                }
            }
            StatsOp::Min { key, value } => {
                if self.number(&key).is_none_or(|cur| value < cur) {
                    self.values.insert(key.into_owned(), num(value));
                }
            }
        }
    }

    /// One value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// Every value.
    pub fn all(&self) -> &StatsMap {
        &self.values
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.values.get(key).and_then(Value::as_f64)
    }
}

/// Integral floats stay integers in the JSON, as Scrapy's counters are ints.
fn num(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counters add, max keeps the larger, min the smaller, set overwrites.
    #[test]
    fn operations() {
        let mut s = StatsValues::new();
        s.apply(StatsOp::Inc {
            key: "a".into(),
            by: 1,
        });
        s.apply(StatsOp::Inc {
            key: "a".into(),
            by: 2,
        });
        for v in [3.0, 1.0] {
            s.apply(StatsOp::Max {
                key: "max".into(),
                value: v,
            });
            s.apply(StatsOp::Min {
                key: "min".into(),
                value: v,
            });
        }
        s.apply(StatsOp::Set {
            key: "r".into(),
            value: "finished".into(),
        });
        s.apply(StatsOp::Max {
            key: "f".into(),
            value: 0.5,
        });
        assert_eq!(s.get("a"), Some(&3.into()));
        assert_eq!(s.get("max"), Some(&3.into()));
        assert_eq!(s.get("min"), Some(&1.into()));
        assert_eq!(s.get("r"), Some(&"finished".into()));
        assert_eq!(s.get("f"), Some(&0.5.into()));
        assert_eq!(s.all().len(), 5);
    }
}

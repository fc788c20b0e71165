//! The Stats collector: Scrapy's `StatsCollector` as an actor. Keys are Scrapy's
//! (`downloader/request_count`, `item_scraped_count`, `finish_reason`, ...); values are
//! JSON so counters, timestamps and reasons share one map, which is what
//! `--stats-json` writes and what `Crawler::run` returns.
//!
//! Commands: [`Inc`], [`Set`], [`Max`], [`Min`]; query: [`GetStats`], [`GetValue`].

use std::borrow::Cow;

use actix::prelude::*;
use serde_json::{Map, Value};

/// The final (or current) stats, sorted by key.
pub type StatsMap = Map<String, Value>;

/// A stats key: usually a `&'static str`, built with `format!` for per-kind keys.
pub type Key = Cow<'static, str>;

/// Adds `by` to a counter (creating it at 0).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Inc {
    /// The key.
    pub key: Key,
    /// The amount.
    pub by: i64,
}

impl Inc {
    /// One more.
    pub fn one(key: impl Into<Key>) -> Inc {
        Inc {
            key: key.into(),
            by: 1,
        }
    }
}

/// Sets a value.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Set {
    /// The key.
    pub key: Key,
    /// The value.
    pub value: Value,
}

/// Keeps the larger of the current value and this one.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Max {
    /// The key.
    pub key: Key,
    /// The candidate.
    pub value: f64,
}

/// Keeps the smaller of the current value and this one.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Min {
    /// The key.
    pub key: Key,
    /// The candidate.
    pub value: f64,
}

/// All stats, as they are now.
#[derive(Debug, Message)]
#[rtype(result = "StatsMap")]
pub struct GetStats;

/// One value.
#[derive(Debug, Message)]
#[rtype(result = "Option<Value>")]
pub struct GetValue(pub Key);

/// The collector.
#[derive(Debug, Default)]
pub struct Stats {
    values: StatsMap,
}

impl Stats {
    /// Empty stats.
    pub fn new() -> Self {
        Stats::default()
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

impl Actor for Stats {
    type Context = Context<Self>;
}

impl Handler<Inc> for Stats {
    type Result = ();
    fn handle(&mut self, msg: Inc, _: &mut Context<Self>) {
        let cur = self
            .values
            .get(msg.key.as_ref())
            .and_then(Value::as_i64)
            .unwrap_or(0);
        self.values
            .insert(msg.key.into_owned(), Value::from(cur + msg.by));
    }
}

impl Handler<Set> for Stats {
    type Result = ();
    fn handle(&mut self, msg: Set, _: &mut Context<Self>) {
        self.values.insert(msg.key.into_owned(), msg.value);
    }
}

impl Handler<Max> for Stats {
    type Result = ();
    fn handle(&mut self, msg: Max, _: &mut Context<Self>) {
        if self.number(&msg.key).is_none_or(|cur| msg.value > cur) {
            self.values.insert(msg.key.into_owned(), num(msg.value));
        }
    }
}

impl Handler<Min> for Stats {
    type Result = ();
    fn handle(&mut self, msg: Min, _: &mut Context<Self>) {
        if self.number(&msg.key).is_none_or(|cur| msg.value < cur) {
            self.values.insert(msg.key.into_owned(), num(msg.value));
        }
    }
}

impl Handler<GetStats> for Stats {
    type Result = MessageResult<GetStats>;
    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.values.clone())
    }
}

impl Handler<GetValue> for Stats {
    type Result = Option<Value>;
    fn handle(&mut self, msg: GetValue, _: &mut Context<Self>) -> Self::Result {
        self.values.get(msg.0.as_ref()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counters add, max keeps the larger, values read back.
    #[actix::test]
    async fn counters() {
        let stats = Stats::new().start();
        stats.do_send(Inc::one("a"));
        stats.do_send(Inc {
            key: "a".into(),
            by: 2,
        });
        stats.do_send(Max {
            key: "m".into(),
            value: 3.0,
        });
        stats.do_send(Max {
            key: "m".into(),
            value: 1.0,
        });
        let all = stats.send(GetStats).await.unwrap();
        assert_eq!(all["a"], 3);
        assert_eq!(all["m"], 3);
    }
}

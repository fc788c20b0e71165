//! The SignalBus: one `Vec<Recipient<S>>` per signal type, so nobody receives what
//! they did not ask for. Like Scrapy's `send_catch_log`, a subscriber that has gone
//! away or fails is logged and skipped; the crawl never dies of an extension.
//!
//! Commands: [`Subscribe`], [`Emit`] (fire and forget), [`EmitAwait`] (resolves when
//! every subscriber has handled the signal — the awaited signals), [`Ask`] (collects
//! every subscriber's answer — `SpiderIdle`, `HeadersReceived`).
//!
//! Ordering: all core actors live on one arbiter and every emitter goes through this
//! one mailbox, so subscribers see signals in the order they were caused.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::join_all;

use crate::signals::Signal;

/// Subscribes a recipient to signal `S`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe<S: Signal>(pub Recipient<S>)
where
    S::Result: Send;

/// Sends `S` to every subscriber without waiting.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Emit<S: Signal>(pub S)
where
    S::Result: Send;

/// Sends `S` to every subscriber; resolves when all have handled it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct EmitAwait<S: Signal>(pub S)
where
    S::Result: Send;

/// Sends `S` to every subscriber and collects their answers.
#[derive(Debug, Message)]
#[rtype(result = "Vec<S::Result>")]
pub struct Ask<S: Signal>(pub S)
where
    S::Result: Send;

impl<S: Signal> std::fmt::Debug for Subscribe<S>
where
    S::Result: Send,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Subscribe<{}>", S::NAME)
    }
}

/// How many subscribers each signal has, readable without a message: a Slot asks
/// it before paying for a per-chunk `BytesReceived`.
#[derive(Debug, Default)]
pub struct SubscriberCounts {
    counts: std::sync::Mutex<HashMap<&'static str, Arc<AtomicUsize>>>,
}

impl SubscriberCounts {
    /// A shared counter for signal `name`.
    pub fn counter(&self, name: &'static str) -> Arc<AtomicUsize> {
        let mut map = match self.counts.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.entry(name).or_default().clone()
    }

    /// Whether `S` has any subscriber now.
    pub fn has<S: Signal>(&self) -> bool
    where
        S::Result: Send,
    {
        self.counter(S::NAME).load(Ordering::Relaxed) > 0
    }
}

/// The bus.
#[derive(Default)]
pub struct SignalBus {
    lists: HashMap<TypeId, Box<dyn Any>>,
    counts: Arc<SubscriberCounts>,
}

impl std::fmt::Debug for SignalBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalBus")
            .field("signal_types", &self.lists.len())
            .finish()
    }
}

impl SignalBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        SignalBus::default()
    }

    /// The shared subscriber counts.
    pub fn counts(&self) -> Arc<SubscriberCounts> {
        self.counts.clone()
    }

    fn list<S: Signal>(&mut self) -> &mut Vec<Recipient<S>>
    where
        S::Result: Send,
    {
        self.lists
            .entry(TypeId::of::<S>())
            .or_insert_with(|| Box::new(Vec::<Recipient<S>>::new()))
            .downcast_mut::<Vec<Recipient<S>>>()
            .expect("list stored under its own TypeId")
    }

    /// Live subscribers of `S`; drops those whose actor has stopped.
    fn live<S: Signal>(&mut self) -> Vec<Recipient<S>>
    where
        S::Result: Send,
    {
        let list = self.list::<S>();
        let before = list.len();
        list.retain(|r| r.connected());
        let after = list.len();
        let out = list.clone();
        if after != before {
            self.counts.counter(S::NAME).store(after, Ordering::Relaxed);
        }
        out
    }
}

impl Actor for SignalBus {
    type Context = Context<Self>;
}

impl<S: Signal> Handler<Subscribe<S>> for SignalBus
where
    S::Result: Send,
{
    type Result = ();
    fn handle(&mut self, msg: Subscribe<S>, _: &mut Context<Self>) {
        let list = self.list::<S>();
        list.push(msg.0);
        let n = list.len();
        self.counts.counter(S::NAME).store(n, Ordering::Relaxed);
    }
}

impl<S: Signal> Handler<Emit<S>> for SignalBus
where
    S::Result: Send,
{
    type Result = ();
    fn handle(&mut self, msg: Emit<S>, _: &mut Context<Self>) {
        for r in self.live::<S>() {
            r.do_send(msg.0.clone());
        }
    }
}

impl<S: Signal> Handler<EmitAwait<S>> for SignalBus
where
    S::Result: Send,
{
    type Result = ResponseFuture<()>;
    fn handle(&mut self, msg: EmitAwait<S>, _: &mut Context<Self>) -> Self::Result {
        // Every send is enqueued now, in order; only the waiting is deferred.
        let sends: Vec<_> = self
            .live::<S>()
            .into_iter()
            .map(|r| r.send(msg.0.clone()))
            .collect();
        Box::pin(async move {
            for res in join_all(sends).await {
                if let Err(e) = res {
                    log::error!("error delivering signal {}: {e}", S::NAME);
                }
            }
        })
    }
}

impl<S: Signal> Handler<Ask<S>> for SignalBus
where
    S::Result: Send,
{
    type Result = ResponseFuture<Vec<S::Result>>;
    fn handle(&mut self, msg: Ask<S>, _: &mut Context<Self>) -> Self::Result {
        let sends: Vec<_> = self
            .live::<S>()
            .into_iter()
            .map(|r| r.send(msg.0.clone()))
            .collect();
        Box::pin(async move {
            join_all(sends)
                .await
                .into_iter()
                .filter_map(|res| match res {
                    Ok(v) => Some(v),
                    Err(e) => {
                        log::error!("error delivering signal {}: {e}", S::NAME);
                        None
                    }
                })
                .collect()
        })
    }
}

//! [`SignalsHandle`]: the signal bus as a component sees it. Every call becomes one
//! [`BusOp`] — a closure doing the typed work on the bus's
//! [`SignalTable`](crate::signals::SignalTable) — so one `Recipient<BusOp>` serves
//! every signal type.

use std::future::Future;
use std::sync::Arc;

use actix::Recipient;
use tokio::sync::oneshot;

use crate::signals::{BusOp, Signal, SubscriberCounts};

struct Inner {
    bus: Recipient<BusOp>,
    counts: Arc<SubscriberCounts>,
}

/// Subscribes to and emits signals (Scrapy's `crawler.signals`).
///
/// Every method hands its op to the bus *when it is called*, so ops from one handle
/// reach the bus in call order and each subscriber receives signals in the order they
/// were emitted; the futures of [`emit_await`](SignalsHandle::emit_await) and
/// [`ask`](SignalsHandle::ask) only wait for the answers.
///
/// ```
/// use actix::prelude::*;
/// use arachne::handle::SignalsHandle;
/// use arachne::signals::{BusOp, SignalTable, SpiderIdle, IdleVote};
///
/// /// A bus of one's own: runs each op on its table, spawns what it returns.
/// #[derive(Default)]
/// struct Bus(SignalTable);
/// impl Actor for Bus { type Context = Context<Self>; }
/// impl Handler<BusOp> for Bus {
///     type Result = ();
///     fn handle(&mut self, op: BusOp, ctx: &mut Context<Self>) {
///         if let Some(wait) = op.run(&mut self.0) {
///             ctx.spawn(actix::fut::wrap_future(wait));
///         }
///     }
/// }
///
/// /// Keeps the spider open.
/// struct Keeper;
/// impl Actor for Keeper { type Context = Context<Self>; }
/// impl Handler<SpiderIdle> for Keeper {
///     type Result = IdleVote;
///     fn handle(&mut self, _: SpiderIdle, _: &mut Context<Self>) -> IdleVote {
///         IdleVote::DontClose
///     }
/// }
///
/// System::new().block_on(async {
///     let bus = Bus::default();
///     let signals = SignalsHandle::new(bus.0.counts(), bus.start().recipient());
///     signals.subscribe::<SpiderIdle>(Keeper.start().recipient());
///     let votes = signals.ask(SpiderIdle { spider: "s".into() }).await;
///     assert_eq!(votes, vec![IdleVote::DontClose]);
///     assert!(signals.has_subscribers::<SpiderIdle>());
/// });
/// ```
#[derive(Clone)]
pub struct SignalsHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SignalsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignalsHandle")
    }
}

impl SignalsHandle {
    /// A handle sending ops to `bus`, whose table keeps `counts`.
    pub fn new(counts: Arc<SubscriberCounts>, bus: Recipient<BusOp>) -> Self {
        SignalsHandle {
            inner: Arc::new(Inner { bus, counts }),
        }
    }

    /// Sends a raw op to the bus.
    pub fn op(&self, op: BusOp) {
        self.inner.bus.do_send(op);
    }

    /// Subscribes `recipient` to signal `S` (call it from `started()`).
    pub fn subscribe<S: Signal>(&self, recipient: Recipient<S>)
    where
        S::Result: Send,
    {
        self.op(BusOp::new(move |table| {
            table.subscribe(recipient);
            None
        }));
    }

    /// Emits a signal without waiting.
    pub fn emit<S: Signal>(&self, signal: S)
    where
        S::Result: Send,
    {
        self.op(BusOp::new(move |table| {
            table.emit(signal);
            None
        }));
    }

    /// Emits a signal; the future resolves once every subscriber has handled it.
    pub fn emit_await<S: Signal>(&self, signal: S) -> impl Future<Output = ()> + 'static
    where
        S::Result: Send,
    {
        let (tx, rx) = oneshot::channel();
        self.op(BusOp::new(move |table| {
            let wait = table.emit_await(signal);
            Some(Box::pin(async move {
                wait.await;
                let _ = tx.send(());
            }))
        }));
        async move {
            if rx.await.is_err() {
                log::error!("signal bus gone while emitting {}", S::NAME);
            }
        }
    }

    /// Emits a signal and collects every subscriber's answer (empty if the bus is
    /// gone).
    pub fn ask<S: Signal>(&self, signal: S) -> impl Future<Output = Vec<S::Result>> + 'static
    where
        S::Result: Send,
    {
        let (tx, rx) = oneshot::channel();
        self.op(BusOp::new(move |table| {
            let answers = table.ask(signal);
            Some(Box::pin(async move {
                let _ = tx.send(answers.await);
            }))
        }));
        async move {
            rx.await.unwrap_or_else(|_| {
                log::error!("signal bus gone while asking {}", S::NAME);
                Vec::new()
            })
        }
    }

    /// Whether `S` has a subscriber, without a message: lets an emitter skip building
    /// a signal nobody wants. Subscriptions count once the bus has handled them.
    pub fn has_subscribers<S: Signal>(&self) -> bool
    where
        S::Result: Send,
    {
        self.inner.counts.has::<S>()
    }

    /// The shared subscriber counts.
    pub fn counts(&self) -> &Arc<SubscriberCounts> {
        &self.inner.counts
    }
}

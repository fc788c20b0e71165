//! The SignalBus: the mailbox around the plain [`SignalTable`] of `crate::signals`
//! (one `Vec<Recipient<S>>` per signal type). It handles one message, `BusOp`: it
//! runs the op on its table — every send the op makes is enqueued there and then, in
//! the order the ops arrived — and spawns the future the op returns (the waiting part
//! of an awaited emit or an ask), so a slow subscriber never holds the mailbox.
//! Components reach it through a [`SignalsHandle`] ([`SignalBus::start_handle`]).
//!
//! Ordering: all core actors live on one arbiter and every emitter goes through this
//! one mailbox, so subscribers see signals in the order they were caused.

use actix::prelude::*;

use crate::handle::SignalsHandle;
use crate::signals::{BusOp, SignalTable};

/// The bus.
#[derive(Debug, Default)]
pub struct SignalBus {
    table: SignalTable,
}

impl SignalsHandle {
    /// A handle to a new signal bus with no subscribers, of the kind a crawl uses: for
    /// tests and tools that drive components with synthetic signals (needs a running
    /// actix System).
    pub fn bus() -> SignalsHandle {
        SignalBus::start_handle()
    }
}

impl SignalBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        SignalBus::default()
    }

    /// Starts a bus and answers the handle to it.
    pub fn start_handle() -> SignalsHandle {
        let bus = SignalBus::new();
        let counts = bus.table.counts();
        SignalsHandle::new(counts, bus.start().recipient())
    }
}

impl Actor for SignalBus {
    type Context = Context<Self>;
}

impl Handler<BusOp> for SignalBus {
    type Result = ();
    fn handle(&mut self, op: BusOp, ctx: &mut Context<Self>) {
        if let Some(wait) = op.run(&mut self.table) {
            ctx.spawn(actix::fut::wrap_future(wait));
        }
    }
}

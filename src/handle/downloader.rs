//! [`DownloaderHandle`]: the downloader as a component sees it, and the messages it
//! sends: [`Fetch`], [`SetSlotDelay`], [`GetSlotDelay`]. Only the Downloader owns
//! slots: AutoThrottle changes a delay through this handle, never by reaching into a
//! slot.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, Message, Recipient};

use crate::error::DownloadError;
use crate::http::Request;
use crate::middleware::downloader::Fetched;

/// Downloads a request through the downloader middlewares; resolves with a response,
/// a request to schedule instead, or the failure.
#[derive(Debug, Message)]
#[rtype(result = "Fetched")]
pub struct Fetch(pub Request);

/// Sets a slot's delay. `slot: None` sets the delay slots are created with (what
/// AutoThrottle's start delay is); a slot that does not exist yet is created with it.
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "()")]
pub struct SetSlotDelay {
    /// The slot key, as `ResponseDownloaded::slot` gives it; `None` for the default.
    pub slot: Option<Arc<str>>,
    /// The new delay.
    pub delay: Duration,
}

/// Asks for a slot's current delay: `None` when no such slot exists; `slot: None`
/// asks for the delay new slots are created with (always answered).
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "Option<Duration>")]
pub struct GetSlotDelay {
    /// The slot key; `None` for the default.
    pub slot: Option<Arc<str>>,
}

/// Where a [`DownloaderHandle`] sends. Usually all one actor's
/// ([`DownloaderHandle::from_addr`]).
#[derive(Debug, Clone)]
pub struct DownloaderRecipients {
    /// Answers [`Fetch`].
    pub fetch: Recipient<Fetch>,
    /// Receives [`SetSlotDelay`].
    pub set_slot_delay: Recipient<SetSlotDelay>,
    /// Answers [`GetSlotDelay`].
    pub slot_delay: Recipient<GetSlotDelay>,
}

/// Reads and sets download slot delays; fetches through the downloader middlewares.
///
/// ```no_run
/// use std::time::Duration;
/// use arachne::handle::DownloaderHandle;
///
/// async fn slow_down(downloader: &DownloaderHandle) {
///     let now = downloader.slot_delay("example.com").await.unwrap_or_default();
///     downloader.set_slot_delay("example.com", now + Duration::from_millis(250));
/// }
/// ```
#[derive(Clone)]
pub struct DownloaderHandle {
    inner: Arc<DownloaderRecipients>,
}

impl std::fmt::Debug for DownloaderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DownloaderHandle")
    }
}

impl DownloaderHandle {
    /// A handle sending to these recipients.
    pub fn new(recipients: DownloaderRecipients) -> Self {
        DownloaderHandle {
            inner: Arc::new(recipients),
        }
    }

    /// A handle sending everything to one actor (the Downloader, or a test's probe).
    pub fn from_addr<A>(addr: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<Fetch>
            + Handler<SetSlotDelay>
            + Handler<GetSlotDelay>,
    {
        DownloaderHandle::new(DownloaderRecipients {
            fetch: addr.clone().recipient(),
            set_slot_delay: addr.clone().recipient(),
            slot_delay: addr.clone().recipient(),
        })
    }

    /// Sets the delay of the slot `slot` (as `ResponseDownloaded::slot` names it),
    /// creating the slot if needed: AutoThrottle's lever.
    pub fn set_slot_delay(&self, slot: impl Into<Arc<str>>, delay: Duration) {
        self.inner.set_slot_delay.do_send(SetSlotDelay {
            slot: Some(slot.into()),
            delay,
        });
    }

    /// Sets the delay slots created from now on start with (Scrapy's
    /// `spider.download_delay`, which AutoThrottle sets to its start delay).
    pub fn set_default_slot_delay(&self, delay: Duration) {
        self.inner
            .set_slot_delay
            .do_send(SetSlotDelay { slot: None, delay });
    }

    /// The current delay of slot `slot`; `None` if there is no such slot (or the
    /// downloader is gone). Sees every delay this handle set before.
    pub fn slot_delay(
        &self,
        slot: impl Into<Arc<str>>,
    ) -> impl Future<Output = Option<Duration>> + 'static {
        let request = self.inner.slot_delay.send(GetSlotDelay {
            slot: Some(slot.into()),
        });
        async move { request.await.ok().flatten() }
    }

    /// The delay new slots start with (`None` only if the downloader is gone).
    pub fn default_slot_delay(&self) -> impl Future<Output = Option<Duration>> + 'static {
        let request = self.inner.slot_delay.send(GetSlotDelay { slot: None });
        async move { request.await.ok().flatten() }
    }

    /// Downloads `request` through the downloader middlewares and its slot, bypassing
    /// the engine (how RobotsTxt fetches robots.txt from inside the middleware chain).
    /// Unlike [`EngineHandle::download`](crate::handle::EngineHandle::download) the
    /// engine does not count it, and a rescheduled request is handed back, not
    /// followed. A downloader that is gone answers `Failed(.., Cancelled)`.
    pub fn fetch(&self, request: Request) -> impl Future<Output = Fetched> + 'static {
        let (method, url) = (request.method.clone(), request.url.clone());
        let sent = self.inner.fetch.send(Fetch(request));
        async move {
            sent.await.unwrap_or_else(|_| {
                Fetched::Failed(Request::from_url(method, url), DownloadError::Cancelled)
            })
        }
    }
}

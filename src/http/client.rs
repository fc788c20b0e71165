//! The HTTP clients the download slots use: one `awc::Client` for direct requests
//! (and plain-HTTP requests through a proxy, sent in absolute form), plus one per
//! proxy for HTTPS targets tunnelled with `CONNECT`. Clients hold `Rc`s, so they are
//! built on the I/O arbiter and shared by every Slot there; connections are pooled per
//! client.

use std::time::Duration;

use crate::error::{ConfigError, DownloadError};
use crate::settings::Settings;

/// The clients.
pub struct HttpClients {
    direct: awc::Client,
}

impl std::fmt::Debug for HttpClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClients").finish_non_exhaustive()
    }
}

impl HttpClients {
    /// Builds the direct client from the settings (`DOWNLOAD_TIMEOUT` bounds connects).
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let timeout = settings.get_duration("DOWNLOAD_TIMEOUT")?;
        let connector = awc::Connector::new()
            // Slots do the limiting; the pool must never be the bottleneck.
            .limit(0)
            .timeout(timeout.max(Duration::from_millis(1)));
        let direct = awc::Client::builder()
            .connector(connector)
            .disable_redirects()
            .disable_timeout()
            .no_default_headers()
            .finish();
        Ok(HttpClients { direct })
    }

    /// The client for direct requests and plain HTTP through a proxy.
    pub fn direct(&self) -> &awc::Client {
        &self.direct
    }

    /// A client whose connections tunnel through `proxy` (an `http://host:port` URL,
    /// credentials already moved to `Proxy-Authorization`) with `CONNECT`.
    pub fn tunnel(&self, proxy: &str) -> Result<awc::Client, DownloadError> {
        Err(DownloadError::NotSupported(format!(
            "https through proxy {proxy} (CONNECT tunnels are not built yet)"
        )))
    }
}

//! The HTTP clients the download slots use: one `awc::Client` for direct requests
//! (and plain-HTTP requests through a proxy, sent in absolute form), plus one per
//! proxy for HTTPS targets tunnelled with `CONNECT`. Clients hold `Rc`s, so they are
//! built on the I/O arbiter and shared by every Slot there; connections are pooled per
//! client. Each client has a twin that never reuses a connection, for the one
//! transparent resend of a request whose pooled connection died under it: the resend
//! must not meet another stale connection from the same pool.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ConfigError, DownloadError};
use crate::http::tls::{CertificateInfo, CertificateStore, TlsSetup};
use crate::http::tunnel::TunnelConnector;
use crate::settings::Settings;

/// The clients.
pub struct HttpClients {
    direct: awc::Client,
    /// `direct`'s twin whose connections are never reused.
    fresh_direct: awc::Client,
    /// The TLS configuration of every HTTPS connection, direct or tunnelled (ALPN,
    /// verification, versions: see [`crate::http::tls`]).
    tls: Arc<rustls::ClientConfig>,
    /// Server certificates seen by `tls`'s verifier.
    certificates: Arc<CertificateStore>,
    /// `DOWNLOAD_TIMEOUT`: bounds a tunnel's connect + `CONNECT` and its TLS handshake.
    connect_timeout: Duration,
    /// Tunnelling clients by `(proxy, Proxy-Authorization)`: a pooled tunnel was opened
    /// with its credentials, so other credentials need other connections.
    tunnels: RefCell<HashMap<(String, Option<String>), Tunnel>>,
}

/// A proxy's tunnelling client and its never-reusing twin.
#[derive(Clone)]
struct Tunnel {
    pooled: awc::Client,
    fresh: awc::Client,
}

/// An awc client over `connector`, as every slot uses it: redirects, timeouts and
/// default headers are the middlewares' business. `fresh`: no connection is ever
/// taken from the pool (a keep-alive of zero makes every idle connection too old).
/// A macro, as awc's connector bounds are not nameable outside awc.
macro_rules! client {
    ($connector:expr, $fresh:expr) => {{
        let connector = $connector;
        let connector = if $fresh {
            connector
                .conn_keep_alive(Duration::ZERO)
                .conn_lifetime(Duration::ZERO)
        } else {
            connector
        };
        awc::Client::builder()
            .connector(connector)
            .disable_redirects()
            .disable_timeout()
            .no_default_headers()
            .finish()
    }};
}

impl std::fmt::Debug for HttpClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClients").finish_non_exhaustive()
    }
}

impl HttpClients {
    /// Builds the direct client from the settings (`DOWNLOAD_TIMEOUT` bounds connects
    /// and TLS handshakes; the `DOWNLOADER_CLIENT_TLS_*` family and
    /// `DOWNLOADER_HTTP2_ENABLED` shape TLS and ALPN, see [`crate::http::tls`]).
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        // DOWNLOAD_TIMEOUT = 0 means no download timeout (not "time out at once");
        // connecting still gives up after Scrapy's default 180 s.
        let timeout = match settings.get_duration("DOWNLOAD_TIMEOUT")? {
            t if t.is_zero() => Duration::from_secs(180),
            t => t,
        };
        let TlsSetup {
            config: tls,
            certificates,
        } = TlsSetup::from_settings(settings)?;
        let connect_timeout = timeout.max(Duration::from_millis(1));
        let connector = || {
            awc::Connector::new()
                // Slots do the limiting; the pool must never be the bottleneck.
                .limit(0)
                .timeout(connect_timeout)
                .handshake_timeout(connect_timeout)
                .rustls_0_23(tls.clone())
        };
        let direct = client!(connector(), false);
        let fresh_direct = client!(connector(), true);
        Ok(HttpClients {
            direct,
            fresh_direct,
            tls,
            certificates,
            connect_timeout,
            tunnels: RefCell::new(HashMap::new()),
        })
    }

    /// The shared rustls configuration (for connectors built elsewhere, e.g. tunnels).
    pub(crate) fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// The server certificate last seen in a TLS handshake with `host` (a URL host).
    /// Keyed by host name, not by connection: see [`crate::http::tls`].
    pub fn certificate(&self, host: &str) -> Option<Arc<CertificateInfo>> {
        self.certificates.get(host)
    }

    /// The client for direct requests and plain HTTP through a proxy; `fresh`: its
    /// twin that opens a new connection for every request.
    pub fn direct(&self, fresh: bool) -> &awc::Client {
        if fresh {
            &self.fresh_direct
        } else {
            &self.direct
        }
    }

    /// A client whose connections tunnel through `proxy` (an `http://host:port` URL,
    /// credentials already moved out of it) with `CONNECT`, sending
    /// `proxy_authorization` as the `CONNECT`'s `Proxy-Authorization` (see
    /// [`crate::http::tunnel`]). One client per `(proxy, credentials)` pair, built on
    /// first use and kept, so tunnels are pooled and reused like direct connections;
    /// `fresh` gives its twin that opens a new tunnel for every request.
    ///
    /// # Errors
    /// `NotSupported` for a proxy that is not `http://`; `Other` if it does not parse.
    pub fn tunnel(
        &self,
        proxy: &str,
        proxy_authorization: Option<&str>,
        fresh: bool,
    ) -> Result<awc::Client, DownloadError> {
        /// More distinct pairs than this (a rotating proxy pool) start the cache afresh
        /// rather than keep every pool's idle tunnels forever.
        const MAX_TUNNEL_CLIENTS: usize = 256;
        let key = (proxy.to_string(), proxy_authorization.map(str::to_string));
        let pick = |t: &Tunnel| {
            if fresh {
                t.fresh.clone()
            } else {
                t.pooled.clone()
            }
        };
        if let Some(tunnel) = self.tunnels.borrow().get(&key) {
            return Ok(pick(tunnel));
        }
        let connector = || -> Result<_, DownloadError> {
            Ok(awc::Connector::new()
                .connector(TunnelConnector::new(proxy, proxy_authorization)?)
                .limit(0)
                .timeout(self.connect_timeout)
                .handshake_timeout(self.connect_timeout)
                .rustls_0_23(self.tls_config()))
        };
        let tunnel = Tunnel {
            pooled: client!(connector()?, false),
            fresh: client!(connector()?, true),
        };
        let chosen = pick(&tunnel);
        let mut tunnels = self.tunnels.borrow_mut();
        if tunnels.len() >= MAX_TUNNEL_CLIENTS {
            tunnels.clear();
        }
        tunnels.insert(key, tunnel);
        Ok(chosen)
    }
}

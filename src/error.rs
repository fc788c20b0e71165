//! The library's error types, one small enum per area, so a caller can tell a bad
//! setting from a failed download without parsing strings.
//!
//! Each error that is counted in the stats has a `kind()` — the short, stable name
//! that appears in keys such as `downloader/exception_type_count/<kind>`.

use std::time::Duration;

/// A setting holds a value its reader cannot use. The message names key and value,
/// because the user typed them on a command line or in a settings table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The value does not parse as the type the setting needs.
    #[error("invalid value for setting {key}: {value:?} is not {expected}")]
    InvalidValue {
        /// The setting's name.
        key: String,
        /// The value as given.
        value: String,
        /// What was expected ("an integer", "a boolean", ...).
        expected: &'static str,
    },
    /// A `KEY=VALUE` pair without `=`, or a component name nobody registered.
    #[error("{0}")]
    Invalid(String),
}

/// A URL that cannot be requested: it does not parse, or it has no host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URL {url:?}: {reason}")]
pub struct InvalidUrl {
    /// The URL as given.
    pub url: String,
    /// Why it was refused.
    pub reason: String,
}

/// Why a download failed. `kind()` is the name counted in
/// `downloader/exception_type_count/<kind>`; the names follow the exception classes a
/// Scrapy user sees in the same place (`ConnectionRefusedError`, `TimeoutError`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    /// The URL scheme has no download handler (Scrapy's `NotSupported`).
    #[error("unsupported URL scheme {0:?}")]
    NotSupported(String),
    /// The host name could not be resolved.
    #[error("DNS lookup failed for {0}")]
    DnsLookup(String),
    /// Nobody listens on the target port.
    #[error("connection refused by {0}")]
    ConnectionRefused(String),
    /// The connection was closed or reset before a whole response arrived.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// No whole response within `DOWNLOAD_TIMEOUT`.
    #[error("download timed out after {0:?}")]
    Timeout(Duration),
    /// The body is larger than `DOWNLOAD_MAXSIZE` (or the request's `download_maxsize`).
    #[error("response size ({size}) larger than download max size ({max})")]
    MaxSizeExceeded {
        /// Bytes received or announced when the download was cancelled.
        size: u64,
        /// The limit in force.
        max: u64,
    },
    /// The server's certificate failed verification (`DOWNLOADER_CLIENT_TLS_VERIFY`).
    #[error("TLS certificate error for {host}: {reason}")]
    TlsCertificate {
        /// The server name.
        host: String,
        /// What was wrong.
        reason: String,
    },
    /// The TLS handshake failed for another reason (protocol, alert, cipher).
    #[error("TLS handshake with {host} failed: {reason}")]
    TlsHandshake {
        /// The server name.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// The proxy answered 407: credentials missing or wrong.
    #[error(
        "proxy {proxy} requires authentication (407, or 401 from proxies that answer CONNECT so)"
    )]
    ProxyAuthRequired {
        /// The proxy (without credentials).
        proxy: String,
    },
    /// The proxy could not be reached or refused the tunnel.
    #[error("proxy {proxy} failed: {reason}")]
    Proxy {
        /// The proxy (without credentials).
        proxy: String,
        /// What went wrong.
        reason: String,
    },
    /// The request was dropped before download (a middleware's `IgnoreRequest`).
    #[error("request ignored: {0}")]
    Ignored(String),
    /// The connection closed before the whole body announced by `Content-Length`
    /// arrived (Scrapy's `ResponseFailed([_DataLoss])`); with
    /// `DOWNLOAD_FAIL_ON_DATALOSS = false` the response is kept, flagged `dataloss`.
    #[error("data loss: got {got} of {expected} bytes of the body")]
    DataLoss {
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// The download was cancelled because the crawl is stopping.
    #[error("download cancelled")]
    Cancelled,
    /// Anything else the HTTP client reported.
    #[error("{0}")]
    Other(String),
}

impl DownloadError {
    /// The stable name counted in `downloader/exception_type_count/<kind>`.
    pub fn kind(&self) -> &'static str {
        match self {
            DownloadError::NotSupported(_) => "NotSupported",
            DownloadError::DnsLookup(_) => "DNSLookupError",
            DownloadError::ConnectionRefused(_) => "ConnectionRefusedError",
            DownloadError::ConnectionLost(_) => "ConnectionLost",
            DownloadError::Timeout(_) => "TimeoutError",
            DownloadError::MaxSizeExceeded { .. } => "MaxSizeExceeded",
            DownloadError::TlsCertificate { .. } => "TlsCertificateError",
            DownloadError::TlsHandshake { .. } => "TlsHandshakeError",
            DownloadError::ProxyAuthRequired { .. } => "ProxyAuthenticationRequired",
            DownloadError::Proxy { .. } => "ProxyError",
            DownloadError::Ignored(_) => "IgnoreRequest",
            DownloadError::DataLoss { .. } => "ResponseDataLossError",
            DownloadError::Cancelled => "CancelledError",
            DownloadError::Other(_) => "DownloadError",
        }
    }
}

/// Runs a future from user code (a callback, a middleware, a pipeline stage) and turns
/// a panic into an error message: a panic in an actor's future would otherwise kill
/// that actor — the Engine, Downloader or ItemPipeline — and with it the crawl.
pub(crate) async fn catch_panic<F: std::future::Future>(fut: F) -> Result<F::Output, String> {
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(panic_message)
}

/// The message a panic carried, if it was a string.
pub(crate) fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".to_string())
}

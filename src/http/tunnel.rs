//! HTTPS through an HTTP proxy: a `CONNECT` tunnel built *into* awc as its TCP
//! connector, and the mapping of proxy failures to [`DownloadError`]s.
//!
//! awc has no proxy support, and its HTTP/1 encoder writes the request line from the
//! URI's `path_and_query` only (origin form, `GET /path`). Two paths follow from that:
//!
//! - **`http://` targets** go through the ordinary direct client, in absolute form:
//!   `transfer` (`actors/slot.rs`, see `proxy_uri`) gives awc a URI whose authority is
//!   the proxy's and whose `path_and_query` is the target's whole URL, so awc connects
//!   to the proxy and writes `GET http://host:port/path HTTP/1.1`. A `407` answer there
//!   becomes [`DownloadError::ProxyAuthRequired`].
//! - **`https://` targets** need a tunnel. An `awc::Connector` is a stack: a TCP connector
//!   service (`ConnectInfo<Uri>` → `Connection<Uri, IO>`), then TLS (rustls, SNI from the
//!   URI's host), then the connection pool and the HTTP/1.1 or HTTP/2 dispatcher.
//!   `Connector::connector` replaces the bottom layer, and [`TunnelConnector`] is that
//!   layer: instead of a TCP connection to the target it opens one to the proxy, sends
//!   `CONNECT host:port HTTP/1.1` with `Host` and the request's `Proxy-Authorization`,
//!   reads the proxy's answer and, on `2xx`, hands the raw stream up as if it were a TCP
//!   connection to the target. awc then does the TLS handshake with the target *through*
//!   the tunnel (the same rustls configuration as direct requests: verification, SNI and
//!   ALPN/h2 behave the same) and speaks HTTP inside it.
//!
//! Why a connector rather than code around the client: everything else stays awc's —
//! the pool keeps tunnelled connections alive under the target's authority (a tunnel is
//! opened only when no idle one exists for that target), h2 multiplexes over one tunnel,
//! `DOWNLOAD_TIMEOUT` bounds connect + CONNECT + handshake (awc's connect timeout wraps
//! this service), and responses stream as for any request.
//!
//! Credentials: a pooled tunnel was opened with particular credentials, so
//! `HttpClients::tunnel` keeps one awc client per `(proxy, Proxy-Authorization)` pair.
//! The header goes on the `CONNECT` only; `transfer` strips it from the request sent
//! inside the tunnel, so the target never sees it.
//!
//! Errors: awc's connector error type has no room for ours, so a [`TunnelError`] travels
//! as the payload of an `io::Error` (awc's `ConnectError::Io`) and [`proxy_error`]
//! recovers it: a `407` is [`DownloadError::ProxyAuthRequired`] (not retried: the
//! credentials will not get better), and so is a `401` to `CONNECT` — an answer to
//! `CONNECT` can only be the proxy's, and tinyproxy up to 1.11.2 answers wrong
//! credentials with `401` (its issue #532). (In absolute form a `401` stays a response:
//! it cannot be told from the target's own.) An unreachable proxy, a refused `CONNECT` (e.g. the
//! proxy's `502` when it cannot reach the target) or a malformed answer is
//! [`DownloadError::Proxy`] (retried). Both are counted under
//! `downloader/exception_type_count/<kind>` like any download error.

use std::fmt;
use std::io;
use std::rc::Rc;

use actix_rt::net::TcpStream;
use actix_service::Service;
use actix_tls::connect::{ConnectError as TcpConnectError, ConnectInfo, Connection};
use awc::error::{ConnectError, SendRequestError};
use awc::http::Uri;
use futures_util::future::LocalBoxFuture;

use crate::error::DownloadError;

/// The longest proxy answer to `CONNECT` read (status line and headers).
const MAX_ANSWER: usize = 16 * 1024;

/// Why a tunnel could not be opened. Carried inside an `io::Error` through awc.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TunnelError {
    /// The TCP connection to the proxy failed (refused, unresolvable, unreachable).
    #[error("cannot connect to the proxy: {0}")]
    Unreachable(io::Error),
    /// The proxy answered `407 Proxy Authentication Required` (or `401`, see above).
    #[error("CONNECT {target} refused: {status_line}")]
    AuthRequired {
        /// `host:port` of the target.
        target: String,
        /// The proxy's status line.
        status_line: String,
    },
    /// The proxy answered with another non-2xx status.
    #[error("CONNECT {target} refused: {status_line}")]
    Refused {
        /// `host:port` of the target.
        target: String,
        /// The proxy's status line, e.g. `HTTP/1.0 500 Unable to connect`.
        status_line: String,
    },
    /// The answer was not HTTP, too long, or followed by unexpected bytes.
    #[error("bad answer to CONNECT {target}: {reason}")]
    BadAnswer {
        /// `host:port` of the target.
        target: String,
        /// What was wrong.
        reason: String,
    },
    /// The connection failed while the `CONNECT` was exchanged.
    #[error("connection to the proxy lost during CONNECT: {0}")]
    Io(io::Error),
}

/// awc's TCP connector service for one proxy and one set of credentials: opens a
/// `CONNECT` tunnel to the requested target and returns its stream (see the module
/// docs). Cheap to clone, as awc requires.
#[derive(Clone)]
pub(crate) struct TunnelConnector {
    inner: Rc<ProxyEndpoint>,
}

/// Where and how to reach the proxy.
struct ProxyEndpoint {
    /// `host:port` of the proxy, to connect to.
    addr: String,
    /// The `Proxy-Authorization` value sent with each `CONNECT`, if any.
    authorization: Option<String>,
}

impl fmt::Debug for TunnelConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the credentials.
        f.debug_struct("TunnelConnector")
            .field("proxy", &self.inner.addr)
            .field("authorization", &self.inner.authorization.is_some())
            .finish()
    }
}

impl TunnelConnector {
    /// A connector tunnelling through `proxy` (`http://host[:port]`, port 80 if absent),
    /// sending `authorization` as `Proxy-Authorization` on each `CONNECT`.
    ///
    /// # Errors
    /// `NotSupported` for a proxy that is not `http://`; `Other` if it does not parse.
    pub(crate) fn new(proxy: &str, authorization: Option<&str>) -> Result<Self, DownloadError> {
        let bad = |e: String| DownloadError::Other(format!("invalid proxy {proxy:?}: {e}"));
        let url = url::Url::parse(proxy).map_err(|e| bad(e.to_string()))?;
        if url.scheme() != "http" {
            return Err(DownloadError::NotSupported(format!(
                "proxy scheme {:?} (only http:// proxies are supported)",
                url.scheme()
            )));
        }
        let host = url.host_str().ok_or_else(|| bad("no host".into()))?;
        let addr = format!("{host}:{}", url.port_or_known_default().unwrap_or(80));
        if let Some(value) = authorization {
            if value.contains(['\r', '\n']) {
                return Err(bad("line break in Proxy-Authorization".into()));
            }
        }
        Ok(TunnelConnector {
            inner: Rc::new(ProxyEndpoint {
                addr,
                authorization: authorization.map(str::to_string),
            }),
        })
    }
}

impl Service<ConnectInfo<Uri>> for TunnelConnector {
    type Response = Connection<Uri, TcpStream>;
    type Error = TcpConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_service::always_ready!();

    fn call(&self, req: ConnectInfo<Uri>) -> Self::Future {
        let proxy = self.inner.clone();
        // `hostname()` keeps an IPv6 literal's brackets, as the authority form needs.
        let target = format!("{}:{}", req.hostname(), req.port());
        let uri = req.request().clone();
        Box::pin(async move {
            let stream = open(&proxy, &target)
                .await
                .map_err(|e| TcpConnectError::Io(io::Error::other(e)))?;
            Ok(Connection::new(uri, stream))
        })
    }
}

/// Connects to the proxy and asks it for a tunnel to `target` (`host:port`).
async fn open(proxy: &ProxyEndpoint, target: &str) -> Result<TcpStream, TunnelError> {
    let stream = TcpStream::connect(proxy.addr.as_str())
        .await
        .map_err(TunnelError::Unreachable)?;
    // Small writes (request heads) should not wait for delayed ACKs.
    let _ = stream.set_nodelay(true);
    write_all(
        &stream,
        connect_request(target, proxy.authorization.as_deref()).as_bytes(),
    )
    .await
    .map_err(TunnelError::Io)?;
    let answer = read_answer(&stream, target).await?;
    check_answer(&answer, target)?;
    Ok(stream)
}

/// The `CONNECT` request head for `target`.
fn connect_request(target: &str, authorization: Option<&str>) -> String {
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(value) = authorization {
        head.push_str("Proxy-Authorization: ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

async fn write_all(stream: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        stream.writable().await?;
        match stream.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads the proxy's answer up to the end of its head. On success the TLS client speaks
/// first, so a well-behaved proxy sends nothing after the head; whatever follows is
/// returned too and judged by [`check_answer`].
async fn read_answer(stream: &TcpStream, target: &str) -> Result<Vec<u8>, TunnelError> {
    let mut answer = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        stream.readable().await.map_err(TunnelError::Io)?;
        match stream.try_read(&mut chunk) {
            Ok(0) => {
                // Closed: enough if a whole head arrived (a 407 then close), else bad.
                if head_len(&answer).is_some() {
                    return Ok(answer);
                }
                return Err(TunnelError::BadAnswer {
                    target: target.to_string(),
                    reason: if answer.is_empty() {
                        "the proxy closed the connection without answering".into()
                    } else {
                        "the proxy closed the connection in the middle of its answer".into()
                    },
                });
            }
            Ok(n) => {
                answer.extend_from_slice(&chunk[..n]);
                if head_len(&answer).is_some() {
                    return Ok(answer);
                }
                if answer.len() > MAX_ANSWER {
                    return Err(TunnelError::BadAnswer {
                        target: target.to_string(),
                        reason: format!("answer head longer than {MAX_ANSWER} bytes"),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(TunnelError::Io(e)),
        }
    }
}

/// The length of the head (through its blank line) if `data` holds a whole one.
fn head_len(data: &[u8]) -> Option<usize> {
    let crlf = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = data.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Judges the proxy's answer to `CONNECT target`: `Ok` for a `2xx` with nothing after
/// the head.
fn check_answer(answer: &[u8], target: &str) -> Result<(), TunnelError> {
    let bad = |reason: String| TunnelError::BadAnswer {
        target: target.to_string(),
        reason,
    };
    let line_end = answer
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(answer.len());
    let status_line = String::from_utf8_lossy(&answer[..line_end])
        .trim_end()
        .to_string();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let code = parts
        .next()
        .and_then(|c| (c.len() == 3).then(|| c.parse::<u16>().ok()).flatten());
    let Some(code) = code.filter(|_| version.starts_with("HTTP/")) else {
        let shown: String = status_line.chars().take(80).collect();
        return Err(bad(format!("not an HTTP status line: {shown:?}")));
    };
    match code {
        200..=299 => match head_len(answer) {
            Some(len) if len == answer.len() => Ok(()),
            Some(len) => Err(bad(format!(
                "{} unexpected byte(s) after the {code} answer",
                answer.len() - len
            ))),
            None => Err(bad("incomplete answer".into())),
        },
        401 | 407 => Err(TunnelError::AuthRequired {
            target: target.to_string(),
            status_line,
        }),
        _ => Err(TunnelError::Refused {
            target: target.to_string(),
            status_line,
        }),
    }
}

impl TunnelError {
    /// The download error for this failure of `proxy` (credentials already stripped).
    fn to_download_error(&self, proxy: &str) -> DownloadError {
        match self {
            TunnelError::AuthRequired { .. } => DownloadError::ProxyAuthRequired {
                proxy: proxy.to_string(),
            },
            other => DownloadError::Proxy {
                proxy: proxy.to_string(),
                reason: other.to_string(),
            },
        }
    }
}

/// The proxy's share of a failed send through `proxy`, if it is one: a tunnel failure
/// (`tunnelled`, an `https://` target) or, for the absolute-form path, a failure to
/// connect to the proxy at all (awc connects to the proxy there, so any connect error
/// but a timeout is the proxy's). `None` leaves the error to the general mapping
/// (timeouts, TLS errors with the target inside a tunnel, lost connections).
pub(crate) fn proxy_error(
    e: &SendRequestError,
    proxy: &str,
    tunnelled: bool,
) -> Option<DownloadError> {
    let SendRequestError::Connect(connect) = e else {
        return None;
    };
    if let ConnectError::Io(io) = connect {
        if let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<TunnelError>()) {
            return Some(t.to_download_error(proxy));
        }
    }
    if tunnelled {
        return None;
    }
    match connect {
        ConnectError::Io(_)
        | ConnectError::Resolver(_)
        | ConnectError::NoRecords
        | ConnectError::Unresolved => Some(DownloadError::Proxy {
            proxy: proxy.to_string(),
            reason: format!("cannot connect to the proxy: {connect}"),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CONNECT head names the target twice and carries the credentials if any.
    #[test]
    fn connect_head() {
        assert_eq!(
            connect_request("example.com:443", None),
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
        );
        assert_eq!(
            connect_request("[::1]:8443", Some("Basic dTpw")),
            "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\
             Proxy-Authorization: Basic dTpw\r\n\r\n"
        );
    }

    /// 2xx opens the tunnel; 401/407 (credentials), other statuses, garbage and
    /// trailing bytes do not.
    #[test]
    fn answers() {
        let t = "h:443";
        assert!(check_answer(b"HTTP/1.1 200 Connection established\r\n\r\n", t).is_ok());
        assert!(check_answer(b"HTTP/1.0 200 OK\r\nProxy-agent: x\r\n\r\n", t).is_ok());
        assert!(matches!(
            check_answer(b"HTTP/1.0 407 Proxy Authentication Required\r\n\r\nbody", t),
            Err(TunnelError::AuthRequired { .. })
        ));
        // tinyproxy ≤ 1.11.2's answer to wrong credentials.
        assert!(matches!(
            check_answer(b"HTTP/1.0 401 Unauthorized\r\n\r\n", t),
            Err(TunnelError::AuthRequired { .. })
        ));
        match check_answer(b"HTTP/1.0 502 Bad Gateway\r\n\r\n", t) {
            Err(TunnelError::Refused { status_line, .. }) => {
                assert_eq!(status_line, "HTTP/1.0 502 Bad Gateway")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check_answer(b"SSH-2.0-OpenSSH\r\n\r\n", t),
            Err(TunnelError::BadAnswer { .. })
        ));
        assert!(matches!(
            check_answer(b"HTTP/1.1 200 OK\r\n\r\n\x16\x03", t),
            Err(TunnelError::BadAnswer { .. })
        ));
        assert_eq!(head_len(b"HTTP/1.1 200 OK\r\n\r\n"), Some(19));
        assert_eq!(head_len(b"HTTP/1.1 200 OK\n\n"), Some(17));
        assert_eq!(head_len(b"HTTP/1.1 200 OK\r\n"), None);
    }

    /// Tunnel failures come back out of awc's error as the right download errors.
    #[test]
    fn errors_map_to_kinds() {
        let wrap =
            |t: TunnelError| SendRequestError::Connect(ConnectError::Io(io::Error::other(t)));
        let p = "http://127.0.0.1:3128";
        let auth = proxy_error(
            &wrap(TunnelError::AuthRequired {
                target: "h:1".into(),
                status_line: "HTTP/1.0 407 Proxy Authentication Required".into(),
            }),
            p,
            true,
        );
        assert_eq!(auth.unwrap().kind(), "ProxyAuthenticationRequired");
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let e = proxy_error(&wrap(TunnelError::Unreachable(refused)), p, true).unwrap();
        assert_eq!(e.kind(), "ProxyError");
        assert!(e.to_string().contains(p), "{e}");
        // Absolute form: a refused connection is the proxy's; through a tunnel, an
        // unrelated I/O error (e.g. the TLS handshake with the target) is not.
        let plain = || {
            SendRequestError::Connect(ConnectError::Io(io::Error::from(
                io::ErrorKind::ConnectionRefused,
            )))
        };
        assert_eq!(
            proxy_error(&plain(), p, false).unwrap().kind(),
            "ProxyError"
        );
        assert!(proxy_error(&plain(), p, true).is_none());
        let timeout = SendRequestError::Connect(ConnectError::Timeout);
        assert!(proxy_error(&timeout, p, false).is_none());
    }

    /// A proxy that is not `http://` is refused; credentials never show in `Debug`.
    #[test]
    fn connector_construction() {
        assert!(matches!(
            TunnelConnector::new("socks5://p:1", None),
            Err(DownloadError::NotSupported(_))
        ));
        let c = TunnelConnector::new("http://p", Some("Basic c2VjcmV0")).unwrap();
        assert_eq!(c.inner.addr, "p:80");
        assert!(!format!("{c:?}").contains("c2VjcmV0"));
        assert!(TunnelConnector::new("http://p:1", Some("x\r\ny")).is_err());
    }
}

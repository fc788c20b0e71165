//! HttpProxyMiddleware and the proxy transport, against real local servers: a target
//! (the fixture server, on 127.0.0.1 and 127.0.0.2) and a tiny forwarding HTTP proxy of
//! this file that records each request exactly as it came off the wire and relays it to
//! the target in origin form, consuming `Proxy-Authorization` as a real proxy does. It
//! refuses every `CONNECT` (407 without credentials, 502 with them), which is enough to
//! check the tunnel request itself; tunnels that work are `proxy_tinyproxy.rs`'s.
//!
//! Checked: meta `proxy` sends `http://` requests to the proxy in absolute form with
//! `Proxy-Authorization` from the URL's credentials; `http_proxy` from the environment
//! does the same and `no_proxy` bypasses it; a request that goes to no proxy never
//! carries `Proxy-Authorization` to the target; `HTTPPROXY_ENABLED=false` ignores the
//! environment; `https://` through a proxy sends `CONNECT host:port` with `Host` and the
//! credentials; refused tunnels, unreachable proxies and unsupported proxy schemes fail
//! with counted errors.
//!
//! Tests run one at a time: some set proxy variables in this process's environment.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use arachne::prelude::*;
use arachne::stats::StatsMap;
use serde_json::Value;
use support::probe::{self, Seen};
use support::server::FixtureServer;
use support::site::Site;

/// One at a time: the environment is process-wide.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// --- the proxy ------------------------------------------------------------------------------

/// A request as the proxy received it.
#[derive(Clone, Debug)]
struct ProxyHit {
    /// The request line, e.g. `GET http://127.0.0.1:8080/page HTTP/1.1`.
    line: String,
    /// Headers, names in lower case.
    headers: Vec<(String, String)>,
}

impl ProxyHit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A forwarding proxy on 127.0.0.1: absolute-form requests are relayed to their target
/// (one request per connection, `Connection: close`); `CONNECT` gets a 407 without
/// `Proxy-Authorization` and a 502 with it; anything else gets a 400.
struct Proxy {
    port: u16,
    hits: Arc<Mutex<Vec<ProxyHit>>>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let log = hits.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || relay(conn, &log));
            }
        });
        Proxy { port, hits }
    }

    fn hits(&self) -> Vec<ProxyHit> {
        self.hits.lock().unwrap().clone()
    }
}

fn relay(client: TcpStream, log: &Mutex<Vec<ProxyHit>>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let line = line.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim_end().is_empty() {
            break;
        }
        if let Some((n, v)) = h.trim_end().split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    log.lock().unwrap().push(ProxyHit {
        line: line.clone(),
        headers: headers.clone(),
    });
    let mut client = client;
    let parts: Vec<&str> = line.split(' ').collect();
    if parts[0] == "CONNECT" {
        let answer: &[u8] = if headers.iter().any(|(n, _)| n == "proxy-authorization") {
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        } else {
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\
              Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n"
        };
        let _ = client.write_all(answer);
        return;
    }
    let target = parts.get(1).and_then(|u| u.strip_prefix("http://"));
    let (Some(target), 3) = (target, parts.len()) else {
        let _ = client.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    };
    let (authority, path) = match target.find('/') {
        Some(i) => (&target[..i], &target[i..]),
        None => (target, "/"),
    };
    let Ok(mut upstream) = TcpStream::connect(authority) else {
        let _ = client.write_all(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    };
    let mut head = format!("{} {path} {}\r\n", parts[0], parts[2]);
    for (n, v) in &headers {
        if !matches!(
            n.as_str(),
            "proxy-authorization" | "connection" | "proxy-connection" | "keep-alive"
        ) {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    head.push_str("connection: close\r\n\r\n");
    upstream.write_all(head.as_bytes()).unwrap();
    upstream.write_all(reader.buffer()).unwrap();
    let mut response = Vec::new();
    let _ = upstream.read_to_end(&mut response);
    let _ = client.write_all(&response);
    let _ = client.shutdown(Shutdown::Both);
}

// --- the spider -----------------------------------------------------------------------------

/// The shared probe, with retries off so every failure is seen exactly once.
async fn crawl(start: Vec<Request>, settings: Settings) -> (StatsMap, Seen) {
    probe::crawl(start, settings.with("RETRY_ENABLED", false)).await
}

fn target() -> FixtureServer {
    FixtureServer::start_on(
        &["127.0.0.1", "127.0.0.2"],
        Site::html_pages([("/page", "<html><head><title>Target</title></head></html>")]),
    )
}

/// The target's requests for `path` (with query) on `ip`, and whether any carried
/// `Proxy-Authorization`.
fn target_saw(server: &FixtureServer, ip: &str, path: &str) -> (usize, bool) {
    let hits: Vec<_> = server
        .log()
        .into_iter()
        .filter(|e| e.host == ip && e.path == path)
        .collect();
    let leaked = hits
        .iter()
        .any(|e| e.header("proxy-authorization").is_some());
    (hits.len(), leaked)
}

/// Removes the proxy variables this file sets.
fn clear_env() {
    for k in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "no_proxy",
        "NO_PROXY",
    ] {
        std::env::remove_var(k);
    }
}

// --- tests ----------------------------------------------------------------------------------

/// Meta `proxy` with credentials: the request reaches the proxy in absolute form with
/// `Proxy-Authorization: Basic base64(user:pass)` and the target's `Host`; the response
/// comes back through it; the target never sees the credentials.
#[actix::test]
async fn meta_proxy_sends_absolute_form_with_credentials() {
    let _serial = SERIAL.lock().await;
    clear_env();
    let server = target();
    let proxy = Proxy::start();
    let url = server.url_on("127.0.0.1", "/page?x=1");
    let req = Request::get(&url).unwrap().meta(
        "proxy",
        format!("http://user:pa%24s@127.0.0.1:{}", proxy.port),
    );
    let (stats, seen) = crawl(vec![req], Settings::new()).await;

    assert_eq!(seen.title(&url).as_deref(), Some("Target"), "{stats:#?}");
    let hits = proxy.hits();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0].line, format!("GET {url} HTTP/1.1"));
    // base64("user:pa$s")
    assert_eq!(
        hits[0].header("proxy-authorization"),
        Some("Basic dXNlcjpwYSRz")
    );
    let authority = url.trim_start_matches("http://").split('/').next().unwrap();
    assert_eq!(hits[0].header("host"), Some(authority));
    assert_eq!(
        target_saw(&server, "127.0.0.1", "/page?x=1"),
        (1, false),
        "{:#?}",
        server.log()
    );
}

/// `http_proxy` from the environment is used with its credentials; `no_proxy` hosts and
/// meta `proxy: null` go direct, without `Proxy-Authorization` (even one the user set);
/// with `HTTPPROXY_ENABLED=false` nothing goes through the proxy.
#[actix::test]
async fn environment_proxy_and_no_proxy() {
    let _serial = SERIAL.lock().await;
    clear_env();
    let server = target();
    let proxy = Proxy::start();
    std::env::set_var(
        "http_proxy",
        format!("http://envuser:envpass@127.0.0.1:{}", proxy.port),
    );
    std::env::set_var("no_proxy", "localhost, 127.0.0.2");
    let via = server.url_on("127.0.0.1", "/page?via=env");
    let bypassed = server.url_on("127.0.0.2", "/page?bypassed=1");
    let direct = server.url_on("127.0.0.1", "/page?direct=1");
    let start = vec![
        Request::get(&via).unwrap(),
        Request::get(&bypassed).unwrap(),
        Request::get(&direct)
            .unwrap()
            .meta("proxy", Value::Null)
            .header("Proxy-Authorization", "Basic bGVhaw=="),
    ];
    let (stats, seen) = crawl(start, Settings::new()).await;
    let disabled = server.url_on("127.0.0.1", "/page?disabled=1");
    let (_, seen_disabled) = crawl(
        vec![Request::get(&disabled).unwrap()],
        Settings::new().with("HTTPPROXY_ENABLED", false),
    )
    .await;
    clear_env();

    assert_eq!(seen.pages(), 3, "{stats:#?}");
    assert_eq!(seen_disabled.pages(), 1);
    let hits = proxy.hits();
    assert_eq!(hits.len(), 1, "only the env-proxied request: {hits:#?}");
    assert_eq!(hits[0].line, format!("GET {via} HTTP/1.1"));
    // base64("envuser:envpass")
    assert_eq!(
        hits[0].header("proxy-authorization"),
        Some("Basic ZW52dXNlcjplbnZwYXNz")
    );
    assert_eq!(
        target_saw(&server, "127.0.0.1", "/page?via=env"),
        (1, false)
    );
    assert_eq!(
        target_saw(&server, "127.0.0.2", "/page?bypassed=1"),
        (1, false)
    );
    assert_eq!(
        target_saw(&server, "127.0.0.1", "/page?direct=1"),
        (1, false)
    );
    assert_eq!(
        target_saw(&server, "127.0.0.1", "/page?disabled=1"),
        (1, false)
    );
}

/// `https://` through a proxy asks it for a tunnel: `CONNECT host:port HTTP/1.1` with
/// `Host` and the URL's credentials. A refused tunnel is counted — `407` as
/// `ProxyAuthenticationRequired`, another status as `ProxyError` — and so is an
/// unreachable proxy, for either scheme (`ProxyError`, naming the proxy); a proxy that
/// is not `http://` is `NotSupported`.
#[actix::test]
async fn connect_tunnels_and_proxy_failures() {
    let _serial = SERIAL.lock().await;
    clear_env();
    let proxy = Proxy::start();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let with_creds = "https://127.0.0.1:9/with-creds".to_string();
    let without = "https://127.0.0.2:8443/without".to_string();
    let refused_http = "http://127.0.0.1:9/refused".to_string();
    let refused_https = "https://127.0.0.1:9/refused".to_string();
    let socks = "http://127.0.0.1:9/socks".to_string();
    let start = vec![
        Request::get(&with_creds).unwrap().meta(
            "proxy",
            format!("http://user:pass@127.0.0.1:{}", proxy.port),
        ),
        Request::get(&without)
            .unwrap()
            .meta("proxy", format!("http://127.0.0.1:{}", proxy.port)),
        Request::get(&refused_http)
            .unwrap()
            .meta("proxy", format!("127.0.0.1:{closed}")),
        Request::get(&refused_https)
            .unwrap()
            .meta("proxy", format!("127.0.0.1:{closed}")),
        Request::get(&socks)
            .unwrap()
            .meta("proxy", "socks5://127.0.0.1:1080"),
    ];
    let (stats, seen) = crawl(start, Settings::new()).await;
    let failures = seen.failures();

    let (kind, msg) = &failures[&with_creds];
    assert_eq!(kind, "ProxyError");
    assert!(msg.contains("502 Bad Gateway"), "{msg}");
    let (kind, _) = &failures[&without];
    assert_eq!(kind, "ProxyAuthenticationRequired");
    for url in [&refused_http, &refused_https] {
        let (kind, msg) = &failures[url];
        assert_eq!(kind, "ProxyError", "{url}: {msg}");
        assert!(msg.contains(&format!("127.0.0.1:{closed}")), "{msg}");
    }
    let (kind, msg) = &failures[&socks];
    assert_eq!(kind, "NotSupported");
    assert!(msg.contains("socks5"), "{msg}");
    let count = |k: &str| stats.get(k).and_then(Value::as_u64).unwrap_or(0);
    assert_eq!(count("downloader/exception_type_count/ProxyError"), 3);
    assert_eq!(
        count("downloader/exception_type_count/ProxyAuthenticationRequired"),
        1
    );
    assert_eq!(count("downloader/exception_type_count/NotSupported"), 1);

    let mut hits = proxy.hits();
    hits.sort_by(|a, b| a.line.cmp(&b.line));
    assert_eq!(hits.len(), 2, "{hits:#?}");
    assert_eq!(hits[0].line, "CONNECT 127.0.0.1:9 HTTP/1.1");
    assert_eq!(hits[0].header("host"), Some("127.0.0.1:9"));
    // base64("user:pass")
    assert_eq!(
        hits[0].header("proxy-authorization"),
        Some("Basic dXNlcjpwYXNz")
    );
    assert_eq!(hits[1].line, "CONNECT 127.0.0.2:8443 HTTP/1.1");
    assert_eq!(hits[1].header("host"), Some("127.0.0.2:8443"));
    assert_eq!(hits[1].header("proxy-authorization"), None);
}

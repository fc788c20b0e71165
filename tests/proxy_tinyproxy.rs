//! Proxies against a real one (issue 4, acceptance 3 and 4): tinyproxy from Debian
//! (`apt-get install tinyproxy`; `.ci/run` installs it), started by each test in the
//! foreground on a free port with its own configuration and log in a temporary
//! directory, and killed (that child only) when the test ends. Targets: the fixture HTTP
//! server and an HTTPS server of this file (actix-web + rustls, a self-signed certificate
//! made by rcgen), both recording the headers they receive, on 127.0.0.1 and 127.0.0.2.
//!
//! Checked: `http://` pages go through the proxy in absolute form and `https://` pages
//! through a `CONNECT` tunnel (tinyproxy's log shows both); with `BasicAuth` a wrong
//! password is a counted `ProxyAuthenticationRequired` error on both paths and the right
//! one works, and no target ever sees `Proxy-Authorization`; `no_proxy` hosts bypass the
//! proxy named by `http_proxy` / `https_proxy`.
//!
//! Tests run one at a time: one sets proxy variables in this process's environment,
//! which every crawl reads when it starts.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use arachne::prelude::*;
use arachne::stats::StatsMap;
use serde_json::Value;
use support::probe::crawl;
use support::server::FixtureServer;
use support::site::Site;

/// One at a time: the environment is process-wide.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// --- tinyproxy ------------------------------------------------------------------------------

/// A tinyproxy child process listening on 127.0.0.1; killed when dropped.
struct Tinyproxy {
    port: u16,
    child: Child,
    log: PathBuf,
    /// Holds the configuration and the log; removed after the child is killed.
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    /// Starts tinyproxy, requiring `BasicAuth user password` if `auth` is given.
    fn start(auth: Option<(&str, &str)>) -> Tinyproxy {
        let dir = tempfile::tempdir().unwrap();
        // A free port: bind :0, note it, close it; tinyproxy binds it right after.
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let log = dir.path().join("tinyproxy.log");
        // No `ConnectPort` line: CONNECT is allowed to every port (tinyproxy.conf(5)).
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 64\nAllow 127.0.0.1\n\
             LogFile \"{}\"\nLogLevel Info\n",
            log.display()
        );
        if let Some((user, password)) = auth {
            conf.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        let conf_path = dir.path().join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.txt")).unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run tinyproxy ({e}): install it (`apt-get install tinyproxy`; \
                     .ci/run does)"
                )
            });
        let mut proxy = Tinyproxy {
            port,
            child,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                let err = std::fs::read_to_string(proxy._dir.path().join("stderr.txt"));
                panic!("tinyproxy exited ({status}): {err:?}");
            }
            assert!(
                Instant::now() < deadline,
                "tinyproxy did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        proxy
    }

    /// `http://127.0.0.1:PORT`, with `user:password@` if given.
    fn url(&self, credentials: Option<&str>) -> String {
        match credentials {
            Some(c) => format!("http://{c}@127.0.0.1:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// The requests tinyproxy logged, e.g. `CONNECT 127.0.0.1:4443 HTTP/1.1` and
    /// `GET http://127.0.0.1:8080/page HTTP/1.1`.
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once("): ").filter(|_| l.contains(" Request (")))
            .map(|(_, r)| r.trim().to_string())
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        // Only our child, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- the HTTPS target -----------------------------------------------------------------------

/// A request the HTTPS target received.
#[derive(Clone, Debug)]
struct Hit {
    /// The local address it arrived on (`127.0.0.1` or `127.0.0.2`).
    ip: String,
    /// Path and query.
    path: String,
    /// Header names in lower case.
    headers: Vec<(String, String)>,
}

/// An HTTPS server with a self-signed certificate on loopback addresses, each on an
/// ephemeral port, answering every path with `<title>Secure PATH</title>`.
struct TlsTarget {
    addrs: Vec<SocketAddr>,
    hits: Arc<Mutex<Vec<Hit>>>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl TlsTarget {
    fn start(ips: &[&str]) -> TlsTarget {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = key.cert.der().clone();
        let private = rustls::pki_types::PrivatePkcs8KeyDer::from(key.signing_key.serialize_der());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], private.into())
        .unwrap();
        let listeners: Vec<TcpListener> = ips
            .iter()
            .map(|ip| TcpListener::bind((*ip, 0)).unwrap())
            .collect();
        let addrs = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let log = web::Data::from(hits.clone());
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let mut server = HttpServer::new(move || {
                    App::new()
                        .app_data(log.clone())
                        .default_service(web::to(secure_page))
                })
                .workers(1);
                for l in listeners {
                    server = server.listen_rustls_0_23(l, config.clone()).unwrap();
                }
                let server = server.run();
                tx.send(server.handle()).unwrap();
                let _ = server.await;
            })
        });
        let handle = rx.recv().unwrap();
        TlsTarget {
            addrs,
            hits,
            handle,
            thread: Some(thread),
        }
    }

    fn url(&self, ip: &str, path: &str) -> String {
        let addr = self
            .addrs
            .iter()
            .find(|a| a.ip().to_string() == ip)
            .unwrap();
        format!("https://{addr}{path}")
    }

    fn port(&self, ip: &str) -> u16 {
        self.addrs
            .iter()
            .find(|a| a.ip().to_string() == ip)
            .unwrap()
            .port()
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for TlsTarget {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn secure_page(req: HttpRequest, log: web::Data<Mutex<Vec<Hit>>>) -> HttpResponse {
    // Over h2 the URI is absolute; keep path and query.
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.to_string());
    log.lock().unwrap().push(Hit {
        ip: req.app_config().local_addr().ip().to_string(),
        path: path.clone(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    });
    HttpResponse::Ok().content_type("text/html").body(format!(
        "<html><head><title>Secure {path}</title></head></html>"
    ))
}

fn count(stats: &StatsMap, key: &str) -> u64 {
    stats.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Removes the proxy variables this file sets (and any the environment had).
fn clear_env() {
    for k in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        std::env::remove_var(k);
    }
}

fn http_target() -> FixtureServer {
    FixtureServer::start_on(
        &["127.0.0.1", "127.0.0.2"],
        Site::html_pages([("/page", "<html><head><title>Plain</title></head></html>")]),
    )
}

/// Requests to `path` on `ip` the plain target saw, and whether any carried
/// `Proxy-Authorization`.
fn plain_saw(server: &FixtureServer, ip: &str, path: &str) -> (usize, bool) {
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

/// The same for the HTTPS target.
fn secure_saw(server: &TlsTarget, ip: &str, path: &str) -> (usize, bool) {
    let hits: Vec<_> = server
        .hits()
        .into_iter()
        .filter(|h| h.ip == ip && h.path == path)
        .collect();
    let leaked = hits
        .iter()
        .any(|h| h.headers.iter().any(|(n, _)| n == "proxy-authorization"));
    (hits.len(), leaked)
}

// --- tests ----------------------------------------------------------------------------------

/// An `http://` page (absolute form) and two `https://` pages (CONNECT tunnel) are
/// fetched through tinyproxy, whose log shows the GET and the CONNECT; items are scraped.
#[actix::test]
async fn http_and_https_through_tinyproxy() {
    let _serial = SERIAL.lock().await;
    clear_env();
    let proxy = Tinyproxy::start(None);
    let plain = http_target();
    let secure = TlsTarget::start(&["127.0.0.1"]);
    let http_url = plain.url_on("127.0.0.1", "/page?via=proxy");
    let https_a = secure.url("127.0.0.1", "/a?x=1");
    let https_b = secure.url("127.0.0.1", "/b");
    let start = [&http_url, &https_a, &https_b]
        .into_iter()
        .map(|u| Request::get(u).unwrap().meta("proxy", proxy.url(None)))
        .collect();
    let (stats, seen) = crawl(start, Settings::new()).await;

    assert_eq!(
        seen.title(&http_url).as_deref(),
        Some("Plain"),
        "{stats:#?}"
    );
    assert_eq!(seen.title(&https_a).as_deref(), Some("Secure /a?x=1"));
    assert_eq!(seen.title(&https_b).as_deref(), Some("Secure /b"));
    assert_eq!(count(&stats, "item_scraped_count"), 3);
    let logged = proxy.requests();
    assert!(
        logged.contains(&format!("GET {http_url} HTTP/1.1")),
        "{logged:#?}"
    );
    let connect = format!("CONNECT 127.0.0.1:{} HTTP/1.1", secure.port("127.0.0.1"));
    assert!(logged.contains(&connect), "{logged:#?}");
    // Everything the crawl sent went to the proxy, and nothing else.
    assert!(logged
        .iter()
        .all(|l| l.starts_with("GET http://127.0.0.1:") || l.starts_with("CONNECT 127.0.0.1:")));
    assert_eq!(
        plain_saw(&plain, "127.0.0.1", "/page?via=proxy"),
        (1, false)
    );
    assert_eq!(secure_saw(&secure, "127.0.0.1", "/a?x=1"), (1, false));
    assert_eq!(secure_saw(&secure, "127.0.0.1", "/b"), (1, false));
}

/// With `BasicAuth` required: wrong or missing credentials are a counted, not retried
/// `ProxyAuthenticationRequired` error (for `https://` even right after a tunnel with the
/// right credentials was pooled for the same target); the right ones work; neither target
/// ever sees `Proxy-Authorization`. tinyproxy ≤ 1.11.2 answers *wrong* credentials with
/// `401` (its issue #532): on `CONNECT` that is still the proxy's refusal, and for a
/// plain `http://` request the proxy signs its 401 in the `Server` header.
#[actix::test]
async fn proxy_credentials() {
    let _serial = SERIAL.lock().await;
    clear_env();
    let proxy = Tinyproxy::start(Some(("crawler", "s3cret")));
    let plain = http_target();
    let secure = TlsTarget::start(&["127.0.0.1"]);
    let good = proxy.url(Some("crawler:s3cret"));
    let bad = proxy.url(Some("crawler:wrong"));
    let none = proxy.url(None);
    let https_good = secure.url("127.0.0.1", "/good");
    let https_bad = secure.url("127.0.0.1", "/bad");
    let https_none = secure.url("127.0.0.1", "/none");
    let http_good = plain.url_on("127.0.0.1", "/page?creds=good");
    let http_bad = plain.url_on("127.0.0.1", "/page?creds=bad");
    let http_none = plain.url_on("127.0.0.1", "/page?creds=none");
    // One at a time, the right credentials first: the others then find a pooled tunnel
    // to the same target, which they must not reuse.
    let order = [
        (&https_good, &good),
        (&http_good, &good),
        (&https_bad, &bad),
        (&https_none, &none),
        (&http_bad, &bad),
        (&http_none, &none),
    ];
    let start = order
        .iter()
        .zip((0..6).rev())
        .map(|((url, proxy), priority)| {
            Request::get(url.as_str())
                .unwrap()
                .meta("proxy", proxy.as_str())
                .priority(priority)
        })
        .collect();
    let (stats, seen) = crawl(start, Settings::new().with("CONCURRENT_REQUESTS", 1)).await;

    assert_eq!(
        seen.title(&https_good).as_deref(),
        Some("Secure /good"),
        "{stats:#?}"
    );
    assert_eq!(seen.title(&http_good).as_deref(), Some("Plain"));
    // tinyproxy 1.11 answers the wrong password over plain HTTP with its own 401
    // (signed in its `Server` header); that is the proxy's refusal too.
    for url in [&https_bad, &https_none, &http_bad, &http_none] {
        assert_eq!(
            seen.failure(url).as_deref(),
            Some("ProxyAuthenticationRequired"),
            "{url}: {stats:#?}"
        );
    }
    assert_eq!(
        count(
            &stats,
            "downloader/exception_type_count/ProxyAuthenticationRequired"
        ),
        4
    );
    assert_eq!(count(&stats, "retry/count"), 0, "{stats:#?}");
    assert_eq!(secure_saw(&secure, "127.0.0.1", "/good"), (1, false));
    assert_eq!(
        plain_saw(&plain, "127.0.0.1", "/page?creds=good"),
        (1, false)
    );
    // The refused requests never reached a target.
    assert_eq!(secure.hits().len(), 1, "{:#?}", secure.hits());
    assert_eq!(plain.log().len(), 1, "{:#?}", plain.log());
    let logged = proxy.requests();
    let connect = format!("CONNECT 127.0.0.1:{} HTTP/1.1", secure.port("127.0.0.1"));
    assert_eq!(
        logged.iter().filter(|l| **l == connect).count(),
        3,
        "one tunnel per set of credentials: {logged:#?}"
    );
}

/// `http_proxy` / `https_proxy` from the environment send both schemes through
/// tinyproxy, and the hosts in `no_proxy` go direct: the proxy never hears of them.
#[actix::test]
async fn no_proxy_hosts_bypass_the_proxy() {
    let _serial = SERIAL.lock().await;
    clear_env();
    let proxy = Tinyproxy::start(None);
    let plain = http_target();
    let secure = TlsTarget::start(&["127.0.0.1", "127.0.0.2"]);
    std::env::set_var("http_proxy", proxy.url(None));
    std::env::set_var("https_proxy", proxy.url(None));
    std::env::set_var("no_proxy", "localhost,127.0.0.2");
    let via = [
        plain.url_on("127.0.0.1", "/page?env=1"),
        secure.url("127.0.0.1", "/env"),
    ];
    let direct = [
        plain.url_on("127.0.0.2", "/page?env=1"),
        secure.url("127.0.0.2", "/env"),
    ];
    let start = via
        .iter()
        .chain(&direct)
        .map(|u| Request::get(u).unwrap())
        .collect();
    let (stats, seen) = crawl(start, Settings::new()).await;
    clear_env();

    assert_eq!(count(&stats, "item_scraped_count"), 4, "{stats:#?}");
    for url in via.iter().chain(&direct) {
        assert!(seen.title(url).is_some(), "{url}: {stats:#?}");
    }
    // Exactly the two proxied requests, and nothing for 127.0.0.2.
    let mut logged = proxy.requests();
    logged.sort();
    let mut expected = vec![
        format!("GET {} HTTP/1.1", via[0]),
        format!("CONNECT 127.0.0.1:{} HTTP/1.1", secure.port("127.0.0.1")),
    ];
    expected.sort();
    assert_eq!(logged, expected);
    assert_eq!(plain_saw(&plain, "127.0.0.2", "/page?env=1"), (1, false));
    assert_eq!(secure_saw(&secure, "127.0.0.2", "/env"), (1, false));
}

/// Issue 12, acceptance 6: tinyproxy closes each connection
/// after its response; 60-page crawls in a row through it (fifty: more than the
/// criterion's twenty, as a lost connection was a one-in-twenty race) each get 60/60,
/// with no `ConnectionLost` and no retry.
#[actix::test]
async fn fifty_crawls_through_tinyproxy_lose_nothing() {
    let _serial = SERIAL.lock().await;
    clear_env();
    let proxy = Tinyproxy::start(None);
    let target = FixtureServer::start(Site::random(60, 3, 9));
    for run in 0..50 {
        let start = (0..60)
            .map(|i| {
                Request::get(target.url(&format!("/p/{i}")))
                    .unwrap()
                    .meta("proxy", proxy.url(None))
            })
            .collect();
        let (stats, seen) = crawl(start, Settings::new().with("CONCURRENT_REQUESTS", 8)).await;
        assert_eq!(seen.pages(), 60, "run {run}: {stats:#?}");
        assert_eq!(
            count(&stats, "downloader/exception_type_count/ConnectionLost"),
            0,
            "run {run}: {stats:#?}"
        );
        assert_eq!(count(&stats, "retry/count"), 0, "run {run}: {stats:#?}");
        // tinyproxy 1.11 relays the target's `HTTP/1.1` status line and still closes
        // after each response, so a request can meet a connection it is closing; it is
        // then sent again on a new connection (never a pooled one): never a failure.
    }
}

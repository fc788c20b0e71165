//! Acceptance 1 and 2 of issue 4 — HTTPS with rustls and HTTP/2 by ALPN — against real
//! local TLS servers: actix-web with rustls 0.23 on `127.0.0.1`, on its own thread and
//! actix `System`, with certificates generated here by rcgen.
//!
//! 1. A self-signed server is crawled with default settings (no verification, as in
//!    Scrapy) and `response.certificate` shows rcgen's subject and issuer; with
//!    `DOWNLOADER_CLIENT_TLS_VERIFY` it is refused with a counted `TlsCertificateError`
//!    that reaches the errback; a server whose certificate comes from a test CA is
//!    crawled with verification once the CA is given in `DOWNLOADER_CLIENT_TLS_CA_FILE`.
//! 2. The same kind of server speaks HTTP/2 (ALPN `h2`): the crawl goes over h2 (the
//!    server's view, `response.protocol` and `downloader/response_protocol_count/h2`), and
//!    the server never has more than `CONCURRENT_REQUESTS_PER_DOMAIN` requests in flight
//!    (and does reach it); with `DOWNLOADER_HTTP2_ENABLED=false` it is HTTP/1.1.
//!
//! Every server-side figure is measured by the server, never by the crawler.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use arachne::prelude::*;
use arachne::spider::Failure;
use arachne::stats::StatsMap;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

// ---------------------------------------------------------------------------------------
// Certificates

/// A server certificate chain and key, plus what the test expects to read back.
struct ServerCert {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The common name of the leaf certificate's subject.
    subject_cn: String,
    /// The common name of its issuer.
    issuer_cn: String,
    /// The issuing CA in PEM, when there is one.
    ca_pem: Option<String>,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "Arachne tests");
    dn
}

fn key_der(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

/// A self-signed certificate for `127.0.0.1`.
fn self_signed() -> ServerCert {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.distinguished_name = dn("arachne self-signed");
    let cert = params.self_signed(&key).unwrap();
    ServerCert {
        chain: vec![cert.der().clone()],
        key: key_der(&key),
        subject_cn: "arachne self-signed".into(),
        issuer_cn: "arachne self-signed".into(),
        ca_pem: None,
    }
}

/// A certificate for `127.0.0.1` (IP subjectAltName) issued by a fresh test CA.
fn ca_issued() -> ServerCert {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name = dn("arachne test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.distinguished_name = dn("arachne server");
    let cert = params.signed_by(&key, &ca).unwrap();
    ServerCert {
        chain: vec![cert.der().clone()],
        key: key_der(&key),
        subject_cn: "arachne server".into(),
        issuer_cn: "arachne test CA".into(),
        ca_pem: Some(ca.pem()),
    }
}

// ---------------------------------------------------------------------------------------
// Server

/// The server's site and what it saw.
#[derive(Default)]
struct ServerState {
    /// How many `/page/{i}` links the index page has.
    pages: usize,
    /// How long each page handler takes.
    delay: Duration,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    connections: AtomicUsize,
    /// `(path, HTTP version)` of every request.
    requests: Mutex<Vec<(String, String)>>,
}

impl ServerState {
    fn versions(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v)| v.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }
    fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// Decrements the in-flight gauge however the handler ends.
struct InFlight(Arc<ServerState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn record(state: &ServerState, req: &HttpRequest) {
    state
        .requests
        .lock()
        .unwrap()
        .push((req.path().to_string(), format!("{:?}", req.version())));
}

async fn index(req: HttpRequest, state: web::Data<ServerState>) -> HttpResponse {
    record(&state, &req);
    let links: String = (0..state.pages)
        .map(|i| format!("<a href=\"/page/{i}\">{i}</a>\n"))
        .collect();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!("<html><body>{links}</body></html>"))
}

async fn page(
    req: HttpRequest,
    state: web::Data<ServerState>,
    path: web::Path<usize>,
) -> HttpResponse {
    record(&state, &req);
    let state = state.into_inner();
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _guard = InFlight(state.clone());
    actix_web::rt::time::sleep(state.delay).await;
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<html><head><title>page {}</title></head></html>",
            path.into_inner()
        ))
}

/// An HTTPS server (TLS 1.2/1.3, ALPN `h2` and `http/1.1` as actix-web offers them) on
/// `127.0.0.1` on an ephemeral port; stopped on drop.
struct TlsServer {
    port: u16,
    state: Arc<ServerState>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl TlsServer {
    fn start(cert: &ServerCert, pages: usize, delay: Duration) -> TlsServer {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key.clone_key())
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ServerState {
            pages,
            delay,
            ..ServerState::default()
        });
        let (tx, rx) = mpsc::channel();
        let server_state = state.clone();
        let thread = std::thread::spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                let data = web::Data::from(server_state.clone());
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .route("/", web::get().to(index))
                        .route("/page/{i}", web::get().to(page))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .on_connect(move |_, _| {
                    server_state.connections.fetch_add(1, Ordering::SeqCst);
                })
                .listen_rustls_0_23(listener, config)
                .expect("listen with rustls")
                .run();
                tx.send(server.handle()).unwrap();
                let _ = server.await;
            });
        });
        let handle = rx.recv().expect("the TLS server thread started");
        TlsServer {
            port,
            state,
            handle,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Spider

/// What the spider saw in one response.
#[derive(Debug, Clone)]
struct Seen {
    protocol: Option<String>,
    subject: Option<String>,
    issuer: Option<String>,
}

/// Follows every link of the start page, yields one item per page, and records each
/// response's protocol and certificate and each errback failure's kind.
struct Recorder {
    start: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    failures: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn new(start: String) -> Recorder {
        Recorder {
            start,
            seen: Arc::default(),
            failures: Arc::default(),
        }
    }
}

/// This spider's callbacks: pages go to `parse`, failures to `failed`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Cb {
    Parse,
    Failed,
}

#[async_trait(?Send)]
impl Spider for Recorder {
    type Callback = Cb;

    fn name(&self) -> &str {
        "tls"
    }
    fn start(self: Arc<Self>) -> Start {
        let request = Request::get(&self.start).unwrap().errback(Cb::Failed);
        start_from_iter(std::iter::once(Ok::<_, SpiderError>(request)))
    }
    async fn parse(&self, response: &Response) -> CallbackResult {
        self.seen.lock().unwrap().push(Seen {
            protocol: response.protocol.clone(),
            subject: response.certificate.as_ref().map(|c| c.subject.clone()),
            issuer: response.certificate.as_ref().map(|c| c.issuer.clone()),
        });
        let mut out = Output::new().with_item(serde_json::json!({ "url": response.url.as_str() }));
        for href in response.css("a::attr(href)")?.getall() {
            out = out.with_request(response.follow(&href)?.errback(Cb::Failed));
        }
        Ok(out)
    }
    async fn errback(&self, eb: Cb, failure: &Failure) -> CallbackResult {
        assert!(matches!(eb, Cb::Failed), "{eb:?}");
        self.failures
            .lock()
            .unwrap()
            .push(failure.kind().to_string());
        Ok(Output::new())
    }
}

fn settings(extra: &[(&str, serde_json::Value)]) -> Settings {
    let mut s = Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("RETRY_ENABLED", false)
        .with("DOWNLOAD_TIMEOUT", 20);
    for (k, v) in extra {
        s = s.with(k, v.clone());
    }
    s
}

/// Crawls the server's index; returns the stats, what the spider saw, and the errbacks.
async fn crawl(
    server: &TlsServer,
    extra: &[(&str, serde_json::Value)],
) -> (StatsMap, Vec<Seen>, Vec<String>) {
    let spider = Recorder::new(server.url("/"));
    let seen = spider.seen.clone();
    let failures = spider.failures.clone();
    let stats = Crawler::new(spider, settings(extra)).run().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let failures = failures.lock().unwrap().clone();
    (stats, seen, failures)
}

fn stat(stats: &StatsMap, key: &str) -> i64 {
    stats.get(key).and_then(|v| v.as_i64()).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Acceptance 1: certificates

/// A self-signed server is crawled with default settings and the responses carry its
/// certificate; with verification on it is refused with a counted certificate error
/// that reaches the errback.
#[actix::test]
async fn self_signed_crawled_by_default_and_refused_when_verifying() {
    let cert = self_signed();
    let server = TlsServer::start(&cert, 2, Duration::ZERO);

    let (stats, seen, failures) = crawl(&server, &[]).await;
    assert_eq!(stats["finish_reason"], "finished");
    assert_eq!(stat(&stats, "item_scraped_count"), 3, "{stats:#?}");
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(seen.len(), 3);
    for s in &seen {
        let subject = s
            .subject
            .as_deref()
            .expect("https responses carry the certificate");
        let issuer = s.issuer.as_deref().unwrap();
        assert!(
            subject.contains(&format!("CN={}", cert.subject_cn)),
            "{s:?}"
        );
        assert!(subject.contains("O=Arachne tests"), "{s:?}");
        assert_eq!(subject, issuer, "self-signed: subject is issuer");
    }
    let before = server.state.request_count();
    assert_eq!(before, 3);

    let (stats, seen, failures) =
        crawl(&server, &[("DOWNLOADER_CLIENT_TLS_VERIFY", true.into())]).await;
    assert_eq!(stats["finish_reason"], "finished");
    assert_eq!(stat(&stats, "item_scraped_count"), 0);
    assert!(seen.is_empty());
    assert_eq!(
        stat(
            &stats,
            "downloader/exception_type_count/TlsCertificateError"
        ),
        1,
        "{stats:#?}"
    );
    assert_eq!(failures, ["TlsCertificateError"]);
    assert_eq!(
        server.state.request_count(),
        before,
        "no HTTP request got through"
    );
}

/// A server whose certificate a test CA issued is refused when verifying, and crawled
/// with verification once that CA is given in `DOWNLOADER_CLIENT_TLS_CA_FILE`.
#[actix::test]
async fn ca_file_lets_verification_pass() {
    let cert = ca_issued();
    let server = TlsServer::start(&cert, 2, Duration::ZERO);
    let verify = (
        "DOWNLOADER_CLIENT_TLS_VERIFY",
        serde_json::Value::from(true),
    );

    let (stats, _, failures) = crawl(&server, std::slice::from_ref(&verify)).await;
    assert_eq!(
        stat(
            &stats,
            "downloader/exception_type_count/TlsCertificateError"
        ),
        1,
        "{stats:#?}"
    );
    assert_eq!(failures, ["TlsCertificateError"]);
    assert_eq!(stat(&stats, "item_scraped_count"), 0);

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, cert.ca_pem.as_deref().unwrap()).unwrap();
    let (stats, seen, failures) = crawl(
        &server,
        &[
            verify,
            (
                "DOWNLOADER_CLIENT_TLS_CA_FILE",
                ca_file.to_str().unwrap().into(),
            ),
        ],
    )
    .await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(stat(&stats, "item_scraped_count"), 3, "{stats:#?}");
    assert_eq!(stat(&stats, "downloader/exception_count"), 0);
    for s in &seen {
        let subject = s.subject.as_deref().unwrap();
        let issuer = s.issuer.as_deref().unwrap();
        assert!(
            subject.contains(&format!("CN={}", cert.subject_cn)),
            "{s:?}"
        );
        assert!(issuer.contains(&format!("CN={}", cert.issuer_cn)), "{s:?}");
    }
    assert_eq!(server.state.request_count(), 3);
}

/// A CA file that cannot be read stops the crawl before it starts, naming the setting.
#[actix::test]
async fn unreadable_ca_file_is_a_config_error() {
    let settings = settings(&[
        ("DOWNLOADER_CLIENT_TLS_VERIFY", true.into()),
        (
            "DOWNLOADER_CLIENT_TLS_CA_FILE",
            "/nonexistent/arachne-ca.pem".into(),
        ),
    ]);
    let err = Crawler::new(Recorder::new("https://127.0.0.1:9/".into()), settings)
        .run()
        .await
        .expect_err("a missing CA file must fail the crawl");
    assert!(
        err.to_string().contains("DOWNLOADER_CLIENT_TLS_CA_FILE"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Acceptance 2: HTTP/2

const PER_DOMAIN: usize = 3;
const PAGES: usize = 9;

fn concurrency_settings() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("CONCURRENT_REQUESTS", 16.into()),
        ("CONCURRENT_REQUESTS_PER_DOMAIN", PER_DOMAIN.into()),
    ]
}

/// Over TLS with ALPN the crawl speaks h2 (server, `response.protocol` and stats agree)
/// on one shared connection, and the server never sees more than
/// `CONCURRENT_REQUESTS_PER_DOMAIN` requests at once, but does see that many.
#[actix::test]
async fn http2_crawl_keeps_per_domain_concurrency() {
    let server = TlsServer::start(&self_signed(), PAGES, Duration::from_millis(300));
    let (stats, seen, failures) = crawl(&server, &concurrency_settings()).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(stat(&stats, "item_scraped_count"), PAGES as i64 + 1);
    assert_eq!(server.state.versions(), ["HTTP/2.0"]);
    assert_eq!(
        stat(&stats, "downloader/response_protocol_count/h2"),
        PAGES as i64 + 1,
        "{stats:#?}"
    );
    assert_eq!(
        stat(&stats, "downloader/response_protocol_count/HTTP/1.1"),
        0
    );
    assert!(
        seen.iter().all(|s| s.protocol.as_deref() == Some("h2")),
        "{seen:?}"
    );
    let max = server.state.max_in_flight.load(Ordering::SeqCst);
    assert_eq!(max, PER_DOMAIN, "most requests in flight at once");
    let connections = server.state.connections.load(Ordering::SeqCst);
    assert_eq!(connections, 1, "the h2 requests share one connection");
}

/// With `DOWNLOADER_HTTP2_ENABLED=false` the same kind of server is crawled over
/// HTTP/1.1, still within the per-domain limit.
#[actix::test]
async fn http2_disabled_forces_http11() {
    let server = TlsServer::start(&self_signed(), PAGES, Duration::from_millis(300));
    let mut extra = concurrency_settings();
    extra.push(("DOWNLOADER_HTTP2_ENABLED", false.into()));
    let (stats, seen, failures) = crawl(&server, &extra).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(stat(&stats, "item_scraped_count"), PAGES as i64 + 1);
    assert_eq!(server.state.versions(), ["HTTP/1.1"]);
    assert_eq!(
        stat(&stats, "downloader/response_protocol_count/HTTP/1.1"),
        PAGES as i64 + 1,
        "{stats:#?}"
    );
    assert_eq!(stat(&stats, "downloader/response_protocol_count/h2"), 0);
    assert!(
        seen.iter()
            .all(|s| s.protocol.as_deref() == Some("HTTP/1.1")),
        "{seen:?}"
    );
    assert_eq!(
        server.state.max_in_flight.load(Ordering::SeqCst),
        PER_DOMAIN
    );
    assert!(server.state.connections.load(Ordering::SeqCst) >= PER_DOMAIN);
}

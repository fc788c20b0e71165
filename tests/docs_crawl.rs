//! Differential crawl: Arachne's built-in `follow` spider and Scrapy (with
//! `tests/scrapy/docs_spider.py`, the same spider written for Scrapy) crawl the Python
//! documentation (Debian's `python3.11-doc`, 530 pages) served by an in-process static
//! file server on 127.0.0.1, and must yield the same pages with the same URLs, each
//! once: the same set of `response.url`s, the same count, and the same set of requests
//! seen by the server. This checks link extraction, URL joining (relative paths,
//! `../`, root-relative `/bugs.html`, fragments dropped, hrefs with blanks around
//! them), the duplicate filter, the offsite filter and non-HTTP schemes (`mailto:`)
//! against Scrapy's behaviour on a real site rather than on hand-made fixtures.
//!
//! Both crawlers treat non-HTML responses alike: they are items like any page, and
//! their links are followed if they parse as HTML (Scrapy parses every TextResponse;
//! Arachne's `follow` parses every response). The only non-HTML file the docs link
//! with `<a>` is one `.py` download, served as `text/x-python`. Stylesheets, scripts
//! and images are linked with `<link>`, `<script>` and `<img>`, which neither follows.
//!
//! Differences that are expected are listed in [`KNOWN`] with the reason; any other
//! difference fails the test with the URLs only one crawler produced. Python and
//! Scrapy come from the venv of `.ci/install-deps` (see `tests/parsel/pyenv.rs`).

#[path = "parsel/pyenv.rs"]
mod pyenv;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;

/// How long one crawl may take before the test gives up on it (a local crawl of the
/// docs takes seconds).
const CRAWL_TIMEOUT: Duration = Duration::from_secs(300);

/// A URL (path and query, as the server saw it) that only one crawler yields or
/// fetches, and why that is expected.
struct Known {
    path: &'static str,
    /// `true`: only Scrapy has it; `false`: only Arachne.
    scrapy_only: bool,
    reason: &'static str,
}

/// Justified differences (none so far); the test fails if an entry excuses nothing.
const KNOWN: &[Known] = &[];

/// A static file server for one directory: `GET /path` serves the file, a directory
/// URL ending in `/` serves its `index.html`, a directory URL without the slash is
/// redirected (301) to the URL with it, anything else is 404. It records every
/// request's path and query and its status. Stops when dropped.
struct StaticServer {
    port: u16,
    log: Arc<Mutex<Vec<(String, u16)>>>,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StaticServer {
    fn start(root: &Path) -> StaticServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let root = root.to_path_buf();
        let thread_log = Arc::clone(&log);
        let thread = std::thread::spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                let state = web::Data::new((root, thread_log));
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(state.clone())
                        .default_service(web::to(serve))
                })
                .workers(2)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener)
                .expect("listen")
                .run();
                tx.send(server.handle()).unwrap();
                let _ = server.await;
            });
        });
        let handle = rx.recv().expect("static server started");
        StaticServer {
            port,
            log,
            handle,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Takes the requests logged so far, leaving the log empty.
    fn take_log(&self) -> Vec<(String, u16)> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type State = web::Data<(PathBuf, Arc<Mutex<Vec<(String, u16)>>>)>;

async fn serve(req: HttpRequest, state: State) -> HttpResponse {
    let (root, log) = (&state.0, &state.1);
    let response = respond(root, req.path());
    let logged = match req.uri().query() {
        Some(q) => format!("{}?{q}", req.path()),
        None => req.path().to_string(),
    };
    log.lock()
        .unwrap()
        .push((logged, response.status().as_u16()));
    response
}

fn respond(root: &Path, path: &str) -> HttpResponse {
    let not_found = || HttpResponse::NotFound().body("not found");
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let rel = Path::new(decoded.trim_start_matches('/'));
    // Only plain names: no `..`, no absolute paths.
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return not_found();
    }
    let mut file = root.join(rel);
    if file.is_dir() {
        if !path.ends_with('/') {
            return HttpResponse::MovedPermanently()
                .insert_header((header::LOCATION, format!("{path}/")))
                .finish();
        }
        file = file.join("index.html");
    }
    match std::fs::read(&file) {
        Ok(body) => HttpResponse::Ok()
            .content_type(content_type(&file))
            .body(body),
        Err(_) => not_found(),
    }
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "py" => "text/x-python; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "application/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

/// Waits for `child` at most [`CRAWL_TIMEOUT`]; kills it and fails on timeout.
fn wait(mut child: Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + CRAWL_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {CRAWL_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `url` of every line of a JSON-lines feed.
fn urls(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            let item: Value = serde_json::from_str(l).expect("each line is JSON");
            item["url"].as_str().expect("items have a url").to_string()
        })
        .collect()
}

/// What one crawler did: the URLs it yielded (in order) and the requests the server saw.
struct Crawl {
    urls: Vec<String>,
    requests: Vec<(String, u16)>,
    took: Duration,
}

/// `path?query` of a URL on the server (items hold absolute URLs).
fn server_path(url: &str) -> String {
    let u = url::Url::parse(url).unwrap_or_else(|e| panic!("item url {url:?}: {e}"));
    assert!(u.fragment().is_none(), "{url}: response.url has a fragment");
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

/// Compares one aspect (`what`) of the two crawls: multiset of `scrapy` vs `ours`,
/// excusing [`KNOWN`] entries (marked used in `used`). Returns the problems found.
fn diff(what: &str, scrapy: &[String], ours: &[String], used: &mut BTreeSet<usize>) -> String {
    let count = |v: &[String]| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for s in v {
            *m.entry(s.clone()).or_default() += 1;
        }
        m
    };
    let (theirs, mine) = (count(scrapy), count(ours));
    let mut out = String::new();
    for (name, m) in [("Scrapy", &theirs), ("Arachne", &mine)] {
        let twice: Vec<_> = m.iter().filter(|(_, n)| **n > 1).collect();
        if !twice.is_empty() {
            out.push_str(&format!("{what}: {name} has duplicates: {twice:?}\n"));
        }
    }
    let mut only = |a: &BTreeMap<String, usize>, b: &BTreeMap<String, usize>, scrapy_only| {
        let mut lines = Vec::new();
        for path in a.keys().filter(|p| !b.contains_key(*p)) {
            match KNOWN
                .iter()
                .position(|k| k.path == path && k.scrapy_only == scrapy_only)
            {
                Some(i) => {
                    used.insert(i);
                }
                None => lines.push(format!("    {path}")),
            }
        }
        lines
    };
    let scrapy_only = only(&theirs, &mine, true);
    let ours_only = only(&mine, &theirs, false);
    for (name, lines) in [("only Scrapy", scrapy_only), ("only Arachne", ours_only)] {
        if !lines.is_empty() {
            out.push_str(&format!(
                "{what}: {} {name} has (and are not in KNOWN):\n{}\n",
                lines.len(),
                lines.join("\n")
            ));
        }
    }
    out
}

#[test]
fn follow_crawls_the_python_docs_like_scrapy() {
    let Some(python) = pyenv::python_and_docs(&["scrapy"]) else {
        return;
    };
    let server = StaticServer::start(Path::new(pyenv::DOCS));
    let start_url = server.url("/");
    let dir = tempfile::tempdir().unwrap();

    // Scrapy.
    let scrapy_out = dir.path().join("scrapy.jsonl");
    let started = Instant::now();
    let child = Command::new(&python)
        .args(["-m", "scrapy", "runspider", "-L", "WARNING"])
        .arg(pyenv::repo().join("tests/scrapy/docs_spider.py"))
        .arg("-a")
        .arg(format!("start_url={start_url}"))
        .arg("-O")
        .arg(&scrapy_out)
        // No scrapy.cfg or project settings from wherever the test runs.
        .current_dir(dir.path())
        .env_remove("SCRAPY_SETTINGS_MODULE")
        .spawn()
        .expect("scrapy runs");
    let status = wait(child, "scrapy runspider");
    assert!(status.success(), "scrapy exit status {status}");
    let scrapy = Crawl {
        urls: urls(&scrapy_out),
        requests: server.take_log(),
        took: started.elapsed(),
    };

    // Arachne.
    let arachne_out = dir.path().join("arachne.jsonl");
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_arachne"))
        .args(["crawl", "follow", "-a"])
        .arg(format!("start_url={start_url}"))
        .args(["-s", "LOG_LEVEL=WARNING", "-s", "CONCURRENT_REQUESTS=16"])
        .arg("-o")
        .arg(&arachne_out)
        .current_dir(dir.path())
        .spawn()
        .expect("arachne runs");
    let status = wait(child, "arachne crawl follow");
    assert!(status.success(), "arachne exit status {status}");
    let ours = Crawl {
        urls: urls(&arachne_out),
        requests: server.take_log(),
        took: started.elapsed(),
    };

    let statuses = |c: &Crawl| {
        let mut m: BTreeMap<u16, usize> = BTreeMap::new();
        for (_, s) in &c.requests {
            *m.entry(*s).or_default() += 1;
        }
        m
    };
    eprintln!(
        "docs_crawl: Scrapy {} items, {} requests {:?} in {:.1?}; Arachne {} items, {} requests {:?} in {:.1?}",
        scrapy.urls.len(),
        scrapy.requests.len(),
        statuses(&scrapy),
        scrapy.took,
        ours.urls.len(),
        ours.requests.len(),
        statuses(&ours),
        ours.took,
    );
    assert!(
        scrapy.urls.len() >= 500,
        "Scrapy crawled only {} pages: is the server serving the docs?",
        scrapy.urls.len()
    );

    let mut used = BTreeSet::new();
    let paths = |c: &Crawl| c.urls.iter().map(|u| server_path(u)).collect::<Vec<_>>();
    let requested = |c: &Crawl| {
        c.requests
            .iter()
            .map(|(p, _)| p.clone())
            .collect::<Vec<_>>()
    };
    let mut report = diff(
        "items (response.url)",
        &paths(&scrapy),
        &paths(&ours),
        &mut used,
    );
    report.push_str(&diff(
        "requests seen by the server",
        &requested(&scrapy),
        &requested(&ours),
        &mut used,
    ));
    for (i, k) in KNOWN.iter().enumerate() {
        if used.contains(&i) {
            eprintln!("  known difference: {} ({})", k.path, k.reason);
        } else {
            report.push_str(&format!(
                "KNOWN entry excuses nothing any more (remove it): {} ({})\n",
                k.path, k.reason
            ));
        }
    }
    assert!(report.is_empty(), "{report}");
}

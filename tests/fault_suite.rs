//! Issue 12, acceptance 7: one crawl meets every trap at once — a connection reset, a
//! server that answers too slowly, a body over `DOWNLOAD_MAXSIZE` (announced and
//! chunked), 404 and 500 pages, broken HTML with invalid UTF-8, a Latin-1 page, a page
//! nested 200,000 deep, megabytes of NUL bytes (one as a 404 body), a page of 50,000
//! links, and a redirect to a host outside `allowed_domains`. The crawl must finish,
//! fetch each of the 201 normal pages exactly once, count every trap in the stats,
//! and keep this process's peak RSS (server included) under 300 MB.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use arachne::prelude::*;
use support::server::FixtureServer;
use support::site::Site;

const NORMAL: usize = 201;

struct Walk {
    start: String,
}

#[async_trait(?Send)]
impl Spider for Walk {
    type Callback = DefaultCallback;
    fn name(&self) -> &str {
        "walk"
    }
    fn allowed_domains(&self) -> Vec<String> {
        vec!["127.0.0.1".into()]
    }
    fn start(self: Arc<Self>) -> Start {
        start_from_iter([Request::get(&self.start)])
    }
    async fn parse(&self, response: &Response) -> CallbackResult {
        let mut out = Output::new().with_item(json!({ "url": response.url.as_str() }));
        for r in response.follow_all_css("a::attr(href)")? {
            out.request(r);
        }
        Ok(out)
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The trap site: 201 normal pages from `/n/0` and every trap linked from it; the NUL
/// 404 body is `nul404_mb` MB.
fn fault_site(nul404_mb: usize) -> Site {
    let mut pages: HashMap<String, (u16, String, Vec<u8>)> = HashMap::new();
    let html = |s: String| (200, "text/html".to_string(), s.into_bytes());
    // The normal pages: a chain, each also linking back home.
    for i in 1..NORMAL {
        let next = if i + 1 < NORMAL {
            format!("<a href=\"/n/{}\">next</a>", i + 1)
        } else {
            String::new()
        };
        pages.insert(
            format!("/n/{i}"),
            html(format!(
                "<title>n{i}</title>{next}<a href=\"/n/0\">home</a>"
            )),
        );
    }
    pages.insert(
        "/deep".into(),
        html(format!(
            "<title>deep</title>{}x{}",
            "<div>".repeat(200_000),
            "</div>".repeat(200_000)
        )),
    );
    pages.insert(
        "/nul".into(),
        (200, "text/html".into(), vec![0u8; 5 * 1024 * 1024]),
    );
    pages.insert(
        "/nul404".into(),
        (404, "text/html".into(), vec![0u8; nul404_mb * 1024 * 1024]),
    );
    let links: String = (0..50_000)
        .map(|i| format!("<a href=\"/n/{}\">l</a>", 1 + i % (NORMAL - 1)))
        .collect();
    pages.insert("/links".into(), html(links));
    // An offsite redirect target that would be refused anyway if it were ever tried
    // (port 1 on loopback): the downloader's offsite filter must stop it first.
    let traps = [
        "/reset",
        "/slow/5000",
        "/big/40000000",
        "/big-chunked/40000000",
        "/status/404",
        "/status/500",
        "/broken",
        "/latin1",
        "/deep",
        "/nul",
        "/nul404",
        "/links",
        "/redirect?to=http://localhost:1/escape",
    ];
    let home: String = traps
        .iter()
        .map(|t| format!("<a href=\"{t}\">trap</a>"))
        .chain(std::iter::once("<a href=\"/n/1\">first</a>".to_string()))
        .collect();
    pages.insert("/n/0".into(), html(format!("<title>n0</title>{home}")));
    Site::Static(pages)
}

#[actix::test]
async fn every_trap_at_once() {
    let server = FixtureServer::start(fault_site(20));
    let settings = Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false)
        .with("DOWNLOAD_TIMEOUT", 1)
        .with("DOWNLOAD_MAXSIZE", 30_000_000)
        .with("RETRY_ENABLED", false)
        .with("CONCURRENT_REQUESTS", 8);
    let stats = Crawler::new(
        Walk {
            start: server.url("/n/0"),
        },
        settings,
    )
    .run()
    .await
    .unwrap();
    assert_eq!(stats["finish_reason"], "finished", "{stats:#?}");

    let log = server.log();
    for i in 0..NORMAL {
        let path = format!("/n/{i}");
        let n = log.iter().filter(|e| e.path == path).count();
        assert_eq!(n, 1, "{path} fetched {n} times");
    }
    let stat = |k: &str| stats.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    for (key, at_least) in [
        ("downloader/exception_type_count/ConnectionLost", 1),
        ("downloader/exception_type_count/TimeoutError", 1),
        ("downloader/exception_type_count/MaxSizeExceeded", 2),
        ("httperror/response_ignored_status_count/404", 2),
        ("httperror/response_ignored_status_count/500", 1),
        ("html/truncated/depth", 1),
        ("offsite/filtered", 1),
        ("dupefilter/filtered", 1),
    ] {
        assert!(stat(key) >= at_least, "{key} < {at_least}: {stats:#?}");
    }
    assert_eq!(
        stat("downloader/exception_type_count/ConnectionRefusedError"),
        0,
        "the offsite redirect was followed: {stats:#?}"
    );
    // 201 normal pages, /broken, /latin1, /deep, /nul and /links give items.
    assert_eq!(stat("item_scraped_count"), NORMAL as u64 + 5, "{stats:#?}");
    let peak = peak_rss_mb();
    eprintln!("fault suite: peak RSS {peak:.0} MB");
    assert!(peak <= 300.0, "peak RSS {peak:.0} MB");
}

/// The same traps with a 100 MB NUL 404 body, crawled by the `arachne` binary, whose
/// own peak RSS (sampled from /proc while it runs; the server lives in this test
/// process) must stay under 300 MB.
#[test]
fn every_trap_at_once_in_its_own_process() {
    let server = FixtureServer::start(fault_site(100));
    let dir = tempfile::tempdir().unwrap();
    let stats_path = dir.path().join("stats.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_arachne"))
        .args(["crawl", "follow", "-a"])
        .arg(format!("start_url={}", server.url("/n/0")))
        .args([
            "-L",
            "WARNING",
            "-s",
            "DOWNLOAD_TIMEOUT=1",
            "-s",
            "RETRY_ENABLED=false",
        ])
        .args(["-s", "DOWNLOAD_MAXSIZE=150000000", "--stats-json"])
        .arg(&stats_path)
        .spawn()
        .expect("arachne runs");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let status = loop {
        if let Some(kb) = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        }) {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(status.success(), "exit {status}");
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();
    assert_eq!(stats["finish_reason"], "finished", "{stats:#}");
    let log = server.log();
    for i in 0..NORMAL {
        let path = format!("/n/{i}");
        assert_eq!(log.iter().filter(|e| e.path == path).count(), 1, "{path}");
    }
    // /status/404, /nul404, and the /p/0 link on /broken.
    assert!(
        stats["httperror/response_ignored_status_count/404"].as_u64() >= Some(2),
        "{stats:#}"
    );
    let peak = peak_kb as f64 / 1024.0;
    eprintln!("fault suite (arachne process): peak RSS {peak:.0} MB");
    assert!(peak > 0.0 && peak <= 300.0, "peak RSS {peak:.0} MB");
}

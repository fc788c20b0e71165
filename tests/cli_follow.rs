//! Acceptance: `arachne crawl follow` on a generated site crawls every reachable page
//! exactly once, and its items and `--stats-json` agree with the server's own log.
//! Also: SIGINT ends a running crawl with `finish_reason = shutdown`, exit 0, stats written.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::server::FixtureServer;
use support::site::Site;

fn arachne() -> Command {
    Command::new(env!("CARGO_BIN_EXE_arachne"))
}

fn read_jsonl(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("items file written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// 500 random pages: every reachable page fetched once, items = pages = server log.
#[test]
fn follow_crawls_every_page_once() {
    let site = Site::random(500, 6, 7);
    let expected = site.reachable();
    let server = FixtureServer::start(site);
    let dir = tempfile::tempdir().unwrap();
    let items_path = dir.path().join("items.jsonl");
    let stats_path = dir.path().join("stats.json");
    let status = arachne()
        .args(["crawl", "follow", "-a"])
        .arg(format!("start_url={}", server.url("/p/0")))
        .args(["-s", "LOG_LEVEL=INFO", "-s", "CONCURRENT_REQUESTS=32"])
        .arg("-o")
        .arg(&items_path)
        .arg("--stats-json")
        .arg(&stats_path)
        .status()
        .expect("arachne runs");
    assert!(status.success(), "exit status {status}");

    let log = server.log();
    let fetched: Vec<&str> = log.iter().map(|e| e.path.as_str()).collect();
    let fetched_set: BTreeSet<String> = fetched.iter().map(|s| s.to_string()).collect();
    assert_eq!(fetched.len(), fetched_set.len(), "a page was fetched twice");
    assert_eq!(
        fetched_set, expected,
        "fetched pages differ from the reachable set"
    );

    let items = read_jsonl(&items_path);
    let item_paths: BTreeSet<String> = items
        .iter()
        .map(|i| {
            url::Url::parse(i["url"].as_str().unwrap())
                .unwrap()
                .path()
                .to_string()
        })
        .collect();
    assert_eq!(items.len(), expected.len());
    assert_eq!(item_paths, expected);
    for i in &items {
        assert_eq!(i["status"], 200);
        assert!(i["title"].as_str().unwrap().starts_with("Page "), "{i}");
        assert!(i["depth"].is_u64());
    }

    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();
    let n = expected.len() as u64;
    assert_eq!(stats["finish_reason"], "finished");
    assert_eq!(stats["item_scraped_count"], n);
    assert_eq!(stats["response_received_count"], n);
    assert_eq!(stats["downloader/request_count"], log.len() as u64);
    assert_eq!(stats["downloader/response_status_count/200"], n);
    assert!(stats["dupefilter/filtered"].as_u64().unwrap() > 0);
    assert!(
        stats["offsite/filtered"].as_u64().unwrap() > 0,
        "external links are filtered"
    );
}

/// SIGINT: graceful close with `shutdown`, exit code 0, stats written.
#[test]
fn sigint_shuts_down_gracefully() {
    // Slow pages keep the crawl busy long enough to be interrupted.
    let mut pages = std::collections::HashMap::new();
    let mut body = String::from("<html><title>start</title><body>");
    for i in 0..200 {
        body.push_str(&format!("<a href=\"/slow/{}\">s</a>", 300 + i));
    }
    body.push_str("</body></html>");
    pages.insert(
        "/start".to_string(),
        (200, "text/html".to_string(), body.into_bytes()),
    );
    let server = FixtureServer::start(Site::Static(pages));
    let dir = tempfile::tempdir().unwrap();
    let stats_path = dir.path().join("stats.json");
    let mut child = arachne()
        .args(["crawl", "follow", "-a"])
        .arg(format!("start_url={}", server.url("/start")))
        .args(["-s", "LOG_LEVEL=INFO", "-s", "CONCURRENT_REQUESTS=4"])
        .arg("--stats-json")
        .arg(&stats_path)
        .spawn()
        .expect("arachne runs");
    // Wait until the crawl is really downloading.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.log().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();
    assert_eq!(stats["finish_reason"], "shutdown");
    let fetched = server.log().len() as u64;
    assert!(fetched < 201, "the crawl stopped early ({fetched} fetched)");
    // In-flight requests finished and were counted.
    assert_eq!(
        stats["downloader/response_count"],
        stats["downloader/request_count"]
    );
}

/// Issue 12, acceptance 5: two SIGINTs 50 ms apart during a crawl. Every item logged
/// as scraped before the first signal is in the JSON lines feed, no line is torn, and
/// the `.json` array parses (its closing `]` written on the forced exit).
#[test]
fn forced_stop_loses_no_scraped_item() {
    // Fast pages, with slow ones among them: when the first SIGINT comes, slow
    // downloads are in flight, so the graceful close is still waiting for them when
    // the second one forces the exit.
    let mut start = String::from("<html><body>");
    let mut pages = std::collections::HashMap::new();
    for i in 0..3000 {
        start.push_str(&format!("<a href=\"/f/{i}\">f</a>"));
        if i % 10 == 0 {
            start.push_str(&format!("<a href=\"/slow/{}\">s</a>", 2000 + i));
        }
        pages.insert(
            format!("/f/{i}"),
            (
                200,
                "text/html".to_string(),
                format!("<title>f{i}</title>").into_bytes(),
            ),
        );
    }
    start.push_str("</body></html>");
    pages.insert(
        "/p/0".to_string(),
        (200, "text/html".to_string(), start.into_bytes()),
    );
    let server = FixtureServer::start(Site::Static(pages));
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("items.jsonl");
    let json = dir.path().join("items.json");
    let log_path = dir.path().join("stderr.log");
    let mut child = arachne()
        .args(["crawl", "follow", "-a"])
        .arg(format!("start_url={}", server.url("/p/0")))
        .args(["-s", "LOG_LEVEL=DEBUG", "-s", "CONCURRENT_REQUESTS=8"])
        .args([
            "-s",
            "SCHEDULER_MEMORY_QUEUE=scrapy.squeues.FifoMemoryQueue",
        ])
        .arg("-o")
        .arg(&jsonl)
        .arg("-o")
        .arg(&json)
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("arachne runs");
    // Mid-crawl: some pages parsed, most not.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.log().len() < 150 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(50));
    // The process may already be gone if the graceful close was quick.
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let status = child.wait().unwrap();
    assert!(
        server.log().len() < 3000,
        "the crawl was not interrupted: make the site bigger"
    );

    let log = std::fs::read_to_string(&log_path).unwrap();
    let signal_at = log
        .find("Received SIGINT, shutting down gracefully")
        .expect("first SIGINT logged");
    let scraped_before: BTreeSet<String> = log[..signal_at]
        .match_indices("Scraped from <")
        .filter_map(|(i, m)| {
            let rest = &log[i + m.len()..];
            rest.find('>').map(|end| rest[..end].to_string())
        })
        .collect();
    assert!(
        !scraped_before.is_empty(),
        "nothing scraped before the signal"
    );

    let text = std::fs::read_to_string(&jsonl).unwrap();
    assert!(text.ends_with('\n'), "a torn last line");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .collect();
    let in_feed: BTreeSet<String> = lines
        .iter()
        .filter_map(|i| i["url"].as_str().map(str::to_string))
        .collect();
    assert!(
        log.contains("forcing unclean shutdown") && !status.success(),
        "the second SIGINT should have forced the exit ({status})"
    );
    let missing: Vec<&String> = scraped_before.difference(&in_feed).collect();
    assert!(
        missing.is_empty(),
        "{} items scraped before the signal are missing from the feed: {missing:?}",
        missing.len()
    );
    let array: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap())
        .expect("the .json feed is a complete array");
    assert_eq!(array.as_array().map(Vec::len), Some(lines.len()));
}

/// Issue 12, item 7: a bad `-L` is an error at start; `DOWNLOAD_TIMEOUT=0` means no
/// timeout (not "every download times out"); a crawl whose only start URL is invalid
/// exits non-zero (Scrapy exits 0 with `finished`, so a script cannot tell).
#[test]
fn bad_log_level_zero_timeout_and_invalid_start_url() {
    let server = FixtureServer::start(Site::random(5, 2, 3));
    let bogus = arachne()
        .args(["crawl", "follow", "-a"])
        .arg(format!("start_url={}", server.url("/p/0")))
        .args(["-L", "BOGUS"])
        .output()
        .unwrap();
    assert_eq!(bogus.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bogus.stderr).contains("invalid LOG_LEVEL \"BOGUS\""));
    assert!(server.log().is_empty(), "crawled despite a bad log level");

    let dir = tempfile::tempdir().unwrap();
    let stats_path = dir.path().join("stats.json");
    let ok = arachne()
        .args(["crawl", "follow", "-a"])
        .arg(format!("start_url={}", server.url("/p/0")))
        .args(["-s", "DOWNLOAD_TIMEOUT=0", "-L", "WARNING", "--stats-json"])
        .arg(&stats_path)
        .status()
        .unwrap();
    assert!(ok.success());
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();
    assert_eq!(stats["finish_reason"], "finished");
    assert_eq!(stats["response_received_count"], 5, "{stats:#}");
    assert!(stats
        .get("downloader/exception_type_count/TimeoutError")
        .is_none());

    let invalid = arachne()
        .args([
            "crawl",
            "follow",
            "-a",
            "start_url=not a url",
            "-L",
            "WARNING",
        ])
        .output()
        .unwrap();
    assert_eq!(invalid.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("nothing was crawled"));
}

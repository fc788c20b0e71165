//! `CrawlerProcess` runs several spiders at once or one after another and returns each
//! one's stats; settings priorities hold end to end; the CLI reports bad input clearly;
//! a second SIGINT stops at once.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arachne::prelude::*;
use support::server::FixtureServer;
use support::site::Site;

/// Follows every link; the name is configurable so two can run side by side.
struct Walker {
    name: String,
    start: String,
    custom: Vec<(String, serde_json::Value)>,
}

#[async_trait(?Send)]
impl Spider for Walker {
    type Callback = DefaultCallback;

    fn name(&self) -> &str {
        &self.name
    }
    /// Filtered start request, so a page linking back to it is not fetched twice.
    fn start(self: Arc<Self>) -> Start {
        start_from_iter(std::iter::once(
            Request::get(&self.start).map_err(SpiderError::from),
        ))
    }
    fn custom_settings(&self) -> Vec<(String, serde_json::Value)> {
        self.custom.clone()
    }
    /// The generated sites link to `example.invalid`; tests never leave loopback.
    fn allowed_domains(&self) -> Vec<String> {
        vec!["127.0.0.1".into()]
    }
    async fn parse(&self, response: &Response) -> CallbackResult {
        let mut out = Output::new().with_item(serde_json::json!({ "url": response.url.as_str() }));
        for href in response.css("a::attr(href)")?.getall() {
            if let Ok(r) = response.follow(&href) {
                out.request(r);
            }
        }
        Ok(out)
    }
}

fn walker(name: &str, start: String) -> Walker {
    Walker {
        name: name.into(),
        start,
        custom: vec![],
    }
}

fn quiet() -> Settings {
    Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false)
}

/// Two spiders at once: both finish, each with its own stats.
#[test]
fn two_spiders_at_once() {
    let a = Site::random(60, 4, 11);
    let b = Site::random(40, 4, 12);
    let (na, nb) = (a.reachable().len() as u64, b.reachable().len() as u64);
    let sa = FixtureServer::start(a);
    let sb = FixtureServer::start(b);
    let results = CrawlerProcess::new(quiet())
        .handle_signals(false)
        .crawl(walker("a", sa.url("/p/0")))
        .crawl(walker("b", sb.url("/p/0")))
        .start();
    assert_eq!(results.len(), 2);
    let ra = results[0].as_ref().unwrap();
    let rb = results[1].as_ref().unwrap();
    assert_eq!(ra["item_scraped_count"], na);
    assert_eq!(rb["item_scraped_count"], nb);
    assert_eq!(ra["finish_reason"], "finished");
    assert_eq!(rb["finish_reason"], "finished");
    // They overlapped in time.
    assert!(ra["start_time"].as_f64().unwrap() < rb["finish_time"].as_f64().unwrap());
    assert!(rb["start_time"].as_f64().unwrap() < ra["finish_time"].as_f64().unwrap());
}

/// One after another: the second starts after the first finished.
#[test]
fn two_spiders_in_sequence() {
    let s = FixtureServer::start(Site::random(30, 3, 5));
    let results = CrawlerProcess::new(quiet())
        .handle_signals(false)
        .crawl(walker("first", s.url("/p/0")))
        .crawl(walker("second", s.url("/p/0")))
        .start_sequential();
    let first = results[0].as_ref().unwrap();
    let second = results[1].as_ref().unwrap();
    assert_eq!(first["item_scraped_count"], second["item_scraped_count"]);
    assert!(first["finish_time"].as_f64().unwrap() <= second["start_time"].as_f64().unwrap());
}

/// `custom_settings` beat project settings, the command line beats both.
#[test]
fn settings_priorities_end_to_end() {
    let mut project = quiet().with("CLOSESPIDER_PAGECOUNT", 50);
    let spider = Walker {
        custom: vec![("CLOSESPIDER_PAGECOUNT".into(), 5.into())],
        ..walker("p", "http://127.0.0.1:1/".into())
    };
    let c = Crawler::new(spider, project.clone());
    assert_eq!(c.settings().get_usize("CLOSESPIDER_PAGECOUNT").unwrap(), 5);
    project.set_cli("CLOSESPIDER_PAGECOUNT=7").unwrap();
    let spider = Walker {
        custom: vec![("CLOSESPIDER_PAGECOUNT".into(), 5.into())],
        ..walker("p", "http://127.0.0.1:1/".into())
    };
    let c = Crawler::new(spider, project);
    assert_eq!(c.settings().get_usize("CLOSESPIDER_PAGECOUNT").unwrap(), 7);
}

/// `custom_settings` take effect in a real crawl (CloseSpider closes at 5 pages).
#[test]
fn custom_settings_apply() {
    let s = FixtureServer::start(Site::random(100, 5, 9));
    let spider = Walker {
        custom: vec![
            ("CLOSESPIDER_PAGECOUNT".into(), 5.into()),
            ("CONCURRENT_REQUESTS".into(), 1.into()),
        ],
        ..walker("c", s.url("/p/0"))
    };
    let stats = CrawlerProcess::new(quiet().with("CLOSESPIDER_PAGECOUNT", 50))
        .handle_signals(false)
        .crawl(spider)
        .start()
        .remove(0)
        .unwrap();
    assert_eq!(stats["finish_reason"], "closespider_pagecount");
    // The request already downloading when the 5th response arrived still finishes
    // (Scrapy's rule); with one request at a time that is at most one more.
    let received = stats["response_received_count"].as_u64().unwrap();
    assert!((5..=6).contains(&received), "{received}");
}

fn arachne() -> Command {
    Command::new(env!("CARGO_BIN_EXE_arachne"))
}

/// `arachne list` shows the built-in spider.
#[test]
fn cli_list() {
    let out = arachne().arg("list").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "follow");
}

/// A bad `-s` value, an unknown spider, a malformed `-a` are clear errors (exit 2).
#[test]
fn cli_bad_input() {
    let out = arachne()
        .args([
            "crawl",
            "follow",
            "-a",
            "start_url=http://127.0.0.1:1/",
            "-s",
            "CONCURRENT_REQUESTS=abc",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CONCURRENT_REQUESTS") && err.contains("abc"),
        "{err}"
    );

    let out = arachne().args(["crawl", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Spider not found: nope"));

    let out = arachne()
        .args(["crawl", "follow", "-a", "start_url"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME=VALUE"));
}

/// An invalid start URL is logged and counted; the crawl still finishes normally.
#[test]
fn cli_invalid_start_url() {
    let dir = tempfile::tempdir().unwrap();
    let stats_path = dir.path().join("s.json");
    let out = arachne()
        .args([
            "crawl",
            "follow",
            "-a",
            "start_url=not a url",
            "-s",
            "LOG_LEVEL=INFO",
            "--stats-json",
        ])
        .arg(&stats_path)
        .output()
        .unwrap();
    // Nothing could be crawled: exit 1 (Scrapy exits 0), the stats still written.
    assert_eq!(out.status.code(), Some(1));
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats_path).unwrap()).unwrap();
    assert_eq!(stats["finish_reason"], "finished");
    assert_eq!(stats["spider_exceptions/InvalidUrl"], 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a url"));
}

/// A second SIGINT stops at once, saying so.
#[test]
fn second_sigint_forces_exit() {
    let mut pages = std::collections::HashMap::new();
    let body: String = (0..20)
        .map(|i| format!("<a href=\"/slow/{}\">s</a>", 4_000 + i))
        .collect();
    pages.insert(
        "/start".to_string(),
        (200, "text/html".to_string(), body.into_bytes()),
    );
    let server = FixtureServer::start(Site::Static(pages));
    let child = arachne()
        .args(["crawl", "follow", "-a"])
        .arg(format!("start_url={}", server.url("/start")))
        .args(["-s", "LOG_LEVEL=INFO"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.log().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stopped at once, not after the 20 s pages"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("shutting down gracefully"), "{err}");
    assert!(err.contains("forcing unclean shutdown"), "{err}");
}

/// Start requests whose iterator panics part-way: the ones before are crawled, the
/// panic is logged and counted, the crawl finishes.
#[test]
fn panicking_start_requests() {
    struct Panicking(String);
    #[async_trait(?Send)]
    impl Spider for Panicking {
        type Callback = DefaultCallback;

        fn name(&self) -> &str {
            "panicking"
        }
        fn start(self: Arc<Self>) -> Start {
            let base = self.0.clone();
            start_from_iter((0..5).map(move |i| {
                if i == 3 {
                    panic!("start request bug");
                }
                Request::get(format!("{base}/p/{i}")).map_err(SpiderError::from)
            }))
        }
        async fn parse(&self, _: &Response) -> CallbackResult {
            Ok(Output::new().with_item(serde_json::json!({})))
        }
    }
    let server = FixtureServer::start(Site::random(10, 2, 1));
    let base = server.url("");
    let stats = CrawlerProcess::new(quiet())
        .handle_signals(false)
        .crawl(Panicking(base.trim_end_matches('/').to_string()))
        .start()
        .remove(0)
        .unwrap();
    assert_eq!(stats["finish_reason"], "finished");
    assert_eq!(stats["spider_exceptions/Panic"], 1);
    assert_eq!(stats["item_scraped_count"], 3);
}

/// `-O items.json` writes one JSON array (Scrapy's `json` feed), `-o x.jsonl` lines.
#[test]
fn cli_json_and_jsonlines_feeds() {
    let site = Site::random(30, 3, 4);
    let n = site.reachable().len();
    let server = FixtureServer::start(site);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("items.json");
    let lines = dir.path().join("items.jsonl");
    let out = arachne()
        .args(["crawl", "follow", "-a"])
        .arg(format!("start_url={}", server.url("/p/0")))
        .args(["-s", "LOG_LEVEL=WARNING", "-O"])
        .arg(&json)
        .arg("-O")
        .arg(&lines)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let array: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(array.len(), n);
    let text = std::fs::read_to_string(&lines).unwrap();
    assert_eq!(text.lines().count(), n);
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["url"].is_string());
    }
}

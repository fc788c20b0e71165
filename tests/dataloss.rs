//! Issue 12, acceptance 3: a body shorter than its `Content-Length` followed by a
//! normal close, or a chunked body whose last chunk never comes, fails with a counted data-loss error
//! (`ResponseDataLossError`, retried like Scrapy) — or, with
//! `DOWNLOAD_FAIL_ON_DATALOSS = false` (setting or meta), reaches the callback with
//! the `dataloss` flag.
//!
//! The server is a raw TCP listener of this file: no HTTP framework sends a body
//! shorter than the length it announced.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arachne::prelude::*;

/// Answers every connection with a 200 announcing 1000 bytes and sending 11, then
/// closes. `/full` gets a complete body instead. Stops when the test process ends.
fn short_body_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let reply = if head.starts_with("GET /chunked ") {
                // The terminating zero-size chunk never comes.
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nb\r\n<p>chunk</p>\r\n".to_string()
            } else if head.starts_with("GET /full ") {
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 11\r\nConnection: close\r\n\r\n<p>full</p>".to_string()
            } else {
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n<p>short</p>".to_string()
            };
            let _ = stream.write_all(reply.as_bytes());
            let _ = stream.flush();
        }
    });
    format!("http://{addr}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Cb {
    Parse,
    Failed,
}

#[derive(Default)]
struct Seen {
    /// URL path → flags of the response the callback got.
    flags: BTreeMap<String, Vec<String>>,
    /// URL path → failure kind.
    failures: BTreeMap<String, String>,
}

struct Probe {
    requests: Vec<Request>,
    seen: Arc<Mutex<Seen>>,
}

#[async_trait(?Send)]
impl Spider for Probe {
    type Callback = Cb;
    fn name(&self) -> &str {
        "dataloss"
    }
    fn start(self: Arc<Self>) -> Start {
        let requests: Vec<_> = self
            .requests
            .iter()
            .map(|r| Ok::<_, SpiderError>(r.clone().errback(Cb::Failed)))
            .collect();
        start_from_iter(requests)
    }
    async fn parse(&self, response: &Response) -> CallbackResult {
        self.seen
            .lock()
            .unwrap()
            .flags
            .insert(response.url.path().to_string(), response.flags.clone());
        Ok(Output::new())
    }
    async fn errback(&self, _: Cb, failure: &Failure) -> CallbackResult {
        self.seen.lock().unwrap().failures.insert(
            failure.request.url.path().to_string(),
            failure.kind().to_string(),
        );
        Ok(Output::new())
    }
}

async fn crawl(requests: Vec<Request>, settings: Settings) -> (arachne::stats::StatsMap, Seen) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let spider = Probe {
        requests,
        seen: seen.clone(),
    };
    let settings = settings
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false);
    let stats = Crawler::new(spider, settings).run().await.unwrap();
    assert_eq!(stats["finish_reason"], "finished", "{stats:#?}");
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (stats, seen)
}

fn stat(stats: &arachne::stats::StatsMap, key: &str) -> u64 {
    stats.get(key).and_then(|v| v.as_u64()).unwrap_or(0)
}

/// By default a short body is a failure, retried, counted; a complete one is not.
#[actix::test]
async fn short_body_fails_and_is_retried() {
    let base = short_body_server();
    let (stats, seen) = crawl(
        vec![
            Request::get(format!("{base}/short")).unwrap(),
            Request::get(format!("{base}/full")).unwrap(),
        ],
        Settings::new(),
    )
    .await;
    assert_eq!(
        seen.failures.get("/short").map(String::as_str),
        Some("ResponseDataLossError"),
        "{stats:#?}"
    );
    assert_eq!(seen.flags.get("/full"), Some(&Vec::new()));
    assert!(!seen.flags.contains_key("/short"));
    // RETRY_TIMES = 2: three attempts, each counted.
    assert_eq!(
        stat(
            &stats,
            "downloader/exception_type_count/ResponseDataLossError"
        ),
        3,
        "{stats:#?}"
    );
    assert_eq!(stat(&stats, "retry/count"), 2, "{stats:#?}");
    assert_eq!(stat(&stats, "retry/max_reached"), 1, "{stats:#?}");
}

/// With the setting off, or the meta key off for one request, the broken response is
/// processed and flagged.
#[actix::test]
async fn dataloss_flag_when_not_failing() {
    let base = short_body_server();
    let (stats, seen) = crawl(
        vec![Request::get(format!("{base}/short")).unwrap()],
        Settings::new().with("DOWNLOAD_FAIL_ON_DATALOSS", false),
    )
    .await;
    assert_eq!(
        seen.flags.get("/short"),
        Some(&vec!["dataloss".to_string()]),
        "{stats:#?}"
    );
    assert_eq!(
        stat(
            &stats,
            "downloader/exception_type_count/ResponseDataLossError"
        ),
        0
    );

    let (_, seen) = crawl(
        vec![Request::get(format!("{base}/short"))
            .unwrap()
            .meta("download_fail_on_dataloss", false)],
        Settings::new().with("RETRY_ENABLED", false),
    )
    .await;
    assert_eq!(
        seen.flags.get("/short"),
        Some(&vec!["dataloss".to_string()])
    );
}

/// A chunked body whose last chunk never comes is a failure too, never a complete 200.
#[actix::test]
async fn truncated_chunked_body_fails() {
    let base = short_body_server();
    let (stats, seen) = crawl(
        vec![Request::get(format!("{base}/chunked")).unwrap()],
        Settings::new().with("RETRY_ENABLED", false),
    )
    .await;
    assert!(!seen.flags.contains_key("/chunked"), "{stats:#?}");
    assert_eq!(
        seen.failures.get("/chunked").map(String::as_str),
        Some("ResponseDataLossError"),
        "{stats:#?}"
    );
    let (_, seen) = crawl(
        vec![Request::get(format!("{base}/chunked")).unwrap()],
        Settings::new().with("DOWNLOAD_FAIL_ON_DATALOSS", false),
    )
    .await;
    assert_eq!(
        seen.flags.get("/chunked"),
        Some(&vec!["dataloss".to_string()])
    );
}

//! Issue 12, item 6: a keep-alive connection the server closes after its response
//! (without saying `Connection: close`) must not cost a page. The pooled connection
//! is stale when the next request takes it; an idempotent request is then sent again
//! once on a new connection, transparently (not a retry), and counted as
//! `downloader/connection_lost_resend_count`.
//!
//! The server is a raw TCP listener of this file: it answers the first request of a
//! connection, keeps it open (keep-alive, as HTTP/1.1 implies), and closes it when
//! the next request arrives on it, without answering.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arachne::prelude::*;

fn one_shot_server(pages: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            if n == 0 {
                continue;
            }
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let i: usize = path.trim_start_matches("/p/").parse().unwrap_or(0);
            let next = if i + 1 < pages {
                format!("<a href=\"/p/{}\">next</a>", i + 1)
            } else {
                String::new()
            };
            let body = format!("<title>p{i}</title>{next}");
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
            count.fetch_add(1, Ordering::SeqCst);
            // Kept open, so the client pools it; the next request on it is read and
            // the connection closed without an answer — the race a server's idle
            // timeout makes with a client reusing the connection.
            let _ = stream.read(&mut buf);
        }
    });
    (format!("http://{addr}"), served)
}

struct Chain {
    start: String,
    titles: Arc<Mutex<Vec<String>>>,
}

#[async_trait(?Send)]
impl Spider for Chain {
    type Callback = DefaultCallback;
    fn name(&self) -> &str {
        "chain"
    }
    fn start_urls(&self) -> Vec<String> {
        vec![self.start.clone()]
    }
    async fn parse(&self, response: &Response) -> CallbackResult {
        self.titles
            .lock()
            .unwrap()
            .push(response.css("title::text")?.get().unwrap_or_default());
        let mut out = Output::new();
        for r in response.follow_all_css("a::attr(href)")? {
            out.request(r);
        }
        Ok(out)
    }
}

#[actix::test]
async fn stale_pooled_connections_cost_no_page() {
    let (base, served) = one_shot_server(30);
    let titles = Arc::new(Mutex::new(Vec::new()));
    let spider = Chain {
        start: format!("{base}/p/0"),
        titles: titles.clone(),
    };
    let settings = Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false)
        // Any loss shows: no retry hides it.
        .with("RETRY_ENABLED", false)
        .with("CONCURRENT_REQUESTS", 1);
    let stats = Crawler::new(spider, settings).run().await.unwrap();
    assert_eq!(stats["finish_reason"], "finished", "{stats:#?}");
    assert_eq!(titles.lock().unwrap().len(), 30, "{stats:#?}");
    assert!(
        stats.get("downloader/exception_count").is_none(),
        "{stats:#?}"
    );
    assert_eq!(served.load(Ordering::SeqCst), 30);
    // Requests alternate: one opens a connection that is pooled, the next finds it
    // closed under it and is sent again on a new connection that closes after its
    // response (never pooled), so the one after opens a new one: 2, 4, ..., 30.
    assert_eq!(
        stats["downloader/connection_lost_resend_count"], 15,
        "{stats:#?}"
    );
}

/// An HTTP/1.0 server that gives a `Content-Length` and no `Connection` header, and
/// closes each connection a moment after its response (as tinyproxy and many old
/// servers do). awc would pool such a connection as keep-alive; the downloader must
/// not, so no request is ever written to a connection about to close: no resend, no
/// loss, at any concurrency.
fn http10_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    return;
                }
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let i: usize = path.trim_start_matches("/p/").parse().unwrap_or(0);
                let body = format!("<title>p{i}</title>{}", "x".repeat(i * 37 % 4000));
                let reply = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
                // The close comes late enough that a client reusing the connection has
                // already written its next request into it.
                std::thread::sleep(Duration::from_millis(30));
            });
        }
    });
    format!("http://{addr}")
}

struct Many {
    urls: Vec<String>,
    titles: Arc<Mutex<Vec<String>>>,
}

#[async_trait(?Send)]
impl Spider for Many {
    type Callback = DefaultCallback;
    fn name(&self) -> &str {
        "many"
    }
    fn start_urls(&self) -> Vec<String> {
        self.urls.clone()
    }
    async fn parse(&self, response: &Response) -> CallbackResult {
        self.titles
            .lock()
            .unwrap()
            .push(response.css("title::text")?.get().unwrap_or_default());
        Ok(Output::new())
    }
}

#[actix::test]
async fn http10_connections_are_never_pooled() {
    let base = http10_server();
    for run in 0..5 {
        let titles = Arc::new(Mutex::new(Vec::new()));
        let spider = Many {
            urls: (0..60).map(|i| format!("{base}/p/{i}")).collect(),
            titles: titles.clone(),
        };
        let settings = Settings::new()
            .with("LOGSTATS_INTERVAL", 0)
            .with("STATS_DUMP", false)
            .with("RETRY_ENABLED", false)
            .with("CONCURRENT_REQUESTS", 8);
        let stats = Crawler::new(spider, settings).run().await.unwrap();
        assert_eq!(titles.lock().unwrap().len(), 60, "run {run}: {stats:#?}");
        assert!(
            stats
                .get("downloader/connection_lost_resend_count")
                .is_none(),
            "run {run}: {stats:#?}"
        );
        assert!(
            stats.get("downloader/exception_count").is_none(),
            "run {run}: {stats:#?}"
        );
    }
}

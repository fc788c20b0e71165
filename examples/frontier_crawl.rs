//! A crawl that holds a million pending requests, to measure what the frontier costs:
//! an in-process server on 127.0.0.1 serves 100 fan-out pages of 10,000 links each;
//! the spider crawls the fan pages first (higher priority), so 1,000,000 leaf requests
//! wait in the scheduler, then stops (`CLOSESPIDER_PAGECOUNT`). It prints the peak RSS
//! and the RSS per pending request, in memory or — with a directory argument — on the
//! `JOBDIR` disk queue.
//!
//! ```sh
//! cargo run --release --example frontier_crawl               # in-memory scheduler
//! cargo run --release --example frontier_crawl -- /tmp/job   # JOBDIR (a fresh dir)
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use arachne::prelude::*;

const FANS: usize = 100;
const LINKS: usize = 10_000;

/// A tiny HTTP/1.1 server: `/f/{i}` lists `/leaf/{i}/{j}` for every j (and `/f/0` every
/// other fan page); anything else is a small page. One thread per connection, keep-alive.
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(match stream.try_clone() {
                    Ok(s) => s,
                    Err(_) => return,
                });
                let mut out = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                    }
                    let body = match path
                        .strip_prefix("/f/")
                        .and_then(|i| i.parse::<usize>().ok())
                    {
                        Some(i) => {
                            let mut b = String::with_capacity(LINKS * 24);
                            b.push_str("<html><body>");
                            if i == 0 {
                                for k in 1..FANS {
                                    b.push_str(&format!("<a href=\"/f/{k}\">fan</a>"));
                                }
                            }
                            for j in 0..LINKS {
                                b.push_str(&format!("<a href=\"/leaf/{i}/{j}\">l</a>"));
                            }
                            b.push_str("</body></html>");
                            b
                        }
                        None => "<html><title>leaf</title></html>".to_string(),
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    if out.write_all(head.as_bytes()).is_err()
                        || out.write_all(body.as_bytes()).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

struct Fan {
    start: String,
}

#[async_trait(?Send)]
impl Spider for Fan {
    type Callback = DefaultCallback;
    fn name(&self) -> &str {
        "frontier_crawl"
    }
    fn start_urls(&self) -> Vec<String> {
        vec![self.start.clone()]
    }
    async fn parse(&self, response: &Response) -> CallbackResult {
        let mut out = Output::new();
        if response.url.path().starts_with("/f/") {
            for href in response.css("a::attr(href)")?.getall() {
                let fan = href.starts_with("/f/");
                // Fan pages first, so every leaf waits in the scheduler.
                out.request(response.follow(&href)?.priority(if fan { 10 } else { 0 }));
            }
        }
        Ok(out)
    }
}

fn rss_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let jobdir = std::env::args().nth(1);
    let base = serve();
    arachne::cli::init_logging("WARNING");
    let mut settings = Settings::new()
        .with(
            "CONCURRENT_REQUESTS",
            std::env::var("C")
                .ok()
                .and_then(|c| c.parse::<usize>().ok())
                .unwrap_or(16),
        )
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false)
        // The fan pages and a few leaves: the crawl stops with the frontier full.
        .with("CLOSESPIDER_PAGECOUNT", FANS + 50);
    if let Some(dir) = &jobdir {
        if std::path::Path::new(dir).exists() {
            anyhow::bail!("{dir} exists: give a fresh directory");
        }
        settings = settings.with("JOBDIR", dir.as_str());
    }
    let before = rss_kb("VmRSS:");
    let stats = CrawlerProcess::new(settings)
        .crawl(Fan {
            start: format!("{base}/f/0"),
        })
        .start()
        .remove(0)?;
    let peak = rss_kb("VmHWM:");
    let enqueued = stats["scheduler/enqueued"].as_u64().unwrap_or(0);
    let dequeued = stats["scheduler/dequeued"].as_u64().unwrap_or(0);
    let pending = enqueued.saturating_sub(dequeued);
    println!(
        "SUMMARY frontier={} pending={pending} peak_rss_mb={:.1} bytes_per_pending={:.0} finish_reason={}",
        if jobdir.is_some() { "jobdir" } else { "memory" },
        peak as f64 / 1024.0,
        (peak.saturating_sub(before) * 1024) as f64 / pending.max(1) as f64,
        stats["finish_reason"].as_str().unwrap_or("?"),
    );
    Ok(())
}

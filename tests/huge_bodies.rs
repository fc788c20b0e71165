//! Issue 12, acceptance 2: 100 MB of NUL bytes served as HTML, and a gzip bomb that
//! inflates to 1 GB of zeros, crawled by the `arachne` binary with the default
//! `DOWNLOAD_MAXSIZE` (1 GiB, so both bodies are kept): no abort, the crawl finishes,
//! and the process's peak RSS stays within 2.5 times the largest body it kept.
//!
//! The server is a raw TCP listener of this file (it needs `Content-Encoding` and
//! streams the bomb from memory); peak RSS is the crawler process's VmHWM, sampled
//! from /proc while it runs.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const NUL_BYTES: usize = 100 * 1024 * 1024;
const BOMB_BYTES: usize = 1_000_000_000;

/// `(path, content-encoding, body)`.
type Pages = Arc<Vec<(&'static str, Option<&'static str>, Vec<u8>)>>;

fn serve(pages: Pages) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let pages = pages.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let mut buf = [0u8; 8192];
                // One request per connection (`Connection: close`), enough here.
                let Ok(n) = stream.read(&mut buf) else { return };
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (encoding, body) = pages
                    .iter()
                    .find(|(p, _, _)| *p == path)
                    .map(|(_, e, b)| (*e, b.as_slice()))
                    .unwrap_or((None, b"<title>none</title>".as_slice()));
                let mut reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                if let Some(e) = encoding {
                    reply.push_str(&format!("Content-Encoding: {e}\r\n"));
                }
                reply.push_str("\r\n");
                let _ = stream.write_all(reply.as_bytes());
                let _ = stream.write_all(body);
            });
        }
    });
    format!("http://{addr}")
}

fn gzip_of_zeros(n: usize) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len());
        e.write_all(&chunk[..k]).unwrap();
        left -= k;
    }
    e.finish().unwrap()
}

/// Crawls `home` with the follow spider; returns its stats and peak RSS in bytes.
fn crawl(home: &str) -> (serde_json::Value, u64) {
    let dir = tempfile::tempdir().unwrap();
    let stats_path = dir.path().join("stats.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_arachne"))
        .args(["crawl", "follow", "-a"])
        .arg(format!("start_url={home}"))
        .args(["-L", "WARNING", "--stats-json"])
        .arg(&stats_path)
        .spawn()
        .expect("arachne runs");
    let (status, peak_bytes) = support::rss::wait_sampling_peak(&mut child);
    assert!(status.success(), "exit {status}");
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();
    assert_eq!(stats["finish_reason"], "finished", "{stats:#}");
    (stats, peak_bytes)
}

#[test]
fn hundred_megabytes_of_nul_bytes() {
    let base = serve(Arc::new(vec![
        (
            "/",
            None,
            b"<title>home</title><a href=\"/nul\">n</a><a href=\"/ok\">o</a>".to_vec(),
        ),
        ("/nul", None, vec![0u8; NUL_BYTES]),
    ]));
    let (stats, peak) = crawl(&format!("{base}/"));
    assert_eq!(stats["item_scraped_count"], 3, "{stats:#}");
    assert_eq!(stats["html/truncated/parse_errors"], 1, "{stats:#}");
    let ratio = peak as f64 / NUL_BYTES as f64;
    eprintln!(
        "100 MB of NULs: peak RSS {} MB, {ratio:.2}x the body",
        peak >> 20
    );
    assert!(ratio <= 2.5, "peak RSS {ratio:.2}x the largest body");
}

#[test]
fn gzip_bomb_of_a_gigabyte() {
    let bomb = gzip_of_zeros(BOMB_BYTES);
    assert!(bomb.len() < 2_000_000, "the bomb is {} bytes", bomb.len());
    let base = serve(Arc::new(vec![
        (
            "/",
            None,
            b"<title>home</title><a href=\"/bomb\">b</a><a href=\"/ok\">o</a>".to_vec(),
        ),
        ("/bomb", Some("gzip"), bomb),
    ]));
    let (stats, peak) = crawl(&format!("{base}/"));
    assert_eq!(stats["item_scraped_count"], 3, "{stats:#}");
    // Inflated whole (under the default 1 GiB limit), so kept: 1 GB.
    assert_eq!(
        stats["httpcompression/response_bytes"], BOMB_BYTES as u64,
        "{stats:#}"
    );
    let ratio = peak as f64 / BOMB_BYTES as f64;
    eprintln!(
        "1 GB gzip bomb: peak RSS {} MB, {ratio:.2}x the body",
        peak >> 20
    );
    assert!(ratio <= 2.5, "peak RSS {ratio:.2}x the largest body");
}

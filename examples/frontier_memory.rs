//! What the in-memory frontier costs: the resident memory of N pending requests in a
//! [`MemoryQueue`] plus their fingerprints in a [`MemoryDupeFilter`], per request.
//!
//! ```sh
//! cargo run --release --example frontier_memory            # N = 1,000,000
//! cargo run --release --example frontier_memory -- 200000
//! ```
//!
//! Each figure is measured in a fresh child process (this program run again with a
//! mode argument), so memory freed by one measurement cannot hide the next one's
//! growth. A child reads `VmRSS` (resident now) and `VmHWM` (peak resident) from
//! `/proc/self/status` before and after, and divides the growth by N:
//!
//! - `frontier`: every request goes through `MemoryDupeFilter::request_seen` and is
//!   pushed into a `MemoryQueue`, built the way a crawl builds them (a `GET` from
//!   `Request::get`, `meta["depth"] = 3`, priority -3, a typed callback); then all
//!   are popped and compared with what was pushed (URL, method, meta, priority,
//!   callback name and data), so a compact queue cannot cheat by losing data;
//! - `dupefilter`: the same fingerprints in a `MemoryDupeFilter` alone.
//!
//! Linux only (`/proc/self/status`).

use std::process::Command;
use std::time::Instant;

use arachne::dupefilter::MemoryDupeFilter;
use arachne::http::{Method, Request};
use arachne::queue::{MemoryQueue, QueueOrder};
use serde::{Deserialize, Serialize};

/// A spider's callback type, as the crawls in `tests/` name theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Cb {
    Parse,
    ParseItem,
}

/// The i-th request, as a crawl at depth 3 with `DEPTH_PRIORITY = 1` makes it.
fn request(i: usize) -> Request {
    Request::get(format!("http://127.0.0.1:8899/p/{i}?x=1"))
        .expect("the example's URLs are valid")
        .meta("depth", 3)
        .priority(-3)
        .callback(Cb::ParseItem)
}

/// `VmRSS` and `VmHWM` in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Prints the growth since `before` per request, in a line the parent parses.
fn report(mode: &str, n: usize, before: (u64, u64), extra: &str) {
    let after = memory();
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / n as f64;
    println!(
        "RESULT {mode} rss_per_request={:.1} hwm_per_request={:.1} rss_total_mb={:.1}{extra}",
        per(after.0, before.0),
        per(after.1, before.1),
        after.0.saturating_sub(before.0) as f64 / 1e6,
    );
}

fn frontier(n: usize) -> Result<(), String> {
    let before = memory();
    let started = Instant::now();
    let mut queue = MemoryQueue::new(QueueOrder::Lifo);
    let mut seen = MemoryDupeFilter::default();
    for i in 0..n {
        let r = request(i);
        if !seen.request_seen(&r) {
            queue.push(r);
        }
    }
    let push_ns = started.elapsed().as_nanos() as f64 / n as f64;
    report("frontier", n, before, &format!(" push_ns={push_ns:.0}"));
    if queue.len() != n || seen.len() != n {
        return Err(format!(
            "{} queued, {} seen, {n} pushed",
            queue.len(),
            seen.len()
        ));
    }

    // Everything comes back, in LIFO order, as it went in.
    let started = Instant::now();
    let mut expected_index = n;
    while let Some(got) = queue.pop() {
        expected_index -= 1;
        let want = request(expected_index);
        let same = got.url == want.url
            && got.method == Method::GET
            && got.meta == want.meta
            && got.priority == want.priority
            && got.callback.as_ref().map(|c| c.name()) == Some("parse_item".to_string())
            && got.callback == want.callback
            && got.callback.as_ref().and_then(|c| c.resolve::<Cb>().ok()) == Some(Cb::ParseItem)
            && got.errback.is_none()
            && got.headers.is_empty()
            && got.body.is_empty()
            && got.flags.is_empty()
            && !got.dont_filter;
        if !same {
            return Err(format!("request {expected_index} came back as {got:?}"));
        }
    }
    if expected_index != 0 {
        return Err(format!("{expected_index} requests never came back"));
    }
    let pop_ns = started.elapsed().as_nanos() as f64 / n as f64;
    println!("CHECK frontier all {n} requests popped intact, pop+compare {pop_ns:.0} ns each");
    Ok(())
}

fn dupefilter(n: usize) -> Result<(), String> {
    let before = memory();
    let mut seen = MemoryDupeFilter::default();
    let mut in_filter = std::time::Duration::ZERO;
    for i in 0..n {
        let r = request(i);
        let started = Instant::now();
        seen.request_seen(&r);
        in_filter += started.elapsed();
    }
    let seen_ns = in_filter.as_nanos() as f64 / n as f64;
    report("dupefilter", n, before, &format!(" seen_ns={seen_ns:.0}"));
    if seen.len() != n {
        return Err(format!(
            "{} fingerprints held, {n} distinct given",
            seen.len()
        ));
    }
    Ok(())
}

/// Runs this program again in `mode` and returns its `RESULT` line's fields.
fn child(mode: &str, n: usize) -> Result<Vec<(String, f64)>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args([mode, &n.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines().filter(|l| l.starts_with("CHECK")) {
        println!("  {line}");
    }
    if !out.status.success() {
        return Err(format!(
            "{mode} failed: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .ok_or_else(|| format!("{mode} printed no result: {stdout}"))?;
    Ok(line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect())
}

fn get(fields: &[(String, f64)], key: &str) -> f64 {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map_or(f64::NAN, |(_, v)| *v)
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, n) = match args.as_slice() {
        [m, n] if m == "frontier" || m == "dupefilter" => (Some(m.as_str()), n.as_str()),
        [n] => (None, n.as_str()),
        [] => (None, "1000000"),
        _ => return Err("usage: frontier_memory [N]".into()),
    };
    let n: usize = n
        .replace(['_', ','], "")
        .parse()
        .map_err(|e| format!("N: {e}"))?;
    if n == 0 {
        return Err("N must be positive".into());
    }
    match mode {
        Some("frontier") => return frontier(n),
        Some("dupefilter") => return dupefilter(n),
        _ => {}
    }

    println!("in-memory frontier (no JOBDIR), N = {n} pending requests");
    let total = child("frontier", n)?;
    let filter = child("dupefilter", n)?;
    let row = |what: &str, f: &[(String, f64)]| {
        println!(
            "  {what:<28} {:>7.1} B/request resident  {:>7.1} B/request peak  ({:.1} MB)",
            get(f, "rss_per_request"),
            get(f, "hwm_per_request"),
            get(f, "rss_total_mb"),
        );
    };
    row("queue + dupefilter:", &total);
    row("dupefilter alone:", &filter);
    println!(
        "  queue alone (difference):    {:>7.1} B/request resident",
        get(&total, "rss_per_request") - get(&filter, "rss_per_request")
    );
    println!(
        "  push (build + fingerprint + enqueue): {:.0} ns/request; request_seen (fingerprint + set): {:.0} ns",
        get(&total, "push_ns"),
        get(&filter, "seen_ns"),
    );
    Ok(())
}

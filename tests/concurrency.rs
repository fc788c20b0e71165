//! Acceptance 2: per-domain concurrency and delay hold. With two hosts (127.0.0.1 and
//! 127.0.0.2) the server never sees more than `CONCURRENT_REQUESTS_PER_DOMAIN` requests at
//! once per host, and with `DOWNLOAD_DELAY` the gaps between requests to one host respect
//! it — per slot, not globally. Also `CONCURRENT_REQUESTS_PER_IP`, the `download_slot`
//! meta key and the global `CONCURRENT_REQUESTS` cap.
//!
//! Every figure is measured by the fixture server (`FixtureServer::log`,
//! `max_concurrent`, `max_connections`), never by the crawler under test.

mod support;

use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use arachne::prelude::*;
use arachne::stats::StatsMap;
use support::server::{FixtureServer, LogEntry};
use support::site::Site;

const A: &str = "127.0.0.1";
const B: &str = "127.0.0.2";

/// Fetches a fixed list of requests and does nothing with the responses.
struct ListSpider(Vec<Request>);

#[async_trait(?Send)]
impl Spider for ListSpider {
    type Callback = DefaultCallback;

    fn name(&self) -> &str {
        "list"
    }
    fn start(self: Arc<Self>) -> Start {
        start_from_iter(self.0.clone().into_iter().map(Ok::<_, SpiderError>))
    }
    async fn parse(&self, _: &Response) -> CallbackResult {
        Ok(Output::new())
    }
}

/// Settings common to every test here, plus `extra`.
fn settings(extra: &[(&str, serde_json::Value)]) -> Settings {
    let mut s = Settings::new()
        .with("LOGSTATS_INTERVAL", 0)
        .with("STATS_DUMP", false);
    for (k, v) in extra {
        s = s.with(k, v.clone());
    }
    s
}

/// Runs a crawl of `requests` to its end and checks it finished cleanly.
async fn crawl(requests: Vec<Request>, settings: Settings) -> StatsMap {
    let n = requests.len() as u64;
    let stats = Crawler::new(ListSpider(requests), settings)
        .run()
        .await
        .expect("crawl runs");
    assert_eq!(stats["finish_reason"], "finished", "{stats:#?}");
    assert_eq!(stats["downloader/response_count"], n, "{stats:#?}");
    stats
}

/// `n` GETs of `path` on `ip`, made distinct with a `?i=` query (the server's router ignores
/// the query, the duplicate filter does not).
fn requests_on(server: &FixtureServer, ip: &str, path: &str, n: usize) -> Vec<Request> {
    (0..n)
        .map(|i| Request::get(server.url_on(ip, &format!("{path}?i={i}"))).unwrap())
        .collect()
}

/// Alternates the elements of two lists, so both hosts are in every batch the engine takes.
fn interleave(a: Vec<Request>, b: Vec<Request>) -> Vec<Request> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter();
    let mut b = b.into_iter();
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// The most requests in progress at once among `entries`, from their server-side
/// `started`..`finished` intervals (a request finishing at the very instant another starts
/// does not overlap it).
fn max_overlap<'a>(entries: impl IntoIterator<Item = &'a LogEntry>) -> usize {
    let mut events: Vec<(Instant, i32)> = Vec::new();
    for e in entries {
        events.push((e.started, 1));
        events.push((e.finished, -1));
    }
    events.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, delta) in events {
        now += delta;
        max = max.max(now);
    }
    max as usize
}

/// Sorted start times of the requests the server received on `ip`.
fn starts_on(log: &[LogEntry], ip: &str) -> Vec<Instant> {
    let mut starts: Vec<Instant> = log
        .iter()
        .filter(|e| e.host == ip)
        .map(|e| e.started)
        .collect();
    starts.sort();
    starts
}

/// Gaps in seconds between consecutive instants.
fn gaps(starts: &[Instant]) -> Vec<f64> {
    starts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect()
}

/// Per-domain limit 3: each host reaches exactly 3 at once, never more, both hosts in parallel.
#[actix::test]
async fn per_domain_concurrency_holds_per_host() {
    // A global limit of 16 leaves room for both hosts; 6 in flight at once proves slots are
    // per host.
    let server = FixtureServer::start_on(&[A, B], Site::Static(Default::default()));
    let requests = interleave(
        requests_on(&server, A, "/slow/150", 20),
        requests_on(&server, B, "/slow/150", 20),
    );
    crawl(
        requests,
        settings(&[
            ("CONCURRENT_REQUESTS", 16.into()),
            ("CONCURRENT_REQUESTS_PER_DOMAIN", 3.into()),
        ]),
    )
    .await;

    let log = server.log();
    assert_eq!(log.len(), 40);
    assert!(log.iter().all(|e| e.status == 200));
    for ip in [A, B] {
        assert_eq!(log.iter().filter(|e| e.host == ip).count(), 20, "{ip}");
        let max = server.max_concurrent(ip);
        assert!(max <= 3, "{ip}: {max} requests at once, limit is 3");
        assert_eq!(max, 3, "{ip}: the per-domain limit is never reached");
        let conns = server.max_connections(ip);
        assert!(
            conns <= 3,
            "{ip}: {conns} connections open at once, limit is 3"
        );
    }
    let both = max_overlap(&log);
    assert_eq!(
        both, 6,
        "both hosts should be at their limit at the same time (slots are per host)"
    );
}

/// A fixed 0.3 s `DOWNLOAD_DELAY` spaces each host's requests by 0.3 s, per slot, not globally.
#[actix::test]
async fn fixed_download_delay_is_per_slot() {
    let server = FixtureServer::start_on(&[A, B], Site::Static(Default::default()));
    let requests = interleave(
        requests_on(&server, A, "/status/200", 6),
        requests_on(&server, B, "/status/200", 6),
    );
    let t0 = Instant::now();
    crawl(
        requests,
        settings(&[
            ("DOWNLOAD_DELAY", 0.3.into()),
            ("RANDOMIZE_DOWNLOAD_DELAY", false.into()),
        ]),
    )
    .await;
    let elapsed = t0.elapsed();

    let log = server.log();
    assert_eq!(log.len(), 12);
    for ip in [A, B] {
        let starts = starts_on(&log, ip);
        assert_eq!(starts.len(), 6, "{ip}");
        for gap in gaps(&starts) {
            // Measured at the server: 30 ms allow for differences in transfer latency.
            assert!(
                gap >= 0.27,
                "{ip}: requests {gap:.3} s apart, delay is 0.3 s"
            );
            assert!(
                gap <= 0.6,
                "{ip}: requests {gap:.3} s apart, delay is only 0.3 s"
            );
        }
    }
    // A global delay would space all 12 starts by 0.3 s (3.3 s in all); per-slot delays
    // start the two hosts' requests in pairs.
    let mut all: Vec<(Instant, &str)> = log.iter().map(|e| (e.started, e.host.as_str())).collect();
    all.sort();
    let close_pairs = all
        .windows(2)
        .filter(|w| w[0].1 != w[1].1 && (w[1].0 - w[0].0) < Duration::from_millis(100))
        .count();
    assert!(
        close_pairs >= 3,
        "requests to the two hosts should start side by side; {close_pairs} close pairs"
    );
    let span = all[all.len() - 1].0 - all[0].0;
    assert!(
        span < Duration::from_millis(2800),
        "12 requests over two slots took {span:?} (crawl {elapsed:?}): the delay looks global"
    );
}

/// A randomised 0.4 s `DOWNLOAD_DELAY` gives gaps within 0.5–1.5 × 0.4 s that really vary.
#[actix::test]
async fn randomized_download_delay_bounds() {
    let server = FixtureServer::start_on(&[A, B], Site::Static(Default::default()));
    let requests = interleave(
        requests_on(&server, A, "/status/200", 5),
        requests_on(&server, B, "/status/200", 5),
    );
    // RANDOMIZE_DOWNLOAD_DELAY is left at its default, true.
    crawl(requests, settings(&[("DOWNLOAD_DELAY", 0.4.into())])).await;

    let log = server.log();
    let mut all_gaps = Vec::new();
    for ip in [A, B] {
        let starts = starts_on(&log, ip);
        assert_eq!(starts.len(), 5, "{ip}");
        for gap in gaps(&starts) {
            assert!(gap >= 0.17, "{ip}: gap {gap:.3} s is below 0.5 × 0.4 s");
            // 1.5 × 0.4 s, plus room for a busy machine's timer.
            assert!(gap <= 0.85, "{ip}: gap {gap:.3} s is far above 1.5 × 0.4 s");
            all_gaps.push(gap);
        }
    }
    let min = all_gaps.iter().copied().fold(f64::INFINITY, f64::min);
    let max = all_gaps.iter().copied().fold(0.0, f64::max);
    assert!(
        max - min > 0.01,
        "8 randomised gaps all within 10 ms of each other: {all_gaps:?}"
    );
}

/// `CONCURRENT_REQUESTS_PER_IP` = 2: `localhost` and `127.0.0.1` share one slot of 2.
#[actix::test]
async fn per_ip_slot_is_shared_by_host_names() {
    let server = FixtureServer::start(Site::Static(Default::default()));
    let port = server.port(A);
    // The downloader keys a per-IP slot on the first address the resolver returns; this
    // test needs `localhost` to resolve to 127.0.0.1 first (not `::1`).
    let first = ("localhost", port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next());
    if first.map(|a| a.ip().to_string()).as_deref() != Some(A) {
        eprintln!("skipped: localhost resolves to {first:?} first, not {A}");
        return;
    }
    let by_name: Vec<Request> = (0..6)
        .map(|i| Request::get(format!("http://localhost:{port}/slow/150?i={i}")).unwrap())
        .collect();
    let requests = interleave(by_name, requests_on(&server, A, "/slow/150", 6));
    crawl(
        requests,
        settings(&[
            ("CONCURRENT_REQUESTS_PER_IP", 2.into()),
            ("CONCURRENT_REQUESTS_PER_DOMAIN", 8.into()),
        ]),
    )
    .await;

    let log = server.log();
    assert_eq!(log.len(), 12);
    let named = log
        .iter()
        .filter(|e| {
            e.header("host")
                .is_some_and(|h| h.starts_with("localhost:"))
        })
        .count();
    assert_eq!(named, 6, "requests by host name keep their Host header");
    let max = server.max_concurrent(A);
    assert!(max <= 2, "{max} requests at once to one IP, limit is 2");
    assert_eq!(max, 2, "the per-IP limit is never reached");
}

/// Two hosts with the same `download_slot` meta share its limit of 2 in flight.
#[actix::test]
async fn download_slot_meta_shares_a_slot() {
    let server = FixtureServer::start_on(&[A, B], Site::Static(Default::default()));
    let shared = |rs: Vec<Request>| -> Vec<Request> {
        rs.into_iter()
            .map(|r| r.meta("download_slot", "shared"))
            .collect()
    };
    let requests = interleave(
        shared(requests_on(&server, A, "/slow/150", 6)),
        shared(requests_on(&server, B, "/slow/150", 6)),
    );
    crawl(
        requests,
        settings(&[("CONCURRENT_REQUESTS_PER_DOMAIN", 2.into())]),
    )
    .await;

    let log = server.log();
    assert_eq!(log.len(), 12);
    assert_eq!(log.iter().filter(|e| e.host == B).count(), 6);
    let both = max_overlap(&log);
    assert!(
        both <= 2,
        "{both} requests at once across the two hosts of one slot, limit is 2"
    );
    assert_eq!(both, 2, "the slot's limit is never reached");
}

/// `CONCURRENT_REQUESTS` = 2 caps the whole crawl even when each host would allow 8.
#[actix::test]
async fn global_concurrency_cap() {
    let server = FixtureServer::start_on(&[A, B], Site::Static(Default::default()));
    let requests = interleave(
        requests_on(&server, A, "/slow/150", 6),
        requests_on(&server, B, "/slow/150", 6),
    );
    crawl(
        requests,
        settings(&[
            ("CONCURRENT_REQUESTS", 2.into()),
            ("CONCURRENT_REQUESTS_PER_DOMAIN", 8.into()),
        ]),
    )
    .await;

    let log = server.log();
    assert_eq!(log.len(), 12);
    let both = max_overlap(&log);
    assert!(
        both <= 2,
        "{both} requests at once, CONCURRENT_REQUESTS is 2"
    );
    assert_eq!(both, 2, "the global limit is never reached");
}

/// `DOWNLOAD_SLOTS` gives 127.0.0.2 a concurrency of 1 while 127.0.0.1 keeps 3.
#[actix::test]
async fn download_slots_override_one_host() {
    let server = FixtureServer::start_on(&[A, B], Site::Static(Default::default()));
    let requests = interleave(
        requests_on(&server, A, "/slow/150", 6),
        requests_on(&server, B, "/slow/150", 6),
    );
    crawl(
        requests,
        settings(&[
            ("CONCURRENT_REQUESTS_PER_DOMAIN", 3.into()),
            (
                "DOWNLOAD_SLOTS",
                serde_json::json!({ B: { "concurrency": 1 } }),
            ),
        ]),
    )
    .await;

    assert_eq!(server.log().len(), 12);
    assert_eq!(
        server.max_concurrent(A),
        3,
        "{A} keeps the per-domain limit"
    );
    assert_eq!(server.max_concurrent(B), 1, "{B} has its own limit of 1");
}

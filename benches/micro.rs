//! Micro-benchmarks of the per-request hot paths: request fingerprints, the compact
//! request codec (what the memory queue stores), scheduler push/pop (queue +
//! duplicate filter), and CSS selection on a 100 KB page.
//!
//! ```sh
//! cargo bench --bench micro
//! ```

use std::hint::black_box;

use arachne::dupefilter::MemoryDupeFilter;
use arachne::http::Request;
use arachne::queue::{MemoryQueue, QueueOrder};
use arachne::selector::{sample_page, Css, Html};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn fingerprints(c: &mut Criterion) {
    let plain = Request::get("http://127.0.0.1:8899/p/12345.html").unwrap();
    let query =
        Request::get("http://127.0.0.1:8899/search?q=rust&page=3&sort=desc&lang=en#top").unwrap();
    let mut g = c.benchmark_group("fingerprint");
    g.throughput(Throughput::Elements(1));
    g.bench_function("plain", |b| b.iter(|| black_box(&plain).fingerprint()));
    g.bench_function("query", |b| b.iter(|| black_box(&query).fingerprint()));
    g.finish();
}

/// The compact form the memory queue holds each pending request in (and a `JOBDIR`
/// persists): encoding on push, decoding on pop, for a request as a crawl makes it.
fn compact(c: &mut Criterion) {
    #[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
    #[serde(rename_all = "snake_case")]
    enum Cb {
        ParseItem,
    }
    let request = Request::get("http://127.0.0.1:8899/p/123456?x=1")
        .unwrap()
        .meta("depth", 3)
        .priority(-3)
        .callback(Cb::ParseItem);
    let bytes = request.to_compact().unwrap();
    let mut g = c.benchmark_group("compact");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::new();
    g.bench_function("encode", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&request).write_compact(&mut buf).unwrap();
            buf.len()
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| Request::from_compact(black_box(&bytes)).unwrap())
    });
    g.bench_function("encode_decode", |b| {
        b.iter(|| Request::from_compact(&black_box(&request).to_compact().unwrap()).unwrap())
    });
    g.finish();
}

fn scheduler(c: &mut Criterion) {
    let requests: Vec<Request> = (0..10_000i32)
        .map(|i| {
            Request::get(format!("http://127.0.0.1:8899/p/{i}.html"))
                .unwrap()
                .priority(-(i % 7))
        })
        .collect();
    let mut g = c.benchmark_group("scheduler");
    g.throughput(Throughput::Elements(requests.len() as u64));
    for order in [QueueOrder::Lifo, QueueOrder::Fifo] {
        g.bench_function(format!("push_pop_10k_{order:?}"), |b| {
            b.iter_batched(
                || requests.clone(),
                |reqs| {
                    let mut q = MemoryQueue::new(order);
                    let mut seen = MemoryDupeFilter::default();
                    for r in reqs {
                        if !seen.request_seen(&r) {
                            q.push(r);
                        }
                    }
                    while let Some(r) = q.pop() {
                        black_box(r);
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn css(c: &mut Criterion) {
    let page = sample_page(100);
    let html = Html::parse(&page);
    let links = Css::parse("a::attr(href)").unwrap();
    let items = Css::parse("div.item span.name::text").unwrap();
    let mut g = c.benchmark_group("css_100kb");
    g.throughput(Throughput::Bytes(page.len() as u64));
    g.bench_function("parse_document", |b| {
        b.iter(|| Html::parse(black_box(&page)))
    });
    g.bench_function("a_attr_href", |b| b.iter(|| links.select(&html).getall()));
    g.bench_function("div_item_span_text", |b| {
        b.iter(|| items.select(&html).getall())
    });
    g.bench_function("parse_and_links", |b| {
        b.iter(|| {
            let h = Html::parse(black_box(&page));
            links.select(&h).getall().len()
        })
    });
    g.finish();
}

criterion_group!(benches, fingerprints, compact, scheduler, css);
criterion_main!(benches);

//! Acceptance: a pipeline stage that drops some items signals `ItemDropped`, the stats
//! carry `item_dropped_count` and `item_dropped_reasons_count/<kind>`, and dropped items
//! are not exported; a stage that errors sends `ItemError` and the crawl goes on.

mod support;

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use actix::{Actor, AsyncContext, Context, Handler};
use arachne::extension::{ComponentHandle, CrawlerHandle};
use arachne::prelude::*;
use arachne::signals::{ItemDropped, ItemError};
use support::server::FixtureServer;
use support::site::Site;

/// Yields ten items numbered 0..10 from one page.
struct Ten(String);

#[async_trait(?Send)]
impl Spider for Ten {
    type Callback = DefaultCallback;

    fn name(&self) -> &str {
        "ten"
    }
    fn start_urls(&self) -> Vec<String> {
        vec![self.0.clone()]
    }
    async fn parse(&self, _: &Response) -> CallbackResult {
        let mut out = Output::new();
        for n in 0..10 {
            out.item(serde_json::json!({ "n": n }));
        }
        Ok(out)
    }
}

/// Drops odd numbers (two kinds of reason) and fails on 4.
struct Filter {
    calls: Cell<usize>,
}

#[async_trait(?Send)]
impl ItemPipeline for Filter {
    async fn process_item(&self, item: Item) -> Result<Item, PipelineError> {
        self.calls.set(self.calls.get() + 1);
        let n = item.get("n").and_then(|v| v.as_i64()).unwrap_or(-1);
        match n {
            4 => Err(PipelineError::Error("cannot store 4".into())),
            1 => Err(DropItem::with_kind("TooSmall", "one is too small").into()),
            n if n % 2 == 1 => Err(DropItem::new(format!("{n} is odd")).into()),
            _ => Ok(item),
        }
    }
}

/// Adds a field, to show stages run in order.
struct Mark;

#[async_trait(?Send)]
impl ItemPipeline for Mark {
    async fn process_item(&self, item: Item) -> Result<Item, PipelineError> {
        Ok(item.with("marked", true))
    }
}

/// Records dropped and failed items.
struct Recorder(CrawlerHandle, Arc<Mutex<Vec<String>>>);

impl Actor for Recorder {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.0.subscribe::<ItemDropped>(ctx.address().recipient());
        self.0.subscribe::<ItemError>(ctx.address().recipient());
    }
}

impl Handler<ItemDropped> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: ItemDropped, _: &mut Context<Self>) {
        self.1.lock().unwrap().push(format!(
            "dropped {} {}",
            msg.item.get("n").unwrap(),
            msg.kind
        ));
    }
}

impl Handler<ItemError> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: ItemError, _: &mut Context<Self>) {
        self.1.lock().unwrap().push(format!(
            "error {} {}",
            msg.item.get("n").unwrap(),
            msg.error
        ));
    }
}

/// Drops and errors are signalled, counted, not exported; the rest flows on in order.
#[actix::test]
async fn drops_and_errors() {
    let server = FixtureServer::start(Site::html_pages([("/items", "<title>i</title>")]));
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("out.jsonl");
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let settings = Settings::new()
        .with(
            "ITEM_PIPELINES",
            serde_json::json!({ "Mark": 200, "Filter": 100 }),
        )
        .with("EXTENSIONS", serde_json::json!({ "Recorder": 1 }))
        .with(
            "FEEDS",
            serde_json::json!({ feed.to_str().unwrap(): { "format": "jsonlines" } }),
        )
        .with("LOGSTATS_INTERVAL", 0)
        .with("CONCURRENT_ITEMS", 3);
    let stats = Crawler::new(Ten(server.url("/items")), settings)
        .pipeline("Filter", |_| {
            Ok(Some(Box::new(Filter {
                calls: Cell::new(0),
            })))
        })
        .pipeline("Mark", |_| Ok(Some(Box::new(Mark))))
        .extension("Recorder", move |c| {
            Ok(Some(ComponentHandle::new(
                Recorder(c.clone(), ev.clone()).start(),
            )))
        })
        .run()
        .await
        .unwrap();

    assert_eq!(stats["finish_reason"], "finished");
    assert_eq!(stats["item_scraped_count"], 4, "0, 2, 6, 8 pass");
    assert_eq!(stats["item_dropped_count"], 5);
    assert_eq!(stats["item_dropped_reasons_count/DropItem"], 4);
    assert_eq!(stats["item_dropped_reasons_count/TooSmall"], 1);
    assert_eq!(stats["item_error_count"], 1);

    let exported: Vec<serde_json::Value> = std::fs::read_to_string(&feed)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut ns: Vec<i64> = exported.iter().map(|v| v["n"].as_i64().unwrap()).collect();
    ns.sort();
    assert_eq!(ns, [0, 2, 6, 8]);
    assert!(
        exported.iter().all(|v| v["marked"] == true),
        "Mark runs after Filter"
    );

    let mut ev = events.lock().unwrap().clone();
    ev.sort();
    assert_eq!(ev.len(), 6);
    assert!(ev.contains(&"dropped 1 TooSmall".to_string()));
    assert!(ev.contains(&"dropped 9 DropItem".to_string()));
    assert!(ev.contains(&"error 4 cannot store 4".to_string()));
}

/// A pipeline name nobody registered is a configuration error, not a silent skip.
#[actix::test]
async fn unknown_pipeline_is_an_error() {
    let settings = Settings::new().with("ITEM_PIPELINES", serde_json::json!({ "Nope": 1 }));
    let err = Crawler::new(Ten("http://127.0.0.1:1/".into()), settings)
        .run()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Nope"), "{err}");
}

/// A bad setting value fails the crawl at start, naming key and value.
#[actix::test]
async fn bad_setting_value_is_a_clear_error() {
    let mut settings = Settings::new();
    settings.set_cli("CONCURRENT_REQUESTS=abc").unwrap();
    let err = Crawler::new(Ten("http://127.0.0.1:1/".into()), settings)
        .run()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CONCURRENT_REQUESTS") && err.contains("abc"),
        "{err}"
    );
}

/// Panics on item 3: the panic is an ItemError, not a crash.
struct Panicky;

#[async_trait(?Send)]
impl ItemPipeline for Panicky {
    async fn process_item(&self, item: Item) -> Result<Item, PipelineError> {
        if item.get("n").and_then(|v| v.as_i64()) == Some(3) {
            panic!("stage bug");
        }
        Ok(item)
    }
}

/// A panicking stage fails that item only; the crawl finishes normally.
#[actix::test]
async fn panicking_stage_is_an_item_error() {
    let server = FixtureServer::start(Site::html_pages([("/items", "<title>i</title>")]));
    let settings = Settings::new()
        .with("ITEM_PIPELINES", serde_json::json!({ "Panicky": 1 }))
        .with("LOGSTATS_INTERVAL", 0);
    let stats = Crawler::new(Ten(server.url("/items")), settings)
        .pipeline("Panicky", |_| Ok(Some(Box::new(Panicky))))
        .run()
        .await
        .unwrap();
    assert_eq!(stats["finish_reason"], "finished");
    assert_eq!(stats["item_scraped_count"], 9);
    assert_eq!(stats["item_error_count"], 1);
}
